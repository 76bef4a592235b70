//! The control protocol's messages (the wire types): commands to one process of one camera over
//! iceoryx2 request/response, and its replies. Both are fixed-size `#[repr(C)]` records with
//! stable type names, so other languages can speak them; see docs/control-protocol.md before
//! changing them, and bump [`CONTROL_PROTOCOL_VERSION`] and the type names together.
//!
//! The request carries only integers and bytes, so every byte pattern is a valid request: an
//! unknown command code, a wrong version or a bad argument gets an error reply, never a crash.
//! Texts are a length plus bytes, read back only through [`text_of`] (which checks the length).
//!
//! This module depends on neither transport nor server: [`crate::ipc`] opens the services with
//! these types, [`crate::control`] serves and sends them.

use core::fmt;

use iceoryx2::prelude::ZeroCopySend;
use serde::Serialize;

use crate::format::PixelFormat;
use crate::names::{DeploymentProcess, ProcessRole, Role};

/// Version of the request and reply layouts; a process answers other versions with an error.
pub const CONTROL_PROTOCOL_VERSION: u32 = 2;

/// Capacity of the role name and camera name texts in a reply.
pub const NAME_TEXT: usize = 32;

/// Capacity of the message text in a reply.
pub const MESSAGE_TEXT: usize = 1024;

/// Capacity of the text argument of a request (e.g. `exposure_time_absolute=200 gain=10`).
pub const REQUEST_TEXT: usize = 256;

/// Raw command codes of [`ControlRequest::command`].
pub mod code {
    /// Report the process's status; argument unused.
    pub const STATUS: u32 = 1;
    /// Stop the process cleanly (it exits 0); argument unused.
    pub const STOP: u32 = 2;
    /// Preview image generation: argument 1 = on, 0 = off.
    pub const SET_PREVIEW: u32 = 3;
    /// Image saving (recording): argument 1 = on, 0 = off.
    pub const SET_SAVING: u32 = 4;
    /// List the camera controls the device offers (capture); argument: the index of the first
    /// control to list (0 for all; a reply says `controls F-L of N:` and a client asks again
    /// from L+1 while L+1 < N, since one reply holds [`super::MESSAGE_TEXT`] bytes).
    pub const LIST_CONTROLS: u32 = 5;
    /// Set camera controls (capture); the text holds `name=value` pairs separated by spaces.
    pub const SET_CONTROLS: u32 = 6;
    /// Restart processes (served by the supervisor, `ctl up`, only): the text is `<camera>`
    /// (every process of the camera) or `<camera> <role>`; argument unused. Each stops after
    /// its frame in progress (SIGTERM) and is started again at once, its restart count reset.
    pub const RESTART: u32 = 7;
    /// Start processes that were stopped or given up on (supervisor only); text as
    /// [`RESTART`], argument unused.
    pub const START: u32 = 8;
    /// What the supervisor knows of one process (supervisor only): the text is `<camera>
    /// <role>`; the reply's message is a JSON object (state, pid, restarts, last exit).
    pub const SUPERVISED: u32 = 9;
    /// The stderr lines the supervisor kept of one process (supervisor only): the text is
    /// `<camera> <role>`, the argument the number of the first line wanted (0: every kept
    /// line); the reply's message is a JSON object with as many lines as fit.
    pub const LOGS: u32 = 10;
    /// The process's own figures beyond the status record (streamer, recorder events, media
    /// server; see [`crate::figures`]): the reply's message is their JSON object. The text
    /// selects a part: the media server answers for the camera it names; the others take an
    /// empty text. Argument unused. A process without such figures refuses it.
    pub const FIGURES: u32 = 11;
}

