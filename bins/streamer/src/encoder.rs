//! Choosing the H.264 encoder: a hardware encoder where the machine has one, else x264.
//!
//! Probing is real and cheap (done once at start): every `/dev/video*` is opened and asked for
//! its capabilities (`VIDIOC_QUERYCAP`: a memory-to-memory device) and formats
//! (`VIDIOC_ENUM_FMT`: H.264 on its capture queue, i.e. an encoder, as on Raspberry Pi and
//! Rockchip boards); VAAPI counts when a DRM render node exists **and** GStreamer registered a
//! VAAPI H.264 encoder for it (its plugins register only what the VA driver can do). The choice
//! itself is a pure function of the probe ([`choose`]), so its fallbacks are tested without
//! hardware.

use std::fmt::Write as _;
use std::fs::OpenOptions;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use framebus_common::config::{EncoderChoice, StreamerConfig};

/// `VIDIOC_QUERYCAP`: `_IOR('V', 0, struct v4l2_capability)` (104 bytes).
const VIDIOC_QUERYCAP: u64 = 0x8068_5600;
/// `VIDIOC_ENUM_FMT`: `_IOWR('V', 2, struct v4l2_fmtdesc)` (64 bytes).
const VIDIOC_ENUM_FMT: u64 = 0xc040_5602;
const CAP_VIDEO_M2M_MPLANE: u32 = 0x0000_4000;
const CAP_VIDEO_M2M: u32 = 0x0000_8000;
const CAP_DEVICE_CAPS: u32 = 0x8000_0000;
const BUF_VIDEO_CAPTURE: u32 = 1;
const BUF_VIDEO_OUTPUT: u32 = 2;
const BUF_VIDEO_CAPTURE_MPLANE: u32 = 9;
const BUF_VIDEO_OUTPUT_MPLANE: u32 = 10;
const FOURCC_H264: u32 = u32::from_le_bytes(*b"H264");

#[repr(C)]
struct V4l2Capability {
    driver: [u8; 16],
    card: [u8; 32],
    bus_info: [u8; 32],
    version: u32,
    capabilities: u32,
    device_caps: u32,
    reserved: [u32; 3],
}

#[repr(C)]
struct V4l2FmtDesc {
    index: u32,
    kind: u32,
    flags: u32,
    description: [u8; 32],
    pixelformat: u32,
    mbus_code: u32,
    reserved: [u32; 3],
}

/// A V4L2 memory-to-memory H.264 encoder found on the machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct M2mEncoder {
    /// Its device node.
    pub device: PathBuf,
    /// Driver name (`bcm2835-codec`, `hantro-vpu`, ...).
    pub driver: String,
    /// Card name.
    pub card: String,
    /// Raw formats it accepts (fourccs of its output queue).
    pub inputs: Vec<String>,
}

/// VAAPI on the machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VaapiEncoder {
    /// The DRM render node.
    pub render_node: PathBuf,
    /// The GStreamer element that encodes with it (`vah264enc`, `vaapih264enc`, ...).
    pub element: String,
}

/// What the machine offers, with the reason each hardware path is absent.
#[derive(Debug, Clone)]
pub struct Probe {
    /// The first V4L2 M2M H.264 encoder, or why there is none.
    pub v4l2: Option<M2mEncoder>,
    /// Why no V4L2 encoder was found (per device).
    pub v4l2_notes: Vec<String>,
    /// GStreamer's element for the V4L2 encoder, when one was found and registered.
    pub v4l2_element: Option<String>,
    /// VAAPI, or why not.
    pub vaapi: Result<VaapiEncoder, String>,
}

impl Default for Probe {
    fn default() -> Self {
        Probe { v4l2: None, v4l2_notes: Vec::new(), v4l2_element: None, vaapi: Err("not probed".into()) }
    }
}

/// The encoder to use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Encoder {
    /// A V4L2 M2M hardware encoder through GStreamer's `element` (e.g. `v4l2h264enc`).
    V4l2 {
        /// GStreamer element name.
        element: String,
        /// Its device.
        device: PathBuf,
    },
    /// VAAPI through GStreamer's `element`.
    Vaapi {
        /// GStreamer element name.
        element: String,
    },
    /// x264 in software.
    X264,
}

impl Encoder {
    /// Short name for logs and status (`x264`, `v4l2:/dev/video11`, `vaapi:vah264enc`).
    pub fn label(&self) -> String {
        match self {
            Encoder::V4l2 { device, .. } => format!("v4l2:{}", device.display()),
            Encoder::Vaapi { element } => format!("vaapi:{element}"),
            Encoder::X264 => "x264".into(),
        }
    }

