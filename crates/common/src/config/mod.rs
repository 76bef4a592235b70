//! Deployment configuration: one TOML file describes a deployment (its name, its cameras and
//! the reader processes of each camera).
//!
//! Loading is two phases: serde parses the file into these types, rejecting unknown keys, then
//! [`Deployment::validate`] checks values and cross-field rules. Every error names the file, the
//! key path (`camera[1].fps`), the bad value and what is allowed. All defaults live in
//! [`defaults`].

mod auth;
mod camera_checks;
mod error;
mod export;
mod files;
mod locate;
mod preview;
mod reader;
mod reader_table;
mod recorder;
mod remote;
mod source;
mod streamer;
mod tls;
mod webhook;
mod zenoh;

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use auth::{parse_users, AuthConfig, ViewerUser, ViewerUsers, REALM};
pub use error::ConfigError;
pub use export::{ExportConfig, ExportFrames};
pub use locate::{
    locate_config, locate_config_with, ConfigOrigin, LocatedConfig, NoConfig, CONFIG_ENV, DEFAULT_CONFIG, LOCAL_CONFIG,
};
pub use preview::PreviewConfig;
pub use reader::{ReaderSpec, UserReaderConfig};
pub use reader_table::ReaderSettings;
pub use recorder::{FileMode, ImageFormat, PreRollEstimate, RecorderConfig, TriggerConfig, VideoFormat};
pub use remote::{RemoteCameraConfig, RemoteSourceConfig, RemoteVideo};
pub use source::{
    control_assignments_text, normalize_control_name, parse_control_assignments, split_control_text, v4l2_conversion,
    v4l2_targets, ControlSettings, ControlValue, Conversion, FilePace, FileSourceConfig, MediaCtlConfig,
    MediaPipelineConfig, SceneObjectConfig, ScenePath, SceneShape, SceneSourceConfig, SourceConfig,
    SyntheticSourceConfig, V4l2Memory, V4l2SourceConfig, MAX_SCENE_OBJECTS,
};
pub use streamer::{EncoderChoice, MediaServerConfig, StreamerConfig};
pub use tls::{TlsConfig, TlsFiles};
pub use webhook::{parse_webhook_url, WebhookConfig, WebhookEvent, WebhookFiles, WebhookUrl};
pub use zenoh::{ZenohConfig, ZenohFiles, ZenohMode, ZenohTls};

use crate::format::PixelFormat;
use crate::names::{ProcessRole, Role};
use camera_checks::{memory_budget_message, validate_frame, validate_readers};
use reader_table::reader_table;

/// Every default value of the configuration, in one place.
pub mod defaults {
    /// Deployment name when `[deployment]` is omitted.
    pub const DEPLOYMENT_NAME: &str = "default";
    /// Frame rate of a camera.
    pub const FPS: f64 = 30.0;
    /// Pixel format of a camera.
    pub const PIXEL_FORMAT: crate::format::PixelFormat = crate::format::PixelFormat::Bgr3;
    /// Frame slots in shared memory per camera: 5 readers with queues of up to 4 frames.
    pub const SLOTS: u32 = 26;
    /// Readers that may attach to one camera at once.
    pub const MAX_READERS: u32 = 5;
    /// Queue depth of the algo reader: newest frame only.
    pub const ALGO_QUEUE_DEPTH: u32 = 1;
    /// Seconds between periodic statistics log lines.
    pub const STATS_INTERVAL_SECS: f64 = 1.0;
    /// Start of the per-user folder holding the command state of each deployment
    /// (`/tmp/framebus-<uid>/<deployment>`, see [`state_root`]).
    pub const STATE_ROOT_PREFIX: &str = "/tmp/framebus-";