/// A command as sent over the wire (280 bytes, only integers and bytes: every byte pattern
/// decodes to a command or to an error reply).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, ZeroCopySend)]
#[type_name("framebus::ControlRequestV2")]
pub struct ControlRequest {
    /// [`CONTROL_PROTOCOL_VERSION`] of the sender (offset 0).
    pub version: u32,
    /// One of the [`code`] constants (offset 4).
    pub command: u32,
    /// Command argument, see [`code`] (offset 8).
    pub argument: u32,
    /// Bytes used in [`ControlRequest::text`] (offset 12).
    pub text_len: u32,
    /// Chosen by the client, echoed in the reply (offset 16).
    pub nonce: u64,
    /// Text argument, ASCII (offset 24).
    pub text: [u8; REQUEST_TEXT],
}

impl Default for ControlRequest {
    fn default() -> Self {
        ControlRequest { version: 0, command: 0, argument: 0, text_len: 0, nonce: 0, text: [0; REQUEST_TEXT] }
    }
}

/// Reply status: the command was carried out.
pub const RESULT_OK: u32 = 0;
/// Reply status: the command was refused or malformed; [`ControlReply::message`] says why.
pub const RESULT_ERROR: u32 = 1;

/// The reply to every request (1432 bytes). Status fields are filled for every command (a reply
/// always describes the process as it is after the command). Texts are a length plus ASCII
/// bytes, read back only through [`ControlReply::role_text`], [`ControlReply::camera_text`] and
/// [`ControlReply::message_text`], which check the length.
#[repr(C)]
#[derive(Debug, Clone, Copy, ZeroCopySend)]
#[type_name("framebus::ControlReplyV2")]
pub struct ControlReply {
    /// [`CONTROL_PROTOCOL_VERSION`] of the replying process (offset 0).
    pub version: u32,
    /// [`RESULT_OK`] or [`RESULT_ERROR`] (4).
    pub result: u32,
    /// The request's raw command code, echoed (8).
    pub command: u32,
    /// The replying process's role, see [`role_code`]: 5 = a user reader, named in
    /// [`ControlReply::role_name`] (12).
    pub role: u32,
    /// Process id (16).
    pub pid: u32,
    /// [`ProcessState`] code (20).
    pub state: u32,
    /// 1 when preview is on for this camera (24).
    pub preview: u32,
    /// 1 when saving is on for this camera (28).
    pub saving: u32,
    /// Frame width in pixels of the frames the process handles, 0 = unknown (32).
    pub width: u32,
    /// Frame height in pixels, 0 = unknown (36).
    pub height: u32,
    /// Pixel format fourcc, 0 = unknown (40).
    pub pixel_format: u32,
    /// Reader policy code, see [`crate::policy::ReaderPolicy::code`]; 0 for capture (44).
    pub policy: u32,
    /// The request's nonce, echoed (48).
    pub nonce: u64,
    /// Milliseconds since the process started (56).
    pub uptime_ms: u64,
    /// Frames published (capture) or processed (readers: handed to the reader's code) (64).
    pub frames: u64,
    /// Capture: frames the source/driver dropped. Readers: frames their policy released
    /// unread (72).
    pub skipped: u64,
    /// Latency p50 over the last statistics window, µs; `u64::MAX` = no sample (80).
    pub latency_p50_us: u64,
    /// Latency p99 over the last statistics window, µs; `u64::MAX` = no sample (88).
    pub latency_p99_us: u64,
    /// Measured frames per second over the last statistics window (96).
    pub fps: f64,
    /// Capture: the pacing in effect (0 = as fast as possible); `max-fps` readers: their
    /// limit (104).
    pub target_fps: f64,
    /// Readers: frames lost to queue overflow although the policy wanted them (112).
    pub overwritten: u64,
    /// Readers: frames the camera's driver dropped since the reader attached (120).
    pub driver_drops: u64,
    /// Readers: first frame id seen in the current capture run, 0 = none yet (128).
    pub first_frame_id: u64,
    /// Readers: last frame id seen (processed or skipped) in the current capture run (136).
    pub last_frame_id: u64,
    /// Readers: their queue depth (144).
    pub queue_depth: u32,
    /// Bytes used in [`ControlReply::role_name`] (148).
    pub role_name_len: u32,
    /// Bytes used in [`ControlReply::camera`] (152).
    pub camera_len: u32,
    /// Bytes used in [`ControlReply::message`] (156).
    pub message_len: u32,
    /// Role name, ASCII (160).
    pub role_name: [u8; NAME_TEXT],
    /// Camera name, ASCII (192).
    pub camera: [u8; NAME_TEXT],
    /// What was done, or why the command failed, ASCII (224).
    pub message: [u8; MESSAGE_TEXT],
    /// Latency samples since the process started, cumulative per upper bound of
    /// [`LATENCY_BUCKETS_US`] (the last is +Inf): a Prometheus histogram (1248).
    pub latency_buckets: [u64; LATENCY_BUCKETS],
    /// Sum of those samples, µs (1376).
    pub latency_sum_us: u64,
    /// Number of those samples (1384).
    pub latency_count: u64,
    /// Capture: mean cost of publishing one frame; readers: mean time a frame was held by the
    /// reader's code; ns over the last statistics window (1392).
    pub cost_ns: u64,
    /// Recorder: bytes written since it started (1400).
    pub bytes_written: u64,
    /// Recorder: segments completed since it started (1408).
    pub segments: u64,
    /// Recorder: old segments deleted (retention, disk floor) since it started (1416).
    pub deletions: u64,
    /// Preview: viewers connected (1424).
    pub viewers: u32,
    /// Zero (1428).
    pub reserved: u32,
}

