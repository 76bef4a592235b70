//! The per-frame computation: mean brightness per channel, the motion score (the share of a
//! small grey thumbnail that changed against the previous frame's), the mean difference and the
//! changed regions (boxes in frame pixels), on a `Mat` that wraps the shared-memory sample
//! without copying. Every score is on the one 0..1 scale (`framebus_common::results::SCORE_MIN`).

use framebus_common::results::score_from_level;
use framebus_common::{FrameHeader, PixelFormat};
use framebus_vision::opencv::core::{self, Mat, Rect, Scalar, Size, ToInputArray};
use framebus_vision::opencv::imgproc;
use framebus_vision::opencv::prelude::*;
use framebus_vision::{frame_mat, to_bgr};

/// Side of the thumbnail the motion score is computed on.
const THUMB: Size = Size { width: 64, height: 48 };

/// A thumbnail pixel whose grey level moved by more than this (0..255) counts as changed.
const CHANGED_LEVEL: f64 = 25.0;

/// Regions smaller than this many thumbnail pixels are noise, not motion.
const MIN_REGION_PIXELS: i32 = 2;

/// Most regions reported per frame (the largest first).
pub const MAX_REGIONS: usize = 16;

/// A changed region in frame pixels, with the share of its pixels that changed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Region {
    /// Left edge.
    pub x: f32,
    /// Top edge.
    pub y: f32,
    /// Width.
    pub w: f32,
    /// Height.
    pub h: f32,
    /// Changed pixels / box area, 0..1.
    pub fill: f32,
}

/// What the computation found in one frame.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FrameMetrics {
    /// Mean of each channel of the frame as carried (B, G, R for BGR; Y for grey-like).
    pub mean: [f64; 3],
    /// Mean absolute difference of the grey thumbnail against the previous frame's, on the
    /// score scale (0..1: a grey-level difference / 255).
    pub difference: f64,
    /// The motion score: share of the picture that changed (0..1), the result's score.
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
    mask: Mat,
    labels: Mat,
    stats: Mat,
    centroids: Mat,
    regions: Vec<Region>,
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
        self.regions.clear();
        let (difference, motion) = if self.previous.empty() {
            (0.0, 0.0)
        } else {
            core::absdiff(&self.grey, &self.previous, &mut self.diff)?;
            let difference = score_from_level(core::mean_def(&self.diff)?[0]);
            imgproc::threshold(&self.diff, &mut self.mask, CHANGED_LEVEL, 255.0, imgproc::THRESH_BINARY)?;
            let changed = f64::from(core::count_non_zero(&self.mask)?) / f64::from(THUMB.area());
            if changed > 0.0 {
                self.find_regions(header)?;
            }
            (difference, changed)
        };
        core::swap(&mut self.grey, &mut self.previous)?;
        Ok(FrameMetrics { mean: scalar3(mean), difference, motion })
    }

    /// The changed regions of the last frame measured, largest first, in frame pixels.
    pub fn regions(&self) -> &[Region] {
        &self.regions
    }

    /// Connected changed areas of the thumbnail, scaled to the frame.
    fn find_regions(&mut self, header: &FrameHeader) -> framebus_vision::Result<()> {
        let count = imgproc::connected_components_with_stats_def(
            &self.mask,
            &mut self.labels,
            &mut self.stats,
            &mut self.centroids,
        )?;
        let sx = header.width as f32 / THUMB.width as f32;
        let sy = header.height as f32 / THUMB.height as f32;
        // Label 0 is the unchanged background.
        for label in 1..count {
            let at = |column: i32| self.stats.at_2d::<i32>(label, column).copied();
            let (x, y, w, h, area) = (
                at(imgproc::CC_STAT_LEFT)?,
                at(imgproc::CC_STAT_TOP)?,
                at(imgproc::CC_STAT_WIDTH)?,
                at(imgproc::CC_STAT_HEIGHT)?,
                at(imgproc::CC_STAT_AREA)?,
            );
            if area < MIN_REGION_PIXELS {
                continue;
            }
            self.regions.push(Region {
                x: x as f32 * sx,
                y: y as f32 * sy,
                w: w as f32 * sx,
                h: h as f32 * sy,
                fill: area as f32 / (w * h).max(1) as f32,
            });
        }
        self.regions.sort_by(|a, b| (b.w * b.h).total_cmp(&(a.w * a.h)));
        self.regions.truncate(MAX_REGIONS);
        Ok(())
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