    /// The per-user folder of command state: `/tmp/framebus-<effective uid>`, created with mode
    /// 0700 and refused when another user owns it. Not `$XDG_RUNTIME_DIR`: every process of a
    /// deployment must find the same folder whether started from a login shell, a systemd
    /// service, cron or sudo, and only the uid is the same in all of them.
    pub fn state_root() -> std::path::PathBuf {
        format!("{STATE_ROOT_PREFIX}{}", crate::secure_fs::euid()).into()
    }
    /// Preview flag of a camera without a `[camera.preview]` table, until a command sets it.
    pub const PREVIEW_ON: bool = true;
    /// Saving flag of a camera without a `[camera.recorder]` table, until a command sets it.
    pub const SAVING_ON: bool = false;
    /// Frame slots the publisher may hold while writing (not configurable).
    pub const PUBLISHER_LOANS: u32 = 1;
    /// Samples one reader may hold at once while working on them (not configurable).
    pub const READER_BORROWS: u32 = 1;
    /// Whether the preview generates images when it starts.
    pub const PREVIEW_ENABLED: bool = true;
    /// Queue depth of the preview reader: newest frame only.
    pub const PREVIEW_QUEUE_DEPTH: u32 = 1;
    /// Preview images per second.
    pub const PREVIEW_FPS: f64 = 10.0;
    /// Largest preview width in pixels.
    pub const PREVIEW_MAX_WIDTH: u32 = 640;
    /// Largest preview height in pixels.
    pub const PREVIEW_MAX_HEIGHT: u32 = 480;
    /// JPEG quality of preview images.
    pub const PREVIEW_JPEG_QUALITY: u32 = 80;
    /// TCP port of the preview's HTTP server (bound to 127.0.0.1).
    pub const PREVIEW_PORT: u16 = 8080;
    /// `/stream.mjpg` viewers the preview serves at once.
    pub const PREVIEW_MAX_VIEWERS: u32 = 16;
    /// Other HTTP connections the preview serves at once (requests being read, snapshots, ...).
    pub const PREVIEW_MAX_CONNECTIONS: u32 = 256;
    /// Seconds an HTTP request head has to arrive whole.
    pub const PREVIEW_REQUEST_TIMEOUT_SECS: f64 = 5.0;
    /// Oldest result the preview draws, milliseconds.
    pub const PREVIEW_RESULT_MAX_AGE_MS: f64 = 1000.0;
    /// Queue depth of the recorder reader: rides out a slow write without dropping.
    pub const RECORDER_QUEUE_DEPTH: u32 = 4;
    /// Folder of recordings, relative to the config file.
    pub const RECORDER_DIRECTORY: &str = "recordings";
    /// JPEG quality of saved images.
    pub const RECORDER_JPEG_QUALITY: u32 = 90;
    /// Seconds of capture time per segment.
    pub const RECORDER_SEGMENT_SECS: f64 = 60.0;
    /// Permission bits of the files the recorder creates: only the recording user.
    pub const RECORDER_FILE_MODE: u32 = 0o600;
    /// Free-space floor of the recorder in MiB.
    pub const RECORDER_MIN_FREE_MB: u64 = 512;
    /// Free-inode floor of the recorder.
    pub const RECORDER_MIN_FREE_INODES: u64 = 1024;
    /// Seconds of pre-roll when triggers are configured.
    pub const RECORDER_PRE_ROLL_SECS: f64 = 5.0;
    /// Seconds a clip goes on after its last trigger.
    pub const RECORDER_POST_ROLL_SECS: f64 = 5.0;
    /// Longest clip in seconds.
    pub const RECORDER_MAX_CLIP_SECS: f64 = 300.0;
    /// Seconds a result may arrive after its frame and still get the whole pre-roll.
    pub const RECORDER_RESULT_DELAY_SECS: f64 = 1.0;
    /// Memory limit of the pre-roll in MiB.
    pub const RECORDER_PRE_ROLL_MAX_MB: u64 = 256;
    /// Driver buffers of a V4L2 source.
    pub const V4L2_BUFFERS: u32 = 4;
    /// Seconds of one period of a scene's brightness change (`lighting-period-secs`).
    pub const SCENE_LIGHTING_PERIOD_SECS: f64 = 10.0;
    /// Shared memory all cameras of a deployment may reserve for frames, in MiB: a typo such
    /// as `slots = 100000` is refused instead of reserving tens of GiB and dying of SIGBUS.
    pub const MAX_SHARED_MEMORY_MB: u64 = 2048;
    /// Bytes iceoryx2 adds per frame slot (its sample header, the frame header, alignment);
    /// measured about 150, counted generously.
    pub const SLOT_OVERHEAD_BYTES: u64 = 256;
    /// Shared memory per camera besides the frame slots and the control services (management
    /// segments, events), counted generously.
    pub const CAMERA_OVERHEAD_BYTES: u64 = 1024 * 1024;
    /// `[zenoh] listen`: loopback only (see docs/multi-host.md for real links).
    pub const ZENOH_LISTEN: &str = "tcp/127.0.0.1:7447";
}