/// Buckets of [`ControlReply::latency_buckets`].
pub const LATENCY_BUCKETS: usize = 16;

/// Upper bounds (µs, inclusive) of the latency buckets; the last bucket is +Inf.
pub const LATENCY_BUCKETS_US: [u64; LATENCY_BUCKETS - 1] =
    [50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000];

/// A cumulative latency histogram with the wire's buckets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LatencyHistogram {
    /// Samples per bucket (not cumulative).
    pub counts: [u64; LATENCY_BUCKETS],
    /// Sum of the samples, µs.
    pub sum_us: u64,
}

impl LatencyHistogram {
    /// Adds one sample.
    pub fn record_us(&mut self, us: u64) {
        let bucket = LATENCY_BUCKETS_US.iter().position(|bound| us <= *bound).unwrap_or(LATENCY_BUCKETS - 1);
        self.counts[bucket] += 1;
        self.sum_us = self.sum_us.saturating_add(us);
    }

    /// Samples recorded.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// The counts cumulated by upper bound, as Prometheus and the wire carry them.
    pub fn cumulative(&self) -> [u64; LATENCY_BUCKETS] {
        let mut total = 0;
        self.counts.map(|c| {
            total += c;
            total
        })
    }
}

/// Lifecycle state of a process, as reported in status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProcessState {
    /// Handling frames.
    Running,
    /// Up, but no frames in the last statistics window (a reader without a capture, or capture
    /// waiting for readers).
    Waiting,
    /// Up but not doing its job: capture's source is unavailable (it retries with backoff), or
    /// the recorder's disk is below the free-space floor (it resumes when space is back).
    Degraded,
    /// A stop was requested and the process is shutting down.
    Stopping,
}

impl ProcessState {
    /// Wire code in [`ControlReply::state`].
    pub fn code(self) -> u32 {
        match self {
            ProcessState::Running => 1,
            ProcessState::Waiting => 2,
            ProcessState::Degraded => 3,
            ProcessState::Stopping => 4,
        }
    }

    /// The state of a wire code.
    pub fn from_code(code: u32) -> Option<ProcessState> {
        match code {
            1 => Some(ProcessState::Running),
            2 => Some(ProcessState::Waiting),
            3 => Some(ProcessState::Degraded),
            4 => Some(ProcessState::Stopping),
            _ => None,
        }
    }

