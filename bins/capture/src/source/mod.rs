//! Frame sources. A source produces frames of one fixed format and writes each one straight
//! into the loaned shared-memory sample it is given; adding a camera type means adding one
//! implementation of [`FrameSource`].

mod file;
mod scene;
mod synthetic;
mod v4l2;

use core::fmt;
use core::mem::MaybeUninit;
use std::time::Duration;

use anyhow::Context;
use framebus_common::config::{ControlValue, SourceConfig};
use framebus_common::header::{FLAG_SCENE, FLAG_SYNTHETIC_STAMP};
use framebus_common::ipc::IpcService;
use framebus_common::state::StateStore;
use framebus_common::{CameraConfig, Deployment, FrameHeader, PixelFormat};
use iceoryx2::sample_mut_uninit::SampleMutUninit;

pub use file::FileSource;
pub use scene::SceneSource;
pub use synthetic::SyntheticSource;
pub use v4l2::V4l2Source;

/// What decides when the next frame is produced.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pacing {
    /// Capture waits this long between frames (timer-paced sources).
    Period(Duration),
    /// As fast as possible (fps = 0).
    Unpaced,
    /// The source blocks in [`FrameSource::grab`] until the device has a frame.
    Device,
}

/// The format a source actually delivers (what the frame header will say).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceFormat {
    /// Pixel format of the frames.
    pub format: PixelFormat,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

impl SourceFormat {
    /// Bytes of the largest frame of this format.
    pub fn max_frame_bytes(&self) -> usize {
        self.format.frame_bytes(self.width, self.height)
    }
}

/// What a source really delivers, after negotiation with the device: what capture status and
/// the start-up log report.
#[derive(Debug, Clone, PartialEq)]
pub struct Effective {
    /// The frames as published (equal to [`FrameSource::format`]).
    pub published: SourceFormat,
    /// The pixel format the device delivers (V4L2), when the source has a device.
    pub device_format: Option<PixelFormat>,
    /// Frames per second the source runs at: granted by the driver (V4L2), configured
    /// (timer-paced sources), 0 when unpaced or unknown.
    pub fps: f64,
    /// Frames the source or its driver lost so far (driver sequence gaps, corrupt buffers).
    pub source_drops: u64,
    /// Times the source was reopened after it became unavailable.
    pub reconnects: u64,
    /// Where the granted settings differ from the configured ones (`size 800x600 → 640x480`);
    /// empty when everything was granted.
    pub adjustments: Vec<String>,
    /// V4L2: the memory of the driver's buffers (`mmap` or `userptr`).
    pub memory: Option<&'static str>,
}

/// Metadata of a grabbed frame, before it is written into a sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grab {
    /// Bytes the frame will occupy in the sample.
    pub payload_len: usize,
    /// The source's own sequence number.
    pub sequence: u64,
    /// Capture time on CLOCK_MONOTONIC (ns).
    pub capture_mono_ns: u64,
    /// Capture time on CLOCK_REALTIME (ns).
    pub capture_realtime_ns: u64,
    /// Frames the source dropped so far (cumulative).
    pub source_drops: u64,
}

/// Why no frame was grabbed.
#[derive(Debug)]
pub enum SourceError {
    /// The source has no more frames (a file without looping).
    Ended,
    /// The device is gone for now; capture retries with backoff via [`FrameSource::reconnect`].
    Unavailable(String),
    /// No frame arrived within the source's poll timeout; capture checks for termination
    /// requests and calls [`FrameSource::grab`] again.
    NoFrameYet,
    /// This one frame is unusable (corrupt buffer, undecodable JPEG); capture skips it, gives
    /// it no frame id, and carries on.
    BadFrame(String),
    /// Anything else: capture stops with this error.
    Fatal(anyhow::Error),
}

/// A sample loaned from capture's frame publisher, not yet written: what a zero-copy source
/// hands its device to fill.
pub type Loan = SampleMutUninit<IpcService, [MaybeUninit<u8>], FrameHeader>;

