//! The synthetic test pattern and its integrity stamp.
//!
//! A synthetic frame is colour bars with a brightness wave that scrolls down a few rows per
//! frame, with the frame
//! id stamped twice as 64 black/white cells: one band along the top edge and one along the
//! bottom edge. A reader proves it got the *whole, right* frame by checking that both stamps
//! equal the header's frame id and that sampled rows equal the pattern for that id. The cells
//! are large (width/64 pixels) so the stamp also survives JPEG compression and video encoding.
//!
//! Rendering is one contiguous copy per plane from a precomputed double-height template (the
//! scroll offset picks where the copy starts) plus the stamp rows, so producing a frame costs
//! about one `memcpy` of the frame.

use core::mem::MaybeUninit;

use crate::format::PixelFormat;

/// Number of bits (cells) in one stamp band.
pub const STAMP_BITS: u32 = 64;

/// Rows checked against the pattern by [`SyntheticPattern::verify`], besides the two stamps.
const VERIFIED_ROWS: u32 = 8;

/// One plane of a frame: rows of `row_bytes`, `bytes_per_px` bytes per horizontal pixel step.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Plane {
    pub(crate) offset: usize,
    pub(crate) rows: usize,
    pub(crate) row_bytes: usize,
    pub(crate) bytes_per_px: usize,
}

/// The planes of a raw frame the synthetic sources (pattern and scene) produce; `None` for
/// MJPG, the semi-planar variants only cameras deliver, and odd sizes of subsampled formats.
pub(crate) fn planes(format: PixelFormat, width: u32, height: u32) -> Option<Vec<Plane>> {
    let (w, h) = (width as usize, height as usize);
    Some(match format {
        PixelFormat::Mjpg | PixelFormat::Nv21 | PixelFormat::Nv16 => return None,
        PixelFormat::Yuyv | PixelFormat::Nv12 if w % 2 != 0 || h % 2 != 0 => return None,
        PixelFormat::Bgr3 | PixelFormat::Rgb3 => {
            vec![Plane { offset: 0, rows: h, row_bytes: w * 3, bytes_per_px: 3 }]
        }
        PixelFormat::Grey => vec![Plane { offset: 0, rows: h, row_bytes: w, bytes_per_px: 1 }],
        PixelFormat::Yuyv => vec![Plane { offset: 0, rows: h, row_bytes: w * 2, bytes_per_px: 2 }],
        PixelFormat::Nv12 => vec![
            Plane { offset: 0, rows: h, row_bytes: w, bytes_per_px: 1 },
            Plane { offset: w * h, rows: h / 2, row_bytes: w, bytes_per_px: 1 },
        ],
    })
}

/// Writes pixel `x` of RGB colour `rgb` into `line`, a row of plane `plane` of `format` (for
/// NV12's UV plane, U at even x, V at odd x; for YUYV, U at even x, V at odd x after the Y).
pub(crate) fn write_pixel(format: PixelFormat, plane: usize, x: usize, rgb: [u8; 3], line: &mut [u8]) {
    match (format, plane) {
        (PixelFormat::Bgr3, _) => line[x * 3..x * 3 + 3].copy_from_slice(&[rgb[2], rgb[1], rgb[0]]),
        (PixelFormat::Rgb3, _) => line[x * 3..x * 3 + 3].copy_from_slice(&rgb),
        (PixelFormat::Grey, _) | (PixelFormat::Nv12, 0) => line[x] = yuv(rgb).0,
        (PixelFormat::Yuyv, _) => {
            let (y, u, v) = yuv(rgb);
            line[x * 2] = y;
            line[x * 2 + 1] = if x.is_multiple_of(2) { u } else { v };
        }
        (PixelFormat::Nv12, _) => {
            let (_, u, v) = yuv(rgb);
            line[x] = if x.is_multiple_of(2) { u } else { v };
        }
        (PixelFormat::Mjpg | PixelFormat::Nv21 | PixelFormat::Nv16, _) => {}
    }
}

/// Fills `row` (cleared first) with one row of the stamp of `frame_id` in `format`: 64 cells of
/// `cell` pixels, white for a 1, black for a 0 (neutral chroma for YUYV).
pub(crate) fn stamp_row(format: PixelFormat, cell: usize, frame_id: u64, row: &mut Vec<u8>) {
    row.clear();
    for bit in 0..STAMP_BITS as usize {
        let luma = if (frame_id >> (63 - bit)) & 1 == 1 { 255u8 } else { 0u8 };
        for _ in 0..cell {
            match format {
                PixelFormat::Bgr3 | PixelFormat::Rgb3 => row.extend_from_slice(&[luma; 3]),
                PixelFormat::Yuyv => row.extend_from_slice(&[luma, 128]),
                _ => row.push(luma),
            }
        }
    }
}

