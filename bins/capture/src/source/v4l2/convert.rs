//! Writing one frame from a driver buffer into a loaned sample, in a single pass: copied (rows
//! packed to the tight stride, planes one after the other), colour-converted with OpenCV
//! `cvtColor`, or decoded with `imdecode` — never through an intermediate frame buffer.

use core::mem::MaybeUninit;

use anyhow::anyhow;
use framebus_common::config::Conversion;
use framebus_common::PixelFormat;
use framebus_vision::opencv::core::{Mat, CV_8UC1, CV_8UC2};
use framebus_vision::opencv::prelude::*;
use framebus_vision::opencv::{imgcodecs, imgproc};
use framebus_vision::{mat_shape, plane_mat, uninit_mat};

use super::negotiate::PlaneLayout;
use crate::source::SourceError;

/// The frame in a driver buffer: each plane's bytes from its first row, and its layout.
pub(super) struct FrameView<'a> {
    pub planes: [(&'a [u8], PlaneLayout); 2],
    pub count: usize,
}

/// Copies `src` into the start of `dst`; false when `dst` is too short.
pub(super) fn write_bytes(dst: &mut [MaybeUninit<u8>], src: &[u8]) -> bool {
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
pub(super) fn copy_rows(dst: &mut [MaybeUninit<u8>], src: &[u8], row: usize, stride: usize, rows: usize) -> bool {
    if dst.len() != row * rows || rows == 0 || stride < row || src.len() < stride * (rows - 1) + row {
        return false;
    }
    if stride == row {
        return write_bytes(dst, &src[..row * rows]);
    }
    dst.chunks_exact_mut(row).zip(src.chunks(stride)).all(|(d, s)| s.len() >= row && write_bytes(d, &s[..row]))
}

fn opencv_err(e: framebus_vision::opencv::Error) -> SourceError {
    SourceError::BadFrame(format!("OpenCV: {e}"))
}

/// Writes the frame in `view` (device format `from`, `width`x`height`) into `dst` as `to`.
/// `Ok(false)`: a JPEG that did not decode to the expected size (the caller counts a drop).
pub(super) fn write_frame(
    conversion: Conversion,
    from: PixelFormat,
    to: PixelFormat,
    (width, height): (u32, u32),
    view: &FrameView<'_>,
    dst: &mut [MaybeUninit<u8>],
) -> Result<bool, SourceError> {
    let planes = &view.planes[..view.count];
    match conversion {
        Conversion::Passthrough if !to.is_raw() => {
            let src = planes[0].0;
            if src.len() != dst.len() || !write_bytes(dst, src) {
                return Err(SourceError::BadFrame(format!(
                    "frame of {} bytes does not match the sample of {}",
                    src.len(),
                    dst.len()
                )));
            }
        }
        Conversion::Passthrough => {
            let mut rest = dst;
            for (src, plane) in planes {
                let (head, tail) = rest.split_at_mut(plane.tight().min(rest.len()));
                if !copy_rows(head, src, plane.row, plane.stride, plane.rows) {
                    return Err(SourceError::BadFrame("driver buffer shorter than a frame".into()));
                }
                rest = tail;
            }
            if !rest.is_empty() {
                return Err(SourceError::BadFrame(format!("{} bytes of the sample left unwritten", rest.len())));
            }
        }
        Conversion::Convert => convert(from, to, (width, height), planes, dst)?,
        Conversion::Decode => return decode(to, (width, height), planes[0].0, dst),
    }
    Ok(true)
}

fn convert(
    from: PixelFormat,
    to: PixelFormat,
    (width, height): (u32, u32),
    planes: &[(&[u8], PlaneLayout)],
    dst: &mut [MaybeUninit<u8>],
) -> Result<(), SourceError> {
    let (w, h) = (width as i32, height as i32);
    if matches!(from, PixelFormat::Nv12 | PixelFormat::Nv21 | PixelFormat::Nv16) && to == PixelFormat::Grey {
        // Grey from a semi-planar format is its Y plane.
        let (src, y) = planes[0];
        return if copy_rows(dst, src, y.row, y.stride, y.rows) {
            Ok(())
        } else {
            Err(SourceError::BadFrame("driver buffer shorter than a frame".into()))
        };
    }
    let code = match (from, to) {
        (PixelFormat::Yuyv, PixelFormat::Bgr3) => imgproc::COLOR_YUV2BGR_YUYV,
        (PixelFormat::Yuyv, PixelFormat::Rgb3) => imgproc::COLOR_YUV2RGB_YUYV,
        (PixelFormat::Yuyv, PixelFormat::Grey) => imgproc::COLOR_YUV2GRAY_YUYV,
        (PixelFormat::Nv12, PixelFormat::Bgr3) => imgproc::COLOR_YUV2BGR_NV12,
        (PixelFormat::Nv12, PixelFormat::Rgb3) => imgproc::COLOR_YUV2RGB_NV12,
        (PixelFormat::Nv21, PixelFormat::Bgr3) => imgproc::COLOR_YUV2BGR_NV21,
        (PixelFormat::Nv21, PixelFormat::Rgb3) => imgproc::COLOR_YUV2RGB_NV21,
        (PixelFormat::Grey, PixelFormat::Bgr3) => imgproc::COLOR_GRAY2BGR,
        (PixelFormat::Grey, PixelFormat::Rgb3) => imgproc::COLOR_GRAY2RGB,
        (from, to) => return Err(SourceError::Fatal(anyhow!("no conversion from {from} to {to}"))),
    };
    let Some((rows, cols, typ)) = mat_shape(to, width, height) else {
        return Err(SourceError::Fatal(anyhow!("{to} has no raw layout")));
    };
    let target_ptr = dst.as_ptr() as usize;
    let mut target = uninit_mat(rows, cols, typ, dst).map_err(opencv_err)?;
    let (src, first) = planes[0];
    if matches!(from, PixelFormat::Nv12 | PixelFormat::Nv21) {
        // Y and interleaved UV, wherever the driver put them (one buffer or two).
        let (uv_src, uv) = planes[1];
        let y = plane_mat(h, w, CV_8UC1, first.stride, src).map_err(opencv_err)?;
        let uv = plane_mat(uv.rows as i32, w / 2, CV_8UC2, uv.stride, uv_src).map_err(opencv_err)?;
        imgproc::cvt_color_two_plane(&y, &uv, &mut target, code).map_err(opencv_err)?;
    } else {
        let (_, cols, typ) =
            mat_shape(from, width, height).ok_or_else(|| SourceError::Fatal(anyhow!("{from} has no raw layout")))?;
        let source = plane_mat(h, cols, typ, first.stride, src).map_err(opencv_err)?;
        imgproc::cvt_color_def(&source, &mut target, code).map_err(opencv_err)?;
    }
    if target.data() as usize != target_ptr {
        return Err(SourceError::BadFrame(format!("{from} → {to} conversion reallocated")));
    }
    Ok(())
}

fn decode(
    to: PixelFormat,
    (width, height): (u32, u32),
    jpeg: &[u8],
    dst: &mut [MaybeUninit<u8>],
) -> Result<bool, SourceError> {
    let Some((rows, cols, typ)) = mat_shape(to, width, height) else {
        return Err(SourceError::Fatal(anyhow!("{to} has no raw layout")));
    };
    let flags = if to == PixelFormat::Grey { imgcodecs::IMREAD_GRAYSCALE } else { imgcodecs::IMREAD_COLOR };
    let jpeg = Mat::new_rows_cols_with_data(1, jpeg.len() as i32, jpeg).map_err(opencv_err)?;
    let target_ptr = dst.as_ptr() as usize;
    let mut target = uninit_mat(rows, cols, typ, dst).map_err(opencv_err)?;
    imgcodecs::imdecode_to(&jpeg, flags, &mut target).map_err(opencv_err)?;
    // A JPEG of another size makes OpenCV decode into a buffer of its own: then the sample was
    // not written and the frame is dropped.
    Ok(!target.empty() && target.data() as usize == target_ptr)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn init(bytes: &[MaybeUninit<u8>]) -> Vec<u8> {
        // SAFETY: the tests only read buffers they zero-filled first.
        bytes.iter().map(|b| unsafe { b.assume_init() }).collect()
    }

    /// Padded driver rows are packed to the tight stride; short buffers are refused.
    #[test]
    fn padded_rows_are_packed() {
        let src: Vec<u8> = (0..3 * 8).map(|i| i as u8).collect(); // 3 rows of 6 bytes + 2 padding
        let mut dst = vec![MaybeUninit::new(0u8); 18];
        assert!(copy_rows(&mut dst, &src, 6, 8, 3));
        assert_eq!(init(&dst), [0, 1, 2, 3, 4, 5, 8, 9, 10, 11, 12, 13, 16, 17, 18, 19, 20, 21]);
        assert!(!copy_rows(&mut dst, &src[..20], 6, 8, 3));
        let mut tight = vec![MaybeUninit::new(0u8); 24];
        assert!(copy_rows(&mut tight, &src, 8, 8, 3));
    }

    /// NV12 from two padded memory planes is published as one tight NV12 frame.
    #[test]
    fn two_padded_planes_become_one_tight_frame() {
        let y: Vec<u8> = (0..4 * 8).map(|i| i as u8).collect(); // 4 rows of 4 + 4 padding
        let uv: Vec<u8> = (100..100 + 2 * 6).map(|i| i as u8).collect(); // 2 rows of 4 + 2 padding
        let view = FrameView {
            planes: [
                (&y, PlaneLayout { memory_plane: 0, offset: 0, stride: 8, row: 4, rows: 4 }),
                (&uv, PlaneLayout { memory_plane: 1, offset: 0, stride: 6, row: 4, rows: 2 }),
            ],
            count: 2,
        };
        let mut dst = vec![MaybeUninit::new(0u8); 24];
        let written =
            write_frame(Conversion::Passthrough, PixelFormat::Nv12, PixelFormat::Nv12, (4, 4), &view, &mut dst);
        assert!(matches!(written, Ok(true)));
        assert_eq!(
            init(&dst),
            [0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27, 100, 101, 102, 103, 106, 107, 108, 109]
        );
        let mut short = vec![MaybeUninit::new(0u8); 25];
        let left =
            write_frame(Conversion::Passthrough, PixelFormat::Nv12, PixelFormat::Nv12, (4, 4), &view, &mut short);
        assert!(matches!(left, Err(SourceError::BadFrame(m)) if m.contains("unwritten")));
    }
}