/// A zero-copy source's need for loaned samples (see [`FrameSource::lending`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lending {
    /// Samples the device holds at once (its buffers): capture's publisher must be able to loan
    /// this many at the same time, so the shared memory reserves them.
    pub buffers: usize,
    /// Bytes of each sample (the published frame size).
    pub sample_bytes: usize,
}

/// The type of a camera control.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlKind {
    /// 32-bit integer with a range and step.
    Integer,
    /// On/off.
    Boolean,
    /// One of named items.
    Menu,
    /// One of integer items (the label is the value).
    IntegerMenu,
    /// 64-bit integer.
    Integer64,
    /// An action without a value (writing triggers it).
    Button,
    /// Text.
    String,
    /// Bit field.
    Bitmask,
    /// Anything else (compound types), with the driver's type code.
    Compound(u32),
}

impl ControlKind {
    /// Short name: `int`, `bool`, `menu`, `intmenu`, `int64`, `button`, `string`, `bitmask`,
    /// `compound`.
    pub fn name(self) -> &'static str {
        match self {
            ControlKind::Integer => "int",
            ControlKind::Boolean => "bool",
            ControlKind::Menu => "menu",
            ControlKind::IntegerMenu => "intmenu",
            ControlKind::Integer64 => "int64",
            ControlKind::Button => "button",
            ControlKind::String => "string",
            ControlKind::Bitmask => "bitmask",
            ControlKind::Compound(_) => "compound",
        }
    }

    /// Whether the control holds an integer value that can be read and set.
    pub fn has_value(self) -> bool {
        matches!(
            self,
            ControlKind::Integer
                | ControlKind::Boolean
                | ControlKind::Menu
                | ControlKind::IntegerMenu
                | ControlKind::Integer64
                | ControlKind::Bitmask
        )
    }
}

/// One camera control as the device describes it now.
#[derive(Debug, Clone, PartialEq)]
pub struct ControlInfo {
    /// Normalised name, as in `[camera.source.controls]` (`exposure_time_absolute`).
    pub name: String,
    /// The driver's name (`Exposure Time, Absolute`).
    pub label: String,
    /// Type.
    pub kind: ControlKind,
    /// Smallest value.
    pub minimum: i64,
    /// Largest value.
    pub maximum: i64,
    /// Step between values.
    pub step: u64,
    /// The driver's default.
    pub default: i64,
    /// Current value (None when the control cannot be read).
    pub current: Option<i64>,
    /// Menu items: (value, label).
    pub menu: Vec<(i64, String)>,
    /// The value can only be read.
    pub read_only: bool,
    /// An automatic mode currently overrides the value.
    pub inactive: bool,
}

impl ControlInfo {
    /// Menu items as `1 = Manual Mode, 3 = Aperture Priority Mode`.
    pub fn menu_text(&self) -> String {
        self.menu.iter().map(|(i, n)| format!("{i} = {n}")).collect::<Vec<_>>().join(", ")
    }

    /// Compact form for error messages: `brightness (int 0..255)`, `auto_exposure (menu:
    /// 1=Manual Mode, 3=Aperture Priority Mode)`.
    pub fn summary(&self) -> String {
        let read_only = if self.read_only { ", read-only" } else { "" };
        match self.kind {
            ControlKind::Boolean => format!("{} (bool{read_only})", self.name),
            ControlKind::Menu | ControlKind::IntegerMenu => format!(
                "{} ({}: {}{read_only})",
                self.name,
                self.kind.name(),
                self.menu.iter().map(|(i, n)| format!("{i}={n}")).collect::<Vec<_>>().join(", ")
            ),
            _ => format!("{} ({} {}..{}{read_only})", self.name, self.kind.name(), self.minimum, self.maximum),
        }
    }
}

