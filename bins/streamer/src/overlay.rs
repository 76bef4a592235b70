//! `[camera.streamer] overlay = true`: the latest results of the camera's producers drawn into
//! the frames the streamer encodes, so RTSP and WebRTC viewers see the boxes the preview shows.
//!
//! The rules are the preview's, from one place ([`framebus_vision::overlay`]): per producer the
//! newest result about the frame or an earlier one of the same capture run, dropped once older
//! than `[camera.preview] result-max-age-ms` relative to the frame, boxes and labels in a colour
//! per producer that fades with age. The streamer never waits for a result (it takes what has
//! arrived when the frame is encoded) and never writes into the shared frame: the frame is
//! converted to BGR into the streamer's own buffer, drawn on, and that copy is encoded.

use anyhow::Context;
use framebus_common::config::defaults::PREVIEW_RESULT_MAX_AGE_MS;
use framebus_common::results::Outcome;
use framebus_common::{CameraConfig, FrameHeader, PixelFormat};
use framebus_vision::opencv::core::Mat;
use framebus_vision::opencv::prelude::*;
use framebus_vision::overlay::{draw_results, ResultBoard};
use framebus_vision::to_bgr;
use gstreamer as gst;

use crate::publisher::{frame_buffer, RawLayout};

/// The streamer's drawing state: the results seen so far and its own BGR frame buffer.
pub struct Overlay {
    board: ResultBoard,
    bgr: Mat,
    text: String,
    max_age_ms: f64,
    layout: RawLayout,
    /// Frames encoded with at least one result drawn.
    pub drawn: u64,
}

impl Overlay {
    /// The overlay of `camera`: frames of its size, results no older than its preview's
    /// `result-max-age-ms` (the default when it has no preview table).
    pub fn new(camera: &CameraConfig) -> Overlay {
        let max_age_ms = camera.preview.as_ref().map_or(PREVIEW_RESULT_MAX_AGE_MS, |p| p.result_max_age_ms);
        Overlay {
            board: ResultBoard::default(),
            bgr: Mat::default(),
            text: String::new(),
            max_age_ms,
            layout: Overlay::encoded_layout(camera.width, camera.height),
            drawn: 0,
        }
    }

    /// What the encoder receives with the overlay on: BGR frames of the camera's size.
    pub fn encoded_layout(width: u32, height: u32) -> RawLayout {
        RawLayout { format: PixelFormat::Bgr3, width, height }
    }

    /// Takes in results as they arrived (never waits for any).
    pub fn add(&mut self, outcomes: Vec<Outcome>) {
        self.board.add(outcomes);
    }

    /// Converts the frame into the overlay's own BGR buffer: the only step that reads the
    /// sample, which may be released after it.
    pub fn convert(&mut self, header: &FrameHeader, payload: &[u8]) -> anyhow::Result<()> {
        to_bgr(header, payload, &mut self.bgr).with_context(|| {
            format!("converting frame {} ({}x{}) for the overlay", header.frame_id, header.width, header.height)
        })
    }

    /// Draws the results about the converted frame into it and copies it into a buffer for the
    /// encoder.
    pub fn render(&mut self, header: &FrameHeader) -> anyhow::Result<gst::Buffer> {
        let shown = self.board.for_frame(header, self.max_age_ms);
        if !shown.is_empty() {
            draw_results(&mut self.bgr, &mut self.text, header, &shown, None)
                .with_context(|| format!("drawing results on frame {}", header.frame_id))?;
            self.drawn += 1;
        }
        let bytes = self.bgr.data_bytes().context("reading the converted frame")?;
        frame_buffer(&self.layout, bytes)
    }
}
