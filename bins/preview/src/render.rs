//! Turns a frame into a preview image: convert to BGR, downscale to fit the configured size,
//! draw the overlay, encode as JPEG. Buffers are reused, so only the JPEG itself is allocated.

use framebus_common::{clock, FrameHeader};
use framebus_vision::opencv::core::{Mat, Point, Rect, Scalar, Size, Vector};
use framebus_vision::opencv::prelude::*;
use framebus_vision::opencv::{imgcodecs, imgproc};
use framebus_vision::to_bgr;

use framebus_vision::overlay::{self, Shown};

/// Measured values drawn into the overlay.
#[derive(Debug, Clone, Copy, Default)]
pub struct OverlayInfo {
    /// Frames per second arriving from the camera.
    pub camera_fps: f64,
    /// Preview images per second generated.
    pub preview_fps: f64,
    /// Capture → preview latency of this image, milliseconds.
    pub latency_ms: f64,
}

/// The size a `width` × `height` frame is shown at: downscaled to fit `max_w` × `max_h`,
/// aspect kept, never upscaled.
pub fn fit(width: u32, height: u32, max_w: u32, max_h: u32) -> (u32, u32) {
    if width <= max_w && height <= max_h {
        return (width, height);
    }
    let scale = (f64::from(max_w) / f64::from(width)).min(f64::from(max_h) / f64::from(height));
    (((f64::from(width) * scale).round() as u32).max(1), ((f64::from(height) * scale).round() as u32).max(1))
}

/// Rows at the top left where the overlay starts: below the synthetic stamp band (at most 16
/// rows), so a full-size preview of a synthetic frame keeps both stamps readable.
const OVERLAY_TOP: i32 = 20;

/// Reusable buffers of the preview pipeline.
#[derive(Default)]
pub struct Renderer {
    bgr: Mat,
    scaled: Mat,
    params: Vector<i32>,
    text: String,
    scaled_is_current: bool,
}

impl Renderer {
    /// A renderer encoding JPEG at `quality`.
    pub fn new(quality: u32) -> Renderer {
        let params = Vector::from_slice(&[imgcodecs::IMWRITE_JPEG_QUALITY, quality as i32]);
        Renderer { params, ..Renderer::default() }
    }

    /// Converts the frame to BGR into the renderer's own buffer: after this the sample may be
    /// released.
    pub fn convert(&mut self, header: &FrameHeader, payload: &[u8]) -> framebus_vision::Result<()> {
        to_bgr(header, payload, &mut self.bgr)
    }

    /// Takes a BGR image decoded elsewhere (a frame of a clip) in place of a converted frame.
    pub fn load_bgr(&mut self, bgr: Mat) {
        self.bgr = bgr;
    }

    /// Downscales the converted frame to fit `max` and, with `overlay`, draws the overlay;
    /// the result is [`Renderer::image`].
    pub fn compose(
        &mut self,
        camera: &str,
        header: &FrameHeader,
        max: (u32, u32),
        overlay: Option<OverlayInfo>,
    ) -> framebus_vision::Result<()> {
        let (w, h) = (self.bgr.cols() as u32, self.bgr.rows() as u32);
        let (tw, th) = fit(w, h, max.0, max.1);
        self.scaled_is_current = (tw, th) != (w, h);
        let target = if !self.scaled_is_current {
            &mut self.bgr
        } else {
            imgproc::resize(
                &self.bgr,
                &mut self.scaled,
                Size::new(tw as i32, th as i32),
                0.0,
                0.0,
                imgproc::INTER_AREA,
            )?;
            &mut self.scaled
        };
        if let Some(info) = overlay {
            draw_overlay(target, &mut self.text, camera, header, info)?;
        }
        Ok(())
    }

    /// Draws results onto the last composed image (the shared rules of
    /// [`framebus_vision::overlay::draw_results`]); with `top`, one line per producer under the
    /// overlay.
    pub fn draw_results(&mut self, header: &FrameHeader, shown: &[Shown], top: bool) -> framebus_vision::Result<()> {
        let image = if self.scaled_is_current { &mut self.scaled } else { &mut self.bgr };
        // Below the overlay's three lines (see `draw_overlay`).
        let overlay_line = (30.0 * (f64::from(image.cols()) / 900.0).clamp(0.3, 1.2)).ceil() as i32;
        let summary_top = top.then_some(OVERLAY_TOP + overlay_line * 3 + 6);
        overlay::draw_results(image, &mut self.text, header, shown, summary_top)
    }

    /// The last composed image.
    pub fn image(&self) -> &Mat {
        if self.scaled_is_current {
            &self.scaled
        } else {
            &self.bgr
        }
    }

    /// Encodes the last composed image as JPEG into `out` (cleared first).
    pub fn encode(&self, out: &mut Vector<u8>) -> framebus_vision::Result<()> {
        out.clear();
        imgcodecs::imencode(".jpg", self.image(), out, &self.params)?;
        Ok(())
    }
}

fn draw_overlay(
    image: &mut Mat,
    text: &mut String,
    camera: &str,
    header: &FrameHeader,
    info: OverlayInfo,
) -> framebus_vision::Result<()> {
    use std::fmt::Write as _;
    let width = image.cols();
    if width < 64 || image.rows() < OVERLAY_TOP + 40 {
        return Ok(());
    }
    let scale = (f64::from(width) / 900.0).clamp(0.3, 1.2);
    let line_height = (30.0 * scale).ceil() as i32;
    let format = header.format().map_or("?", |f| f.name());
    let lines = 3;
    let backdrop = Rect::new(0, OVERLAY_TOP, width.min((560.0 * scale) as i32 + 8), line_height * lines + 6);
    imgproc::rectangle(image, backdrop, Scalar::new(0.0, 0.0, 0.0, 0.0), imgproc::FILLED, imgproc::LINE_8, 0)?;
    for i in 0..lines {
        text.clear();
        let _ = match i {
            0 => write!(text, "{camera}  frame {}  {}x{} {format}", header.frame_id, header.width, header.height),
            1 => write!(text, "{} UTC", clock::format_utc(header.capture_realtime_ns)),
            _ => write!(
                text,
                "cam {:.1} fps  preview {:.1} fps  lat {:.1} ms",
                info.camera_fps, info.preview_fps, info.latency_ms
            ),
        };
        let origin = Point::new(4, OVERLAY_TOP + line_height * (i + 1) - (line_height / 4));
        imgproc::put_text(
            image,
            text,
            origin,
            imgproc::FONT_HERSHEY_SIMPLEX,
            scale * 0.9,
            Scalar::new(255.0, 255.0, 255.0, 0.0),
            1,
            imgproc::LINE_AA,
            false,
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::fit;

    #[test]
    fn frames_are_downscaled_to_fit_and_never_upscaled() {
        assert_eq!(fit(640, 480, 640, 480), (640, 480));
        assert_eq!(fit(320, 240, 640, 480), (320, 240));
        assert_eq!(fit(1920, 1080, 640, 480), (640, 360));
        assert_eq!(fit(1080, 1920, 640, 480), (270, 480));
    }
}