/// A whole deployment, as loaded from one file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Deployment {
    /// Deployment-wide settings.
    #[serde(default)]
    pub deployment: DeploymentSection,
    /// The cameras, at least one.
    #[serde(default)]
    pub camera: Vec<CameraConfig>,
    /// `[media-server]`: the RTSP/WebRTC server the streamers publish to (see
    /// [`MediaServerConfig`]).
    #[serde(default)]
    pub media_server: Option<MediaServerConfig>,
    /// `[auth]`: viewer authentication of the media server, the previews and the metrics
    /// endpoint (see [`AuthConfig`]).
    #[serde(default)]
    pub auth: AuthConfig,
    /// `[tls]`: certificate and key of the media server (RTSPS, HTTPS), the previews and the
    /// metrics endpoint (HTTPS); none = plain RTSP and HTTP (see [`TlsConfig`]).
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// `[zenoh]`: the link to other hosts; with it `ctl up` runs the deployment's `bridge`
    /// (see [`ZenohConfig`]).
    #[serde(default)]
    pub zenoh: Option<ZenohConfig>,
    /// `[[remote-camera]]`: cameras of other sites imported by the bridge. At load each becomes
    /// a camera of [`Deployment::camera`] (after the local ones) with a
    /// [`SourceConfig::Remote`] source.
    #[serde(default)]
    pub remote_camera: Vec<RemoteCameraConfig>,
    /// The file this was loaded from (set by [`Deployment::load`]).
    #[serde(skip)]
    pub source_file: PathBuf,
}

/// `[deployment]`: settings of the deployment as a whole.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct DeploymentSection {
    /// Prefix of every service name and shared-memory file; two deployments with different
    /// names never see each other.
    #[serde(default = "default_deployment_name")]
    pub name: String,
    /// Folder of the command state (`ctl preview`/`ctl record` flags, one file per camera);
    /// relative to the config file's folder. Default: `/tmp/framebus-<uid>/<name>`. It must be
    /// owned by the user running framebus and writable by nobody else.
    #[serde(default)]
    pub state_dir: Option<PathBuf>,
    /// Shared memory (MiB) all cameras together may reserve for frames; checked at load, and
    /// against the free space of /dev/shm at `--check-config` and when capture starts.
    #[serde(default = "default_max_shared_memory_mb")]
    pub max_shared_memory_mb: u64,
    /// Address of the Prometheus metrics endpoint that `ctl up` serves (`ip:port`; port 0
    /// picks a free one, logged); none = no endpoint (`ctl metrics` serves one on demand).
    #[serde(default)]
    pub metrics: Option<String>,
    /// `[[deployment.webhook]]`: endpoints POSTed a JSON document per clip start and end (sent
    /// by `ctl up`).
    #[serde(default)]
    pub webhook: Vec<WebhookConfig>,
}

impl Default for DeploymentSection {
    fn default() -> Self {
        DeploymentSection {
            name: default_deployment_name(),
            state_dir: None,
            max_shared_memory_mb: defaults::MAX_SHARED_MEMORY_MB,
            metrics: None,
            webhook: Vec::new(),
        }
    }
}

