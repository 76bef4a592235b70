//! `[camera.recorder]`: the recorder process (video segments, images, sidecar index, disk guard,
//! event triggers with pre- and post-roll, retention).

use std::path::PathBuf;

use serde::Deserialize;

use super::defaults;
use super::reader_table::reader_table;
use crate::names::Role;
use crate::results::{on_score_scale, Outcome, LABEL_TEXT, SCORE_MAX, SCORE_MIN};

reader_table! {
    /// `[camera.recorder]`: what the recorder writes, where, and when it stops for disk space.
    pub struct RecorderConfig {
        /// Initial state: save frames (`true`) or only count them (`false`).
        #[serde(default)]
        pub enabled: bool,
        ..queue_depth("default_queue_depth"),
        ..policy,
        /// Folder of the recordings; relative paths are relative to the config file.
        #[serde(default = "default_directory")]
        pub directory: PathBuf,
        /// Video container and codec, or `off`, as resolved when the config is loaded (see
        /// [`RecorderConfig::resolve_video`]).
        #[serde(skip)]
        pub video: VideoFormat,
        /// `video` as written in the file (unset: see [`RecorderConfig::resolve_video`]).
        #[serde(default, rename = "video")]
        pub video_key: Option<VideoFormat>,
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
        /// Seconds of frames kept (in memory: JPEG-encoded, or with `video = "stream"` the
        /// streamer's access units in whole GOPs) before a trigger or `ctl record on`, so a clip
        /// starts before what triggered it. Default: 5 with triggers, 0 without (continuous
        /// recording as before); see [`RecorderConfig::effective_pre_roll_secs`].
        #[serde(default)]
        pub pre_roll_secs: Option<f64>,
        /// Seconds a clip goes on after the last trigger; a trigger within this time of the last
        /// one extends the clip.
        #[serde(default = "default_post_roll_secs")]
        pub post_roll_secs: f64,
        /// Longest clip, seconds of capture time: a longer one ends and the next clip continues it
        /// at the next frame.
        #[serde(default = "default_max_clip_secs")]
        pub max_clip_secs: f64,
        /// How late (seconds after its frame was captured) a result may arrive and still get the
        /// whole pre-roll: the recorder keeps this much more than `pre-roll-secs`.
        #[serde(default = "default_result_delay_secs")]
        pub result_delay_secs: f64,
        /// Memory limit of the pre-roll in MiB: a config whose estimate exceeds it is refused, and
        /// at run time the oldest held frames are dropped above it.
        #[serde(default = "default_pre_roll_max_mb")]
        pub pre_roll_max_mb: u64,
        /// Delete this camera's finished segments older than this many days (since they were
        /// completed); none = no age limit.
        #[serde(default)]
        pub max_age_days: Option<f64>,
        /// Keep this camera's segments under this many MiB in total (the one being written
        /// included), deleting the oldest finished ones first; none = no size limit.
        #[serde(default)]
        pub max_total_mb: Option<u64>,
        /// `[[camera.recorder.trigger]]`: results that start (or extend) a clip. None = continuous
        /// recording while saving is on.
        #[serde(default)]
        pub trigger: Vec<TriggerConfig>,
        /// Permission bits of the files the recorder creates (videos, sidecars, images), an octal
        /// string such as `"0640"` or a TOML integer such as `0o640`; folders it creates get the
        /// same bits plus search (x) where read is set. Default `"0600"`: only the recording user.
        #[serde(default = "default_file_mode")]
        pub file_mode: FileMode,
    }
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

/// `[[camera.recorder.trigger]]`: which results start a clip. Every condition given must hold
/// (at least one is required); the box conditions hold when one box meets both.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct TriggerConfig {
    /// Only results of this producer (its role name: `algo`, a user reader's name).
    #[serde(default)]
    pub producer: Option<String>,
    /// The result's overall score is at least this, 0..1 (a result without a score never
    /// matches).
    #[serde(default)]
    pub min_score: Option<f64>,
    /// A box carries this label (exact, case-sensitive).
    #[serde(default)]
    pub label: Option<String>,
    /// A box (with `label` when given) scores at least this, 0..1.
    #[serde(default)]
    pub min_box_score: Option<f64>,
}

