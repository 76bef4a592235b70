//! `[camera.source]`: where a camera's frames come from.

use std::fmt;
use std::path::PathBuf;

use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use super::{CameraConfig, Deployment};
use crate::format::PixelFormat;

/// The frame source of a camera, chosen by `kind`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum SourceConfig {
    /// A built-in moving test pattern carrying an integrity stamp; needs no hardware.
    Synthetic(SyntheticSourceConfig),
    /// A static background with moving shapes on known paths, carrying the same integrity
    /// stamp as the test pattern: something for a detector to find.
    Scene(SceneSourceConfig),
    /// A video file read with OpenCV, looping at its end.
    File(FileSourceConfig),
    /// A V4L2 camera (USB or MIPI CSI) read with mmap streaming.
    V4l2(V4l2SourceConfig),
    /// A camera of another site, imported by the bridge (from `[[remote-camera]]` only).
    #[serde(skip)]
    Remote(super::RemoteSourceConfig),
}

/// `kind = "synthetic"`: no settings of its own (size, format and fps are the camera's).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SyntheticSourceConfig {}

/// `kind = "scene"`: a textured background with moving objects (see `framebus_common::scene`
/// for the exact picture and paths). Size, format and fps are the camera's.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SceneSourceConfig {
    /// `[[camera.source.object]]`: the moving objects, drawn in order (later over earlier).
    /// Absent: the default scene of three objects; `object = []`: the background only.
    #[serde(rename = "object")]
    pub objects: Option<Vec<SceneObjectConfig>>,
    /// Amplitude of per-pixel noise on brightness, 0 (off) to 64.
    #[serde(default)]
    pub noise: u32,
    /// Depth of a slow brightness change, 0.0 (off) to 0.9 (±90 %).
    #[serde(default)]
    pub lighting: f64,
    /// Seconds of one period of the brightness change.
    #[serde(default = "default_lighting_period")]
    pub lighting_period_secs: f64,
}

fn default_lighting_period() -> f64 {
    super::defaults::SCENE_LIGHTING_PERIOD_SECS
}

/// The shape of a scene object.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SceneShape {
    /// A filled rectangle of `width` × `height`.
    #[default]
    Rect,
    /// A filled circle of `radius`.
    Circle,
}

/// How a scene object moves.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ScenePath {
    /// A straight line from `start` in `direction`, bouncing off the frame's edges.
    #[default]
    Bounce,
    /// A circle of `orbit-radius` around `center`, starting at angle `phase`.
    Orbit,
}

/// `[[camera.source.object]]`: one moving shape. Keys that do not belong to its shape or path
/// are refused.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SceneObjectConfig {
    /// `rect` (default) or `circle` (read it with [`SceneObjectConfig::shape`]).
    #[serde(rename = "shape")]
    pub shape_name: Option<String>,
    /// Rectangle width in pixels (default 80).
    pub width: Option<i64>,
    /// Rectangle height in pixels (default 60).
    pub height: Option<i64>,
    /// Circle radius in pixels (default 30).
    pub radius: Option<i64>,
    /// RGB, each 0 to 255 (default: red, green, blue, yellow, … by position).
    pub color: Option<Vec<i64>>,
    /// `bounce` (default) or `orbit` (read it with [`SceneObjectConfig::path`]).
    #[serde(rename = "path")]
    pub path_name: Option<String>,
    /// Pixels per second along the path (default 120; 0 keeps the object still).
    pub speed: Option<f64>,
    /// Bounce: top-left corner `[x, y]` at frame 1 (default: centred).
    pub start: Option<[f64; 2]>,
    /// Bounce: degrees, 0 = right, 90 = down (default 30).
    pub direction: Option<f64>,
    /// Orbit: centre `[x, y]` of the circle the object's centre follows (default: the frame's
    /// centre).
    pub center: Option<[f64; 2]>,
    /// Orbit: radius in pixels (default a quarter of the frame's smaller side).
    pub orbit_radius: Option<f64>,
    /// Orbit: starting angle in degrees, 0 = right of the centre, 90 = below (default 0).
    pub phase: Option<f64>,
}

/// `kind = "file"`: a video file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct FileSourceConfig {
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

