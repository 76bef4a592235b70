//! V4L2 camera source (v4l crate, mmap streaming). Negotiates size, pixel format and frame rate
//! with the driver and reports what it granted, sets camera controls, waits on the device with
//! `poll` (never on a timer), and writes each driver buffer once into the loaned sample: as
//! delivered, or converted / decoded into the published format in that same pass. When the
//! device disappears the source reports [`SourceError::Unavailable`] and reopens it on
//! [`FrameSource::reconnect`].

use core::ffi::c_void;
use core::mem::MaybeUninit;
use std::ffi::CStr;
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::anyhow;
use framebus_common::config::{
    normalize_control_name, v4l2_conversion, v4l2_targets, ControlValue, Conversion, V4l2Source as V4l2Config,
};
use framebus_common::{clock, CameraConfig, PixelFormat};
use framebus_vision::opencv::core::Mat;
use framebus_vision::opencv::prelude::*;
use framebus_vision::opencv::{imgcodecs, imgproc};
use framebus_vision::{mat_shape, raw_mat, uninit_mat};
use v4l::buffer::{Flags as BufferFlags, Type as BufferType};
use v4l::capability::Flags as CapabilityFlags;
use v4l::io::mmap::Stream as MmapStream;
use v4l::io::traits::{CaptureStream, Stream as _};
use v4l::video::capture::Parameters;
use v4l::video::Capture;
use v4l::{Device, Format, FourCC, Fraction};

use super::{Effective, FrameSource, Grab, Pacing, SourceError, SourceFormat};

/// Longest single wait on the device: capture checks for SIGINT/SIGTERM at least this often.
const POLL_TIMEOUT: Duration = Duration::from_millis(100);
/// A streaming device that delivers nothing for this long (or 5 frame periods if longer) is
/// treated as gone and reopened.
const STALL_AFTER: Duration = Duration::from_secs(2);
/// Safety net for the poll inside `v4l`'s dequeue, which runs only after our own poll said
/// a frame is ready.
const DEQUEUE_TIMEOUT: Duration = Duration::from_secs(1);

// Kernel ABI values (include/uapi/linux/videodev2.h).
const CTRL_TYPE_INTEGER: u32 = 1;
const CTRL_TYPE_BOOLEAN: u32 = 2;
const CTRL_TYPE_MENU: u32 = 3;
const CTRL_TYPE_INTEGER64: u32 = 5;
const CTRL_TYPE_CTRL_CLASS: u32 = 6;
const CTRL_TYPE_INTEGER_MENU: u32 = 9;
const CTRL_FLAG_DISABLED: u32 = 0x0001;
const CTRL_FLAG_READ_ONLY: u32 = 0x0004;
const CTRL_FLAG_INACTIVE: u32 = 0x0010;
const CTRL_FLAG_NEXT_CTRL: u32 = 0x8000_0000;

/// What the configuration asks of the device.
#[derive(Debug, Clone)]
struct Request {
    camera: String,
    device: PathBuf,
    width: u32,
    height: u32,
    device_format: PixelFormat,
    published: PixelFormat,
    fps: f64,
    buffers: u32,
    strict: bool,
    controls: Vec<(String, ControlValue)>,
    /// Bytes of one shared-memory slot: no published frame may be larger.
    slot_bytes: usize,
}

/// What the driver granted.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Granted {
    format: PixelFormat,
    width: u32,
    height: u32,
    /// Bytes per row of the first plane in the driver's buffers.
    bytes_per_line: u32,
    /// Frames per second from G_PARM; 0 when the driver does not say.
    fps: f64,
}

impl Granted {
    fn describe(&self) -> String {
        format!("{}x{} {} at {}", self.width, self.height, self.format, fps_text(self.fps))
    }
}

fn fps_text(fps: f64) -> String {
    if fps > 0.0 {
        format!("{fps:.3} fps")
    } else {
        "an unknown frame rate".into()
    }
}

/// An open, streaming device.
struct Session {
    // Field order is drop order: the stream (STREAMOFF, unmap, REQBUFS 0) goes before the
    // device; both hold the file descriptor, which closes when the last one is gone.
    stream: MmapStream<'static>,
    _device: Device,
    fd: i32,
}

/// Why opening failed: the device is absent or broke (retry later), or it cannot give what
/// the config demands (retrying will not help).
enum OpenError {
    Gone(anyhow::Error),
    Refused(anyhow::Error),
}

fn gone(e: io::Error, what: String) -> OpenError {
    OpenError::Gone(anyhow::Error::new(e).context(what))
}

/// The grabbed frame: where it lies in the mapped driver buffer.
struct Current {
    ptr: *const u8,
    /// Bytes of the buffer that hold data (`bytesused`, or the whole buffer when 0).
    len: usize,
}

