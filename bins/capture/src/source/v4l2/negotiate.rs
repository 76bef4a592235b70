//! Format and frame-rate negotiation: what the config asks of the device, what the driver
//! grants (single- or multi-planar, with every plane's stride and size), and where the granted
//! settings differ from the asked ones.

use std::path::PathBuf;

use anyhow::anyhow;
use framebus_common::config::{v4l2_conversion, v4l2_targets, ControlValue, V4l2Memory};
use framebus_common::PixelFormat;

use super::device::{
    fourcc, fourcc_text, sys, vidioc, Caps, Device, BUF_TYPE_CAPTURE, BUF_TYPE_CAPTURE_MPLANE, CAP_STREAMING,
    CAP_VIDEO_CAPTURE, CAP_VIDEO_CAPTURE_MPLANE, MAX_PLANES,
};
use super::OpenError;

/// What the configuration asks of the device.
#[derive(Debug, Clone)]
pub(super) struct Request {
    pub camera: String,
    pub device: PathBuf,
    pub width: u32,
    pub height: u32,
    pub device_format: PixelFormat,
    pub published: PixelFormat,
    pub fps: f64,
    pub buffers: u32,
    pub strict: bool,
    pub memory: V4l2Memory,
    /// `[camera.source.controls]`, set at every open in this order.
    pub controls: Vec<(String, ControlValue)>,
    /// Bytes of one shared-memory slot: no published frame may be larger.
    pub slot_bytes: usize,
}

impl Request {
    pub fn path(&self) -> String {
        self.device.display().to_string()
    }
}

/// A device pixel format framebus understands: the framebus format it carries and in how many
/// memory planes (separate buffers) the driver delivers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct DeviceFormat {
    /// The V4L2 fourcc (`NV12`, or `NM12` for NV12 in two memory planes).
    pub code: u32,
    /// What the frame is once its planes are laid out one after the other.
    pub format: PixelFormat,
    /// Memory planes per buffer.
    pub memory_planes: usize,
}

/// Every device format capture reads, contiguous variants first.
const DEVICE_FORMATS: [DeviceFormat; 9] = [
    DeviceFormat { code: fourcc(b"YUYV"), format: PixelFormat::Yuyv, memory_planes: 1 },
    DeviceFormat { code: fourcc(b"NV12"), format: PixelFormat::Nv12, memory_planes: 1 },
    DeviceFormat { code: fourcc(b"NM12"), format: PixelFormat::Nv12, memory_planes: 2 },
    DeviceFormat { code: fourcc(b"NV21"), format: PixelFormat::Nv21, memory_planes: 1 },
    DeviceFormat { code: fourcc(b"NM21"), format: PixelFormat::Nv21, memory_planes: 2 },
    DeviceFormat { code: fourcc(b"NV16"), format: PixelFormat::Nv16, memory_planes: 1 },
    DeviceFormat { code: fourcc(b"NM16"), format: PixelFormat::Nv16, memory_planes: 2 },
    DeviceFormat { code: fourcc(b"GREY"), format: PixelFormat::Grey, memory_planes: 1 },
    DeviceFormat { code: fourcc(b"MJPG"), format: PixelFormat::Mjpg, memory_planes: 1 },
];

impl DeviceFormat {
    pub fn of_code(code: u32) -> Option<DeviceFormat> {
        DEVICE_FORMATS.into_iter().find(|d| d.code == code)
    }

    /// The V4L2 name: `NV12`, `NV12M` for the two-plane variant (`NV21M`, `NV16M`).
    pub fn name(&self) -> String {
        if self.memory_planes > 1 {
            format!("{}M", self.format)
        } else {
            self.format.to_string()
        }
    }
}

/// One memory plane of the driver's buffers, as G/S_FMT reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct PlaneFormat {
    /// Bytes from one row to the next.
    pub bytes_per_line: u32,
    /// Bytes the driver needs for the plane.
    pub size: u32,
}

