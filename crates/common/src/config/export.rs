//! `[camera.export]`: what of a camera the deployment's bridge publishes to other hosts over
//! Zenoh (docs/multi-host.md). Results and events always; the streamer's H.264 when the camera
//! has a streamer (`encoded`); raw frames only with `[camera.export.frames]`, at most `max-fps`
//! and optionally downscaled; control by other hosts only with `allow-remote-control`.

use serde::Deserialize;

use super::{CameraConfig, Invalid};

/// `[camera.export]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ExportConfig {
    /// Export the streamer's H.264 access units; default: when the camera has a streamer.
    #[serde(default)]
    pub encoded: Option<bool>,
    /// `[camera.export.frames]`: export raw frames.
    #[serde(default)]
    pub frames: Option<ExportFrames>,
    /// Answer `ctl` requests from other hosts (`ctl --remote`); off by default.
    #[serde(default)]
    pub allow_remote_control: bool,
    /// Publish into this camera's results service the results other hosts send back about its
    /// frames (a remote detector's boxes trigger the local recorder).
    #[serde(default)]
    pub results_back: bool,
}

/// `[camera.export.frames]`: raw frames for remote readers.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ExportFrames {
    /// Most frames per second sent (the bridge reads with the `max-fps` policy).
    pub max_fps: f64,
    /// Width of the frames sent (downscaled, aspect kept by the caller); default the camera's.
    #[serde(default)]
    pub width: Option<u32>,
    /// Height of the frames sent; default the camera's.
    #[serde(default)]
    pub height: Option<u32>,
}

impl ExportConfig {
    /// Whether the bridge exports the camera's encoded video.
    pub fn exports_encoded(&self, camera: &CameraConfig) -> bool {
        self.encoded.unwrap_or(camera.streamer.is_some()) && camera.streamer.is_some()
    }
}

impl ExportFrames {
    /// The size frames are sent at.
    pub fn size(&self, camera: &CameraConfig) -> (u32, u32) {
        (self.width.unwrap_or(camera.width), self.height.unwrap_or(camera.height))
    }
}

/// Checks `[camera.export]`; keys are below `export.`.
pub(super) fn validate(export: &ExportConfig, camera: &CameraConfig) -> Result<(), Invalid> {
    if export.encoded == Some(true) && camera.streamer.is_none() {
        return Err((
            "encoded".into(),
            "encoded = true exports the H.264 of the camera's streamer, but this camera has no [camera.streamer]: add one, or remove `encoded`".into(),
        ));
    }
    if let Some(frames) = &export.frames {
        if !frames.max_fps.is_finite() || !(0.1..=1000.0).contains(&frames.max_fps) {
            return Err(("frames.max-fps".into(), format!("invalid value {}: allowed 0.1 to 1000", frames.max_fps)));
        }
        for (key, value, full) in [("width", frames.width, camera.width), ("height", frames.height, camera.height)] {
            if let Some(value) = value {
                if !(16..=full).contains(&value) {
                    return Err((
                        format!("frames.{key}"),
                        format!("invalid value {value}: allowed 16 to the camera's {key} ({full}); frames are only downscaled"),
                    ));
                }
            }
        }
        if (frames.width.is_some() || frames.height.is_some()) && camera.pixel_format != crate::PixelFormat::Bgr3 {
            return Err((
                "frames.width".into(),
                format!(
                    "downscaled export needs pixel-format = \"BGR3\" (the camera publishes {})",
                    camera.pixel_format
                ),
            ));
        }
    }
    Ok(())
}