    /// Lower-case name, as printed by `ctl status`.
    pub fn name(self) -> &'static str {
        match self {
            ProcessState::Running => "running",
            ProcessState::Waiting => "waiting",
            ProcessState::Degraded => "degraded",
            ProcessState::Stopping => "stopping",
        }
    }
}

/// Wire code of a built-in role in [`ControlReply::role`]; user readers are [`USER_READER_CODE`].
pub fn role_code(role: ProcessRole) -> u32 {
    match role {
        ProcessRole::Capture => 1,
        ProcessRole::Algo => 2,
        ProcessRole::Preview => 3,
        ProcessRole::Recorder => 4,
        ProcessRole::Streamer => 6,
    }
}

/// Wire code of a user reader (any role that is not built in) in [`ControlReply::role`].
pub const USER_READER_CODE: u32 = 5;

/// Wire code of a per-deployment process in [`ControlReply::role`].
pub fn deployment_role_code(process: DeploymentProcess) -> u32 {
    match process {
        DeploymentProcess::MediaServer => 7,
        DeploymentProcess::Bridge => 8,
    }
}

/// Wire code of any role.
pub fn role_code_of(role: &Role) -> u32 {
    match (role.builtin(), DeploymentProcess::from_name(role.as_str())) {
        (Some(builtin), _) => role_code(builtin),
        (None, Some(process)) => deployment_role_code(process),
        (None, None) => USER_READER_CODE,
    }
}

/// A decoded command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Report status.
    Status,
    /// Stop the process cleanly.
    Stop,
    /// Turn preview image generation on or off.
    SetPreview(bool),
    /// Turn image saving on or off.
    SetSaving(bool),
    /// List the camera's controls (capture), starting at this index (see
    /// [`code::LIST_CONTROLS`]).
    ListControls(u32),
    /// Set camera controls: `name=value` pairs separated by spaces (capture).
    SetControls(String),
    /// Restart `<camera>` or `<camera> <role>` (supervisor, see [`code::RESTART`]).
    Restart(String),
    /// Start `<camera>` or `<camera> <role>` (supervisor, see [`code::START`]).
    Start(String),
    /// What the supervisor knows of `<camera> <role>` (see [`code::SUPERVISED`]).
    Supervised(String),
    /// Kept stderr lines of `<camera> <role>` from this line number on (see [`code::LOGS`]).
    Logs(u32, String),
    /// The process's own figures, of the part the text names (see [`code::FIGURES`]).
    Figures(String),
}

impl Command {
    /// The wire request for this command; a text longer than [`REQUEST_TEXT`] is cut (the
    /// client checks lengths before sending).
    pub fn to_request(&self, nonce: u64) -> ControlRequest {
        let (command, argument, text) = match self {
            Command::Status => (code::STATUS, 0, ""),
            Command::Stop => (code::STOP, 0, ""),
            Command::SetPreview(on) => (code::SET_PREVIEW, u32::from(*on), ""),
            Command::SetSaving(on) => (code::SET_SAVING, u32::from(*on), ""),
            Command::ListControls(from) => (code::LIST_CONTROLS, *from, ""),
            Command::SetControls(text) => (code::SET_CONTROLS, 0, text.as_str()),
            Command::Restart(text) => (code::RESTART, 0, text.as_str()),
            Command::Start(text) => (code::START, 0, text.as_str()),
            Command::Supervised(text) => (code::SUPERVISED, 0, text.as_str()),
            Command::Logs(from, text) => (code::LOGS, *from, text.as_str()),
            Command::Figures(text) => (code::FIGURES, 0, text.as_str()),
        };
        let mut request =
            ControlRequest { version: CONTROL_PROTOCOL_VERSION, command, argument, nonce, ..ControlRequest::default() };
        request.text_len = put_text(&mut request.text, text) as u32;
        request
    }