/// A V4L2 capture device.
pub struct V4l2Source {
    request: Request,
    granted: Granted,
    conversion: Conversion,
    adjustments: Vec<String>,
    session: Option<Session>,
    current: Option<Current>,
    last_sequence: Option<u32>,
    drops: u64,
    reconnects: u64,
    last_frame: Instant,
}

impl V4l2Source {
    /// Opens the camera's device, negotiates format and frame rate, applies the controls and
    /// starts streaming. Any failure here is an error (capture does not start).
    pub fn open(camera: &CameraConfig, config: &V4l2Config) -> anyhow::Result<V4l2Source> {
        let published = camera.format();
        let request = Request {
            camera: camera.name.clone(),
            device: config.device.clone(),
            width: camera.width,
            height: camera.height,
            device_format: config.device_format(published),
            published,
            fps: camera.fps,
            buffers: config.buffers,
            strict: config.strict,
            controls: config.controls.0.clone(),
            slot_bytes: camera.frame_bytes(),
        };
        let (session, granted, adjustments) = match open_session(&request) {
            Ok(opened) => opened,
            Err(OpenError::Gone(e) | OpenError::Refused(e)) => {
                return Err(e.context(format!(
                    "camera `{}`: opening V4L2 device {}",
                    request.camera,
                    request.device.display()
                )))
            }
        };
        let conversion = v4l2_conversion(granted.format, published).unwrap_or(Conversion::Passthrough);
        Ok(V4l2Source {
            request,
            granted,
            conversion,
            adjustments,
            session: Some(session),
            current: None,
            last_sequence: None,
            drops: 0,
            reconnects: 0,
            last_frame: Instant::now(),
        })
    }

    fn path(&self) -> String {
        self.request.device.display().to_string()
    }

    /// A frame is not expected for this long at the granted rate before the device counts as
    /// stalled.
    fn stall_after(&self) -> Duration {
        if self.granted.fps > 0.0 {
            STALL_AFTER.max(Duration::from_secs_f64(5.0 / self.granted.fps))
        } else {
            STALL_AFTER
        }
    }

    /// Stops streaming and closes the device; tolerates a device that is already gone.
    fn close(&mut self) {
        self.current = None;
        if let Some(session) = self.session.take() {
            // v4l panics in Drop when STREAMOFF or REQBUFS(0) fail with anything but ENODEV;
            // never let that take the process down.
            if catch_unwind(AssertUnwindSafe(move || drop(session))).is_err() {
                tracing::error!(camera = self.request.camera, device = self.path(), "closing the device failed");
            }
        }
    }

    /// Closes the device after an error and reports the source unavailable.
    fn lost(&mut self, why: String) -> SourceError {
        self.close();
        SourceError::Unavailable(format!("V4L2 device {}: {why}", self.path()))
    }

    /// Bytes a raw frame occupies in the driver's buffer (with its row padding).
    fn raw_source_bytes(&self) -> usize {
        let g = &self.granted;
        let rows = match g.format {
            PixelFormat::Nv12 => g.height as usize + g.height as usize / 2,
            _ => g.height as usize,
        };
        let row = g.format.stride(g.width) as usize;
        g.bytes_per_line as usize * rows.saturating_sub(1) + row
    }
}

fn fourcc_of(format: PixelFormat) -> FourCC {
    FourCC::new(&format.fourcc().to_le_bytes())
}

fn fourcc_text(fourcc: FourCC) -> String {
    fourcc.repr.iter().map(|&b| if b.is_ascii_graphic() { b as char } else { '?' }).collect()
}

/// The frame interval for `fps` as a fraction (7.5 fps → 2/15 s).
fn interval_for(fps: f64) -> Fraction {
    let mut num: u32 = 1000;
    let mut den: u32 = (fps * 1000.0).round().clamp(1.0, u32::MAX as f64) as u32;
    let (mut a, mut b) = (num, den);
    while b != 0 {
        (a, b) = (b, a % b);
    }
    if a > 1 {
        num /= a;
        den /= a;
    }
    Fraction::new(num, den)
}

fn fps_of(interval: Fraction) -> f64 {
    if interval.numerator == 0 || interval.denominator == 0 {
        0.0
    } else {
        f64::from(interval.denominator) / f64::from(interval.numerator)
    }
}