/// `kind = "v4l2"`: a V4L2 video capture device.
///
/// The camera's `width`, `height` and `fps` are asked of the device; `format` is the pixel
/// format asked of the device and the camera's `pixel-format` is the one published. When they
/// differ, capture converts each frame in the same single pass that writes it into shared
/// memory (see [`v4l2_conversion`]).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct V4l2SourceConfig {
    /// The device node: `/dev/video0`, or a stable `/dev/v4l/by-id/...` / `by-path` name.
    pub device: PathBuf,
    /// Pixel format asked of the device (`YUYV`, `MJPG`, `NV12`, `GREY`, ...); defaults to the
    /// camera's `pixel-format`.
    pub format: Option<String>,
    /// Driver buffers for mmap streaming (one is always held by capture while publishing).
    #[serde(default = "default_buffers")]
    pub buffers: u32,
    /// Fail instead of warning when the driver grants another size, format or frame rate.
    #[serde(default)]
    pub strict: bool,
    /// Where the driver's buffers live: `auto` (USERPTR into shared memory when possible, else
    /// mmap + one copy), `userptr` or `mmap`.
    #[serde(default)]
    pub memory: V4l2Memory,
    /// `[camera.source.controls]`: V4L2 controls to set at start and after a reconnect, by
    /// normalised name (`exposure_time_absolute`), applied in the order written.
    #[serde(default)]
    pub controls: ControlSettings,
    /// `[camera.source.media-pipeline]`: board set-up run before the device is opened.
    pub media_pipeline: Option<MediaPipelineConfig>,
}

fn default_buffers() -> u32 {
    super::defaults::V4L2_BUFFERS
}

impl V4l2SourceConfig {
    /// The pixel format asked of the device (validated).
    pub fn device_format(&self, published: PixelFormat) -> PixelFormat {
        self.format.as_deref().and_then(|f| f.parse().ok()).unwrap_or(published)
    }
}

/// `memory`: where the V4L2 driver's buffers live.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum V4l2Memory {
    /// USERPTR when the device supports it and the frame is published as delivered (no
    /// conversion, no row padding); otherwise mmap with one copy per frame.
    #[default]
    Auto,
    /// USERPTR only: the driver writes each frame straight into a shared-memory sample and
    /// capture never touches the pixels; capture refuses a device or format that cannot.
    Userptr,
    /// mmap driver buffers; capture copies (or converts, or decodes) each frame once into
    /// shared memory.
    Mmap,
}

impl V4l2Memory {
    /// The name as written in the config.
    pub fn name(self) -> &'static str {
        match self {
            V4l2Memory::Auto => "auto",
            V4l2Memory::Userptr => "userptr",
            V4l2Memory::Mmap => "mmap",
        }
    }
}

/// A value of a V4L2 control in the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlValue {
    /// Integer, menu index or 0/1 for booleans.
    Integer(i64),
    /// Boolean controls (`white_balance_automatic = false`).
    Bool(bool),
    /// A menu item by name (`auto_exposure = "Manual Mode"`).
    Menu(String),
}

impl fmt::Display for ControlValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ControlValue::Integer(v) => write!(f, "{v}"),
            ControlValue::Bool(v) => write!(f, "{v}"),
            ControlValue::Menu(v) => write!(f, "\"{v}\""),
        }
    }
}