/// Bytes of a stamp row's neutral chroma in NV12's UV plane (the widest cell, 16 pixels).
pub(crate) const STAMP_GREY: [u8; STAMP_BITS as usize * 16] = [128u8; STAMP_BITS as usize * 16];

/// Checks both stamp bands of a raw frame (the top one first) against `frame_id`, without
/// looking at the picture between them: what a reader checks on a frame flagged
/// [`crate::header::FLAG_SCENE`].
pub fn verify_stamps(
    format: PixelFormat,
    width: u32,
    height: u32,
    frame_id: u64,
    payload: &[u8],
) -> Result<(), StampError> {
    let expected = format.frame_bytes(width, height);
    if payload.len() < expected {
        return Err(StampError::ShortPayload { expected, actual: payload.len() });
    }
    let (w, stride) = (width as usize, format.stride(width) as usize);
    let cell = stamp_cell(width) as usize;
    let top = read_stamp(format, w, stride, 0, payload);
    if top != frame_id {
        return Err(StampError::TopStamp { found: top });
    }
    let bottom = read_stamp(format, w, stride, (height as usize).saturating_sub(cell), payload);
    if bottom != frame_id {
        return Err(StampError::BottomStamp { found: bottom });
    }
    Ok(())
}

/// Why a frame failed verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StampError {
    /// The payload is shorter than the geometry needs.
    ShortPayload {
        /// Bytes the geometry needs.
        expected: usize,
        /// Bytes present.
        actual: usize,
    },
    /// The top stamp does not carry the header's frame id.
    TopStamp {
        /// Value read from the pixels.
        found: u64,
    },
    /// The bottom stamp does not carry the header's frame id (a torn frame).
    BottomStamp {
        /// Value read from the pixels.
        found: u64,
    },
    /// A sampled row differs from the pattern for this frame id.
    Pattern {
        /// Row index in the first plane.
        row: usize,
    },
}

impl core::fmt::Display for StampError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            StampError::ShortPayload { expected, actual } => {
                write!(f, "payload has {actual} bytes, the frame needs {expected}")
            }
            StampError::TopStamp { found } => write!(f, "top stamp reads {found}"),
            StampError::BottomStamp { found } => write!(f, "bottom stamp reads {found}"),
            StampError::Pattern { row } => write!(f, "row {row} differs from the pattern"),
        }
    }
}

impl std::error::Error for StampError {}

/// Precomputed synthetic pattern for one format and size.
#[derive(Debug, Clone)]
pub struct SyntheticPattern {
    format: PixelFormat,
    width: usize,
    height: usize,
    cell: usize,
    planes: Vec<Plane>,
    /// Every plane at double width, back to back: a shifted frame row is one contiguous slice.
    template: Vec<u8>,
    /// Scratch row of stamp cells, reused every frame.
    stamp_row: Vec<u8>,
}

/// Copies `src` into `dst[at..at + src.len()]` (panics when out of bounds, like slice indexing).
pub(crate) fn copy_into(dst: &mut [MaybeUninit<u8>], at: usize, src: &[u8]) {
    let target = &mut dst[at..at + src.len()];
    // SAFETY: `target` is exactly `src.len()` initialisable bytes, and a loaned sample cannot
    // overlap the pattern's own heap buffers.
    unsafe { core::ptr::copy_nonoverlapping(src.as_ptr(), target.as_mut_ptr().cast::<u8>(), src.len()) }
}

/// Side length in pixels of one stamp cell for a frame `width` pixels wide (even, 2..=16).
pub fn stamp_cell(width: u32) -> u32 {
    ((width / STAMP_BITS).min(16) & !1).max(2)
}

/// Smallest width and height the synthetic pattern supports.
pub const MIN_SYNTHETIC_SIZE: (u32, u32) = (128, 64);

fn rgb_at(x: usize, y: usize, width: usize, height: usize) -> [u8; 3] {
    // Eight vertical colour bars whose brightness follows a triangle wave with period `height`
    // down the frame, so a template of two periods scrolls seamlessly.
    const BARS: [[u8; 3]; 8] = [
        [235, 235, 235],
        [235, 235, 16],
        [16, 235, 235],
        [16, 235, 16],
        [235, 16, 235],
        [235, 16, 16],
        [16, 16, 235],
        [60, 60, 60],
    ];
    let bar = BARS[(x % width) * 8 / width];
    let h = height.max(2);
    let phase = (y % h) * 256 / h; // 0..256 over one period
    let shade = 96 + (if phase < 128 { phase } else { 255 - phase }) as u32 * 159 / 128;
    bar.map(|c| ((c as u32 * shade) / 255) as u8)
}

