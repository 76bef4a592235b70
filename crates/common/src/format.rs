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

    /// The format's row of [`FORMATS`]: everything about it that is not code of its own.
    pub const fn info(self) -> &'static FormatInfo {
        &FORMATS[self as usize]
    }

    /// The four ASCII characters of the fourcc, e.g. `"BGR3"`.
    pub fn name(self) -> &'static str {
        self.info().name
    }

    /// The fourcc as the little-endian `u32` stored in the frame header and used by V4L2.
    pub fn fourcc(self) -> u32 {
        u32::from_le_bytes(*self.info().name.as_bytes().first_chunk::<4>().unwrap_or(&[0; 4]))
    }

    /// Parses a fourcc `u32` back into a format.
    pub fn from_fourcc(code: u32) -> Option<PixelFormat> {
        PixelFormat::ALL.into_iter().find(|f| f.fourcc() == code)
    }

    /// Whether frames have a fixed size computed from width and height.
    pub fn is_raw(self) -> bool {
        self.info().bytes_per_pixel > 0
    }

    /// Bytes per row of the first plane for a frame `width` pixels wide (0 for MJPG).
    pub fn stride(self, width: u32) -> u32 {
        width * self.info().bytes_per_pixel
    }

    /// Bytes one frame occupies in a slot. For MJPG this is the largest compressed frame
    /// accepted (2 bytes per pixel, more than a JPEG of any sane quality needs).
    pub fn frame_bytes(self, width: u32, height: u32) -> usize {
        let (w, h) = (width as usize, height as usize);
        match self.info().chroma {
            _ if !self.is_raw() => w * h * 2,
            None => self.stride(width) as usize * h,
            Some(Chroma::Half) => w * h + w * h / 2,
            Some(Chroma::Full) => w * h * 2,
        }
    }

    /// Rows of the frame seen as one tightly packed image of `stride(width)`-byte rows (an
    /// OpenCV `Mat`, Python's `image`): the luma rows, then the chroma rows of a semi-planar
    /// format; 0 for MJPG.
    pub fn image_rows(self, height: u32) -> u32 {
        match self.info().chroma {
            _ if !self.is_raw() => 0,
            None => height,
            Some(Chroma::Half) => height + height / 2,
            Some(Chroma::Full) => height * 2,
        }
    }

    /// (rows, tight row bytes) of each plane of a raw frame (none for MJPG); an odd size
    /// rounds the chroma plane up, as GStreamer lays it out.
    pub fn planes(self, width: u32, height: u32) -> impl Iterator<Item = (usize, usize)> {
        let (w, h) = (width as usize, height as usize);
        let first = self.is_raw().then(|| (h, self.stride(width) as usize));
        let chroma = self.info().chroma.map(|c| match c {
            Chroma::Half => (h.div_ceil(2), w.div_ceil(2) * 2),
            Chroma::Full => (h, w.div_ceil(2) * 2),
        });
        first.into_iter().chain(chroma)
    }

    /// Comma-separated list of every supported name, for error messages.
    pub fn allowed_names() -> String {
        PixelFormat::ALL.map(PixelFormat::name).join(", ")
    }
}

/// How one pixel format lies in memory, and its names elsewhere: the one table a new format
/// gets a row in (see ARCHITECTURE.md, "Adding a pixel format").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FormatInfo {
    /// The fourcc text (`BGR3`): config, wire, status, Python.
    pub name: &'static str,
    /// Bytes per pixel of the first (or only) plane; 0 for a compressed format.
    pub bytes_per_pixel: u32,
    /// The interleaved chroma plane after the luma plane of a semi-planar format.
    pub chroma: Option<Chroma>,
    /// Whether width and height must be even (chroma shared by pixel pairs).
    pub even_size: bool,
    /// The format's name in GStreamer's `video/x-raw` caps (`None`: not raw video).
    pub gstreamer: Option<&'static str>,
}

/// The chroma plane of a semi-planar format: U and V interleaved at half width.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chroma {
    /// 4:2:0: half as many rows as the luma plane (NV12, NV21).
    Half,
    /// 4:2:2: as many rows as the luma plane (NV16).
    Full,
}

/// Every format's [`FormatInfo`], in the order of [`PixelFormat`]'s variants.
pub const FORMATS: [FormatInfo; 8] = [
    FormatInfo { name: "BGR3", bytes_per_pixel: 3, chroma: None, even_size: false, gstreamer: Some("BGR") },
    FormatInfo { name: "RGB3", bytes_per_pixel: 3, chroma: None, even_size: false, gstreamer: Some("RGB") },
    FormatInfo { name: "GREY", bytes_per_pixel: 1, chroma: None, even_size: false, gstreamer: Some("GRAY8") },
    FormatInfo { name: "YUYV", bytes_per_pixel: 2, chroma: None, even_size: true, gstreamer: Some("YUY2") },
    FormatInfo {
        name: "NV12",
        bytes_per_pixel: 1,
        chroma: Some(Chroma::Half),
        even_size: true,
        gstreamer: Some("NV12"),
    },
    FormatInfo {
        name: "NV21",
        bytes_per_pixel: 1,
        chroma: Some(Chroma::Half),
        even_size: true,
        gstreamer: Some("NV21"),
    },
    FormatInfo {
        name: "NV16",
        bytes_per_pixel: 1,
        chroma: Some(Chroma::Full),
        even_size: true,
        gstreamer: Some("NV16"),
    },
    FormatInfo { name: "MJPG", bytes_per_pixel: 0, chroma: None, even_size: false, gstreamer: None },
];

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

/// Read from the config as its fourcc text (`"BGR3"`); an unknown one is an error listing the
/// allowed formats.
impl<'de> serde::Deserialize<'de> for PixelFormat {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Written as its fourcc text.
impl serde::Serialize for PixelFormat {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

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

    /// The table's rows follow the enum's order, and sizes agree with the planes they list.
    #[test]
    fn the_table_is_in_variant_order_and_its_sizes_agree() {
        for (i, f) in PixelFormat::ALL.into_iter().enumerate() {
            assert_eq!(f as usize, i, "{f}");
            assert_eq!(f.name().len(), 4, "{f}");
            if f.is_raw() {
                let planes: usize = f.planes(640, 480).map(|(rows, row)| rows * row).sum();
                assert_eq!(planes, f.frame_bytes(640, 480), "{f}");
                assert_eq!(f.image_rows(480) as usize * f.stride(640) as usize, f.frame_bytes(640, 480), "{f}");
            }
        }
        assert_eq!(PixelFormat::Nv16.planes(6, 4).collect::<Vec<_>>(), [(4, 6), (4, 6)]);
        assert_eq!(PixelFormat::Nv12.planes(5, 3).collect::<Vec<_>>(), [(3, 5), (2, 6)]);
        assert_eq!(PixelFormat::Mjpg.planes(640, 480).count(), 0);
    }
}