/// One plane of the frame as framebus lays it out (Y, or NV12's interleaved UV), and where it
/// lies in the driver's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct PlaneLayout {
    /// Memory plane of the driver's buffer that holds it.
    pub memory_plane: usize,
    /// Offset of its first row in that memory plane (after the driver's `data_offset`).
    pub offset: usize,
    /// Bytes from one row to the next in the driver's buffer.
    pub stride: usize,
    /// Bytes of one tight row (what is published).
    pub row: usize,
    /// Rows.
    pub rows: usize,
}

impl PlaneLayout {
    /// Bytes the plane spans in the driver's buffer (the last row without padding).
    pub fn span(&self) -> usize {
        if self.rows == 0 {
            0
        } else {
            self.stride * (self.rows - 1) + self.row
        }
    }

    /// Bytes it takes published (tight rows).
    pub fn tight(&self) -> usize {
        self.row * self.rows
    }
}

/// What the driver granted.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Granted {
    pub device: DeviceFormat,
    pub width: u32,
    pub height: u32,
    /// `V4L2_BUF_TYPE_VIDEO_CAPTURE` or `..._CAPTURE_MPLANE`.
    pub buf_type: u32,
    /// Memory planes of a buffer (`memory_planes` of the device format).
    pub planes: [PlaneFormat; MAX_PLANES],
    /// Frames per second from G_PARM; 0 when the driver does not say.
    pub fps: f64,
}

impl Granted {
    pub fn format(&self) -> PixelFormat {
        self.device.format
    }

    pub fn multi_planar(&self) -> bool {
        self.buf_type == BUF_TYPE_CAPTURE_MPLANE
    }

    pub fn describe(&self) -> String {
        let node = if self.multi_planar() { ", multi-planar" } else { "" };
        format!("{}x{} {}{node} at {}", self.width, self.height, self.device.name(), fps_text(self.fps))
    }

    /// The frame's planes (one, or Y and UV for NV12/NV21/NV16) and where they lie in a driver
    /// buffer.
    /// For MJPG the one plane is the compressed bytes (`rows` 1, `row` the plane size).
    pub fn layout(&self) -> ([PlaneLayout; 2], usize) {
        let (w, h) = (self.width as usize, self.height as usize);
        let p0 = self.planes[0];
        let row = self.format().stride(self.width) as usize;
        let first = PlaneLayout { memory_plane: 0, offset: 0, stride: p0.bytes_per_line as usize, row, rows: h };
        match self.format() {
            format if format.info().chroma.is_some() => {
                // Chroma rows: half the height for 4:2:0, all of it for 4:2:2.
                let rows = format.image_rows(self.height) as usize - h;
                let uv = if self.device.memory_planes > 1 {
                    PlaneLayout {
                        memory_plane: 1,
                        offset: 0,
                        stride: self.planes[1].bytes_per_line as usize,
                        row: w,
                        rows,
                    }
                } else {
                    PlaneLayout { memory_plane: 0, offset: first.stride * h, stride: first.stride, row: w, rows }
                };
                ([first, uv], 2)
            }
            PixelFormat::Mjpg => {
                let size = p0.size as usize;
                ([PlaneLayout { memory_plane: 0, offset: 0, stride: size, row: size, rows: 1 }, first], 1)
            }
            _ => ([first, first], 1),
        }
    }
}

pub(super) fn fps_text(fps: f64) -> String {
    if fps > 0.0 {
        format!("{fps:.3} fps")
    } else {
        "an unknown frame rate".into()
    }
}

/// The frame interval for `fps` as a reduced fraction (7.5 fps → 2/15 s).
pub(super) fn interval_for(fps: f64) -> (u32, u32) {
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
    (num, den)
}

pub(super) fn fps_of(numerator: u32, denominator: u32) -> f64 {
    if numerator == 0 || denominator == 0 {
        0.0
    } else {
        f64::from(denominator) / f64::from(numerator)
    }
}