/// Opens the device and gets it streaming: format, frame rate, controls, buffers.
fn open_session(req: &Request) -> Result<(Session, Granted, Vec<String>), OpenError> {
    let path = req.device.display().to_string();
    let device = Device::with_path(&req.device).map_err(|e| gone(e, format!("cannot open {path}")))?;
    let caps = device.query_caps().map_err(|e| gone(e, format!("querying the capabilities of {path}")))?;
    let needed = CapabilityFlags::VIDEO_CAPTURE | CapabilityFlags::STREAMING;
    if !caps.capabilities.contains(needed) {
        return Err(OpenError::Refused(anyhow!(
            "{path} (`{}`, driver `{}`) is not a single-planar streaming video capture device (capabilities: {}); multi-planar devices are not supported yet",
            caps.card, caps.driver, caps.capabilities
        )));
    }
    let offered: Vec<String> =
        device.enum_formats().unwrap_or_default().iter().map(|d| fourcc_text(d.fourcc)).collect();

    let asked = Format::new(req.width, req.height, fourcc_of(req.device_format));
    let format = device.set_format(&asked).map_err(|e| gone(e, format!("setting the format of {path}")))?;
    let Some(granted_format) = PixelFormat::from_fourcc(u32::from_le_bytes(format.fourcc.repr)) else {
        return Err(OpenError::Refused(anyhow!(
            "{path} delivers {} instead of {}, a format framebus does not handle (the device offers: {})",
            fourcc_text(format.fourcc),
            req.device_format,
            offered.join(", ")
        )));
    };
    let mut adjustments = Vec::new();
    if granted_format != req.device_format {
        adjustments.push(format!("pixel format {} → {granted_format}", req.device_format));
    }
    if (format.width, format.height) != (req.width, req.height) {
        adjustments.push(format!("size {}x{} → {}x{}", req.width, req.height, format.width, format.height));
    }
    if v4l2_conversion(granted_format, req.published).is_none() {
        return Err(OpenError::Refused(anyhow!(
            "{path} delivers {granted_format} instead of {} and capture cannot publish {} from {granted_format} (it can publish {}); the device offers: {}",
            req.device_format,
            req.published,
            v4l2_targets(granted_format),
            offered.join(", ")
        )));
    }
    let published_bytes = req.published.frame_bytes(format.width, format.height);
    if published_bytes > req.slot_bytes {
        return Err(OpenError::Refused(anyhow!(
            "{path} grants {}x{} instead of {}x{}: its frames are larger than the shared-memory slots sized from the config; configure the size the device delivers",
            format.width, format.height, req.width, req.height
        )));
    }
    let row = granted_format.stride(format.width);
    if granted_format.is_raw() && format.stride < row {
        return Err(OpenError::Refused(anyhow!(
            "{path} reports {} bytes per line for {granted_format} {}x{}, less than a row needs ({row})",
            format.stride,
            format.width,
            format.height
        )));
    }

    let params = if req.fps > 0.0 {
        match device.set_params(&Parameters::new(interval_for(req.fps))) {
            Ok(params) => Some(params),
            Err(e) => {
                tracing::warn!(camera = req.camera, device = path, "{path} cannot set the frame rate: {e}");
                device.params().ok()
            }
        }
    } else {
        device.params().ok()
    };
    let fps = params.map_or(0.0, |p| fps_of(p.interval));
    if req.fps > 0.0 && (fps - req.fps).abs() > req.fps * 0.001 {
        adjustments.push(format!("frame rate {} → {}", fps_text(req.fps), fps_text(fps)));
    }
    let granted = Granted {
        format: granted_format,
        width: format.width,
        height: format.height,
        bytes_per_line: format.stride,
        fps,
    };
    if !adjustments.is_empty() {
        let message = format!(
            "{path} granted {} instead of what camera `{}` asks: {}",
            granted.describe(),
            req.camera,
            adjustments.join(", ")
        );
        if req.strict {
            return Err(OpenError::Refused(anyhow!("{message} (strict = true)")));
        }
        tracing::warn!(camera = req.camera, device = path, "{message}");
    }

    apply_controls(&device, req)?;

    let mut stream = MmapStream::with_buffers(&device, BufferType::VideoCapture, req.buffers)
        .map_err(|e| gone(e, format!("allocating {} mmap buffers on {path}", req.buffers)))?;
    stream.set_timeout(DEQUEUE_TIMEOUT);
    // `Stream::next` queues the buffer it handed out last before dequeuing the next one, and
    // starts with buffer 0 as "handed out". Queue the others and start streaming ourselves, so
    // that every wait for a frame is our own poll with a timeout (never `next`'s first call,
    // which would re-queue buffer 0 after a timeout).
    let mut queued = 0;
    for index in 1..req.buffers as usize {
        match CaptureStream::queue(&mut stream, index) {
            Ok(()) => queued += 1,
            // The driver granted fewer buffers than asked.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) && queued > 0 => break,
            Err(e) => return Err(gone(e, format!("queuing buffer {index} on {path}"))),
        }
    }
    stream.start().map_err(|e| gone(e, format!("starting the stream on {path}")))?;
    let fd = device.handle().fd();
    tracing::info!(
        camera = req.camera,
        device = path,
        node = resolved_device(&req.device),
        card = caps.card,
        driver = caps.driver,
        "streaming {} with {} buffers",
        granted.describe(),
        queued + 1
    );
    Ok((Session { stream, _device: device, fd }, granted, adjustments))
}

/// A control the device offers.
#[derive(Debug, Clone)]
struct ControlInfo {
    id: u32,
    key: String,
    typ: u32,
    minimum: i64,
    maximum: i64,
    step: u64,
    flags: u32,
    menu: Vec<(i64, String)>,
}

