//! The scene source: a textured background with moving shapes on known paths, stamped with
//! the frame id like the test pattern, so a detector has something to find and a test knows
//! where it is (see `framebus_common::scene`).

use core::mem::MaybeUninit;

use anyhow::anyhow;
use framebus_common::config::SceneSourceConfig;
use framebus_common::scene::{Scene, SceneRenderer};
use framebus_common::CameraConfig;

use super::synthetic::{generated, timer_pacing};
use super::{FrameSource, Grab, Pacing, SourceError, SourceFormat};

/// A [`Scene`] rendered into each loaned sample.
pub struct SceneSource {
    renderer: SceneRenderer,
    format: SourceFormat,
    fps: f64,
    sequence: u64,
}

impl SceneSource {
    /// Builds the camera's scene (its objects or the default ones) in the camera's format.
    pub fn new(camera: &CameraConfig, config: &SceneSourceConfig) -> anyhow::Result<SceneSource> {
        let format = camera.format();
        let scene = Scene::from_config(camera, config);
        let renderer = SceneRenderer::new(scene, format).ok_or_else(|| {
            anyhow!(
                "camera `{}`: the scene source cannot produce {format} at {}x{}",
                camera.name,
                camera.width,
                camera.height
            )
        })?;
        Ok(SceneSource {
            renderer,
            format: SourceFormat { format, width: camera.width, height: camera.height },
            fps: camera.fps,
            sequence: 0,
        })
    }
}

impl FrameSource for SceneSource {
    fn describe(&self) -> String {
        format!(
            "scene of {} objects {}x{} {}",
            self.renderer.scene().objects().len(),
            self.format.width,
            self.format.height,
            self.format.format
        )
    }

    fn format(&self) -> SourceFormat {
        self.format
    }

    fn pacing(&self) -> Pacing {
        timer_pacing(self.fps)
    }

    fn grab(&mut self) -> Result<Grab, SourceError> {
        self.sequence += 1;
        Ok(generated(self.sequence, self.renderer.frame_bytes()))
    }

    fn write_into(&mut self, frame_id: u64, dst: &mut [MaybeUninit<u8>]) -> Result<(), SourceError> {
        self.renderer.render(frame_id, dst);
        Ok(())
    }
}