impl TriggerConfig {
    /// Whether `result` meets every condition of this trigger.
    pub fn matches(&self, result: &Outcome) -> bool {
        if self.producer.as_deref().is_some_and(|p| p != result.producer) {
            return false;
        }
        if let Some(min) = self.min_score {
            if !result.score.is_some_and(|s| s >= min) {
                return false;
            }
        }
        if self.label.is_none() && self.min_box_score.is_none() {
            return true;
        }
        result.boxes.iter().any(|b| {
            self.label.as_deref().is_none_or(|l| l == b.label)
                && self.min_box_score.is_none_or(|min| f64::from(b.score) >= min)
        })
    }

    /// The conditions as one line (`producer = "algo", min-score = 0.05`), for messages.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(p) = &self.producer {
            parts.push(format!("producer = \"{p}\""));
        }
        if let Some(s) = self.min_score {
            parts.push(format!("min-score = {s}"));
        }
        if let Some(l) = &self.label {
            parts.push(format!("label = \"{l}\""));
        }
        if let Some(s) = self.min_box_score {
            parts.push(format!("min-box-score = {s}"));
        }
        parts.join(", ")
    }
}

/// What a pre-roll costs in memory, estimated from the config (see
/// [`RecorderConfig::pre_roll_estimate`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PreRollEstimate {
    /// Seconds held: `pre-roll-secs` + `result-delay-secs` (0 without a pre-roll).
    pub secs: f64,
    /// Frames held.
    pub frames: u64,
    /// Estimated bytes of one JPEG frame.
    pub frame_bytes: u64,
    /// Estimated bytes in all.
    pub bytes: u64,
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
            video_key: None,
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
            pre_roll_secs: None,
            post_roll_secs: default_post_roll_secs(),
            max_clip_secs: default_max_clip_secs(),
            result_delay_secs: default_result_delay_secs(),
            pre_roll_max_mb: default_pre_roll_max_mb(),
            max_age_days: None,
            max_total_mb: None,
            trigger: Vec::new(),
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
    /// The H.264 the camera's streamer already encodes, written as it is into MP4 (`.mp4`):
    /// no second encoder, and a pre-roll of access units held in whole GOPs (a clip starts at
    /// a key frame). Needs `[camera.streamer]`; segments start at key frames; no images.
    Stream,
    /// No video.
    Off,
}