impl ControlInfo {
    fn type_name(&self) -> &'static str {
        match self.typ {
            CTRL_TYPE_INTEGER => "int",
            CTRL_TYPE_BOOLEAN => "bool",
            CTRL_TYPE_MENU => "menu",
            CTRL_TYPE_INTEGER64 => "int64",
            CTRL_TYPE_INTEGER_MENU => "intmenu",
            4 => "button",
            7 => "string",
            8 => "bitmask",
            _ => "compound",
        }
    }

    fn describe(&self) -> String {
        match self.typ {
            CTRL_TYPE_BOOLEAN => format!("{} (bool)", self.key),
            CTRL_TYPE_MENU | CTRL_TYPE_INTEGER_MENU => format!(
                "{} ({}: {})",
                self.key,
                self.type_name(),
                self.menu.iter().map(|(i, n)| format!("{i}={n}")).collect::<Vec<_>>().join(", ")
            ),
            _ => format!("{} ({} {}..{})", self.key, self.type_name(), self.minimum, self.maximum),
        }
    }
}

/// Every control of the device, with QUERY_EXT_CTRL (class headings and disabled ones left
/// out). Done with raw ioctls: `v4l`'s own enumeration panics on control types it does not
/// know, and compound controls are not needed here.
fn query_controls(device: &Device) -> io::Result<Vec<ControlInfo>> {
    let fd = device.handle().fd();
    let mut controls = Vec::new();
    let mut id = 0u32;
    loop {
        // SAFETY: v4l2_query_ext_ctrl is plain old data; all-zero is a valid value.
        let mut query: v4l::v4l_sys::v4l2_query_ext_ctrl = unsafe { core::mem::zeroed() };
        query.id = id | CTRL_FLAG_NEXT_CTRL;
        // SAFETY: the request matches the argument type and `query` outlives the call.
        let result = unsafe {
            v4l::v4l2::ioctl(
                fd,
                v4l::v4l2::vidioc::VIDIOC_QUERY_EXT_CTRL,
                (&mut query as *mut v4l::v4l_sys::v4l2_query_ext_ctrl).cast::<c_void>(),
            )
        };
        match result {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => break,
            Err(e) => return Err(e),
        }
        if query.id <= id {
            break; // a driver that does not move on: stop rather than loop forever
        }
        id = query.id;
        if query.type_ == CTRL_TYPE_CTRL_CLASS || query.flags & CTRL_FLAG_DISABLED != 0 {
            continue;
        }
        let name_bytes: Vec<u8> = query.name.iter().map(|&c| c as u8).collect();
        let name = CStr::from_bytes_until_nul(&name_bytes)
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|_| String::from_utf8_lossy(&name_bytes).into_owned());
        let mut menu = Vec::new();
        if matches!(query.type_, CTRL_TYPE_MENU | CTRL_TYPE_INTEGER_MENU) && query.maximum - query.minimum < 256 {
            for index in query.minimum.max(0)..=query.maximum {
                // SAFETY: as above, plain old data.
                let mut item: v4l::v4l_sys::v4l2_querymenu = unsafe { core::mem::zeroed() };
                item.id = query.id;
                item.index = index as u32;
                // SAFETY: the request matches the argument type and `item` outlives the call.
                let ok = unsafe {
                    v4l::v4l2::ioctl(
                        fd,
                        v4l::v4l2::vidioc::VIDIOC_QUERYMENU,
                        (&mut item as *mut v4l::v4l_sys::v4l2_querymenu).cast::<c_void>(),
                    )
                }
                .is_ok();
                if !ok {
                    continue; // drivers may leave holes in a menu
                }
                let label = if query.type_ == CTRL_TYPE_MENU {
                    // SAFETY: for MENU controls the union holds the item's name.
                    let raw = unsafe { item.__bindgen_anon_1.name };
                    CStr::from_bytes_until_nul(&raw)
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_else(|_| String::from_utf8_lossy(&raw).into_owned())
                } else {
                    // SAFETY: for INTEGER_MENU controls the union holds the item's value.
                    unsafe { item.__bindgen_anon_1.value }.to_string()
                };
                menu.push((index, label));
            }
        }
        controls.push(ControlInfo {
            id: query.id,
            key: normalize_control_name(&name),
            typ: query.type_,
            minimum: query.minimum,
            maximum: query.maximum,
            step: query.step,
            flags: query.flags,
            menu,
        });
    }
    Ok(controls)
}