impl DeploymentSection {
    /// The validated metrics address, if one is set.
    pub fn metrics_addr(&self) -> Option<std::net::SocketAddr> {
        self.metrics.as_deref().and_then(|a| a.parse().ok())
    }
}

fn default_max_shared_memory_mb() -> u64 {
    defaults::MAX_SHARED_MEMORY_MB
}

fn default_deployment_name() -> String {
    defaults::DEPLOYMENT_NAME.to_string()
}

/// `[[camera]]`: one camera, its frame format and its readers.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct CameraConfig {
    /// Unique name within the deployment; part of every service name of this camera.
    pub name: String,
    /// Where frames come from.
    pub source: SourceConfig,
    /// Frame width in pixels.
    pub width: u32,
    /// Frame height in pixels.
    pub height: u32,
    /// Frames per second; 0 means as fast as the source can (synthetic and file sources) or
    /// the driver's current rate (V4L2).
    #[serde(default = "default_fps")]
    pub fps: f64,
    /// Pixel format published to readers (a fourcc, e.g. `BGR3`).
    #[serde(default = "default_pixel_format")]
    pub pixel_format: PixelFormat,
    /// Frame slots in shared memory for frames in flight (queued or being read).
    #[serde(default = "default_slots")]
    pub slots: u32,
    /// Readers that may attach at once (configured processes plus ad-hoc tools).
    #[serde(default = "default_max_readers")]
    pub max_readers: u32,
    /// `[camera.algo]`: run an algo process on this camera.
    pub algo: Option<AlgoConfig>,
    /// `[camera.preview]`: run a preview process on this camera.
    pub preview: Option<PreviewConfig>,
    /// `[camera.recorder]`: run a recorder process on this camera.
    pub recorder: Option<RecorderConfig>,
    /// `[camera.streamer]`: run a streamer process (H.264 to the media server) on this camera.
    pub streamer: Option<StreamerConfig>,
    /// `[[camera.reader]]`: user readers (your own programs) with their policy and queue, and
    /// optionally the command `ctl up` runs for them.
    #[serde(default)]
    pub reader: Vec<UserReaderConfig>,
    /// `[camera.export]`: what the deployment's bridge publishes of this camera to other hosts
    /// (needs `[zenoh]`).
    #[serde(default)]
    pub export: Option<ExportConfig>,
}

fn default_fps() -> f64 {
    defaults::FPS
}
fn default_pixel_format() -> PixelFormat {
    defaults::PIXEL_FORMAT
}
fn default_slots() -> u32 {
    defaults::SLOTS
}
fn default_max_readers() -> u32 {
    defaults::MAX_READERS
}

reader_table! {
    /// `[camera.algo]`: the per-frame computation process.
    pub struct AlgoConfig {
        ..queue_depth("default_algo_queue_depth"),
        ..policy,
        /// Seconds between statistics log lines.
        #[serde(default = "default_stats_interval")]
        pub stats_interval_secs: f64,
    }
}

impl Default for AlgoConfig {
    fn default() -> Self {
        AlgoConfig {
            queue_depth: defaults::ALGO_QUEUE_DEPTH,
            policy: None,
            max_fps: None,
            stats_interval_secs: defaults::STATS_INTERVAL_SECS,
        }
    }
}

fn default_algo_queue_depth() -> u32 {
    defaults::ALGO_QUEUE_DEPTH
}
fn default_stats_interval() -> f64 {
    defaults::STATS_INTERVAL_SECS
}

/// How a camera's frame service is laid out in shared memory, derived from its config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotLayout {
    /// Bytes of one slot (the largest frame of the configured format and size).
    pub frame_bytes: usize,
    /// Readers that may attach at once.
    pub max_readers: usize,
    /// Largest queue a reader may ask for.
    pub max_queue_depth: usize,
    /// Samples one reader may hold at once.
    pub reader_borrows: usize,
    /// Samples the publisher may hold while writing.
    pub publisher_loans: usize,
}

