//! `[camera.recorder]`: the recorder process (video segments, images, sidecar index, disk guard).

use std::path::PathBuf;

use serde::Deserialize;

use super::defaults;

/// `[camera.recorder]`: what the recorder writes, where, and when it stops for disk space.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RecorderConfig {
    /// Initial state: save frames (`true`) or only count them (`false`).
    #[serde(default)]
    pub enabled: bool,
    /// Frames queued for this reader while it encodes; deeper queues ride out slow writes.
    #[serde(default = "default_queue_depth")]
    pub queue_depth: u32,
    /// Reader policy: `every` (default: every frame while the recorder keeps up), `newest` or
    /// `max-fps` (see [`crate::policy`]).
    #[serde(default)]
    pub policy: Option<String>,
    /// Frames per second taken with `policy = "max-fps"`.
    #[serde(default)]
    pub max_fps: Option<f64>,
    /// Folder of the recordings; relative paths are relative to the config file.
    #[serde(default = "default_directory")]
    pub directory: PathBuf,
    /// Video container and codec, or `off`.
    #[serde(default)]
    pub video: VideoFormat,
    /// Frame rate written into the video container; 0 = the camera's fps (30 when that is 0).
    #[serde(default)]
    pub video_fps: f64,
    /// Still images per saved frame: `off`, `jpeg` or `png`.
    #[serde(default)]
    pub images: ImageFormat,
    /// Save an image of every Nth received frame.
    #[serde(default = "default_image_every")]
    pub image_every: u32,
    /// At most this many images per second; 0 = no limit.
    #[serde(default)]
    pub image_max_fps: f64,
    /// JPEG quality of saved images, 1 to 100.
    #[serde(default = "default_jpeg_quality")]
    pub jpeg_quality: u32,
    /// Length of one segment (video file + sidecar index) in seconds of capture time.
    #[serde(default = "default_segment_secs")]
    pub segment_secs: f64,
    /// Free-space floor in MiB: below it the recorder stops writing until space is back. The
    /// recorder keeps its own reserve (room to close the current segment) on top of it, so 0 is
    /// safe: it means "no room kept for anything else".
    #[serde(default = "default_min_free_mb")]
    pub min_free_mb: u64,
    /// Free-inode floor (statvfs `f_favail`): below it the recorder stops writing like below
    /// `min-free-mb`. Ignored on filesystems without an inode count (vfat, btrfs).
    #[serde(default = "default_min_free_inodes")]
    pub min_free_inodes: u64,
    /// Below the floor, delete this camera's oldest completed segments before giving up.
    #[serde(default)]
    pub delete_oldest: bool,
    /// Seconds between statistics reports.
    #[serde(default = "default_stats_interval")]
    pub stats_interval_secs: f64,
    /// Permission bits of the files the recorder creates (videos, sidecars, images), an octal
    /// string such as `"0640"` or a TOML integer such as `0o640`; folders it creates get the
    /// same bits plus search (x) where read is set. Default `"0600"`: only the recording user.
    #[serde(default = "default_file_mode")]
    pub file_mode: FileMode,
}

/// A file mode from the config: an octal string (`"0640"`) or an integer (`0o640`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "FileModeText")]
pub struct FileMode(pub u32);

#[derive(Deserialize)]
#[serde(untagged)]
enum FileModeText {
    Number(u32),
    Text(String),
}

impl TryFrom<FileModeText> for FileMode {
    type Error = String;
    fn try_from(value: FileModeText) -> Result<FileMode, String> {
        match value {
            FileModeText::Number(n) => Ok(FileMode(n)),
            FileModeText::Text(text) => u32::from_str_radix(text.trim_start_matches("0o"), 8)
                .map(FileMode)
                .map_err(|_| format!("`{text}` is not an octal file mode: write e.g. \"0600\" or \"0640\"")),
        }
    }
}

impl FileMode {
    /// The bits of folders the recorder creates: the file bits plus search where read is set.
    pub fn dir_mode(self) -> u32 {
        self.0 | ((self.0 & 0o444) >> 2)
    }
}

impl Default for RecorderConfig {
    fn default() -> Self {
        RecorderConfig {
            enabled: false,
            queue_depth: default_queue_depth(),
            policy: None,
            max_fps: None,
            directory: default_directory(),
            video: VideoFormat::default(),
            video_fps: 0.0,
            images: ImageFormat::default(),
            image_every: default_image_every(),
            image_max_fps: 0.0,
            jpeg_quality: default_jpeg_quality(),
            segment_secs: default_segment_secs(),
            min_free_mb: default_min_free_mb(),
            min_free_inodes: default_min_free_inodes(),
            delete_oldest: false,
            stats_interval_secs: default_stats_interval(),
            file_mode: default_file_mode(),
        }
    }
}

/// Video container and codec of the recorder.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VideoFormat {
    /// Motion JPEG in AVI (`.avi`): every frame a JPEG, robust and cheap to seek.
    #[default]
    MjpgAvi,
    /// MPEG-4 part 2 in MP4 (`.mp4`): smaller files.
    Mp4vMp4,
    /// H.264 (libx264 through OpenCV's FFmpeg backend) in MP4 (`.mp4`): the smallest files, the
    /// most CPU per frame; needs an even width and height.
    H264Mp4,
    /// No video.
    Off,
}