fn gone(e: std::io::Error, what: String) -> OpenError {
    OpenError::Gone(anyhow::Error::new(e).context(what))
}

/// The buffer type to capture with: single-planar when the node offers it, else multi-planar.
pub(super) fn buffer_type(req: &Request, caps: &Caps) -> Result<u32, OpenError> {
    let path = req.path();
    if caps.caps & CAP_STREAMING == 0 || caps.caps & (CAP_VIDEO_CAPTURE | CAP_VIDEO_CAPTURE_MPLANE) == 0 {
        return Err(OpenError::Refused(anyhow!(
            "{path} (`{}`, driver `{}`) is not a streaming video capture device (capabilities: {}); on a media-controller board pick the capture node (`v4l2-ctl --list-devices`)",
            caps.card,
            caps.driver,
            caps.describe()
        )));
    }
    Ok(if caps.caps & CAP_VIDEO_CAPTURE != 0 { BUF_TYPE_CAPTURE } else { BUF_TYPE_CAPTURE_MPLANE })
}

/// The fourcc to ask for: of the device formats that carry the asked framebus format, the
/// first in our order of preference that the device lists (any of them when it lists none).
fn preferred_code(offered_codes: &[u32], asked: PixelFormat, buf_type: u32) -> u32 {
    let mut candidates: Vec<DeviceFormat> = DEVICE_FORMATS
        .into_iter()
        .filter(|d| d.format == asked && (buf_type == BUF_TYPE_CAPTURE_MPLANE || d.memory_planes == 1))
        .collect();
    if candidates.iter().any(|d| offered_codes.contains(&d.code)) {
        candidates.retain(|d| offered_codes.contains(&d.code));
    }
    candidates.first().map_or(fourcc(b"YUYV"), |d| d.code)
}

/// Refuses a raw format whose reported bytes per line are fewer than a row of a plane needs.
fn check_strides(path: &str, granted: &Granted) -> Result<(), OpenError> {
    if !granted.device.format.is_raw() {
        return Ok(());
    }
    let (layout, count) = granted.layout();
    for (i, plane) in layout[..count].iter().enumerate() {
        if plane.stride < plane.row {
            return Err(OpenError::Refused(anyhow!(
                "{path} reports {} bytes per line for plane {i} of {} {}x{}, less than a row needs ({})",
                plane.stride,
                granted.device.name(),
                granted.width,
                granted.height,
                plane.row
            )));
        }
    }
    Ok(())
}

/// Sets the format (trying the contiguous variant of a multi-plane format first), then the
/// frame rate; returns what was granted and what differs from the request.
pub(super) fn negotiate(device: &Device, req: &Request, buf_type: u32) -> Result<(Granted, Vec<String>), OpenError> {
    let path = req.path();
    let offered_codes = device.formats(buf_type);
    let offered = || offered_codes.iter().map(|&c| fourcc_text(c)).collect::<Vec<_>>().join(", ");
    let asked = preferred_code(&offered_codes, req.device_format, buf_type);
    let (code, width, height, planes) = set_format(device, buf_type, asked, req.width, req.height)
        .map_err(|e| gone(e, format!("setting the format of {path}")))?;
    let Some(device_format) = DeviceFormat::of_code(code) else {
        return Err(OpenError::Refused(anyhow!(
            "{path} delivers {} instead of {}, a format framebus does not handle (the device offers: {})",
            fourcc_text(code),
            req.device_format,
            offered()
        )));
    };
    let granted_format = device_format.format;
    let mut adjustments = Vec::new();
    if granted_format != req.device_format {
        adjustments.push(format!("pixel format {} → {granted_format}", req.device_format));
    }
    if (width, height) != (req.width, req.height) {
        adjustments.push(format!("size {}x{} → {width}x{height}", req.width, req.height));
    }
    if v4l2_conversion(granted_format, req.published).is_none() {
        return Err(OpenError::Refused(anyhow!(
            "{path} delivers {granted_format} instead of {} and capture cannot publish {} from {granted_format} (it can publish {}); the device offers: {}",
            req.device_format,
            req.published,
            v4l2_targets(granted_format),
            offered()
        )));
    }
    if req.published.frame_bytes(width, height) > req.slot_bytes {
        return Err(OpenError::Refused(anyhow!(
            "{path} grants {width}x{height} instead of {}x{}: its frames are larger than the shared-memory slots sized from the config; configure the size the device delivers",
            req.width, req.height
        )));
    }
    let reported = planes.iter().take_while(|p| p.size > 0 || p.bytes_per_line > 0).count();
    if buf_type == BUF_TYPE_CAPTURE_MPLANE && reported != device_format.memory_planes {
        return Err(OpenError::Refused(anyhow!(
            "{path} reports {reported} memory planes for {}, which has {}",
            device_format.name(),
            device_format.memory_planes
        )));
    }
    let mut granted = Granted { device: device_format, width, height, buf_type, planes, fps: 0.0 };
    check_strides(&path, &granted)?;

    granted.fps = set_frame_rate(device, req, buf_type);
    if req.fps > 0.0 && (granted.fps - req.fps).abs() > req.fps * 0.001 {
        adjustments.push(format!("frame rate {} → {}", fps_text(req.fps), fps_text(granted.fps)));
    }
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
    Ok((granted, adjustments))
}