fn yuv(rgb: [u8; 3]) -> (u8, u8, u8) {
    let [r, g, b] = rgb.map(f32::from);
    let y = 0.299 * r + 0.587 * g + 0.114 * b;
    let u = 128.0 - 0.168_736 * r - 0.331_264 * g + 0.5 * b;
    let v = 128.0 + 0.5 * r - 0.418_688 * g - 0.081_312 * b;
    (y.round().clamp(0.0, 255.0) as u8, u.round().clamp(0.0, 255.0) as u8, v.round().clamp(0.0, 255.0) as u8)
}

impl SyntheticPattern {
    /// Builds the pattern for a format and size; `None` for MJPG, odd widths/heights of
    /// subsampled formats, or a size below [`MIN_SYNTHETIC_SIZE`].
    pub fn new(format: PixelFormat, width: u32, height: u32) -> Option<SyntheticPattern> {
        let (w, h) = (width as usize, height as usize);
        if width < MIN_SYNTHETIC_SIZE.0 || height < MIN_SYNTHETIC_SIZE.1 {
            return None;
        }
        let planes = planes(format, width, height)?;
        let template_len: usize = planes.iter().map(|p| p.rows * p.row_bytes * 2).sum();
        let mut template = vec![0u8; template_len];
        let mut at = 0;
        for (index, plane) in planes.iter().enumerate() {
            // Two periods of rows: the frame for scroll offset `s` is rows s..s+rows.
            for row in 0..plane.rows * 2 {
                let line = &mut template[at..at + plane.row_bytes];
                at += plane.row_bytes;
                for x in 0..w {
                    let y = if index == 0 { row } else { row * 2 };
                    write_pixel(format, index, x, rgb_at(x, y, w, h), line);
                }
            }
        }
        Some(SyntheticPattern {
            format,
            width: w,
            height: h,
            cell: stamp_cell(width) as usize,
            planes,
            template,
            stamp_row: Vec::with_capacity(STAMP_BITS as usize * 16 * 3),
        })
    }

    /// Bytes one rendered frame occupies.
    pub fn frame_bytes(&self) -> usize {
        self.format.frame_bytes(self.width as u32, self.height as u32)
    }

    /// Scroll offset in luma rows of frame `frame_id` (even, so 4:2:0 chroma rows stay aligned).
    fn scroll(&self, frame_id: u64) -> usize {
        let step = (self.height / 120).max(1) * 2;
        (((frame_id % self.height as u64) as usize * step) % self.height) & !1
    }

    /// The template bytes of `rows` rows of `plane` starting at frame row `row`, for `frame_id`.
    fn template_rows(&self, plane_index: usize, row: usize, rows: usize, frame_id: u64) -> &[u8] {
        let before: usize = self.planes[..plane_index].iter().map(|p| p.rows * p.row_bytes * 2).sum();
        let plane = self.planes[plane_index];
        let scroll = if plane_index == 0 { self.scroll(frame_id) } else { self.scroll(frame_id) / 2 };
        let start = before + (scroll + row) * plane.row_bytes;
        &self.template[start..start + rows * plane.row_bytes]
    }

    /// Writes frame `frame_id` into `dst` (at least [`Self::frame_bytes`] long): every byte of
    /// the frame is written exactly once except the stamp rows, written twice.
    pub fn render(&mut self, frame_id: u64, dst: &mut [MaybeUninit<u8>]) {
        assert!(dst.len() >= self.frame_bytes(), "destination smaller than the frame");
        for (index, plane) in self.planes.iter().enumerate() {
            copy_into(dst, plane.offset, self.template_rows(index, 0, plane.rows, frame_id));
        }
        self.stamp(frame_id, 0, dst);
        let bottom = self.height - self.cell;
        self.stamp(frame_id, bottom, dst);
    }

    fn stamp(&mut self, frame_id: u64, y0: usize, dst: &mut [MaybeUninit<u8>]) {
        let cell = self.cell;
        let stride = self.format.stride(self.width as u32) as usize;
        let bytes_per_px = self.planes[0].bytes_per_px;
        // One stamp row, then copied into each of the band's rows: row copies, not pixel writes.
        let row = &mut self.stamp_row;
        stamp_row(self.format, cell, frame_id, row);
        debug_assert_eq!(row.len(), STAMP_BITS as usize * cell * bytes_per_px);
        for y in y0..y0 + cell {
            copy_into(dst, y * stride, row);
        }
        if self.format == PixelFormat::Nv12 {
            // Neutral chroma under the cells: the UV rows of the band (cell and y0 are even).
            let uv_plane = self.width * self.height;
            for y in (y0 / 2)..(y0 + cell) / 2 {
                copy_into(dst, uv_plane + y * stride, &STAMP_GREY[..STAMP_BITS as usize * cell]);
            }
        }
    }