/// The integer to write for `value` into `control`, or why it is not allowed.
fn control_value(control: &ControlInfo, value: &ControlValue) -> Result<i64, String> {
    match (control.typ, value) {
        (CTRL_TYPE_BOOLEAN, ControlValue::Bool(b)) => Ok(i64::from(*b)),
        (CTRL_TYPE_BOOLEAN, ControlValue::Integer(v @ (0 | 1))) => Ok(*v),
        (CTRL_TYPE_BOOLEAN, _) => Err("is a boolean control: use true or false".into()),
        (CTRL_TYPE_MENU | CTRL_TYPE_INTEGER_MENU, ControlValue::Integer(v)) => {
            if control.menu.iter().any(|(i, _)| i == v) {
                Ok(*v)
            } else {
                Err(format!("has no menu item {v} (items: {})", menu_text(control)))
            }
        }
        (CTRL_TYPE_MENU, ControlValue::Menu(name)) => {
            let wanted = normalize_control_name(name);
            control
                .menu
                .iter()
                .find(|(_, label)| normalize_control_name(label) == wanted)
                .map(|(i, _)| *i)
                .ok_or_else(|| format!("has no menu item `{name}` (items: {})", menu_text(control)))
        }
        (CTRL_TYPE_MENU | CTRL_TYPE_INTEGER_MENU, _) => {
            Err(format!("is a menu control: use an item number (items: {})", menu_text(control)))
        }
        (CTRL_TYPE_INTEGER | CTRL_TYPE_INTEGER64, ControlValue::Integer(v)) => {
            let step = control.step.max(1) as i64;
            if *v < control.minimum || *v > control.maximum {
                Err(format!("is out of range: allowed {}..{} (step {step})", control.minimum, control.maximum))
            } else if (v - control.minimum) % step != 0 {
                Err(format!(
                    "is not on the control's step: allowed {}..{} in steps of {step}",
                    control.minimum, control.maximum
                ))
            } else {
                Ok(*v)
            }
        }
        (CTRL_TYPE_INTEGER | CTRL_TYPE_INTEGER64, _) => {
            Err(format!("is an integer control: allowed {}..{}", control.minimum, control.maximum))
        }
        _ => Err(format!("is a {} control, which framebus cannot set from the config", control.type_name())),
    }
}

fn menu_text(control: &ControlInfo) -> String {
    control.menu.iter().map(|(i, n)| format!("{i} = {n}")).collect::<Vec<_>>().join(", ")
}

/// Sets the configured controls one at a time (the driver rejects mixing control classes in
/// one S_EXT_CTRLS), in the order written.
fn apply_controls(device: &Device, req: &Request) -> Result<(), OpenError> {
    if req.controls.is_empty() {
        return Ok(());
    }
    let path = req.device.display().to_string();
    let cam = &req.camera;
    let offered = query_controls(device).map_err(|e| gone(e, format!("listing the controls of {path}")))?;
    for (name, value) in &req.controls {
        let key = normalize_control_name(name);
        let Some(control) = offered.iter().find(|c| c.key == key) else {
            return Err(OpenError::Refused(anyhow!(
                "{path} has no control `{key}`; it offers: {}",
                offered.iter().map(ControlInfo::describe).collect::<Vec<_>>().join(", ")
            )));
        };
        if control.flags & CTRL_FLAG_READ_ONLY != 0 {
            return Err(OpenError::Refused(anyhow!("control `{key}` of {path} is read-only")));
        }
        let raw = control_value(control, value)
            .map_err(|why| OpenError::Refused(anyhow!("control `{key}` = {value} {why} on {path}")))?;
        if control.flags & CTRL_FLAG_INACTIVE != 0 {
            tracing::warn!(
                camera = cam.as_str(),
                device = path,
                "control `{key}` is inactive: an automatic mode may override the value set"
            );
        }
        let set = device.set_control(v4l::Control { id: control.id, value: v4l::control::Value::Integer(raw) });
        match set {
            Ok(()) => tracing::info!(camera = cam.as_str(), device = path, "control {key} = {raw}"),
            Err(e) if matches!(e.raw_os_error(), Some(libc::ERANGE | libc::EINVAL | libc::EACCES | libc::EPERM)) => {
                return Err(OpenError::Refused(anyhow!("{path} rejected control `{key}` = {raw}: {e}")))
            }
            Err(e) => return Err(gone(e, format!("setting control `{key}` on {path}"))),
        }
    }
    Ok(())
}

/// Copies `src` into the start of `dst`; false when `dst` is too short.
fn write_bytes(dst: &mut [MaybeUninit<u8>], src: &[u8]) -> bool {
    if dst.len() < src.len() {
        return false;
    }
    // SAFETY: both ranges are valid for `src.len()` bytes (checked above) and cannot overlap
    // (one is a mapped driver buffer, the other a shared-memory sample).
    unsafe { core::ptr::copy_nonoverlapping(src.as_ptr(), dst.as_mut_ptr().cast::<u8>(), src.len()) };
    true
}

