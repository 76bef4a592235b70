//! OpenCV views over framebus frames. Readers wrap the shared-memory sample in a `Mat` without
//! copying ([`frame_mat`]); writers wrap a loaned sample's uninitialised memory
//! ([`uninit_mat`]) so OpenCV writes the frame straight into shared memory; [`to_bgr`]
//! converts any carried pixel format for display and encoding; [`overlay`] draws results
//! (boxes, labels) on frames, the same for the preview and the streamer.

use core::ffi::c_void;
use core::mem::MaybeUninit;

use framebus_common::{FrameHeader, PixelFormat};
use opencv::boxed_ref::{BoxedRef, BoxedRefMut};
use opencv::core::{Mat, CV_8UC1, CV_8UC2, CV_8UC3};
use opencv::prelude::*;
use opencv::{imgcodecs, imgproc};

pub mod overlay;

pub use opencv;

/// Result type of this crate: OpenCV's error.
pub type Result<T> = opencv::Result<T>;

fn bad_arg(message: String) -> opencv::Error {
    opencv::Error::new(opencv::core::StsBadArg, message)
}

/// Rows and OpenCV type of the single `Mat` that holds a raw frame of `format`.
pub fn mat_shape(format: PixelFormat, width: u32, height: u32) -> Option<(i32, i32, i32)> {
    let (w, h) = (width as i32, height as i32);
    match format {
        PixelFormat::Bgr3 | PixelFormat::Rgb3 => Some((h, w, CV_8UC3)),
        PixelFormat::Grey => Some((h, w, CV_8UC1)),
        PixelFormat::Yuyv => Some((h, w, CV_8UC2)),
        PixelFormat::Nv12 | PixelFormat::Nv21 => Some((h + h / 2, w, CV_8UC1)),
        PixelFormat::Nv16 => Some((2 * h, w, CV_8UC1)),
        PixelFormat::Mjpg => None,
    }
}

/// A read-only `Mat` over a received raw frame, without copying. MJPG has no raw view.
pub fn frame_mat<'a>(header: &FrameHeader, payload: &'a [u8]) -> Result<BoxedRef<'a, Mat>> {
    let format =
        header.format().ok_or_else(|| bad_arg(format!("unknown pixel format 0x{:08x}", header.pixel_format)))?;
    let (rows, cols, typ) = mat_shape(format, header.width, header.height)
        .ok_or_else(|| bad_arg(format!("{format} frames are compressed: decode them with to_bgr")))?;
    let needed = format.frame_bytes(header.width, header.height);
    if payload.len() < needed {
        return Err(bad_arg(format!(
            "payload of {} bytes is smaller than a {format} {}x{} frame ({needed})",
            payload.len(),
            header.width,
            header.height
        )));
    }
    // SAFETY: the slice holds at least rows × cols × elem_size bytes (checked above), the
    // returned Mat borrows it for 'a and is read-only (BoxedRef gives no mutable access).
    let mat = unsafe {
        Mat::new_rows_cols_with_data_unsafe(
            rows,
            cols,
            typ,
            payload.as_ptr().cast::<c_void>().cast_mut(),
            opencv::core::Mat_AUTO_STEP,
        )
    }?;
    Ok(BoxedRef::from(mat))
}

/// A read-only `Mat` over a raw frame whose rows are `stride` bytes apart (a driver buffer
/// with padded rows), without copying. NV12's UV plane must follow the Y plane at `height ×
/// stride`, as in single-planar V4L2 buffers.
pub fn raw_mat<'a>(
    format: PixelFormat,
    width: u32,
    height: u32,
    stride: usize,
    bytes: &'a [u8],
) -> Result<BoxedRef<'a, Mat>> {
    let (rows, cols, typ) = mat_shape(format, width, height)
        .ok_or_else(|| bad_arg(format!("{format} frames are compressed: they have no raw view")))?;
    let row_bytes = format.stride(width) as usize;
    if stride < row_bytes {
        return Err(bad_arg(format!("stride {stride} is smaller than a {format} row of {width} pixels ({row_bytes})")));
    }
    let needed = stride * (rows.max(1) as usize - 1) + row_bytes;
    if bytes.len() < needed {
        return Err(bad_arg(format!(
            "buffer of {} bytes is smaller than a {format} {width}x{height} frame with stride {stride} ({needed})",
            bytes.len()
        )));
    }
    // SAFETY: the slice holds every row at `stride` bytes apart (checked above); the returned
    // Mat borrows it for 'a and is read-only (BoxedRef gives no mutable access).
    let mat = unsafe {
        Mat::new_rows_cols_with_data_unsafe(rows, cols, typ, bytes.as_ptr().cast::<c_void>().cast_mut(), stride)
    }?;
    Ok(BoxedRef::from(mat))
}