impl fmt::Display for ControlInfo {
    /// One line for a listing: name, type, range and step, default, current value, menu items,
    /// flags.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.name, self.kind.name())?;
        match self.kind {
            ControlKind::Integer | ControlKind::Integer64 => {
                write!(f, " {}..{} step {}", self.minimum, self.maximum, self.step)?
            }
            ControlKind::Bitmask => write!(f, " 0..0x{:x}", self.maximum)?,
            _ => {}
        }
        if self.kind.has_value() {
            write!(f, " default {}", self.default)?;
        }
        match self.current {
            Some(v) => write!(f, " current {v}")?,
            None if self.kind.has_value() => write!(f, " current ?")?,
            None => {}
        }
        if !self.menu.is_empty() {
            write!(f, " [{}]", self.menu_text())?;
        }
        if self.read_only {
            write!(f, " read-only")?;
        }
        if self.inactive {
            write!(f, " inactive")?;
        }
        Ok(())
    }
}

/// A control that was set: the value asked and the one the device reads back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlApplied {
    /// Normalised name.
    pub name: String,
    /// The raw value written.
    pub requested: i64,
    /// What the device reports afterwards (a driver may clamp or round).
    pub accepted: i64,
}

/// Why camera controls could not be listed or set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlError {
    /// The source has no controls (synthetic pattern, file).
    Unsupported(String),
    /// A name or value the device does not accept; the message lists what it offers.
    Rejected(String),
    /// The device is away (reconnecting) or failed; nothing more was set.
    Unavailable(String),
    /// The device took the first settings, then refused one (after every setting had passed
    /// the checks against what it offers); the ones it took stay set.
    Partly {
        /// What was set before the refusal.
        applied: Vec<ControlApplied>,
        /// Why the next one was refused.
        error: Box<ControlError>,
    },
}

impl fmt::Display for ControlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ControlError::Unsupported(m) | ControlError::Rejected(m) | ControlError::Unavailable(m) => f.write_str(m),
            ControlError::Partly { applied, error } => {
                let done = applied.iter().map(|a| format!("{} = {}", a.name, a.accepted)).collect::<Vec<_>>();
                write!(f, "{error} (already set: {})", done.join(", "))
            }
        }
    }
}

impl std::error::Error for ControlError {}

/// A camera, file or generator that produces frames.
pub trait FrameSource {
    /// Human-readable description for logs (`synthetic 640x480 BGR3`, `/dev/video0`, ...).
    fn describe(&self) -> String;
    /// The format of every frame this source produces.
    fn format(&self) -> SourceFormat;
    /// What paces the frames.
    fn pacing(&self) -> Pacing;
    /// Waits for (or produces) the next frame and returns its metadata.
    fn grab(&mut self) -> Result<Grab, SourceError>;
    /// Writes the grabbed frame into `dst` (exactly `payload_len` bytes), every byte once;
    /// `frame_id` is the id capture gives it (stamped by sources that stamp).
    fn write_into(&mut self, frame_id: u64, dst: &mut [MaybeUninit<u8>]) -> Result<(), SourceError>;
    /// Tries to get an unavailable source back; `Unavailable` errors are retried by the caller,
    /// `Fatal` ones stop capture.
    fn reconnect(&mut self) -> Result<(), SourceError> {
        Ok(())
    }
    /// Zero-copy sources: the samples the device fills itself, `None` (the default) for sources
    /// that write each frame into a sample capture loans ([`FrameSource::write_into`]). Capture
    /// sizes its publisher's loans from this at start.
    fn lending(&self) -> Option<Lending> {
        None
    }
    /// Samples the device lacks right now; capture loans that many before the next
    /// [`FrameSource::grab`] and hands each to [`FrameSource::lend`].
    fn loans_missing(&self) -> usize {
        0
    }
    /// Gives the device a loaned sample to fill with a future frame.
    fn lend(&mut self, loan: Loan) -> Result<(), SourceError> {
        drop(loan);
        Ok(())
    }
    /// After a successful [`FrameSource::grab`]: the sample the device already filled with this
    /// frame (zero-copy), to be published as it is. `None`: capture loans a sample and calls
    /// [`FrameSource::write_into`].
    fn take_filled(&mut self) -> Option<Loan> {
        None
    }
    /// The device's camera controls with their current values.
    fn controls(&self) -> Result<Vec<ControlInfo>, ControlError> {
        Err(ControlError::Unsupported(format!("{} has no camera controls", self.describe())))
    }
    /// Sets controls by name while capturing, in order, after checking every one of them against
    /// the device (nothing is set when one is wrong; the error lists what the device offers).
    /// Returns what the device read back. The values are kept and set again after a reconnect.
    fn set_controls(&mut self, settings: &[(String, ControlValue)]) -> Result<Vec<ControlApplied>, ControlError> {
        let _ = settings;
        Err(ControlError::Unsupported(format!("{} has no camera controls", self.describe())))
    }
    /// Stops the source and releases its device (and any samples it holds) before capture drops
    /// its publisher.
    fn close(&mut self) {}
    /// What the source really delivers (format, frame rate, drops so far); capture status
    /// reports this.
    fn effective(&self) -> Effective {
        Effective {
            published: self.format(),
            device_format: None,
            fps: match self.pacing() {
                Pacing::Period(period) if !period.is_zero() => 1.0 / period.as_secs_f64(),
                _ => 0.0,
            },
            source_drops: 0,
            reconnects: 0,
            adjustments: Vec::new(),
            memory: None,
        }
    }
}