    /// Short name for messages (`status`, `stop`, `preview on`, ...).
    pub fn describe(&self) -> String {
        let on_off = |on: bool| if on { "on" } else { "off" };
        match self {
            Command::Status => "status".into(),
            Command::Stop => "stop".into(),
            Command::SetPreview(on) => format!("preview {}", on_off(*on)),
            Command::SetSaving(on) => format!("saving {}", on_off(*on)),
            Command::ListControls(_) => "control list".into(),
            Command::SetControls(text) => format!("control set {text}"),
            Command::Restart(text) => format!("restart {text}"),
            Command::Start(text) => format!("start {text}"),
            Command::Supervised(text) => format!("supervised {text}"),
            Command::Logs(_, text) => format!("logs {text}"),
            Command::Figures(text) if text.is_empty() => "figures".into(),
            Command::Figures(text) => format!("figures {text}"),
        }
    }

    /// Whether only the supervisor (`ctl up`) serves this command.
    pub fn is_for_supervisor(&self) -> bool {
        matches!(self, Command::Restart(_) | Command::Start(_) | Command::Supervised(_) | Command::Logs(..))
    }
}

/// Why a request could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The sender speaks another protocol version.
    #[error("unsupported control protocol version {0} (this process speaks {CONTROL_PROTOCOL_VERSION})")]
    Version(u32),
    /// The command code is not one of [`code`].
    #[error("unknown command code {0}")]
    UnknownCommand(u32),
    /// The argument is out of range for the command.
    #[error("invalid argument {argument} for command code {command}: allowed 0 (off) or 1 (on)")]
    BadArgument {
        /// The command code.
        command: u32,
        /// The argument received.
        argument: u32,
    },
    /// The text argument is longer than its field or not printable ASCII.
    #[error("invalid text argument: {0}")]
    BadText(String),
}

impl ControlRequest {
    /// Decodes the request; any malformed field is an error to be replied, never a panic.
    pub fn decode(&self) -> Result<Command, DecodeError> {
        if self.version != CONTROL_PROTOCOL_VERSION {
            return Err(DecodeError::Version(self.version));
        }
        let flag = || match self.argument {
            0 => Ok(false),
            1 => Ok(true),
            argument => Err(DecodeError::BadArgument { command: self.command, argument }),
        };
        match self.command {
            code::STATUS => Ok(Command::Status),
            code::STOP => Ok(Command::Stop),
            code::SET_PREVIEW => Ok(Command::SetPreview(flag()?)),
            code::SET_SAVING => Ok(Command::SetSaving(flag()?)),
            code::LIST_CONTROLS => Ok(Command::ListControls(self.argument)),
            code::SET_CONTROLS => Ok(Command::SetControls(self.text_argument()?)),
            code::RESTART => Ok(Command::Restart(self.text_argument()?)),
            code::START => Ok(Command::Start(self.text_argument()?)),
            code::SUPERVISED => Ok(Command::Supervised(self.text_argument()?)),
            code::LOGS => Ok(Command::Logs(self.argument, self.text_argument()?)),
            code::FIGURES => Ok(Command::Figures(self.text_argument()?)),
            other => Err(DecodeError::UnknownCommand(other)),
        }
    }

    /// The text argument, checked: within its field, printable ASCII only.
    fn text_argument(&self) -> Result<String, DecodeError> {
        let len = self.text_len as usize;
        let text = self.text.get(..len).ok_or_else(|| {
            DecodeError::BadText(format!("length {len} is more than the {REQUEST_TEXT} bytes it may use"))
        })?;
        if !text.iter().all(|b| b.is_ascii_graphic() || *b == b' ') {
            return Err(DecodeError::BadText("only printable ASCII is allowed".into()));
        }
        Ok(String::from_utf8_lossy(text).into_owned())
    }
}