impl SlotLayout {
    /// Slots iceoryx2 reserves: readers × (queue + borrowed) + publisher loans.
    pub fn slots(&self) -> usize {
        self.max_readers * (self.max_queue_depth + self.reader_borrows) + self.publisher_loans
    }

    /// Bytes of payload memory the camera reserves.
    pub fn payload_bytes(&self) -> usize {
        self.slots() * self.frame_bytes
    }

    /// Bytes of shared memory the camera takes in /dev/shm, counted generously: its frame
    /// slots with iceoryx2's per-slot overhead, the control services of capture and of every
    /// reader that may attach, and its management segments.
    pub fn shared_memory_bytes(&self) -> u64 {
        let slot = self.frame_bytes as u64 + defaults::SLOT_OVERHEAD_BYTES;
        let control = (self.max_readers as u64 + 1) * crate::limits::CONTROL_BYTES_PER_PROCESS;
        (self.slots() as u64)
            .saturating_mul(slot)
            .saturating_add(control)
            .saturating_add(defaults::CAMERA_OVERHEAD_BYTES)
    }
}

/// `bytes` for messages: `14.1 MiB`, `88.3 GiB`.
pub fn human_bytes(bytes: u64) -> String {
    const MIB: f64 = 1024.0 * 1024.0;
    let b = bytes as f64;
    if b >= 1024.0 * MIB {
        format!("{:.1} GiB", b / (1024.0 * MIB))
    } else {
        format!("{:.1} MiB", b / MIB)
    }
}

/// Longest deployment name whose event sockets fit a Unix socket path
/// ([`crate::limits::longest_event_socket_path`]).
pub fn max_deployment_name_len() -> usize {
    (1..=32)
        .take_while(|&n| crate::limits::longest_event_socket_path(&"a".repeat(n)) <= crate::limits::MAX_SOCKET_PATH)
        .last()
        .unwrap_or(1)
}

fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 32
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        && name.as_bytes()[0].is_ascii_alphanumeric()
}

const NAME_RULE: &str = "1 to 32 characters of a-z, 0-9, `-` and `_`, starting with a letter or digit";

impl CameraConfig {
    /// The validated pixel format (validation guarantees it parses).
    pub fn format(&self) -> PixelFormat {
        self.pixel_format
    }

    /// Bytes of one frame slot.
    pub fn frame_bytes(&self) -> usize {
        self.format().frame_bytes(self.width, self.height)
    }

    /// Bytes of shared memory the camera takes in /dev/shm: its frame service, control
    /// services and management ([`SlotLayout::shared_memory_bytes`]) and, when it has a
    /// streamer, the encoded service at its largest (every place of every possible
    /// subscriber's queue, their borrowed samples and the streamer's loans holding an access
    /// unit of the maximum size).
    pub fn shared_memory_bytes(&self) -> u64 {
        let frames = self.slot_layout().shared_memory_bytes();
        if self.streamer.is_none() {
            return frames;
        }
        let encoded = self.encoded_layout();
        let places = (crate::encoded::ENCODED_MAX_SUBSCRIBERS as u64) * (encoded.queue as u64 + 1)
            + defaults::PUBLISHER_LOANS as u64
            + 1;
        frames.saturating_add(places.saturating_mul(encoded.max_au_bytes as u64 + defaults::SLOT_OVERHEAD_BYTES))
    }

    /// How this camera's encoded-video service is sized (derived from the config only, so the
    /// streamer, the media server and the recorder open it alike).
    pub fn encoded_layout(&self) -> crate::encoded::EncodedLayout {
        crate::encoded::EncodedLayout::of(self.width, self.height, self.fps)
    }

    /// The shared-memory layout of this camera's frame service.
    pub fn slot_layout(&self) -> SlotLayout {
        let per_reader = (self.slots.saturating_sub(defaults::PUBLISHER_LOANS) / self.max_readers.max(1)) as usize;
        SlotLayout {
            frame_bytes: self.frame_bytes(),
            max_readers: self.max_readers as usize,
            max_queue_depth: per_reader.saturating_sub(defaults::READER_BORROWS as usize).max(1),
            reader_borrows: defaults::READER_BORROWS as usize,
            publisher_loans: (defaults::PUBLISHER_LOANS as usize).max(self.userptr_buffers()),
        }
    }

