//! The per-frame computation: mean brightness per channel and a motion score (mean absolute
//! difference of a small grey thumbnail against the previous frame's), on a `Mat` that wraps
//! the shared-memory sample without copying.

use framebus_common::{FrameHeader, PixelFormat};
use framebus_vision::opencv::core::{self, Mat, Rect, Scalar, Size, ToInputArray};
use framebus_vision::opencv::imgproc;
use framebus_vision::opencv::prelude::*;
use framebus_vision::{frame_mat, to_bgr};

/// Side of the thumbnail the motion score is computed on.
const THUMB: Size = Size { width: 64, height: 48 };

/// What the computation found in one frame.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FrameMetrics {
    /// Mean of each channel of the frame as carried (B, G, R for BGR; Y for grey-like).
    pub mean: [f64; 3],
    /// Mean absolute difference (0..255) of the grey thumbnail against the previous frame's.
    pub motion: f64,
}

/// Keeps the previous thumbnail between frames; all buffers are reused.
#[derive(Default)]
pub struct MotionMeter {
    thumb: Mat,
    grey: Mat,
    previous: Mat,
    diff: Mat,
    decoded: Mat,
}

impl MotionMeter {
    /// Computes the metrics of one frame.
    pub fn measure(&mut self, header: &FrameHeader, payload: &[u8]) -> framebus_vision::Result<FrameMetrics> {
        let format = header.format().unwrap_or(PixelFormat::Bgr3);
        let mean = if format == PixelFormat::Mjpg {
            to_bgr(header, payload, &mut self.decoded)?;
            let decoded = std::mem::take(&mut self.decoded);
            let mean = self.measure_view(&decoded, imgproc::COLOR_BGR2GRAY);
            self.decoded = decoded;
            mean?
        } else {
            // `frame` wraps the shared-memory sample: nothing is copied.
            let frame = frame_mat(header, payload)?;
            match format {
                PixelFormat::Bgr3 => self.measure_view(&frame, imgproc::COLOR_BGR2GRAY)?,
                PixelFormat::Rgb3 => self.measure_view(&frame, imgproc::COLOR_RGB2GRAY)?,
                // NV12, NV21, NV16: the Y plane is the first `height` rows.
                PixelFormat::Nv12 | PixelFormat::Nv21 | PixelFormat::Nv16 => {
                    let luma = Mat::roi(&frame, Rect::new(0, 0, header.width as i32, header.height as i32))?;
                    self.measure_view(&luma, -1)?
                }
                _ => self.measure_view(&frame, -1)?,
            }
        };
        let motion = if self.previous.empty() {
            0.0
        } else {
            core::absdiff(&self.grey, &self.previous, &mut self.diff)?;
            core::mean_def(&self.diff)?[0]
        };
        core::swap(&mut self.grey, &mut self.previous)?;
        Ok(FrameMetrics { mean: scalar3(mean), motion })
    }

    /// Mean of `view` and its grey thumbnail into `self.grey`; `grey_code` converts a colour
    /// thumbnail to grey (-1: already grey, or YUYV whose channel 0 is luma).
    fn measure_view(&mut self, view: &impl ToInputArray, grey_code: i32) -> framebus_vision::Result<Scalar> {
        let mean = core::mean_def(view)?;
        imgproc::resize(view, &mut self.thumb, THUMB, 0.0, 0.0, imgproc::INTER_NEAREST)?;
        if grey_code >= 0 {
            imgproc::cvt_color_def(&self.thumb, &mut self.grey, grey_code)
        } else if self.thumb.channels() == 2 {
            // YUYV: channel 0 is luma.
            core::extract_channel(&self.thumb, &mut self.grey, 0)
        } else {
            self.thumb.copy_to(&mut self.grey)
        }?;
        Ok(mean)
    }
}

fn scalar3(s: Scalar) -> [f64; 3] {
    [s[0], s[1], s[2]]
}