/// Writes `text` into a fixed text field: non-ASCII and control characters become `?`, the text
/// is cut to the field's capacity and the rest zeroed. Returns the bytes used.
pub fn put_text(field: &mut [u8], text: &str) -> usize {
    let mut used = 0;
    for (slot, byte) in field.iter_mut().zip(text.bytes()) {
        *slot = if byte.is_ascii_graphic() || byte == b' ' { byte } else { b'?' };
        used += 1;
    }
    field[used..].fill(0);
    used
}

/// The text of a received field, checking its length first (a malformed message cannot make
/// this read out of bounds).
pub fn text_of(field: &[u8], len: u32) -> String {
    match field.get(..len as usize) {
        Some(bytes) => String::from_utf8_lossy(bytes).into_owned(),
        None => String::from("<malformed text>"),
    }
}

/// A decoded reply, as ctl prints it (`--json` uses these field names).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProcessStatus {
    /// Role of the process: `capture`, `algo`, `preview`, `recorder` or a user reader's name.
    pub role: String,
    /// Whether the role is a user reader (not one of the built-in processes, nor a process of
    /// the whole deployment such as the media server).
    pub user_reader: bool,
    /// Camera name.
    pub camera: String,
    /// Process id.
    pub pid: u32,
    /// Lifecycle state.
    pub state: ProcessState,
    /// Seconds since the process started.
    pub uptime_secs: f64,
    /// Frames published (capture) or processed (readers).
    pub frames: u64,
    /// Measured frames per second over the last statistics window.
    pub fps: f64,
    /// Capture: frames the source dropped. Readers: frames their policy released unread.
    pub skipped: u64,
    /// Latency p50 in µs over the last statistics window.
    pub latency_p50_us: Option<u64>,
    /// Latency p99 in µs over the last statistics window.
    pub latency_p99_us: Option<u64>,
    /// Preview flag of the camera.
    pub preview: bool,
    /// Saving flag of the camera.
    pub saving: bool,
    /// Frame format, when known: width, height, fourcc.
    pub format: Option<FrameFormat>,
    /// Target frame rate (capture; `max-fps` readers: their limit), 0 = as fast as possible.
    pub target_fps: f64,
    /// What the acting process does with its flag: preview `on`/`off`; recorder `off`,
    /// `armed` (triggers or a pre-roll wait for an event), `recording` (saving on, or a clip
    /// an event started), `disk-low` or `write-error` (state degraded). `None` for the others.
    pub activity: Option<&'static str>,
    /// The reply's message (preview and recorder: what they are doing, or their last error).
    pub message: String,
    /// Reader accounting; `None` for capture and the per-deployment processes.
    pub reader: Option<ReaderAccounting>,
    /// Latency histogram since the process started (cumulative counts per `le` bound, µs;
    /// the last is `+Inf`), with its sum and count.
    pub latency_histogram: HistogramStatus,
    /// Capture: mean publish cost per frame; readers: mean time a frame was held; ns.
    pub cost_ns: u64,
    /// Recorder: bytes written.
    pub bytes_written: u64,
    /// Recorder: segments completed.
    pub segments: u64,
    /// Recorder: old segments deleted.
    pub deletions: u64,
    /// Preview: viewers connected.
    pub viewers: u32,
}

/// A latency histogram in a decoded status.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistogramStatus {
    /// Upper bounds in µs (`None` = +Inf) with the cumulative count of samples at or below.
    pub buckets: Vec<(Option<u64>, u64)>,
    /// Sum of the samples, µs.
    pub sum_us: u64,
    /// Number of samples.
    pub count: u64,
}