    /// Driver buffers that may live in shared memory: a V4L2 camera whose frames can be
    /// captured with USERPTR (memory not `mmap`, the device format published as delivered)
    /// lends its `buffers` samples to the driver, so its publisher must loan that many at once
    /// and the budget counts them. 0 for every other camera.
    pub fn userptr_buffers(&self) -> usize {
        match &self.source {
            SourceConfig::V4l2(v) if v.memory != V4l2Memory::Mmap => {
                let published = self.format();
                let passthrough =
                    v4l2_conversion(v.device_format(published), published) == Some(Conversion::Passthrough);
                if passthrough && published.is_raw() {
                    v.buffers as usize
                } else {
                    0
                }
            }
            _ => 0,
        }
    }

    /// The built-in processes this camera runs, in start-up order: capture, then every
    /// configured built-in reader.
    pub fn processes(&self) -> Vec<ProcessRole> {
        let mut roles = vec![ProcessRole::Capture];
        roles.extend(self.readers().into_iter().filter_map(|r| r.role.builtin()));
        roles
    }

    /// Every role of this camera that serves a control service when running: capture, the
    /// built-in readers, then the user readers, in config order.
    pub fn roles(&self) -> Vec<Role> {
        let mut roles = vec![Role::from(ProcessRole::Capture)];
        roles.extend(self.readers().into_iter().map(|r| r.role));
        roles
    }
}