/// Copies `rows` rows of `row` bytes that lie `stride` bytes apart in `src` into `dst`, packed
/// (one copy when the driver does not pad rows); false when either side is too short.
fn copy_rows(dst: &mut [MaybeUninit<u8>], src: &[u8], row: usize, stride: usize, rows: usize) -> bool {
    if dst.len() != row * rows || rows == 0 || stride < row || src.len() < stride * (rows - 1) + row {
        return false;
    }
    if stride == row {
        return write_bytes(dst, &src[..row * rows]);
    }
    dst.chunks_exact_mut(row).zip(src.chunks(stride)).all(|(d, s)| s.len() >= row && write_bytes(d, &s[..row]))
}

impl FrameSource for V4l2Source {
    fn describe(&self) -> String {
        let g = &self.granted;
        if g.format == self.request.published {
            format!("V4L2 {} ({})", self.path(), g.describe())
        } else {
            format!("V4L2 {} ({}, published as {})", self.path(), g.describe(), self.request.published)
        }
    }

    fn format(&self) -> SourceFormat {
        SourceFormat { format: self.request.published, width: self.granted.width, height: self.granted.height }
    }

    fn pacing(&self) -> Pacing {
        Pacing::Device
    }

    fn grab(&mut self) -> Result<Grab, SourceError> {
        self.current = None;
        let Some(session) = self.session.as_mut() else {
            return Err(SourceError::Unavailable(format!(
                "V4L2 device {} is not open (waiting for it to come back)",
                self.path()
            )));
        };
        let mut pfd = libc::pollfd { fd: session.fd, events: libc::POLLIN, revents: 0 };
        // SAFETY: `pfd` is one valid pollfd for the duration of the call.
        let ready = unsafe { libc::poll(&mut pfd, 1, POLL_TIMEOUT.as_millis() as i32) };
        if ready < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                return Err(SourceError::NoFrameYet); // a signal: let capture look at it
            }
            return Err(self.lost(format!("poll failed: {e}")));
        }
        if ready == 0 {
            let waited = self.last_frame.elapsed();
            if waited > self.stall_after() {
                return Err(self.lost(format!("no frame for {:.1} s", waited.as_secs_f64())));
            }
            return Err(SourceError::NoFrameYet);
        }
        if pfd.revents & libc::POLLIN == 0 {
            return Err(self.lost(format!("the device reports an error (poll events 0x{:x}): unplugged?", pfd.revents)));
        }
        let (ptr, buffer_len, meta) = match session.stream.next() {
            Ok((bytes, meta)) => (bytes.as_ptr(), bytes.len(), *meta),
            Err(e) => return Err(self.lost(format!("dequeuing a buffer failed: {e}"))),
        };
        self.last_frame = Instant::now();
        let sequence = meta.sequence;
        if let Some(last) = self.last_sequence {
            if sequence > last {
                self.drops += u64::from(sequence - last - 1);
            }
        }
        self.last_sequence = Some(sequence);

        let now_mono = clock::monotonic_ns();
        let now_real = clock::realtime_ns();
        let stamp = meta.timestamp;
        let monotonic = meta.flags & BufferFlags::TIMESTAMP_MASK == BufferFlags::TIMESTAMP_MONOTONIC;
        let capture_mono_ns = if monotonic && (stamp.sec > 0 || stamp.usec > 0) {
            (stamp.sec as u64).saturating_mul(1_000_000_000).saturating_add((stamp.usec as u64).saturating_mul(1000))
        } else {
            now_mono
        };
        // The realtime stamp of the same instant: shift by the current offset between the clocks.
        let capture_realtime_ns = (i128::from(capture_mono_ns) + i128::from(now_real) - i128::from(now_mono))
            .clamp(0, i128::from(u64::MAX)) as u64;

        if meta.flags.contains(BufferFlags::ERROR) {
            self.drops += 1;
            return Err(SourceError::BadFrame(format!("driver marked buffer {sequence} as corrupted")));
        }
        let used = meta.bytesused as usize;
        let len = if used == 0 || used > buffer_len { buffer_len } else { used };
        let published = self.request.published;
        let payload_len = match self.conversion {
            Conversion::Passthrough if published == PixelFormat::Mjpg => {
                if used == 0 || used > buffer_len || used > self.request.slot_bytes {
                    self.drops += 1;
                    return Err(SourceError::BadFrame(format!(
                        "MJPG frame {sequence} of {used} bytes does not fit (buffer {buffer_len}, slot {})",
                        self.request.slot_bytes
                    )));
                }
                used
            }
            Conversion::Decode => {
                if used == 0 {
                    self.drops += 1;
                    return Err(SourceError::BadFrame(format!("MJPG frame {sequence} is empty")));
                }
                published.frame_bytes(self.granted.width, self.granted.height)
            }
            Conversion::Passthrough | Conversion::Convert => {
                let needed = self.raw_source_bytes();
                if len < needed {
                    self.drops += 1;
                    return Err(SourceError::BadFrame(format!(
                        "frame {sequence} has {len} bytes, a {} {}x{} frame needs {needed}",
                        self.granted.format, self.granted.width, self.granted.height
                    )));
                }
                published.frame_bytes(self.granted.width, self.granted.height)
            }
        };
        self.current = Some(Current { ptr, len });
        Ok(Grab {
            payload_len,
            sequence: u64::from(sequence),
            capture_mono_ns,
            capture_realtime_ns,
            source_drops: self.drops,
        })
    }

    fn write_into(&mut self, _frame_id: u64, dst: &mut [MaybeUninit<u8>]) -> Result<(), SourceError> {
        let Some(current) = self.current.take() else {
            return Err(SourceError::Fatal(anyhow!("V4L2 source: write_into called without a grabbed frame")));
        };
        // SAFETY: `current` points into a buffer mapped by the session's stream, which is
        // alive (closing the session clears `current`), and the buffer is not handed back to
        // the driver before the next `grab`.
        let src = unsafe { core::slice::from_raw_parts(current.ptr, current.len) };
        let g = self.granted;
        let published = self.request.published;
        let opencv_err = |e: framebus_vision::opencv::Error| SourceError::BadFrame(format!("OpenCV: {e}"));
        match self.conversion {
            Conversion::Passthrough if !published.is_raw() => {
                if src.len() != dst.len() || !write_bytes(dst, src) {
                    return Err(SourceError::BadFrame(format!(
                        "frame of {} bytes does not match the sample of {}",
                        src.len(),
                        dst.len()
                    )));
                }
            }
            Conversion::Passthrough => {
                let row = published.stride(g.width) as usize;
                let stride = g.bytes_per_line as usize;
                let rows = if published == PixelFormat::Nv12 { g.height as usize * 3 / 2 } else { g.height as usize };
                if !copy_rows(dst, src, row, stride, rows) {
                    return Err(SourceError::BadFrame("driver buffer shorter than a frame".into()));
                }
            }
            Conversion::Convert => {
                let code = match (g.format, published) {
                    (PixelFormat::Yuyv, PixelFormat::Bgr3) => imgproc::COLOR_YUV2BGR_YUYV,
                    (PixelFormat::Yuyv, PixelFormat::Rgb3) => imgproc::COLOR_YUV2RGB_YUYV,
                    (PixelFormat::Yuyv, PixelFormat::Grey) => imgproc::COLOR_YUV2GRAY_YUYV,
                    (PixelFormat::Nv12, PixelFormat::Bgr3) => imgproc::COLOR_YUV2BGR_NV12,
                    (PixelFormat::Nv12, PixelFormat::Rgb3) => imgproc::COLOR_YUV2RGB_NV12,
                    (PixelFormat::Nv12, PixelFormat::Grey) => imgproc::COLOR_YUV2GRAY_NV12,
                    (PixelFormat::Grey, PixelFormat::Bgr3) => imgproc::COLOR_GRAY2BGR,
                    (PixelFormat::Grey, PixelFormat::Rgb3) => imgproc::COLOR_GRAY2RGB,
                    (from, to) => {
                        return Err(SourceError::Fatal(anyhow!("no conversion from {from} to {to}")));
                    }
                };
                let source =
                    raw_mat(g.format, g.width, g.height, g.bytes_per_line as usize, src).map_err(opencv_err)?;
                let Some((rows, cols, typ)) = mat_shape(published, g.width, g.height) else {
                    return Err(SourceError::Fatal(anyhow!("{published} has no raw layout")));
                };
                let target_ptr = dst.as_ptr() as usize;
                let mut target = uninit_mat(rows, cols, typ, dst).map_err(opencv_err)?;
                imgproc::cvt_color_def(&source, &mut target, code).map_err(opencv_err)?;
                if target.data() as usize != target_ptr {
                    return Err(SourceError::BadFrame(format!("{} → {published} conversion reallocated", g.format)));
                }
            }
            Conversion::Decode => {
                let Some((rows, cols, typ)) = mat_shape(published, g.width, g.height) else {
                    return Err(SourceError::Fatal(anyhow!("{published} has no raw layout")));
                };
                let flags =
                    if published == PixelFormat::Grey { imgcodecs::IMREAD_GRAYSCALE } else { imgcodecs::IMREAD_COLOR };
                let jpeg = Mat::new_rows_cols_with_data(1, src.len() as i32, src).map_err(opencv_err)?;
                let target_ptr = dst.as_ptr() as usize;
                let mut target = uninit_mat(rows, cols, typ, dst).map_err(opencv_err)?;
                imgcodecs::imdecode_to(&jpeg, flags, &mut target).map_err(opencv_err)?;
                // A JPEG of another size makes OpenCV decode into a buffer of its own: then the
                // sample was not written and the frame is dropped.
                if target.empty() || target.data() as usize != target_ptr {
                    self.drops += 1;
                    return Err(SourceError::BadFrame(format!(
                        "MJPG frame did not decode to {}x{} (got {}x{})",
                        g.width,
                        g.height,
                        target.cols(),
                        target.rows()
                    )));
                }
            }
        }
        Ok(())
    }

    fn reconnect(&mut self) -> Result<(), SourceError> {
        self.close();
        match open_session(&self.request) {
            Ok((session, granted, adjustments)) => {
                if (granted.format, granted.width, granted.height)
                    != (self.granted.format, self.granted.width, self.granted.height)
                {
                    return Err(SourceError::Fatal(anyhow!(
                        "camera `{}`: V4L2 device {} came back delivering {} instead of {}; restart capture to publish the new format",
                        self.request.camera,
                        self.path(),
                        granted.describe(),
                        self.granted.describe()
                    )));
                }
                self.session = Some(session);
                self.granted = granted;
                self.adjustments = adjustments;
                self.last_sequence = None;
                self.last_frame = Instant::now();
                self.reconnects += 1;
                tracing::info!(
                    camera = self.request.camera,
                    device = self.path(),
                    reconnects = self.reconnects,
                    "V4L2 device reopened: {}",
                    granted.describe()
                );
                Ok(())
            }
            Err(OpenError::Gone(e)) => Err(SourceError::Unavailable(format!("{e:#}"))),
            Err(OpenError::Refused(e)) => Err(SourceError::Fatal(e.context(format!(
                "camera `{}`: reopening V4L2 device {}",
                self.request.camera,
                self.path()
            )))),
        }
    }

    fn effective(&self) -> Effective {
        Effective {
            published: self.format(),
            device_format: Some(self.granted.format),
            fps: self.granted.fps,
            source_drops: self.drops,
            reconnects: self.reconnects,
            adjustments: self.adjustments.clone(),
        }
    }
}