impl<'de> Deserialize<'de> for ControlValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Value;
        impl Visitor<'_> for Value {
            type Value = ControlValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a V4L2 control value: an integer, true/false or a menu item name")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<ControlValue, E> {
                Ok(ControlValue::Integer(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<ControlValue, E> {
                i64::try_from(v)
                    .map(ControlValue::Integer)
                    .map_err(|_| E::custom(format!("control value {v} is too large")))
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<ControlValue, E> {
                Ok(ControlValue::Bool(v))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<ControlValue, E> {
                Ok(ControlValue::Menu(v.to_string()))
            }
        }
        deserializer.deserialize_any(Value)
    }
}

impl ControlValue {
    /// A value as typed on a command line: an integer, `true`/`false`, else a menu item name.
    pub fn parse(text: &str) -> ControlValue {
        let text = text.trim();
        if let Ok(v) = text.parse::<i64>() {
            ControlValue::Integer(v)
        } else if text.eq_ignore_ascii_case("true") {
            ControlValue::Bool(true)
        } else if text.eq_ignore_ascii_case("false") {
            ControlValue::Bool(false)
        } else {
            ControlValue::Menu(text.to_string())
        }
    }
}

/// Parses `name=value` assignments (`exposure_time_absolute=200 auto_exposure="Manual Mode"`
/// arrives as separate arguments); the name is normalised, the value as in
/// [`ControlValue::parse`]. Errors name the bad argument.
pub fn parse_control_assignments<S: AsRef<str>>(args: &[S]) -> Result<Vec<(String, ControlValue)>, String> {
    let mut out: Vec<(String, ControlValue)> = Vec::with_capacity(args.len());
    for arg in args {
        let arg = arg.as_ref();
        let Some((name, value)) = arg.split_once('=') else {
            return Err(format!("`{arg}` is not a control assignment: write name=value, e.g. brightness=128"));
        };
        let key = normalize_control_name(name);
        if key.is_empty() {
            return Err(format!("`{arg}` has no control name: write name=value, e.g. brightness=128"));
        }
        let value = value.trim().trim_matches('"');
        if value.is_empty() {
            return Err(format!("`{arg}` has no value: write name=value, e.g. brightness=128"));
        }
        if out.iter().any(|(k, _)| *k == key) {
            return Err(format!("control `{key}` is set twice"));
        }
        out.push((key, ControlValue::parse(value)));
    }
    Ok(out)
}

/// The text form of `name=value` arguments for a control request: joined by spaces, values
/// with spaces in double quotes (`auto_exposure="Manual Mode" gain=10`). Errors name what
/// cannot be carried (a double quote or non-printable character, more than `max` bytes).
pub fn control_assignments_text<S: AsRef<str>>(args: &[S], max: usize) -> Result<String, String> {
    let mut parts = Vec::with_capacity(args.len());
    for arg in args {
        let arg = arg.as_ref();
        if !arg.chars().all(|c| c.is_ascii_graphic() || c == ' ') {
            return Err(format!("`{arg}` has characters a control request cannot carry (printable ASCII only)"));
        }
        let (name, value) = arg.split_once('=').unwrap_or((arg, ""));
        let value = value.trim().trim_matches('"');
        if value.contains('"') {
            return Err(format!("`{arg}`: a value cannot contain a double quote"));
        }
        parts.push(if value.contains(' ') { format!("{name}=\"{value}\"") } else { format!("{name}={value}") });
    }
    let text = parts.join(" ");
    if text.len() > max {
        return Err(format!(
            "the settings take {} bytes, a control request carries {max}: set fewer at once",
            text.len()
        ));
    }
    Ok(text)
}

/// Splits the text of a control request back into `name=value` arguments: on spaces outside
/// double quotes.
pub fn split_control_text(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in text.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                current.push(c);
            }
            ' ' if !quoted => {
                if !current.is_empty() {
                    out.push(std::mem::take(&mut current));
                }
            }
            c => current.push(c),
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// Control settings in the order they are written in the file (order matters: an automatic
/// mode must be switched off before its manual value is set).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ControlSettings(pub Vec<(String, ControlValue)>);

impl<'de> Deserialize<'de> for ControlSettings {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct InOrder;
        impl<'de> Visitor<'de> for InOrder {
            type Value = ControlSettings;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a table of V4L2 control names and values")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ControlSettings, A::Error> {
                let mut settings = Vec::new();
                while let Some((name, value)) = map.next_entry::<String, ControlValue>()? {
                    settings.push((name, value));
                }
                Ok(ControlSettings(settings))
            }
        }
        deserializer.deserialize_map(InOrder)
    }
}

/// The normalised form of a V4L2 control name, as `v4l2-ctl` prints it:
/// `Exposure Time, Absolute` → `exposure_time_absolute`.
pub fn normalize_control_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.is_empty() && !out.ends_with('_') {
            out.push('_');
        }
    }
    while out.ends_with('_') {
        out.pop();
    }
    out
}

/// `[camera.source.media-pipeline]`: how a board's media controller is set up before the
/// video device is opened, chosen by `kind`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum MediaPipelineConfig {
    /// Nothing to do (the default when the table is absent).
    None,
    /// Run `media-ctl` steps: reset, then links, then pad formats.
    MediaCtl(MediaCtlConfig),
}