/// A read-only `Mat` of `rows` × `cols` × `typ` (8-bit, 1 to 3 channels) over one plane whose
/// rows are `stride` bytes apart (a plane of a multi-planar driver buffer), without copying.
pub fn plane_mat(rows: i32, cols: i32, typ: i32, stride: usize, bytes: &[u8]) -> Result<BoxedRef<'_, Mat>> {
    let elem = match typ {
        CV_8UC1 => 1,
        CV_8UC2 => 2,
        CV_8UC3 => 3,
        other => return Err(bad_arg(format!("unsupported Mat type {other}"))),
    };
    let row_bytes = cols.max(0) as usize * elem;
    if rows <= 0 || stride < row_bytes {
        return Err(bad_arg(format!("{rows} rows with stride {stride} cannot hold rows of {row_bytes} bytes")));
    }
    let needed = stride * (rows as usize - 1) + row_bytes;
    if bytes.len() < needed {
        return Err(bad_arg(format!(
            "plane of {} bytes is smaller than {rows} rows of stride {stride} ({needed})",
            bytes.len()
        )));
    }
    // SAFETY: the slice holds every row at `stride` bytes apart (checked above); the returned
    // Mat borrows it and is read-only (BoxedRef gives no mutable access).
    let mat = unsafe {
        Mat::new_rows_cols_with_data_unsafe(rows, cols, typ, bytes.as_ptr().cast::<c_void>().cast_mut(), stride)
    }?;
    Ok(BoxedRef::from(mat))
}

/// A writable `Mat` of `rows` × `cols` × `typ` over uninitialised memory (a loaned sample), so
/// OpenCV writes the frame directly into shared memory. The caller must make OpenCV write every
/// byte before treating the memory as initialised.
pub fn uninit_mat(rows: i32, cols: i32, typ: i32, dst: &mut [MaybeUninit<u8>]) -> Result<BoxedRefMut<'_, Mat>> {
    let elem = match typ {
        CV_8UC1 => 1,
        CV_8UC2 => 2,
        CV_8UC3 => 3,
        other => return Err(bad_arg(format!("unsupported Mat type {other}"))),
    };
    let needed = rows.max(0) as usize * cols.max(0) as usize * elem;
    if dst.len() < needed {
        return Err(bad_arg(format!("destination of {} bytes is smaller than {rows}x{cols}x{elem}", dst.len())));
    }
    // SAFETY: `dst` is valid for writes of `needed` bytes for the returned borrow's lifetime;
    // u8 has no invalid bit patterns, so OpenCV writing through the pointer is sound.
    let mat = unsafe {
        Mat::new_rows_cols_with_data_unsafe(
            rows,
            cols,
            typ,
            dst.as_mut_ptr().cast::<c_void>(),
            opencv::core::Mat_AUTO_STEP,
        )
    }?;
    Ok(BoxedRefMut::from(mat))
}

/// Converts a frame of any carried pixel format into a BGR `Mat` (reusing `out`'s memory).
pub fn to_bgr(header: &FrameHeader, payload: &[u8], out: &mut Mat) -> Result<()> {
    let format =
        header.format().ok_or_else(|| bad_arg(format!("unknown pixel format 0x{:08x}", header.pixel_format)))?;
    if format == PixelFormat::Mjpg {
        let len = (header.payload_len as usize).min(payload.len());
        let bytes = Mat::new_rows_cols_with_data(1, len as i32, &payload[..len])?;
        imgcodecs::imdecode_to(&bytes, imgcodecs::IMREAD_COLOR, out)?;
        if out.empty() {
            return Err(bad_arg("MJPG frame did not decode".into()));
        }
        return Ok(());
    }
    let src = frame_mat(header, payload)?;
    if format == PixelFormat::Nv16 {
        // OpenCV has no 4:2:2 semi-planar conversion: take the chroma of every other row (the
        // 4:2:0 subset) and convert as NV12. For display and encoding; not bit-exact 4:2:2.
        let (w, h) = (header.width as usize, header.height as usize);
        let y = plane_mat(h as i32, w as i32, CV_8UC1, w, &payload[..w * h])?;
        let uv = plane_mat((h / 2) as i32, (w / 2) as i32, CV_8UC2, 2 * w, &payload[w * h..])?;
        return imgproc::cvt_color_two_plane(&y, &uv, out, imgproc::COLOR_YUV2BGR_NV12);
    }
    let code = match format {
        PixelFormat::Bgr3 => return src.copy_to(out),
        PixelFormat::Rgb3 => imgproc::COLOR_RGB2BGR,
        PixelFormat::Grey => imgproc::COLOR_GRAY2BGR,
        PixelFormat::Yuyv => imgproc::COLOR_YUV2BGR_YUYV,
        PixelFormat::Nv12 => imgproc::COLOR_YUV2BGR_NV12,
        PixelFormat::Nv21 => imgproc::COLOR_YUV2BGR_NV21,
        PixelFormat::Nv16 => imgproc::COLOR_YUV2BGR_NV12, // handled above
        PixelFormat::Mjpg => unreachable_mjpg(),
    };
    imgproc::cvt_color_def(&src, out, code)
}