/// S_FMT; returns the granted fourcc, size and memory planes.
fn set_format(
    device: &Device,
    buf_type: u32,
    code: u32,
    width: u32,
    height: u32,
) -> std::io::Result<(u32, u32, u32, [PlaneFormat; MAX_PLANES])> {
    // SAFETY: plain old data; all-zero is a valid value.
    let mut format: sys::v4l2_format = unsafe { core::mem::zeroed() };
    format.type_ = buf_type;
    let field_none = 1;
    let mut planes = [PlaneFormat::default(); MAX_PLANES];
    if buf_type == BUF_TYPE_CAPTURE_MPLANE {
        // SAFETY: the union is plain old data and the multi-planar member is the one in use.
        let pix = unsafe { &mut format.fmt.pix_mp };
        pix.width = width;
        pix.height = height;
        pix.pixelformat = code;
        pix.field = field_none;
        // SAFETY: the argument type matches the request.
        unsafe { device.ioctl(vidioc::VIDIOC_S_FMT, &mut format) }?;
        // SAFETY: as above; the driver filled the multi-planar member.
        let pix = unsafe { &format.fmt.pix_mp };
        let count = usize::from(pix.num_planes).min(MAX_PLANES);
        for (plane, reported) in planes.iter_mut().zip(&pix.plane_fmt[..count]) {
            *plane = PlaneFormat { bytes_per_line: reported.bytesperline, size: reported.sizeimage };
        }
        Ok((pix.pixelformat, pix.width, pix.height, planes))
    } else {
        // SAFETY: the union is plain old data and the single-planar member is the one in use.
        let pix = unsafe { &mut format.fmt.pix };
        pix.width = width;
        pix.height = height;
        pix.pixelformat = code;
        pix.field = field_none;
        // SAFETY: the argument type matches the request.
        unsafe { device.ioctl(vidioc::VIDIOC_S_FMT, &mut format) }?;
        // SAFETY: as above; the driver filled the single-planar member.
        let pix = unsafe { &format.fmt.pix };
        planes[0] = PlaneFormat { bytes_per_line: pix.bytesperline, size: pix.sizeimage };
        Ok((pix.pixelformat, pix.width, pix.height, planes))
    }
}