/// `kind = "media-ctl"`: links and pad formats set with `media-ctl`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct MediaCtlConfig {
    /// The media controller device (`/dev/media0`).
    pub device: PathBuf,
    /// The program to run; found on PATH unless it contains a `/`.
    #[serde(default = "default_media_ctl")]
    pub command: String,
    /// Run `media-ctl -r` (disable all links) first.
    #[serde(default)]
    pub reset: bool,
    /// Link descriptions, each run as `media-ctl -d <device> -l <link>`, in order.
    #[serde(default)]
    pub links: Vec<String>,
    /// Pad formats, each run as `media-ctl -d <device> -V <format>`, in order (after the links).
    #[serde(default)]
    pub formats: Vec<String>,
    /// Seconds one step may take before it is killed and reported as failed.
    #[serde(default = "default_media_ctl_timeout")]
    pub timeout_secs: f64,
}

fn default_media_ctl() -> String {
    "media-ctl".to_string()
}

fn default_media_ctl_timeout() -> f64 {
    10.0
}

/// How capture turns what a V4L2 device delivers into what it publishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conversion {
    /// Published as delivered (repacked to the tight stride when the driver pads rows).
    Passthrough,
    /// Colour conversion (OpenCV `cvtColor`) into the sample.
    Convert,
    /// MJPG decoded (OpenCV `imdecode`) into the sample.
    Decode,
}

/// Whether capture can turn `device` frames into `published` frames in one pass, and how.
pub fn v4l2_conversion(device: PixelFormat, published: PixelFormat) -> Option<Conversion> {
    use PixelFormat::*;
    match (device, published) {
        (d, p) if d == p => Some(Conversion::Passthrough),
        (Yuyv | Nv12 | Nv21 | Grey, Bgr3 | Rgb3) | (Yuyv | Nv12 | Nv21 | Nv16, Grey) => Some(Conversion::Convert),
        (Mjpg, Bgr3 | Grey) => Some(Conversion::Decode),
        _ => None,
    }
}

/// Published formats capture can make from `device` frames, for error messages.
pub fn v4l2_targets(device: PixelFormat) -> String {
    PixelFormat::ALL
        .into_iter()
        .filter(|p| v4l2_conversion(device, *p).is_some())
        .map(PixelFormat::name)
        .collect::<Vec<_>>()
        .join(", ")
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
            SourceConfig::Scene(_) => "scene",
            SourceConfig::File(_) => "file",
            SourceConfig::V4l2(_) => "v4l2",
            SourceConfig::Remote(_) => "remote",
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
        SourceConfig::Scene(scene) => {
            if format == PixelFormat::Mjpg {
                return Err((
                    "pixel-format".into(),
                    "the scene source produces raw frames: allowed BGR3, RGB3, GREY, YUYV, NV12".into(),
                ));
            }
            validate_scene(scene, cam.width, cam.height)?;
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
        SourceConfig::V4l2(v4l2) => validate_v4l2(v4l2, format)?,
        SourceConfig::Remote(remote) => super::remote::validate(remote, format)?,
    }
    Ok(())
}

fn validate_v4l2(v4l2: &V4l2SourceConfig, published: PixelFormat) -> Result<(), (String, String)> {
    let err = |key: &str, msg: String| Err((format!("source.{key}"), msg));
    if !v4l2.device.is_absolute() {
        return err(
            "device",
            format!(
                "`{}` is not an absolute path: use e.g. `/dev/video0` or `/dev/v4l/by-id/<name>`",
                v4l2.device.display()
            ),
        );
    }
    let device_format = match v4l2.format.as_deref().map(str::parse::<PixelFormat>) {
        None => published,
        Some(Ok(f)) => f,
        Some(Err(e)) => return err("format", e.to_string()),
    };
    if v4l2_conversion(device_format, published).is_none() {
        return Err((
            "pixel-format".into(),
            format!(
                "capture cannot publish {published} from a V4L2 device delivering {device_format} (source.format): from {device_format} it can publish {}",
                v4l2_targets(device_format)
            ),
        ));
    }
    if v4l2.memory == V4l2Memory::Userptr && (device_format != published || !published.is_raw()) {
        return err(
            "memory",
            format!(
                "`userptr` lets the driver write frames straight into shared memory, so the device format must be published as it is (a raw format): here the device delivers {device_format} and the camera publishes {published}; use `auto` or `mmap`"
            ),
        );
    }
    if !(2..=32).contains(&v4l2.buffers) {
        return err("buffers", format!("invalid value {}: allowed 2 to 32", v4l2.buffers));
    }
    let mut seen = std::collections::HashSet::new();
    for (name, _) in &v4l2.controls.0 {
        let normalized = normalize_control_name(name);
        if normalized.is_empty() {
            return err(&format!("controls.{name}"), "not a control name: use e.g. `brightness`".into());
        }
        if !seen.insert(normalized.clone()) {
            return err(&format!("controls.{name}"), format!("control `{normalized}` is set twice"));
        }
    }
    if let Some(MediaPipelineConfig::MediaCtl(m)) = &v4l2.media_pipeline {
        if m.device.as_os_str().is_empty() {
            return err("media-pipeline.device", "empty: use e.g. `/dev/media0`".into());
        }
        if m.command.trim().is_empty() {
            return err("media-pipeline.command", "empty: use `media-ctl` or a path to it".into());
        }
        if !m.reset && m.links.is_empty() && m.formats.is_empty() {
            return err(
                "media-pipeline",
                "no step configured: set `links`, `formats` or `reset = true` (or remove the table)".into(),
            );
        }
        for (i, step) in m.links.iter().chain(&m.formats).enumerate() {
            if step.trim().is_empty() {
                let key = if i < m.links.len() { "links" } else { "formats" };
                return err(&format!("media-pipeline.{key}"), "an entry is empty".into());
            }
        }
        if !(m.timeout_secs > 0.0 && m.timeout_secs <= 600.0) {
            return err(
                "media-pipeline.timeout-secs",
                format!("invalid value {}: allowed more than 0 up to 600", m.timeout_secs),
            );
        }
    }
    Ok(())
}