    /// The GStreamer pipeline fragment: raw video in (any format `videoconvert` takes),
    /// H.264 byte-stream out.
    pub fn launch(&self, config: &StreamerConfig) -> String {
        let kbps = config.bitrate_kbps;
        let gop = config.gop;
        // Browsers decode constrained baseline everywhere; without low latency, main profile
        // with B-frames compresses better.
        let profile = if config.low_latency { "constrained-baseline" } else { "main" };
        let bframes = if config.low_latency { 0 } else { 2 };
        match self {
            Encoder::X264 => {
                let tuning = if config.low_latency {
                    "tune=zerolatency speed-preset=ultrafast rc-lookahead=0 sync-lookahead=0 sliced-threads=true"
                } else {
                    "speed-preset=veryfast"
                };
                format!(
                    "videoconvert ! video/x-raw,format=I420 ! x264enc name=enc {tuning} bitrate={kbps} key-int-max={gop} bframes={bframes} \
                     ! video/x-h264,profile={profile}"
                )
            }
            Encoder::V4l2 { element, .. } => format!(
                "videoconvert ! video/x-raw,format=NV12 ! {element} name=enc \
                 extra-controls=\"encode,video_bitrate={bps},video_gop_size={gop},h264_i_frame_period={gop},repeat_sequence_header=1,video_b_frames={bframes}\" \
                 ! video/x-h264,level=(string)4",
                bps = u64::from(kbps) * 1000
            ),
            Encoder::Vaapi { element } if element.starts_with("vaapi") => format!(
                "videoconvert ! video/x-raw,format=NV12 ! {element} name=enc rate-control=cbr bitrate={kbps} keyframe-period={gop} max-bframes={bframes} \
                 ! video/x-h264,profile={profile}"
            ),
            Encoder::Vaapi { element } => format!(
                "videoconvert ! video/x-raw,format=NV12 ! {element} name=enc rate-control=cbr bitrate={kbps} key-int-max={gop} b-frames={bframes} \
                 ! video/x-h264,profile={profile}"
            ),
        }
    }
}

/// The chosen encoder and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    /// What encodes.
    pub encoder: Encoder,
    /// Why, in one line (logged at start).
    pub reason: String,
}

/// Picks the encoder for `want` from what `probe` found. `auto`: V4L2 M2M, then VAAPI, then
/// x264; an explicit hardware choice the machine lacks is an error naming why.
pub fn choose(want: EncoderChoice, probe: &Probe) -> Result<Choice, String> {
    let v4l2 = || {
        match (&probe.v4l2, &probe.v4l2_element) {
        (Some(dev), Some(element)) => Ok(Choice {
            encoder: Encoder::V4l2 { element: element.clone(), device: dev.device.clone() },
            reason: format!(
                "V4L2 M2M H.264 encoder {} ({} / {}, inputs {})",
                dev.device.display(),
                dev.driver,
                dev.card,
                dev.inputs.join(",")
            ),
        }),
        (Some(dev), None) => Err(format!(
            "{} is a V4L2 H.264 encoder but GStreamer's v4l2 plugin registered no element for it (gstreamer1.0-plugins-good)",
            dev.device.display()
        )),
        (None, _) => Err(format!(
            "no V4L2 M2M H.264 encoder ({})",
            if probe.v4l2_notes.is_empty() { "no /dev/video* device".to_string() } else { probe.v4l2_notes.join("; ") }
        )),
    }
    };
    let vaapi = || match &probe.vaapi {
        Ok(va) => Ok(Choice {
            encoder: Encoder::Vaapi { element: va.element.clone() },
            reason: format!("VAAPI H.264 encoder {} on {}", va.element, va.render_node.display()),
        }),
        Err(why) => Err(format!("no VAAPI H.264 encoder ({why})")),
    };
    match want {
        EncoderChoice::X264 => Ok(Choice { encoder: Encoder::X264, reason: "x264 (software) as configured".into() }),
        EncoderChoice::V4l2 => v4l2().map_err(|e| format!("encoder = \"v4l2\" but {e}")),
        EncoderChoice::Vaapi => vaapi().map_err(|e| format!("encoder = \"vaapi\" but {e}")),
        EncoderChoice::Auto => v4l2().or_else(|v4l2_why| {
            vaapi().or_else(|vaapi_why| {
                Ok(Choice { encoder: Encoder::X264, reason: format!("x264 (software): {v4l2_why}; {vaapi_why}") })
            })
        }),
    }
}

/// Probes the machine: V4L2 devices under `dev` (normally `/dev`), render nodes under
/// `dev/dri`, and GStreamer's registry (`has_element`, `v4l2_element_for`).
pub fn probe(
    dev: &Path,
    has_element: &dyn Fn(&str) -> bool,
    v4l2_element_for: &dyn Fn(&Path) -> Option<String>,
) -> Probe {
    let (v4l2, v4l2_notes) = probe_v4l2(dev);
    let v4l2_element = v4l2.as_ref().and_then(|e| v4l2_element_for(&e.device));
    Probe { v4l2, v4l2_notes, v4l2_element, vaapi: probe_vaapi(&dev.join("dri"), has_element) }
}