/// One line for logs about why no frame was grabbed.
pub fn describe_error(e: &SourceError) -> String {
    match e {
        SourceError::Ended => "source ended".into(),
        SourceError::Unavailable(why) | SourceError::BadFrame(why) => why.clone(),
        SourceError::NoFrameYet => "no frame yet".into(),
        SourceError::Fatal(e) => format!("{e:#}"),
    }
}

/// The header flags of a camera's frames: the synthetic and scene sources stamp every frame
/// ([`FLAG_SYNTHETIC_STAMP`]); a scene's picture is not the test pattern ([`FLAG_SCENE`]).
pub fn header_flags(camera: &CameraConfig) -> u32 {
    match camera.source {
        SourceConfig::Synthetic(_) => FLAG_SYNTHETIC_STAMP,
        SourceConfig::Scene(_) => FLAG_SYNTHETIC_STAMP | FLAG_SCENE,
        SourceConfig::File(_) | SourceConfig::V4l2(_) | SourceConfig::Remote(_) => 0,
    }
}

/// Opens the source a camera's config asks for.
pub fn open_source(deployment: &Deployment, camera: &CameraConfig) -> anyhow::Result<Box<dyn FrameSource>> {
    let source: Box<dyn FrameSource> = match &camera.source {
        SourceConfig::Synthetic(_) => Box::new(SyntheticSource::new(camera)?),
        SourceConfig::Scene(scene) => Box::new(SceneSource::new(camera, scene)?),
        SourceConfig::File(file) => Box::new(
            FileSource::open(camera, file, &deployment.resolve_path(&file.path))
                .with_context(|| format!("opening the file source of camera `{}`", camera.name))?,
        ),
        SourceConfig::V4l2(v4l2) => {
            // Controls set while capturing before (recorded in the camera's state) win over the
            // config's: they are set after them.
            let recorded = StateStore::of(deployment).recorded_controls_or_none(&camera.name);
            Box::new(V4l2Source::open(camera, v4l2, &recorded)?)
        }
        SourceConfig::Remote(remote) => anyhow::bail!(
            "camera `{}` is a remote camera ({}/{}/{} over Zenoh): the bridge publishes its frames (`bridge --camera {}`), not capture",
            camera.name,
            remote.site,
            remote.deployment,
            remote.camera,
            camera.name
        ),
    };
    Ok(source)
}