impl SceneObjectConfig {
    /// The shape (validated config; an unknown name reads as the default).
    pub fn shape(&self) -> SceneShape {
        match self.shape_name.as_deref() {
            Some("circle") => SceneShape::Circle,
            _ => SceneShape::Rect,
        }
    }

    /// The path (validated config; an unknown name reads as the default).
    pub fn path(&self) -> ScenePath {
        match self.path_name.as_deref() {
            Some("orbit") => ScenePath::Orbit,
            _ => ScenePath::Bounce,
        }
    }
}

/// Most objects a scene may have.
pub const MAX_SCENE_OBJECTS: usize = 64;

fn validate_scene(scene: &SceneSourceConfig, width: u32, height: u32) -> Result<(), (String, String)> {
    let err = |key: &str, msg: String| Err((format!("source.{key}"), msg));
    if scene.noise > 64 {
        return err("noise", format!("invalid value {}: allowed 0 (off) to 64", scene.noise));
    }
    if !(scene.lighting.is_finite() && (0.0..=0.9).contains(&scene.lighting)) {
        return err("lighting", format!("invalid value {}: allowed 0.0 (off) to 0.9", scene.lighting));
    }
    if !(scene.lighting_period_secs.is_finite() && (0.1..=3600.0).contains(&scene.lighting_period_secs)) {
        return err(
            "lighting-period-secs",
            format!("invalid value {}: allowed 0.1 to 3600", scene.lighting_period_secs),
        );
    }
    let objects = scene.objects.as_deref().unwrap_or_default();
    if objects.len() > MAX_SCENE_OBJECTS {
        return err("object", format!("{} objects: allowed at most {MAX_SCENE_OBJECTS}", objects.len()));
    }
    for (i, o) in objects.iter().enumerate() {
        validate_scene_object(i, o, width, height)?;
    }
    Ok(())
}

/// One `[[camera.source.object]]`: shape and path names, size, color, speed, then its path's keys.
fn validate_scene_object(i: usize, o: &SceneObjectConfig, width: u32, height: u32) -> Result<(), (String, String)> {
    let err = |key: &str, msg: String| Err((format!("source.object[{i}].{key}"), msg));
    if let Some(name) = o.shape_name.as_deref().filter(|n| !["rect", "circle"].contains(n)) {
        return err("shape", format!("unknown shape `{name}`: allowed `rect`, `circle`"));
    }
    if let Some(name) = o.path_name.as_deref().filter(|n| !["bounce", "orbit"].contains(n)) {
        return err("path", format!("unknown path `{name}`: allowed `bounce`, `orbit`"));
    }
    let (box_w, box_h) = object_box(i, o, i64::from(width), i64::from(height))?;
    if let Some(color) = &o.color {
        if color.len() != 3 || color.iter().any(|c| !(0..=255).contains(c)) {
            return err("color", format!("invalid value {color:?}: allowed [r, g, b], each 0 to 255"));
        }
    }
    if let Some(speed) = o.speed {
        if !(speed.is_finite() && (0.0..=10_000.0).contains(&speed)) {
            return err("speed", format!("invalid value {speed}: allowed 0 to 10000 pixels per second"));
        }
    }
    validate_object_path(i, o, (box_w, box_h), width, height)
}