impl Deployment {
    /// Reads, parses and validates a deployment file.
    pub fn load(path: &Path) -> Result<Deployment, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::io(path, &e))?;
        Deployment::from_toml(path, &text)
    }

    /// Parses and validates deployment TOML; `path` is used for messages and relative paths.
    pub fn from_toml(path: &Path, text: &str) -> Result<Deployment, ConfigError> {
        let deserializer = toml::Deserializer::new(text);
        let mut deployment: Deployment =
            serde_path_to_error::deserialize(deserializer).map_err(|e| ConfigError::parse(path, text, e))?;
        deployment.source_file = path.to_path_buf();
        let remote: Vec<CameraConfig> = deployment.remote_camera.iter().map(RemoteCameraConfig::to_camera).collect();
        deployment.camera.extend(remote);
        for camera in &mut deployment.camera {
            let has_streamer = camera.streamer.is_some();
            if let Some(recorder) = &mut camera.recorder {
                recorder.resolve_video(has_streamer);
            }
        }
        deployment.validate()?;
        Ok(deployment)
    }

    /// The deployment name (prefix of every service).
    pub fn name(&self) -> &str {
        &self.deployment.name
    }

    /// Finds a camera by name; with `None`, the only camera of a one-camera deployment.
    pub fn camera(&self, name: Option<&str>) -> Result<&CameraConfig, ConfigError> {
        let names = || self.camera.iter().map(|c| format!("`{}`", c.name)).collect::<Vec<_>>().join(", ");
        match name {
            Some(name) => self.camera.iter().find(|c| c.name == name).ok_or_else(|| {
                ConfigError::value(
                    &self.source_file,
                    "camera",
                    format!("no camera named `{name}` (cameras: {})", names()),
                )
            }),
            None if self.camera.len() == 1 => Ok(&self.camera[0]),
            None => Err(ConfigError::value(
                &self.source_file,
                "camera",
                format!(
                    "{} cameras are configured, choose one with --camera (cameras: {})",
                    self.camera.len(),
                    names()
                ),
            )),
        }
    }

    /// Folder of this deployment's command state (see [`crate::state`]).
    pub fn state_dir(&self) -> PathBuf {
        match &self.deployment.state_dir {
            Some(dir) => self.resolve_path(dir),
            None => defaults::state_root().join(self.name()),
        }
    }

    /// The per-deployment processes the config has (the media server with a `[media-server]`
    /// table, started by `ctl up` or by hand; the bridge with `[zenoh]` and a camera with
    /// `[camera.export]`), in start-up order.
    pub fn deployment_processes(&self) -> Vec<crate::names::DeploymentProcess> {
        crate::names::DeploymentProcess::ALL
            .into_iter()
            .filter(|p| match p {
                crate::names::DeploymentProcess::MediaServer => self.media_server.is_some(),
                crate::names::DeploymentProcess::Bridge => {
                    self.zenoh.is_some() && self.camera.iter().any(|c| c.export.is_some())
                }
            })
            .collect()
    }

    /// Origins whose pages may use the media server's WHEP from a browser (CORS):
    /// `[media-server] allowed-origins`, else the preview's own origin of every camera with a
    /// preview on a known port (`http://<listen>`, and `http://localhost:<port>` for a loopback
    /// listen address). Empty without a media server.
    pub fn media_server_origins(&self) -> Vec<String> {
        let Some(server) = &self.media_server else { return Vec::new() };
        if !server.allowed_origins.is_empty() {
            return server.allowed_origins.clone();
        }
        let mut origins = Vec::new();
        for camera in &self.camera {
            let Some(preview) = &camera.preview else { continue };
            let addr = MediaServerConfig::local(preview.listen_addr());
            if addr.port() == 0 {
                continue;
            }
            let scheme = self.http_scheme();
            origins.push(format!("{scheme}://{addr}"));
            if addr.ip().is_loopback() {
                origins.push(format!("{scheme}://localhost:{}", addr.port()));
            }
        }
        origins.sort();
        origins.dedup();
        origins
    }

    /// Resolves a path from the config relative to the config file's folder.
    pub fn resolve_path(&self, path: &Path) -> PathBuf {
        if path.is_absolute() {
            return path.to_path_buf();
        }
        self.source_file.parent().map(|dir| dir.join(path)).unwrap_or_else(|| path.to_path_buf())
    }

    /// The recordings folder of `camera` (its recorder's `directory`, or the default one), where
    /// its events journal lives.
    pub fn recordings_directory(&self, camera: &CameraConfig) -> PathBuf {
        self.resolve_path(&camera.recorder.clone().unwrap_or_default().directory)
    }

    /// Checks values and cross-field rules; the first error found is returned.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let file = &self.source_file;
        validate_deployment_section(&self.deployment).map_err(|(key, msg)| ConfigError::value(file, &key, msg))?;
        if let Some(server) = &self.media_server {
            streamer::validate_server(server)
                .map_err(|(field, msg)| ConfigError::value(file, &format!("media-server.{field}"), msg))?;
        }
        if self.camera.is_empty() {
            return Err(ConfigError::value(
                file,
                "camera",
                "no camera configured: add at least one `[[camera]]` or `[[remote-camera]]` table".into(),
            ));
        }
        if let Some(zenoh) = &self.zenoh {
            zenoh::validate(zenoh).map_err(|(field, msg)| ConfigError::value(file, &format!("zenoh.{field}"), msg))?;
        } else if !self.remote_camera.is_empty() {
            return Err(ConfigError::value(
                file,
                "remote-camera",
                "remote cameras are imported by the bridge over Zenoh: add a [zenoh] table (site, connect)".into(),
            ));
        }
        let locals = self.camera.len() - self.remote_camera.len();
        let max_bytes = self.deployment.max_shared_memory_mb * 1024 * 1024;
        let mut total = 0u64;
        let mut seen = HashSet::new();
        for (i, cam) in self.camera.iter().enumerate() {
            let table = if i < locals { format!("camera[{i}]") } else { format!("remote-camera[{}]", i - locals) };
            let at = |(field, msg): (String, String)| ConfigError::value(file, &format!("{table}.{field}"), msg);
            if !seen.insert(cam.name.as_str()) {
                return Err(at(("name".into(), format!("duplicate camera name `{}`: names must be unique", cam.name))));
            }
            if let Some(process) = crate::names::DeploymentProcess::from_name(&cam.name) {
                return Err(at((
                    "name".into(),
                    format!("camera name `{}` is the name of the deployment's {process} (`ctl restart {process}` means that process): choose another", cam.name),
                )));
            }
            validate_frame(cam).map_err(at)?;
            let need = cam.shared_memory_bytes();
            total = total.saturating_add(need);
            if total > max_bytes {
                return Err(at(("slots".into(), memory_budget_message(cam, need, total - need, max_bytes))));
            }
            validate_readers(cam).map_err(at)?;
            if let Some(preview) = &cam.preview {
                preview::validate(preview).map_err(|(field, msg)| at((format!("preview.{field}"), msg)))?;
            }
            if let Some(recorder) = &cam.recorder {
                recorder::validate(recorder, cam.width, cam.height, cam.fps)
                    .map_err(|(field, msg)| at((format!("recorder.{field}"), msg)))?;
                if recorder.video == recorder::VideoFormat::Stream && cam.streamer.is_none() {
                    return Err(at((
                        "recorder.video".into(),
                        "video = \"stream\" records the H.264 of the camera's streamer, but this camera has no [camera.streamer]; add one, or set video = \"mjpg-avi\", \"mp4v-mp4\", \"h264-mp4\" or \"off\"".into(),
                    )));
                }
            }
            if let Some(streamer) = &cam.streamer {
                streamer::validate_streamer(streamer).map_err(|(field, msg)| at((format!("streamer.{field}"), msg)))?;
            }
            source::validate(self, i, cam, cam.pixel_format).map_err(at)?;
            if let Some(export) = &cam.export {
                if self.zenoh.is_none() {
                    return Err(at((
                        "export".into(),
                        "the bridge exports over Zenoh: add a [zenoh] table (site, listen), or remove [camera.export]"
                            .into(),
                    )));
                }
                export::validate(export, cam).map_err(|(field, msg)| at((format!("export.{field}"), msg)))?;
            }
        }
        auth::validate(self)?;
        self.tls_files()?;
        self.zenoh_files()?;
        Ok(())
    }
}

