//! Frame sources. A source produces frames of one fixed format and writes each one straight
//! into the loaned shared-memory sample it is given; adding a camera type means adding one
//! implementation of [`FrameSource`].

mod file;
mod synthetic;
mod v4l2;

use core::mem::MaybeUninit;
use std::time::Duration;

use anyhow::Context;
use framebus_common::config::SourceConfig;
use framebus_common::{CameraConfig, Deployment, PixelFormat};

pub use file::FileSource;
pub use synthetic::SyntheticSource;
pub use v4l2::V4l2Source;

/// What decides when the next frame is produced.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pacing {
    /// Capture waits this long between frames (timer-paced sources).
    Period(Duration),
    /// As fast as possible (fps = 0).
    Unpaced,
    /// The source blocks in [`FrameSource::grab`] until the device has a frame.
    Device,
}

/// The format a source actually delivers (what the frame header will say).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceFormat {
    /// Pixel format of the frames.
    pub format: PixelFormat,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

impl SourceFormat {
    /// Bytes of the largest frame of this format.
    pub fn max_frame_bytes(&self) -> usize {
        self.format.frame_bytes(self.width, self.height)
    }
}

/// What a source really delivers, after negotiation with the device: what capture status and
/// the start-up log report.
#[derive(Debug, Clone, PartialEq)]
pub struct Effective {
    /// The frames as published (equal to [`FrameSource::format`]).
    pub published: SourceFormat,
    /// The pixel format the device delivers (V4L2), when the source has a device.
    pub device_format: Option<PixelFormat>,
    /// Frames per second the source runs at: granted by the driver (V4L2), configured
    /// (timer-paced sources), 0 when unpaced or unknown.
    pub fps: f64,
    /// Frames the source or its driver lost so far (driver sequence gaps, corrupt buffers).
    pub source_drops: u64,
    /// Times the source was reopened after it became unavailable.
    pub reconnects: u64,
    /// Where the granted settings differ from the configured ones (`size 800x600 → 640x480`);
    /// empty when everything was granted.
    pub adjustments: Vec<String>,
}

/// Metadata of a grabbed frame, before it is written into a sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grab {
    /// Bytes the frame will occupy in the sample.
    pub payload_len: usize,
    /// The source's own sequence number.
    pub sequence: u64,
    /// Capture time on CLOCK_MONOTONIC (ns).
    pub capture_mono_ns: u64,
    /// Capture time on CLOCK_REALTIME (ns).
    pub capture_realtime_ns: u64,
    /// Frames the source dropped so far (cumulative).
    pub source_drops: u64,
}

/// Why no frame was grabbed.
#[derive(Debug)]
pub enum SourceError {
    /// The source has no more frames (a file without looping).
    Ended,
    /// The device is gone for now; capture retries with backoff via [`FrameSource::reconnect`].
    Unavailable(String),
    /// No frame arrived within the source's poll timeout; capture checks for termination
    /// requests and calls [`FrameSource::grab`] again.
    NoFrameYet,
    /// This one frame is unusable (corrupt buffer, undecodable JPEG); capture skips it, gives
    /// it no frame id, and carries on.
    BadFrame(String),
    /// Anything else: capture stops with this error.
    Fatal(anyhow::Error),
}

/// A camera, file or generator that produces frames.
pub trait FrameSource {
    /// Human-readable description for logs (`synthetic 640x480 BGR3`, `/dev/video0`, ...).
    fn describe(&self) -> String;
    /// The format of every frame this source produces.
    fn format(&self) -> SourceFormat;
    /// What paces the frames.
    fn pacing(&self) -> Pacing;
    /// Waits for (or produces) the next frame and returns its metadata.
    fn grab(&mut self) -> Result<Grab, SourceError>;
    /// Writes the grabbed frame into `dst` (exactly `payload_len` bytes), every byte once;
    /// `frame_id` is the id capture gives it (stamped by sources that stamp).
    fn write_into(&mut self, frame_id: u64, dst: &mut [MaybeUninit<u8>]) -> Result<(), SourceError>;
    /// Tries to get an unavailable source back; `Unavailable` errors are retried by the caller,
    /// `Fatal` ones stop capture.
    fn reconnect(&mut self) -> Result<(), SourceError> {
        Ok(())
    }
    /// What the source really delivers (format, frame rate, drops so far); capture status
    /// reports this.
    fn effective(&self) -> Effective {
        Effective {
            published: self.format(),
            device_format: None,
            fps: match self.pacing() {
                Pacing::Period(period) if !period.is_zero() => 1.0 / period.as_secs_f64(),
                _ => 0.0,
            },
            source_drops: 0,
            reconnects: 0,
            adjustments: Vec::new(),
        }
    }
}

/// Whether a source with flag `true` marks its frames with the synthetic integrity stamp.
pub fn stamps_frames(camera: &CameraConfig) -> bool {
    matches!(camera.source, SourceConfig::Synthetic(_))
}

/// Opens the source a camera's config asks for.
pub fn open_source(deployment: &Deployment, camera: &CameraConfig) -> anyhow::Result<Box<dyn FrameSource>> {
    let source: Box<dyn FrameSource> = match &camera.source {
        SourceConfig::Synthetic(_) => Box::new(SyntheticSource::new(camera)?),
        SourceConfig::File(file) => Box::new(
            FileSource::open(camera, file, &deployment.resolve_path(&file.path))
                .with_context(|| format!("opening the file source of camera `{}`", camera.name))?,
        ),
        SourceConfig::V4l2(v4l2) => Box::new(V4l2Source::open(camera, v4l2)?),
    };
    Ok(source)
}