impl VideoFormat {
    /// The fourcc given to the video writer and the file extension, `None` when off.
    pub fn codec(self) -> Option<([char; 4], &'static str)> {
        match self {
            VideoFormat::MjpgAvi => Some((['M', 'J', 'P', 'G'], "avi")),
            VideoFormat::Mp4vMp4 => Some((['m', 'p', '4', 'v'], "mp4")),
            VideoFormat::H264Mp4 => Some((['a', 'v', 'c', '1'], "mp4")),
            VideoFormat::Off => None,
        }
    }
}

/// Still-image format of the recorder.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ImageFormat {
    /// No images.
    #[default]
    Off,
    /// JPEG (`.jpg`).
    Jpeg,
    /// PNG (`.png`), lossless.
    Png,
}

impl ImageFormat {
    /// File extension, `None` when off.
    pub fn extension(self) -> Option<&'static str> {
        match self {
            ImageFormat::Off => None,
            ImageFormat::Jpeg => Some("jpg"),
            ImageFormat::Png => Some("png"),
        }
    }
}

impl RecorderConfig {
    /// Frame rate to write into video files for a camera configured at `camera_fps`.
    pub fn effective_video_fps(&self, camera_fps: f64) -> f64 {
        if self.video_fps > 0.0 {
            self.video_fps
        } else if camera_fps > 0.0 {
            camera_fps
        } else {
            defaults::FPS
        }
    }

    /// The free-space floor in bytes.
    pub fn min_free_bytes(&self) -> u64 {
        self.min_free_mb.saturating_mul(1024 * 1024)
    }
}

fn default_queue_depth() -> u32 {
    defaults::RECORDER_QUEUE_DEPTH
}
fn default_directory() -> PathBuf {
    PathBuf::from(defaults::RECORDER_DIRECTORY)
}
fn default_image_every() -> u32 {
    1
}
fn default_jpeg_quality() -> u32 {
    defaults::RECORDER_JPEG_QUALITY
}
fn default_segment_secs() -> f64 {
    defaults::RECORDER_SEGMENT_SECS
}
fn default_min_free_mb() -> u64 {
    defaults::RECORDER_MIN_FREE_MB
}
fn default_file_mode() -> FileMode {
    FileMode(defaults::RECORDER_FILE_MODE)
}
fn default_min_free_inodes() -> u64 {
    defaults::RECORDER_MIN_FREE_INODES
}
fn default_stats_interval() -> f64 {
    defaults::STATS_INTERVAL_SECS
}

/// Checks the values; returns the failing field (below `camera[i].recorder.`) and the message.
pub(super) fn validate(cfg: &RecorderConfig) -> Result<(), (String, String)> {
    let fail = |field: &str, msg: String| Err((field.to_string(), msg));
    if cfg.video == VideoFormat::Off && cfg.images == ImageFormat::Off {
        return fail(
            "video",
            "nothing to record: video = \"off\" and images = \"off\"; set video = \"mjpg-avi\", \"mp4v-mp4\" or \"h264-mp4\", or images = \"jpeg\" or \"png\"".into(),
        );
    }
    if cfg.directory.as_os_str().is_empty() {
        return fail("directory", "empty path: name the folder recordings go to".into());
    }
    if !(cfg.video_fps.is_finite() && (0.0..=1000.0).contains(&cfg.video_fps)) {
        return fail("video-fps", format!("invalid value {}: allowed 0 (the camera's fps) to 1000", cfg.video_fps));
    }
    if cfg.image_every == 0 {
        return fail("image-every", "invalid value 0: allowed 1 (every frame) or more".into());
    }
    if !(cfg.image_max_fps.is_finite() && (0.0..=1000.0).contains(&cfg.image_max_fps)) {
        return fail("image-max-fps", format!("invalid value {}: allowed 0 (no limit) to 1000", cfg.image_max_fps));
    }
    if !(1..=100).contains(&cfg.jpeg_quality) {
        return fail("jpeg-quality", format!("invalid value {}: allowed 1 to 100", cfg.jpeg_quality));
    }
    if !(cfg.segment_secs.is_finite() && (0.1..=86400.0).contains(&cfg.segment_secs)) {
        return fail("segment-secs", format!("invalid value {}: allowed 0.1 to 86400 seconds", cfg.segment_secs));
    }
    let mode = cfg.file_mode.0;
    if mode & !0o666 != 0 || mode & 0o600 != 0o600 {
        return fail(
            "file-mode",
            format!(
                "invalid mode {mode:04o}: allowed read/write bits only, with read and write for the owner: \"0600\" (only the recording user, default), \"0640\" (its group may read), \"0644\" (everyone may read)"
            ),
        );
    }
    if !(cfg.stats_interval_secs > 0.0 && cfg.stats_interval_secs <= 3600.0) {
        return fail(
            "stats-interval-secs",
            format!("invalid value {}: allowed more than 0 up to 3600", cfg.stats_interval_secs),
        );
    }
    Ok(())
}
