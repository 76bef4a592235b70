//! The media-pipeline hook: board-specific set-up that must run before the video device is
//! opened (media-controller links and pad formats for CSI sensors) and undone at teardown. A new
//! board is one implementation of [`MediaPipeline`], chosen by the camera's config.

use framebus_common::CameraConfig;

/// Board-specific media-pipeline set-up around a camera's capture session.
pub trait MediaPipeline {
    /// Short name for logs.
    fn name(&self) -> &str;
    /// Runs before the source is opened (and again before each reconnect).
    fn setup(&mut self, camera: &CameraConfig) -> anyhow::Result<()>;
    /// Runs when capture stops; errors are logged, not fatal.
    fn teardown(&mut self, camera: &CameraConfig) -> anyhow::Result<()> {
        let _ = camera;
        Ok(())
    }
}

/// The default: nothing to set up (USB cameras, synthetic and file sources).
#[derive(Debug, Default)]
pub struct NoPipeline;

impl MediaPipeline for NoPipeline {
    fn name(&self) -> &str {
        "none"
    }

    fn setup(&mut self, _camera: &CameraConfig) -> anyhow::Result<()> {
        Ok(())
    }
}

/// The pipeline a camera's config selects.
pub fn pipeline_for(_camera: &CameraConfig) -> Box<dyn MediaPipeline> {
    Box::new(NoPipeline)
}
