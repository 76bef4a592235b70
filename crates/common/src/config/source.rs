//! `[camera.source]`: where a camera's frames come from.

use std::path::PathBuf;

use serde::Deserialize;

use super::{CameraConfig, Deployment};
use crate::format::PixelFormat;

/// The frame source of a camera, chosen by `kind`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum SourceConfig {
    /// A built-in moving test pattern carrying an integrity stamp; needs no hardware.
    Synthetic(SyntheticSource),
    /// A video file read with OpenCV, looping at its end.
    File(FileSource),
}

/// `kind = "synthetic"`: no settings of its own (size, format and fps are the camera's).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SyntheticSource {}

/// `kind = "file"`: a video file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct FileSource {
    /// The video file; relative paths are relative to the config file.
    pub path: PathBuf,
    /// Which frame rate paces the frames.
    #[serde(default)]
    pub pace: FilePace,
    /// Start again at the first frame after the last one (otherwise capture stops).
    #[serde(default = "default_loop", rename = "loop")]
    pub looping: bool,
}

fn default_loop() -> bool {
    true
}

/// What paces a file source.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FilePace {
    /// The frame rate stored in the file (the camera's `fps` when the file has none).
    #[default]
    File,
    /// The camera's `fps`.
    Config,
}

impl SourceConfig {
    /// Short name of the source kind, as written in the config.
    pub fn kind(&self) -> &'static str {
        match self {
            SourceConfig::Synthetic(_) => "synthetic",
            SourceConfig::File(_) => "file",
        }
    }
}

/// Source-specific checks; returns the failing field (below `camera[i].`) and the message.
pub(super) fn validate(
    deployment: &Deployment,
    _index: usize,
    cam: &CameraConfig,
    format: PixelFormat,
) -> Result<(), (String, String)> {
    match &cam.source {
        SourceConfig::Synthetic(_) => {
            if format == PixelFormat::Mjpg {
                return Err((
                    "pixel-format".into(),
                    "the synthetic source produces raw frames: allowed BGR3, RGB3, GREY, YUYV, NV12".into(),
                ));
            }
        }
        SourceConfig::File(file) => {
            if !matches!(format, PixelFormat::Bgr3 | PixelFormat::Rgb3 | PixelFormat::Grey) {
                return Err((
                    "pixel-format".into(),
                    format!("the file source produces {format} only by conversion it does not have: allowed BGR3, RGB3, GREY"),
                ));
            }
            let path = deployment.resolve_path(&file.path);
            if !path.is_file() {
                return Err(("source.path".into(), format!("video file `{}` does not exist", path.display())));
            }
        }
    }
    Ok(())
}
