//! The built-in test-pattern source: no hardware needed, every frame carries an integrity stamp.

use core::mem::MaybeUninit;
use std::time::Duration;

use anyhow::anyhow;
use framebus_common::clock;
use framebus_common::pattern::SyntheticPattern;
use framebus_common::CameraConfig;

use super::{FrameSource, Grab, Pacing, SourceError, SourceFormat};

/// Moving colour bars stamped with the frame id (see `framebus_common::pattern`).
pub struct SyntheticSource {
    pattern: SyntheticPattern,
    format: SourceFormat,
    fps: f64,
    sequence: u64,
}

impl SyntheticSource {
    /// Builds the pattern for the camera's size and format.
    pub fn new(camera: &CameraConfig) -> anyhow::Result<SyntheticSource> {
        let format = camera.format();
        let pattern = SyntheticPattern::new(format, camera.width, camera.height).ok_or_else(|| {
            anyhow!(
                "camera `{}`: the synthetic source cannot produce {format} at {}x{}",
                camera.name,
                camera.width,
                camera.height
            )
        })?;
        Ok(SyntheticSource {
            pattern,
            format: SourceFormat { format, width: camera.width, height: camera.height },
            fps: camera.fps,
            sequence: 0,
        })
    }
}

impl FrameSource for SyntheticSource {
    fn describe(&self) -> String {
        format!("synthetic {}x{} {}", self.format.width, self.format.height, self.format.format)
    }

    fn format(&self) -> SourceFormat {
        self.format
    }

    fn pacing(&self) -> Pacing {
        timer_pacing(self.fps)
    }

    fn grab(&mut self) -> Result<Grab, SourceError> {
        self.sequence += 1;
        Ok(generated(self.sequence, self.pattern.frame_bytes()))
    }

    fn write_into(&mut self, frame_id: u64, dst: &mut [MaybeUninit<u8>]) -> Result<(), SourceError> {
        self.pattern.render(frame_id, dst);
        Ok(())
    }
}

/// The pacing of a generated source: the camera's fps, or unpaced at fps 0.
pub(super) fn timer_pacing(fps: f64) -> Pacing {
    if fps > 0.0 {
        Pacing::Period(Duration::from_secs_f64(1.0 / fps))
    } else {
        Pacing::Unpaced
    }
}

/// A generated frame's metadata, captured now: the source's own counter, no drops.
pub(super) fn generated(sequence: u64, payload_len: usize) -> Grab {
    Grab {
        payload_len,
        sequence,
        capture_mono_ns: clock::monotonic_ns(),
        capture_realtime_ns: clock::realtime_ns(),
        source_drops: 0,
    }
}