/// The first V4L2 M2M device under `dev` that produces H.264, and why every other was not.
pub fn probe_v4l2(dev: &Path) -> (Option<M2mEncoder>, Vec<String>) {
    let mut notes = Vec::new();
    let mut devices: Vec<(u32, PathBuf)> = match std::fs::read_dir(dev) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let n = name.strip_prefix("video")?.parse::<u32>().ok()?;
                Some((n, e.path()))
            })
            .collect(),
        Err(e) => {
            notes.push(format!("{}: {e}", dev.display()));
            Vec::new()
        }
    };
    devices.sort();
    for (_, path) in devices {
        match probe_device(&path) {
            Ok(Some(encoder)) => return (Some(encoder), notes),
            Ok(None) => {}
            Err(why) => notes.push(format!("{}: {why}", path.display())),
        }
    }
    (None, notes)
}

/// One device: `Ok(Some)` an H.264 encoder, `Ok(None)` a V4L2 device that is not one (a
/// camera, a decoder), `Err` not usable.
fn probe_device(path: &Path) -> Result<Option<M2mEncoder>, String> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| format!("cannot open: {e}"))?;
    let fd = file.as_raw_fd();
    // SAFETY: all-zero is a valid v4l2_capability; the kernel writes at most its 104 bytes.
    let mut cap: V4l2Capability = unsafe { std::mem::zeroed() };
    // SAFETY: fd is open for the call; cap is a properly sized, writable v4l2_capability.
    if unsafe { libc::ioctl(fd, VIDIOC_QUERYCAP as _, &mut cap as *mut V4l2Capability) } != 0 {
        return Err(format!("not a V4L2 device (QUERYCAP: {})", std::io::Error::last_os_error()));
    }
    let caps = if cap.capabilities & CAP_DEVICE_CAPS != 0 { cap.device_caps } else { cap.capabilities };
    let (capture, output) = if caps & CAP_VIDEO_M2M_MPLANE != 0 {
        (BUF_VIDEO_CAPTURE_MPLANE, BUF_VIDEO_OUTPUT_MPLANE)
    } else if caps & CAP_VIDEO_M2M != 0 {
        (BUF_VIDEO_CAPTURE, BUF_VIDEO_OUTPUT)
    } else {
        return Ok(None);
    };
    let produces = formats(fd, capture);
    if !produces.contains(&FOURCC_H264) {
        return Ok(None);
    }
    let inputs = formats(fd, output).into_iter().map(fourcc_text).collect();
    Ok(Some(M2mEncoder { device: path.to_path_buf(), driver: c_text(&cap.driver), card: c_text(&cap.card), inputs }))
}

/// Fourccs a queue of the device enumerates.
fn formats(fd: i32, kind: u32) -> Vec<u32> {
    let mut found = Vec::new();
    for index in 0..64 {
        // SAFETY: all-zero is a valid v4l2_fmtdesc.
        let mut desc: V4l2FmtDesc = unsafe { std::mem::zeroed() };
        desc.index = index;
        desc.kind = kind;
        // SAFETY: fd is open; desc is a properly sized, writable v4l2_fmtdesc.
        if unsafe { libc::ioctl(fd, VIDIOC_ENUM_FMT as _, &mut desc as *mut V4l2FmtDesc) } != 0 {
            break;
        }
        found.push(desc.pixelformat);
    }
    found
}

fn fourcc_text(code: u32) -> String {
    code.to_le_bytes().iter().map(|&b| if b.is_ascii_graphic() { b as char } else { '?' }).collect()
}

fn c_text(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// VAAPI: a render node under `dri` and a registered VAAPI H.264 encoder element.
pub fn probe_vaapi(dri: &Path, has_element: &dyn Fn(&str) -> bool) -> Result<VaapiEncoder, String> {
    let mut nodes: Vec<PathBuf> = std::fs::read_dir(dri)
        .map_err(|e| format!("{}: {e}", dri.display()))?
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("renderD"))
        .map(|e| e.path())
        .collect();
    nodes.sort();
    let Some(node) = nodes.into_iter().next() else {
        return Err(format!("no render node {}/renderD*", dri.display()));
    };
    let element =
        ["vah264lpenc", "vah264enc", "vaapih264enc"].into_iter().find(|e| has_element(e)).ok_or_else(|| {
            let mut why = format!("{} exists but GStreamer has no VAAPI H.264 encoder for it", node.display());
            let _ = write!(why, " (its VA driver offers no H.264 encoding, or gstreamer1.0-vaapi is missing)");
            why
        })?;
    Ok(VaapiEncoder { render_node: node, element: element.to_string() })
}

#[cfg(test)]
mod tests;