impl Drop for V4l2Source {
    fn drop(&mut self) {
        self.close();
    }
}

/// The device path with symlinks resolved (`/dev/v4l/by-id/...` → `/dev/video2`), for logs.
fn resolved_device(path: &Path) -> String {
    std::fs::canonicalize(path).map_or_else(|_| path.display().to_string(), |p| p.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Frame rates become exact V4L2 frame intervals.
    #[test]
    fn frame_rates_become_reduced_intervals() {
        let check = |fps: f64, num: u32, den: u32| {
            let f = interval_for(fps);
            assert_eq!((f.numerator, f.denominator), (num, den), "{fps}");
        };
        check(30.0, 1, 30);
        check(7.5, 2, 15);
        check(29.97, 100, 2997);
        assert_eq!(fps_of(Fraction::new(1, 30)), 30.0);
        assert_eq!(fps_of(Fraction::new(0, 30)), 0.0);
    }

    fn int_control() -> ControlInfo {
        ControlInfo {
            id: 1,
            key: "brightness".into(),
            typ: CTRL_TYPE_INTEGER,
            minimum: 0,
            maximum: 255,
            step: 1,
            flags: 0,
            menu: vec![],
        }
    }

    /// Padded driver rows are packed to the tight stride; short buffers are refused.
    #[test]
    fn padded_rows_are_packed() {
        let src: Vec<u8> = (0..3 * 8).map(|i| i as u8).collect(); // 3 rows of 6 bytes + 2 padding
        let mut dst = vec![MaybeUninit::new(0u8); 18];
        assert!(copy_rows(&mut dst, &src, 6, 8, 3));
        // SAFETY: copy_rows returned true, so it wrote every byte of `dst` (and it was zeroed).
        let packed: Vec<u8> = dst.iter().map(|b| unsafe { b.assume_init() }).collect();
        assert_eq!(packed, [0, 1, 2, 3, 4, 5, 8, 9, 10, 11, 12, 13, 16, 17, 18, 19, 20, 21]);
        assert!(!copy_rows(&mut dst, &src[..20], 6, 8, 3));
        let mut tight = vec![MaybeUninit::new(0u8); 24];
        assert!(copy_rows(&mut tight, &src, 8, 8, 3));
    }

    /// Control values are checked against the device's range, type and menu.
    #[test]
    fn control_values_are_checked_against_the_device() {
        let int = int_control();
        assert_eq!(control_value(&int, &ControlValue::Integer(200)), Ok(200));
        assert!(control_value(&int, &ControlValue::Integer(300)).is_err_and(|e| e.contains("0..255")));
        let menu = ControlInfo {
            typ: CTRL_TYPE_MENU,
            key: "auto_exposure".into(),
            minimum: 0,
            maximum: 3,
            menu: vec![(1, "Manual Mode".into()), (3, "Aperture Priority Mode".into())],
            ..int_control()
        };
        assert_eq!(control_value(&menu, &ControlValue::Menu("manual mode".into())), Ok(1));
        assert!(control_value(&menu, &ControlValue::Integer(2)).is_err_and(|e| e.contains("1 = Manual Mode")));
        let boolean = ControlInfo { typ: CTRL_TYPE_BOOLEAN, maximum: 1, ..int_control() };
        assert_eq!(control_value(&boolean, &ControlValue::Bool(false)), Ok(0));
    }
}