/// Where the frames a reader did not process went (see docs/reader-loop.md):
/// `published == processed + skipped + overwritten` over the frames published since the reader
/// attached, up to the frames still in its queue.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ReaderAccounting {
    /// The reader's policy: `newest`, `every` or `max-fps`.
    pub policy: &'static str,
    /// Its queue depth.
    pub queue_depth: u32,
    /// Frames published by capture that the reader has accounted for (seen as processed,
    /// skipped or overwritten), since it attached.
    pub published: u64,
    /// Frames handed to the reader's code.
    pub processed: u64,
    /// Frames its policy released unread (`newest`: a newer frame was there; `max-fps`: not
    /// due).
    pub skipped: u64,
    /// Frames lost to queue overflow although the policy wanted them (`every`).
    pub overwritten: u64,
    /// Frames the camera's driver dropped (never published) since the reader attached.
    pub driver_drops: u64,
    /// First frame id seen in the current capture run (0 = none yet).
    pub first_frame_id: u64,
    /// Last frame id seen in the current capture run.
    pub last_frame_id: u64,
}

/// Frame format in a status reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct FrameFormat {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Fourcc as text (`BGR3`, ...).
    pub fourcc: FourccText,
}

/// A fourcc printed as its four characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FourccText(pub u32);

impl fmt::Display for FourccText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match PixelFormat::from_fourcc(self.0) {
            Some(format) => write!(f, "{format}"),
            None => {
                let bytes = self.0.to_le_bytes();
                let printable = bytes.iter().all(|b| b.is_ascii_graphic() || *b == b' ');
                if printable {
                    write!(f, "{}", String::from_utf8_lossy(&bytes))
                } else {
                    write!(f, "0x{:08x}", self.0)
                }
            }
        }
    }
}

impl Serialize for FourccText {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl ControlReply {
    /// An empty reply (every number 0, empty texts) of the current version.
    pub fn empty() -> ControlReply {
        ControlReply {
            version: CONTROL_PROTOCOL_VERSION,
            result: RESULT_OK,
            command: 0,
            role: 0,
            pid: 0,
            state: 0,
            preview: 0,
            saving: 0,
            width: 0,
            height: 0,
            pixel_format: 0,
            policy: 0,
            nonce: 0,
            uptime_ms: 0,
            frames: 0,
            skipped: 0,
            latency_p50_us: u64::MAX,
            latency_p99_us: u64::MAX,
            fps: 0.0,
            target_fps: 0.0,
            overwritten: 0,
            driver_drops: 0,
            first_frame_id: 0,
            last_frame_id: 0,
            queue_depth: 0,
            role_name_len: 0,
            camera_len: 0,
            message_len: 0,
            role_name: [0; NAME_TEXT],
            camera: [0; NAME_TEXT],
            message: [0; MESSAGE_TEXT],
            latency_buckets: [0; LATENCY_BUCKETS],
            latency_sum_us: 0,
            latency_count: 0,
            cost_ns: 0,
            bytes_written: 0,
            segments: 0,
            deletions: 0,
            viewers: 0,
            reserved: 0,
        }
    }

    /// Whether the command was carried out.
    pub fn is_ok(&self) -> bool {
        self.result == RESULT_OK
    }

    /// Sets the message text (cut to [`MESSAGE_TEXT`] bytes).
    pub fn set_message(&mut self, text: &str) {
        self.message_len = put_text(&mut self.message, text) as u32;
    }

    /// Sets the camera name.
    pub fn set_camera(&mut self, text: &str) {
        self.camera_len = put_text(&mut self.camera, text) as u32;
    }

    /// Sets the role (its wire code and its name).
    pub fn set_role(&mut self, role: &Role) {
        self.role = role_code_of(role);
        self.role_name_len = put_text(&mut self.role_name, role.as_str()) as u32;
    }

    /// The reply's message text.
    pub fn message_text(&self) -> String {
        text_of(&self.message, self.message_len)
    }

    /// The reply's camera name.
    pub fn camera_text(&self) -> String {
        text_of(&self.camera, self.camera_len)
    }

    /// The reply's role name.
    pub fn role_text(&self) -> String {
        text_of(&self.role_name, self.role_name_len)
    }