fn unreachable_mjpg() -> i32 {
    // MJPG returned earlier; keep a harmless code rather than a panic on the frame path.
    imgproc::COLOR_RGB2BGR
}

#[cfg(test)]
mod tests {
    use super::*;
    use framebus_common::header::FRAME_HEADER_VERSION;
    use framebus_common::pattern::{read_bgr_stamps, SyntheticPattern};

    fn header(format: PixelFormat, w: u32, h: u32, len: usize) -> FrameHeader {
        FrameHeader {
            layout_version: FRAME_HEADER_VERSION,
            width: w,
            height: h,
            stride: format.stride(w),
            pixel_format: format.fourcc(),
            payload_len: len as u32,
            ..FrameHeader::default()
        }
    }

    /// Every raw format converts to BGR with the stamp still readable.
    #[test]
    fn every_raw_format_converts_to_bgr_with_a_readable_stamp() {
        // NV21 and NV16 come only from cameras (no synthetic pattern): see the next test.
        for format in
            PixelFormat::ALL.into_iter().filter(|f| f.is_raw() && !matches!(f, PixelFormat::Nv21 | PixelFormat::Nv16))
        {
            let mut pattern = SyntheticPattern::new(format, 320, 240).expect("size supported");
            let mut buf = vec![MaybeUninit::new(0u8); pattern.frame_bytes()];
            pattern.render(4242, &mut buf);
            let bytes: Vec<u8> = buf.iter().map(|b| unsafe { b.assume_init() }).collect();
            let mut bgr = Mat::default();
            to_bgr(&header(format, 320, 240, bytes.len()), &bytes, &mut bgr).expect("converts");
            assert_eq!((bgr.cols(), bgr.rows(), bgr.channels()), (320, 240, 3));
            let data = bgr.data_bytes().expect("continuous");
            assert_eq!(read_bgr_stamps(320, 240, data), (4242, 4242), "{format}");
        }
    }

    /// NV21 converts like NV12 with U and V swapped; NV16 like the NV12 made of its even chroma
    /// rows.
    #[test]
    fn nv21_and_nv16_convert_through_their_nv12_equivalents() {
        let (w, h) = (64usize, 32usize);
        let y: Vec<u8> = (0..w * h).map(|i| (i * 7 % 251) as u8).collect();
        let uv422: Vec<u8> = (0..w * h).map(|i| (i * 13 % 241) as u8).collect(); // h rows of w
        let nv12: Vec<u8> = y.iter().copied().chain(uv422.chunks(w).step_by(2).flatten().copied()).collect();
        let nv21: Vec<u8> = y
            .iter()
            .copied()
            .chain(
                uv422.chunks(w).step_by(2).flatten().copied().collect::<Vec<_>>().chunks(2).flat_map(|p| [p[1], p[0]]),
            )
            .collect();
        let nv16: Vec<u8> = y.iter().copied().chain(uv422.iter().copied()).collect();
        let bgr = |format: PixelFormat, bytes: &[u8]| {
            let mut out = Mat::default();
            to_bgr(&header(format, w as u32, h as u32, bytes.len()), bytes, &mut out).expect("converts");
            out.data_bytes().expect("continuous").to_vec()
        };
        let reference = bgr(PixelFormat::Nv12, &nv12);
        assert_eq!(bgr(PixelFormat::Nv21, &nv21), reference);
        assert_eq!(bgr(PixelFormat::Nv16, &nv16), reference);
        assert_eq!(nv16.len(), PixelFormat::Nv16.frame_bytes(w as u32, h as u32));
    }
}