impl VideoFormat {
    /// The fourcc given to OpenCV's video writer and the file extension, `None` when off or
    /// when the recorder does not encode (`stream`).
    pub fn codec(self) -> Option<([char; 4], &'static str)> {
        match self {
            VideoFormat::MjpgAvi => Some((['M', 'J', 'P', 'G'], "avi")),
            VideoFormat::Mp4vMp4 => Some((['m', 'p', '4', 'v'], "mp4")),
            VideoFormat::H264Mp4 => Some((['a', 'v', 'c', '1'], "mp4")),
            VideoFormat::Stream | VideoFormat::Off => None,
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
    /// Resolves `video` for a camera with (`has_streamer`) or without a streamer: as written,
    /// else `stream` for event recording (triggers) on a camera with a streamer (its H.264 is
    /// there already: the pre-roll costs a copy instead of a JPEG encode per frame), else
    /// `mjpg-avi`.
    pub fn resolve_video(&mut self, has_streamer: bool) {
        self.video = self.video_key.unwrap_or(if has_streamer && !self.trigger.is_empty() {
            VideoFormat::Stream
        } else {
            VideoFormat::MjpgAvi
        });
    }

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

    /// Seconds of pre-roll: `pre-roll-secs`, else 5 with triggers and 0 without (so a
    /// recorder without triggers records continuously as it always did, at no extra cost).
    pub fn effective_pre_roll_secs(&self) -> f64 {
        self.pre_roll_secs.unwrap_or(if self.trigger.is_empty() { 0.0 } else { defaults::RECORDER_PRE_ROLL_SECS })
    }

    /// The memory limit of the pre-roll in bytes.
    pub fn pre_roll_max_bytes(&self) -> u64 {
        self.pre_roll_max_mb.saturating_mul(1024 * 1024)
    }

    /// What the pre-roll holds for a `width`×`height` camera at `camera_fps` (0 = as fast as
    /// possible: counted as the video's rate): `pre-roll-secs` + `result-delay-secs` of JPEG
    /// frames at `jpeg-quality`. The size per frame is a deliberately high estimate for camera
    /// pictures (measured sizes are logged at run time; a noisy night picture can exceed it,
    /// which the run-time limit catches).
    pub fn pre_roll_estimate(&self, width: u32, height: u32, camera_fps: f64) -> PreRollEstimate {
        let pre = self.effective_pre_roll_secs();
        if pre <= 0.0 {
            return PreRollEstimate { secs: 0.0, frames: 0, frame_bytes: 0, bytes: 0 };
        }
        let secs = pre + self.result_delay_secs;
        let frames = (secs * self.effective_video_fps(camera_fps)).ceil() as u64;
        let per_pixel = jpeg_bytes_per_pixel(self.jpeg_quality);
        let frame_bytes = (f64::from(width) * f64::from(height) * per_pixel).ceil() as u64;
        PreRollEstimate { secs, frames, frame_bytes, bytes: frames.saturating_mul(frame_bytes) }
    }
}

/// Bytes per pixel of a JPEG of a camera picture at `quality`, on the high side (typical camera
/// pictures measure 0.1 to 0.35 at quality 90).
fn jpeg_bytes_per_pixel(quality: u32) -> f64 {
    match quality {
        0..=50 => 0.2,
        51..=75 => 0.3,
        76..=90 => 0.5,
        91..=95 => 0.75,
        _ => 1.5,
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
fn default_post_roll_secs() -> f64 {
    defaults::RECORDER_POST_ROLL_SECS
}
fn default_max_clip_secs() -> f64 {
    defaults::RECORDER_MAX_CLIP_SECS
}
fn default_result_delay_secs() -> f64 {
    defaults::RECORDER_RESULT_DELAY_SECS
}
fn default_pre_roll_max_mb() -> u64 {
    defaults::RECORDER_PRE_ROLL_MAX_MB
}

/// Checks the values for a `width`×`height` camera at `fps`; returns the failing field (below
/// `camera[i].recorder.`) and the message.
pub(super) fn validate(cfg: &RecorderConfig, width: u32, height: u32, fps: f64) -> Result<(), (String, String)> {
    validate_output(cfg)?;
    validate_events(cfg)?;
    validate_triggers(cfg)?;
    validate_pre_roll(cfg, width, height, fps)
}

/// What is written: video, images, folder, files, statistics.
fn validate_output(cfg: &RecorderConfig) -> Result<(), (String, String)> {
    let fail = |field: &str, msg: String| Err((field.to_string(), msg));
    if cfg.video == VideoFormat::Off && cfg.images == ImageFormat::Off {
        return fail(
            "video",
            "nothing to record: video = \"off\" and images = \"off\"; set video = \"mjpg-avi\", \"mp4v-mp4\", \"h264-mp4\" or \"stream\", or images = \"jpeg\" or \"png\"".into(),
        );
    }
    if cfg.video == VideoFormat::Stream {
        let why = "with video = \"stream\" the recorder writes the streamer's H.264 and decodes no frame";
        if cfg.images != ImageFormat::Off {
            return fail("images", format!("{why}: images need decoded frames; set images = \"off\" or video = \"mjpg-avi\", \"mp4v-mp4\" or \"h264-mp4\""));
        }
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

/// Event recording: pre-roll, post-roll, clip length, memory, retention.
fn validate_events(cfg: &RecorderConfig) -> Result<(), (String, String)> {
    let fail = |field: &str, msg: String| Err((field.to_string(), msg));
    let seconds = |key: &str, value: f64, range: std::ops::RangeInclusive<f64>, what: &str| {
        if value.is_finite() && range.contains(&value) {
            Ok(())
        } else {
            fail(key, format!("invalid value {value}: allowed {} to {} seconds{what}", range.start(), range.end()))
        }
    };
    if let Some(pre) = cfg.pre_roll_secs {
        seconds("pre-roll-secs", pre, 0.0..=300.0, " (0 = no pre-roll)")?;
    }
    seconds("post-roll-secs", cfg.post_roll_secs, 0.0..=3600.0, "")?;
    seconds("max-clip-secs", cfg.max_clip_secs, 1.0..=86400.0, "")?;
    seconds("result-delay-secs", cfg.result_delay_secs, 0.0..=60.0, "")?;
    if cfg.pre_roll_max_mb == 0 {
        return fail("pre-roll-max-mb", "invalid value 0: allowed 1 or more MiB".into());
    }
    if let Some(days) = cfg.max_age_days {
        if !(days.is_finite() && days > 0.0) {
            return fail(
                "max-age-days",
                format!("invalid value {days}: allowed more than 0 days (leave it out for no age limit)"),
            );
        }
    }
    if cfg.max_total_mb == Some(0) {
        return fail("max-total-mb", "invalid value 0: allowed 1 or more MiB (leave it out for no size limit)".into());
    }
    Ok(())
}

/// `[[camera.recorder.trigger]]`: each with a condition, valid values.
fn validate_triggers(cfg: &RecorderConfig) -> Result<(), (String, String)> {
    let fail = |field: &str, msg: String| Err((field.to_string(), msg));
    for (i, t) in cfg.trigger.iter().enumerate() {
        let key = |field: &str| format!("trigger[{i}].{field}");
        if t.producer.is_none() && t.min_score.is_none() && t.label.is_none() && t.min_box_score.is_none() {
            return fail(
                &format!("trigger[{i}]"),
                "a trigger needs at least one condition: `producer`, `min-score`, `label` or `min-box-score`".into(),
            );
        }
        if let Some(p) = &t.producer {
            if let Err(e) = Role::new(p) {
                return fail(&key("producer"), format!("{e} (the producer's role name, e.g. \"algo\")"));
            }
        }
        for (field, value) in [("min-score", t.min_score), ("min-box-score", t.min_box_score)] {
            if let Some(v) = value.filter(|v| !on_score_scale(*v)) {
                return fail(
                    &key(field),
                    format!(
                        "invalid value {v}: allowed a number from {SCORE_MIN} to {SCORE_MAX} (every score is on that scale, docs/results.md)"
                    ),
                );
            }
        }
        if let Some(label) = &t.label {
            if label.is_empty() || label.len() > LABEL_TEXT || !label.bytes().all(|b| (0x20..0x7f).contains(&b)) {
                return fail(
                    &key("label"),
                    format!("invalid label `{label}`: allowed 1 to {LABEL_TEXT} printable ASCII characters (what results carry)"),
                );
            }
        }
    }
    Ok(())
}

/// The JPEG pre-roll's estimate against `pre-roll-max-mb`.
fn validate_pre_roll(cfg: &RecorderConfig, width: u32, height: u32, fps: f64) -> Result<(), (String, String)> {
    let fail = |field: &str, msg: String| Err((field.to_string(), msg));
    let estimate = cfg.pre_roll_estimate(width, height, fps);
    // With `stream` the pre-roll holds access units, not JPEGs: bounded at run time.
    if cfg.video != VideoFormat::Stream && estimate.bytes > cfg.pre_roll_max_bytes() {
        let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
        return fail(
            "pre-roll-secs",
            format!(
                "a pre-roll of {} s (+ result-delay-secs = {} s) at {width}x{height}, {} fps holds {} JPEG frames of about {:.2} MiB (jpeg-quality = {}): about {:.0} MiB, more than pre-roll-max-mb = {}; lower pre-roll-secs or jpeg-quality, or raise pre-roll-max-mb",
                cfg.effective_pre_roll_secs(),
                cfg.result_delay_secs,
                cfg.effective_video_fps(fps),
                estimate.frames,
                mib(estimate.frame_bytes),
                cfg.jpeg_quality,
                mib(estimate.bytes),
                cfg.pre_roll_max_mb
            ),
        );
    }
    Ok(())
}