/// S_PARM with the configured rate (when there is one), else G_PARM; the granted rate, 0 when
/// the driver does not say (many ISP capture nodes: the sensor sets the rate).
fn set_frame_rate(device: &Device, req: &Request, buf_type: u32) -> f64 {
    let path = req.path();
    // SAFETY: plain old data; all-zero is a valid value.
    let mut parm: sys::v4l2_streamparm = unsafe { core::mem::zeroed() };
    parm.type_ = buf_type;
    if req.fps > 0.0 {
        let (numerator, denominator) = interval_for(req.fps);
        // Writing a union field is safe; the capture member is the one in use for capture types.
        parm.parm.capture.timeperframe.numerator = numerator;
        parm.parm.capture.timeperframe.denominator = denominator;
        // SAFETY: the argument type matches the request.
        match unsafe { device.ioctl(vidioc::VIDIOC_S_PARM, &mut parm) } {
            // SAFETY: the driver filled the capture member.
            Ok(()) => {
                return unsafe {
                    fps_of(parm.parm.capture.timeperframe.numerator, parm.parm.capture.timeperframe.denominator)
                }
            }
            Err(e) => tracing::warn!(
                camera = req.camera,
                device = path,
                "{path} cannot set the frame rate ({e}); on a media-controller board the sensor sets it"
            ),
        }
    }
    // SAFETY: plain old data; all-zero is a valid value.
    let mut parm: sys::v4l2_streamparm = unsafe { core::mem::zeroed() };
    parm.type_ = buf_type;
    // SAFETY: the argument type matches the request.
    match unsafe { device.ioctl(vidioc::VIDIOC_G_PARM, &mut parm) } {
        // SAFETY: the driver filled the capture member.
        Ok(()) => unsafe {
            fps_of(parm.parm.capture.timeperframe.numerator, parm.parm.capture.timeperframe.denominator)
        },
        Err(_) => 0.0,
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// Frame rates become exact V4L2 frame intervals.
    #[test]
    fn frame_rates_become_reduced_intervals() {
        assert_eq!(interval_for(30.0), (1, 30));
        assert_eq!(interval_for(7.5), (2, 15));
        assert_eq!(interval_for(29.97), (100, 2997));
        assert_eq!(fps_of(1, 30), 30.0);
        assert_eq!(fps_of(0, 30), 0.0);
    }

    /// A 64x4 format the driver granted: `code`, and (bytes per line, size) of each plane.
    pub(in crate::source::v4l2) fn granted(code: &[u8; 4], planes: &[(u32, u32)]) -> Granted {
        let mut all = [PlaneFormat::default(); MAX_PLANES];
        for (slot, &(bytes_per_line, size)) in all.iter_mut().zip(planes) {
            *slot = PlaneFormat { bytes_per_line, size };
        }
        Granted {
            device: DeviceFormat::of_code(fourcc(code)).expect("known"),
            width: 64,
            height: 4,
            buf_type: if planes.len() > 1 { BUF_TYPE_CAPTURE_MPLANE } else { BUF_TYPE_CAPTURE },
            planes: all,
            fps: 30.0,
        }
    }

    /// NV12 in one buffer has its UV rows after the padded Y rows; NV12M has them in plane 1.
    #[test]
    fn plane_layouts_follow_the_driver_strides() {
        let (contiguous, n) = granted(b"NV12", &[(128, 128 * 6)]).layout();
        assert_eq!(n, 2);
        assert_eq!(contiguous[0], PlaneLayout { memory_plane: 0, offset: 0, stride: 128, row: 64, rows: 4 });
        assert_eq!(contiguous[1], PlaneLayout { memory_plane: 0, offset: 512, stride: 128, row: 64, rows: 2 });
        let (split, n) = granted(b"NM12", &[(64, 256), (96, 192)]).layout();
        assert_eq!(n, 2);
        assert_eq!(split[1], PlaneLayout { memory_plane: 1, offset: 0, stride: 96, row: 64, rows: 2 });
        assert_eq!(split[1].span(), 96 + 64);
        let (yuyv, n) = granted(b"YUYV", &[(160, 640)]).layout();
        assert_eq!((n, yuyv[0].row, yuyv[0].tight()), (1, 128, 512));
        assert_eq!(DeviceFormat::of_code(fourcc(b"NM12")).map(|d| d.name()), Some("NV12M".to_string()));
    }
}