/// A validation failure: the key (relative to the table checked) and what is wrong.
type Invalid = (String, String);

fn invalid(key: &str, message: String) -> Result<(), Invalid> {
    Err((key.to_string(), message))
}

/// `[deployment]`: name (it must fit iceoryx2's socket paths), metrics address, memory cap.
fn validate_deployment_section(d: &DeploymentSection) -> Result<(), Invalid> {
    let name = &d.name;
    let max_name = max_deployment_name_len();
    if !is_valid_name(name) || name.len() > max_name {
        return invalid(
            "deployment.name",
            format!(
                "invalid name `{name}`: use 1 to {max_name} characters of a-z, 0-9, `-` and `_`, starting with a letter or digit (iceoryx2 names the deployment's event sockets `{}<id of up to 39 digits>.event`, and a Unix socket path holds at most {} bytes)",
                crate::limits::deployment_root("<name>") + &crate::names::shm_prefix("<name>"),
                crate::limits::MAX_SOCKET_PATH
            ),
        );
    }
    if let Some(addr) = &d.metrics {
        if addr.parse::<std::net::SocketAddr>().is_err() {
            return invalid(
                "deployment.metrics",
                format!("invalid address `{addr}`: use ip:port, e.g. `127.0.0.1:9464` (port 0 picks a free port)"),
            );
        }
    }
    for (i, hook) in d.webhook.iter().enumerate() {
        webhook::validate(hook).map_err(|(field, msg)| (format!("deployment.webhook[{i}].{field}"), msg))?;
    }
    if !(1..=1024 * 1024).contains(&d.max_shared_memory_mb) {
        return invalid(
            "deployment.max-shared-memory-mb",
            format!("invalid value {}: allowed 1 to 1048576 (MiB)", d.max_shared_memory_mb),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests;
