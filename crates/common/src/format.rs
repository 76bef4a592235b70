//! Pixel formats framebus carries, their fourcc codes and frame geometry (stride, payload size).

use core::fmt;
use core::str::FromStr;

/// A pixel format, identified on the wire by its V4L2 fourcc.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PixelFormat {
    /// 24-bit B, G, R per pixel, packed (`BGR3`). OpenCV's native layout.
    Bgr3,
    /// 24-bit R, G, B per pixel, packed (`RGB3`).
    Rgb3,
    /// 8-bit grey (`GREY`).
    Grey,
    /// Packed 4:2:2 Y0 U Y1 V (`YUYV`).
    Yuyv,
    /// Planar 4:2:0: a Y plane, then interleaved U/V at half resolution (`NV12`).
    Nv12,
    /// Planar 4:2:0 like NV12 with V before U (`NV21`).
    Nv21,
    /// Planar 4:2:2: a Y plane, then interleaved U/V at half width and full height (`NV16`).
    Nv16,
    /// Motion JPEG: each frame is one JPEG image of variable size (`MJPG`).
    Mjpg,
}

impl PixelFormat {
    /// Every supported format, in the order shown in error messages.
    pub const ALL: [PixelFormat; 8] = [
        PixelFormat::Bgr3,
        PixelFormat::Rgb3,
        PixelFormat::Grey,
        PixelFormat::Yuyv,
        PixelFormat::Nv12,
        PixelFormat::Nv21,
        PixelFormat::Nv16,
        PixelFormat::Mjpg,
    ];

    /// The four ASCII characters of the fourcc, e.g. `"BGR3"`.
    pub fn name(self) -> &'static str {
        match self {
            PixelFormat::Bgr3 => "BGR3",
            PixelFormat::Rgb3 => "RGB3",
            PixelFormat::Grey => "GREY",
            PixelFormat::Yuyv => "YUYV",
            PixelFormat::Nv12 => "NV12",
            PixelFormat::Nv21 => "NV21",
            PixelFormat::Nv16 => "NV16",
            PixelFormat::Mjpg => "MJPG",
        }
    }

    /// The fourcc as the little-endian `u32` stored in the frame header and used by V4L2.
    pub fn fourcc(self) -> u32 {
        u32::from_le_bytes(
            self.name().as_bytes().try_into().unwrap_or([0; 4]), // names are always 4 bytes
        )
    }

    /// Parses a fourcc `u32` back into a format.
    pub fn from_fourcc(code: u32) -> Option<PixelFormat> {
        PixelFormat::ALL.into_iter().find(|f| f.fourcc() == code)
    }

    /// Whether frames have a fixed size computed from width and height.
    pub fn is_raw(self) -> bool {
        self != PixelFormat::Mjpg
    }

    /// Bytes per row of the first plane for a frame `width` pixels wide (0 for MJPG).
    pub fn stride(self, width: u32) -> u32 {
        match self {
            PixelFormat::Bgr3 | PixelFormat::Rgb3 => width * 3,
            PixelFormat::Yuyv => width * 2,
            PixelFormat::Grey | PixelFormat::Nv12 | PixelFormat::Nv21 | PixelFormat::Nv16 => width,
            PixelFormat::Mjpg => 0,
        }
    }

    /// Bytes one frame occupies in a slot. For MJPG this is the largest compressed frame
    /// accepted (2 bytes per pixel, more than a JPEG of any sane quality needs).
    pub fn frame_bytes(self, width: u32, height: u32) -> usize {
        let (w, h) = (width as usize, height as usize);
        match self {
            PixelFormat::Bgr3 | PixelFormat::Rgb3 => w * h * 3,
            PixelFormat::Yuyv | PixelFormat::Nv16 | PixelFormat::Mjpg => w * h * 2,
            PixelFormat::Grey => w * h,
            PixelFormat::Nv12 | PixelFormat::Nv21 => w * h + w * h / 2,
        }
    }

    /// Comma-separated list of every supported name, for error messages.
    pub fn allowed_names() -> String {
        PixelFormat::ALL.map(PixelFormat::name).join(", ")
    }
}

impl fmt::Display for PixelFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A string that is not one of the supported fourcc names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownPixelFormat(pub String);

impl fmt::Display for UnknownPixelFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown pixel format `{}` (allowed: {})", self.0, PixelFormat::allowed_names())
    }
}

impl std::error::Error for UnknownPixelFormat {}

impl FromStr for PixelFormat {
    type Err = UnknownPixelFormat;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PixelFormat::ALL.into_iter().find(|f| f.name() == s).ok_or_else(|| UnknownPixelFormat(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fourcc_round_trips_and_matches_v4l2_codes() {
        // V4L2_PIX_FMT_YUYV is v4l2_fourcc('Y','U','Y','V') = 0x56595559.
        assert_eq!(PixelFormat::Yuyv.fourcc(), 0x5659_5559);
        for f in PixelFormat::ALL {
            assert_eq!(PixelFormat::from_fourcc(f.fourcc()), Some(f));
            assert_eq!(f.name().parse::<PixelFormat>(), Ok(f));
        }
    }

    #[test]
    fn frame_sizes_follow_the_format_geometry() {
        assert_eq!(PixelFormat::Bgr3.frame_bytes(640, 480), 921_600);
        assert_eq!(PixelFormat::Nv12.frame_bytes(640, 480), 460_800);
        assert_eq!(PixelFormat::Yuyv.stride(640), 1280);
    }
}