    /// Decodes the status part of the reply; `None` when a field is not understood (another
    /// version, unknown role or state).
    pub fn status(&self) -> Option<ProcessStatus> {
        if self.version != CONTROL_PROTOCOL_VERSION {
            return None;
        }
        let latency = |v: u64| (v != u64::MAX).then_some(v);
        let role = Role::new(&self.role_text()).ok()?;
        let builtin = role.builtin();
        if role_code_of(&role) != self.role {
            return None;
        }
        let state = ProcessState::from_code(self.state)?;
        let activity = self.activity(builtin, state);
        let per_deployment = DeploymentProcess::from_name(role.as_str()).is_some();
        let reader = match builtin {
            Some(ProcessRole::Capture) => None,
            None if per_deployment => None,
            _ => Some(ReaderAccounting {
                policy: ReaderPolicyCode(self.policy).name(),
                queue_depth: self.queue_depth,
                published: self.frames.saturating_add(self.skipped).saturating_add(self.overwritten),
                processed: self.frames,
                skipped: self.skipped,
                overwritten: self.overwritten,
                driver_drops: self.driver_drops,
                first_frame_id: self.first_frame_id,
                last_frame_id: self.last_frame_id,
            }),
        };
        Some(ProcessStatus {
            role: role.as_str().to_string(),
            user_reader: self.role == USER_READER_CODE,
            camera: self.camera_text(),
            pid: self.pid,
            state,
            uptime_secs: self.uptime_ms as f64 / 1000.0,
            frames: self.frames,
            fps: (self.fps * 100.0).round() / 100.0,
            skipped: self.skipped,
            latency_p50_us: latency(self.latency_p50_us),
            latency_p99_us: latency(self.latency_p99_us),
            preview: self.preview != 0,
            saving: self.saving != 0,
            format: (self.width > 0 && self.height > 0).then_some(FrameFormat {
                width: self.width,
                height: self.height,
                fourcc: FourccText(self.pixel_format),
            }),
            target_fps: (self.target_fps * 1000.0).round() / 1000.0,
            activity,
            message: self.message_text(),
            reader,
            latency_histogram: HistogramStatus {
                buckets: LATENCY_BUCKETS_US.iter().map(|b| Some(*b)).chain([None]).zip(self.latency_buckets).collect(),
                sum_us: self.latency_sum_us,
                count: self.latency_count,
            },
            cost_ns: self.cost_ns,
            bytes_written: self.bytes_written,
            segments: self.segments,
            deletions: self.deletions,
            viewers: self.viewers,
        })
    }

    /// What the process is doing, as `ctl status` shows it: the preview's flag, the
    /// recorder's state; `None` for other roles.
    fn activity(&self, builtin: Option<ProcessRole>, state: ProcessState) -> Option<&'static str> {
        match builtin {
            Some(ProcessRole::Preview) => Some(if self.preview != 0 { "on" } else { "off" }),
            // The recorder's message starts with what it does (`recording …`, `armed: …`,
            // `disk-low…: <why>`, `write-error…: <error>`, `off: …`): with triggers it records
            // clips while saving (the manual flag) is off.
            Some(ProcessRole::Recorder) => {
                let message = self.message_text();
                let named = ["recording", "armed", "disk-low", "write-error", "off"]
                    .into_iter()
                    .find(|a| message.starts_with(a));
                Some(match named {
                    Some(activity) => activity,
                    None if self.saving == 0 => "off",
                    None if state == ProcessState::Degraded => "disk-low",
                    None => "recording",
                })
            }
            _ => None,
        }
    }
}

/// A reader policy's wire code, see [`crate::policy::ReaderPolicy::code`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReaderPolicyCode(pub u32);

impl ReaderPolicyCode {
    /// The policy's name, `unknown` for a code this build does not know.
    pub fn name(self) -> &'static str {
        match self.0 {
            1 => "newest",
            2 => "every",
            3 => "max-fps",
            _ => "unknown",
        }
    }
}

#[cfg(test)]
mod tests;
