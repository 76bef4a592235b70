//! `[[remote-camera]]`: a camera of another site, imported over Zenoh by this deployment's
//! `bridge` and published into local shared memory under `name` with the same services as a
//! local camera, so every reader reads it unchanged (docs/multi-host.md).
//!
//! It is loaded as a [`CameraConfig`] whose source is [`SourceConfig::Remote`]: the frame size,
//! format, slots and readers are the keys of a camera, and what `ctl up` runs in place of
//! capture is `bridge --camera <name>`.

use serde::Deserialize;

use super::{
    default_fps, default_max_readers, default_pixel_format, default_slots, AlgoConfig, CameraConfig, Invalid,
    PreviewConfig, RecorderConfig, SourceConfig, StreamerConfig, UserReaderConfig,
};
use crate::PixelFormat;

/// `[[remote-camera]]`: which camera of which site, and how it is published here.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RemoteCameraConfig {
    /// Name of the camera here (its local service names).
    pub name: String,
    /// The origin's `[zenoh] site`.
    pub site: String,
    /// The origin's deployment name.
    pub deployment: String,
    /// The camera's name at the origin.
    pub camera: String,
    /// What crosses the link: `raw` frames (the origin's `[camera.export.frames]`) or `h264`
    /// (the origin's streamer, decoded once here into BGR3).
    #[serde(default)]
    pub video: RemoteVideo,
    /// Frame width published here (the origin's exported width).
    pub width: u32,
    /// Frame height published here.
    pub height: u32,
    /// Expected frames per second (for readers' statistics and the recorder).
    #[serde(default = "default_fps")]
    pub fps: f64,
    /// Pixel format published here (the origin's; `h264` decodes into BGR3).
    #[serde(default = "default_pixel_format")]
    pub pixel_format: PixelFormat,
    /// Frame slots in shared memory (as a local camera's `slots`).
    #[serde(default = "default_slots")]
    pub slots: u32,
    /// Readers that may attach at once.
    #[serde(default = "default_max_readers")]
    pub max_readers: u32,
    /// `[remote-camera.algo]`.
    pub algo: Option<AlgoConfig>,
    /// `[remote-camera.preview]`.
    pub preview: Option<PreviewConfig>,
    /// `[remote-camera.recorder]`.
    pub recorder: Option<RecorderConfig>,
    /// `[remote-camera.streamer]`.
    pub streamer: Option<StreamerConfig>,
    /// `[[remote-camera.reader]]`.
    #[serde(default)]
    pub reader: Vec<UserReaderConfig>,
}

/// `[[remote-camera]] video`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RemoteVideo {
    /// Raw frames as the origin exports them.
    #[default]
    Raw,
    /// The origin's H.264, decoded here.
    H264,
}

impl RemoteVideo {
    /// The key's value.
    pub fn name(self) -> &'static str {
        match self {
            RemoteVideo::Raw => "raw",
            RemoteVideo::H264 => "h264",
        }
    }
}

/// Where a remote camera's frames come from (the source of its [`CameraConfig`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteSourceConfig {
    /// The origin's site.
    pub site: String,
    /// The origin's deployment.
    pub deployment: String,
    /// The camera's name at the origin.
    pub camera: String,
    /// Raw frames or H.264.
    pub video: RemoteVideo,
}

impl RemoteCameraConfig {
    /// The camera this deployment publishes.
    pub fn to_camera(&self) -> CameraConfig {
        CameraConfig {
            name: self.name.clone(),
            source: SourceConfig::Remote(RemoteSourceConfig {
                site: self.site.clone(),
                deployment: self.deployment.clone(),
                camera: self.camera.clone(),
                video: self.video,
            }),
            width: self.width,
            height: self.height,
            fps: self.fps,
            pixel_format: self.pixel_format,
            slots: self.slots,
            max_readers: self.max_readers,
            algo: self.algo.clone(),
            preview: self.preview.clone(),
            recorder: self.recorder.clone(),
            streamer: self.streamer.clone(),
            reader: self.reader.clone(),
            export: None,
        }
    }
}

/// Source checks of a remote camera; keys below `remote-camera[i].`.
pub(super) fn validate(remote: &RemoteSourceConfig, format: PixelFormat) -> Result<(), Invalid> {
    for (key, value) in [("site", &remote.site), ("deployment", &remote.deployment), ("camera", &remote.camera)] {
        if !super::is_valid_name(value) {
            return Err((key.into(), format!("invalid name `{value}`: use {}", super::NAME_RULE)));
        }
    }
    if remote.video == RemoteVideo::H264 && format != PixelFormat::Bgr3 {
        return Err((
            "pixel-format".into(),
            format!("video = \"h264\" is decoded into BGR3: set pixel-format = \"BGR3\" (not {format})"),
        ));
    }
    if format == PixelFormat::Mjpg {
        return Err(("pixel-format".into(), "remote cameras carry raw frames: MJPG is not allowed".into()));
    }
    Ok(())
}