/// The box an object takes (`rect`: width and height; `circle`: its diameter), checked against
/// the `w`x`h` frame.
fn object_box(i: usize, o: &SceneObjectConfig, w: i64, h: i64) -> Result<(i64, i64), (String, String)> {
    let err = |key: &str, msg: String| Err((format!("source.object[{i}].{key}"), msg));
    let size = |key: &str, value: Option<i64>, default: i64, max: i64| match value.unwrap_or(default) {
        v if (1..=max).contains(&v) => Ok(v),
        v => Err((format!("source.object[{i}].{key}"), format!("invalid value {v}: allowed 1 to {max}"))),
    };
    Ok(match o.shape() {
        SceneShape::Rect => {
            if o.radius.is_some() {
                return err("radius", "only a `circle` has a radius: give a `rect` width and height".into());
            }
            (size("width", o.width, 80, w)?, size("height", o.height, 60, h)?)
        }
        SceneShape::Circle => {
            for (key, value) in [("width", o.width), ("height", o.height)] {
                if value.is_some() {
                    return err(key, "a `circle` has a radius, not a width or height".into());
                }
            }
            let d = size("radius", o.radius, 30, w.min(h) / 2)? * 2;
            (d, d)
        }
    })
}

/// The keys of an object's path: a bounce's `start` (inside the frame for its box) and
/// `direction`, an orbit's `center`, `orbit-radius` and `phase`; the other path's keys refused.
fn validate_object_path(
    i: usize,
    o: &SceneObjectConfig,
    (box_w, box_h): (i64, i64),
    width: u32,
    height: u32,
) -> Result<(), (String, String)> {
    let err = |key: &str, msg: String| Err((format!("source.object[{i}].{key}"), msg));
    let (w, h) = (i64::from(width), i64::from(height));
    let finite = |key: &str, values: &[f64]| {
        if values.iter().all(|v| v.is_finite()) {
            Ok(())
        } else {
            Err((format!("source.object[{i}].{key}"), format!("invalid value {values:?}: must be finite")))
        }
    };
    match o.path() {
        ScenePath::Bounce => {
            let orbit_keys = [
                ("center", o.center.is_some()),
                ("orbit-radius", o.orbit_radius.is_some()),
                ("phase", o.phase.is_some()),
            ];
            if let Some((key, _)) = orbit_keys.into_iter().find(|(_, set)| *set) {
                return err(
                    key,
                    format!("`{key}` belongs to `path = \"orbit\"`; a bounce has `start` and `direction`"),
                );
            }
            if let Some(d) = o.direction {
                finite("direction", &[d])?;
            }
            if let Some([x, y]) = o.start {
                finite("start", &[x, y])?;
                let (max_x, max_y) = (w - box_w, h - box_h);
                if !(0.0..=max_x as f64).contains(&x) || !(0.0..=max_y as f64).contains(&y) {
                    return err(
                        "start",
                        format!(
                            "[{x}, {y}] puts the object ({box_w}x{box_h}) outside the {width}x{height} frame: allowed x 0 to {max_x}, y 0 to {max_y}"
                        ),
                    );
                }
            }
        }
        ScenePath::Orbit => {
            let bounce_keys = [("start", o.start.is_some()), ("direction", o.direction.is_some())];
            if let Some((key, _)) = bounce_keys.into_iter().find(|(_, set)| *set) {
                return err(
                    key,
                    format!(
                        "`{key}` belongs to `path = \"bounce\"`; an orbit has `center`, `orbit-radius` and `phase`"
                    ),
                );
            }
            if let Some([x, y]) = o.center {
                finite("center", &[x, y])?;
            }
            if let Some(p) = o.phase {
                finite("phase", &[p])?;
            }
            if let Some(r) = o.orbit_radius {
                if !(r.is_finite() && (0.0..=f64::from(width.max(height))).contains(&r)) {
                    return err("orbit-radius", format!("invalid value {r}: allowed 0 to {}", width.max(height)));
                }
            }
        }
    }
    Ok(())
}