    /// Checks only the two stamp bands of a received frame of this format and size (a scene's
    /// frame, [`crate::header::FLAG_SCENE`]): see [`verify_stamps`].
    pub fn verify_stamps(&self, frame_id: u64, payload: &[u8]) -> Result<(), StampError> {
        verify_stamps(self.format, self.width as u32, self.height as u32, frame_id, payload)
    }

    /// Checks a received frame: both stamps equal `frame_id` and sampled rows match the
    /// pattern. `payload` is the sample's valid bytes.
    pub fn verify(&self, frame_id: u64, payload: &[u8]) -> Result<(), StampError> {
        verify_stamps(self.format, self.width as u32, self.height as u32, frame_id, payload)?;
        let plane = self.planes[0];
        let first = self.cell;
        let span = plane.rows - 2 * self.cell;
        for i in 0..VERIFIED_ROWS as usize {
            let row = first + i * span / VERIFIED_ROWS as usize;
            let at = row * plane.row_bytes;
            if payload[at..at + plane.row_bytes] != *self.template_rows(0, row, 1, frame_id) {
                return Err(StampError::Pattern { row });
            }
        }
        Ok(())
    }
}

/// Reads the 64-bit stamp whose band starts at row `y0` of a raw frame.
///
/// `format` must be a raw format; BGR/RGB use the green channel, YUV formats the luma.
pub fn read_stamp(format: PixelFormat, width: usize, stride: usize, y0: usize, payload: &[u8]) -> u64 {
    let cell = stamp_cell(width as u32) as usize;
    let y = y0 + cell / 2;
    let mut value = 0u64;
    for bit in 0..STAMP_BITS as usize {
        let x = bit * cell + cell / 2;
        let at = match format {
            PixelFormat::Bgr3 | PixelFormat::Rgb3 => y * stride + x * 3 + 1,
            PixelFormat::Yuyv => y * stride + x * 2,
            PixelFormat::Grey | PixelFormat::Nv12 | PixelFormat::Nv21 | PixelFormat::Nv16 | PixelFormat::Mjpg => {
                y * stride + x
            }
        };
        let on = payload.get(at).is_some_and(|&v| v >= 128);
        value = (value << 1) | u64::from(on);
    }
    value
}

/// Reads the top and bottom stamps of a decoded BGR image (e.g. a recorded or previewed
/// frame); returns `(top, bottom)`.
pub fn read_bgr_stamps(width: usize, height: usize, bgr: &[u8]) -> (u64, u64) {
    let cell = stamp_cell(width as u32) as usize;
    let stride = width * 3;
    (
        read_stamp(PixelFormat::Bgr3, width, stride, 0, bgr),
        read_stamp(PixelFormat::Bgr3, width, stride, height - cell, bgr),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(pattern: &mut SyntheticPattern, id: u64) -> Vec<u8> {
        let mut buf = vec![MaybeUninit::new(0u8); pattern.frame_bytes()];
        pattern.render(id, &mut buf);
        buf.into_iter().map(|b| unsafe { b.assume_init() }).collect()
    }

    /// Every raw format renders a frame that verifies for its own id and fails for another.
    #[test]
    fn rendered_frames_verify_in_every_raw_format() {
        for format in
            PixelFormat::ALL.into_iter().filter(|f| f.is_raw() && !matches!(f, PixelFormat::Nv21 | PixelFormat::Nv16))
        {
            let mut pattern = SyntheticPattern::new(format, 320, 240).expect("supported size");
            for id in [1u64, 2, 77, 0xdead_beef_cafe] {
                let frame = render(&mut pattern, id);
                assert_eq!(pattern.verify(id, &frame), Ok(()), "{format} id {id}");
                assert!(pattern.verify(id + 1, &frame).is_err(), "{format} id {id}+1");
            }
        }
    }

    /// A frame whose lower half comes from another frame (torn) is detected.
    #[test]
    fn a_torn_frame_fails_verification() {
        let mut pattern = SyntheticPattern::new(PixelFormat::Bgr3, 640, 480).expect("supported size");
        let mut frame = render(&mut pattern, 10);
        let other = render(&mut pattern, 11);
        let half = frame.len() / 2;
        frame[half..].copy_from_slice(&other[half..]);
        assert_eq!(pattern.verify(10, &frame), Err(StampError::BottomStamp { found: 11 }));
    }

    #[test]
    fn too_small_or_compressed_formats_are_refused() {
        assert!(SyntheticPattern::new(PixelFormat::Mjpg, 640, 480).is_none());
        assert!(SyntheticPattern::new(PixelFormat::Bgr3, 64, 48).is_none());
        assert!(SyntheticPattern::new(PixelFormat::Yuyv, 641, 480).is_none());
    }
}
