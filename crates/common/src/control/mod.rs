//! The control protocol: commands to one process of one camera over iceoryx2 request/response,
//! and its replies. Both messages are fixed-size `#[repr(C)]` records with stable type names, so
//! other languages can speak it; see ARCHITECTURE.md ("Control protocol") before changing them,
//! and bump [`CONTROL_PROTOCOL_VERSION`] and the type names together.
//!
//! The request carries only integers, so every byte pattern is a valid request: an unknown
//! command code, a wrong version or a bad argument gets an error reply, never a crash. Texts in
//! replies are `StaticString`s, read back only through [`text_of`] (which checks their length).
//!
//! [`server::ControlServer`] serves the protocol in a process; [`client`] sends commands.

pub mod client;
pub mod server;

use core::fmt;

use iceoryx2::prelude::ZeroCopySend;
use iceoryx2_bb_container::string::{StaticString, String as _};
use serde::Serialize;

use crate::format::PixelFormat;
use crate::names::ProcessRole;

pub use client::{ControlClient, ControlError, Target};
pub use server::{Answer, ControlServer, Metrics};

/// Version of the request and reply layouts; a process answers other versions with an error.
pub const CONTROL_PROTOCOL_VERSION: u32 = 1;

/// Capacity of the camera name in a reply (camera names are at most 32 bytes).
pub const CAMERA_TEXT: usize = 32;

/// Capacity of the message text in a reply.
pub const MESSAGE_TEXT: usize = 200;

/// Raw command codes of [`ControlRequest::command`].
pub mod code {
    /// Report the process's status; argument unused.
    pub const STATUS: u32 = 1;
    /// Stop the process cleanly (capture exits 0); argument unused.
    pub const STOP: u32 = 2;
    /// Preview image generation: argument 1 = on, 0 = off.
    pub const SET_PREVIEW: u32 = 3;
    /// Image saving (recording): argument 1 = on, 0 = off.
    pub const SET_SAVING: u32 = 4;
}

/// A command as sent over the wire (24 bytes, every byte pattern valid).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, ZeroCopySend)]
#[type_name("framebus::ControlRequestV1")]
pub struct ControlRequest {
    /// [`CONTROL_PROTOCOL_VERSION`] of the sender (offset 0).
    pub version: u32,
    /// One of the [`code`] constants (offset 4).
    pub command: u32,
    /// Command argument, see [`code`] (offset 8).
    pub argument: u32,
    /// Zero; reserved for later use (offset 12).
    pub reserved: u32,
    /// Chosen by the client, echoed in the reply (offset 16).
    pub nonce: u64,
}

/// Reply status: the command was carried out.
pub const RESULT_OK: u32 = 0;
/// Reply status: the command was refused or malformed; [`ControlReply::message`] says why.
pub const RESULT_ERROR: u32 = 1;

/// The reply to every request. Status fields are filled for every command (a reply always
/// describes the process as it is after the command).
#[repr(C)]
#[derive(Debug, Clone, Copy, ZeroCopySend)]
#[type_name("framebus::ControlReplyV1")]
pub struct ControlReply {
    /// [`CONTROL_PROTOCOL_VERSION`] of the replying process.
    pub version: u32,
    /// [`RESULT_OK`] or [`RESULT_ERROR`].
    pub result: u32,
    /// The request's raw command code, echoed.
    pub command: u32,
    /// The replying process's role, see [`role_code`].
    pub role: u32,
    /// Process id.
    pub pid: u32,
    /// [`ProcessState`] code.
    pub state: u32,
    /// 1 when preview is on for this camera.
    pub preview: u32,
    /// 1 when saving is on for this camera.
    pub saving: u32,
    /// Frame width in pixels of the frames the process handles (0 = unknown).
    pub width: u32,
    /// Frame height in pixels (0 = unknown).
    pub height: u32,
    /// Pixel format fourcc (0 = unknown).
    pub pixel_format: u32,
    /// Zero (keeps the following fields 8-byte aligned).
    pub reserved: u32,
    /// The request's nonce, echoed.
    pub nonce: u64,
    /// Milliseconds since the process started.
    pub uptime_ms: u64,
    /// Frames published (capture) or processed (readers) so far.
    pub frames: u64,
    /// Frames skipped: dropped by the source (capture) or missed from id gaps (readers).
    pub skipped: u64,
    /// Latency p50 over the last statistics window, µs; `u64::MAX` = no sample.
    pub latency_p50_us: u64,
    /// Latency p99 over the last statistics window, µs; `u64::MAX` = no sample.
    pub latency_p99_us: u64,
    /// Measured frames per second over the last statistics window.
    pub fps: f64,
    /// Target frame rate (capture: the pacing in effect, 0 = as fast as possible).
    pub target_fps: f64,
    /// Camera name.
    pub camera: StaticString<CAMERA_TEXT>,
    /// What was done, or why the command failed.
    pub message: StaticString<MESSAGE_TEXT>,
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
    fn code(self) -> u32 {
        match self {
            ProcessState::Running => 1,
            ProcessState::Waiting => 2,
            ProcessState::Degraded => 3,
            ProcessState::Stopping => 4,
        }
    }

    fn from_code(code: u32) -> Option<ProcessState> {
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

/// Wire code of a role in [`ControlReply::role`].
pub fn role_code(role: ProcessRole) -> u32 {
    match role {
        ProcessRole::Capture => 1,
        ProcessRole::Algo => 2,
        ProcessRole::Preview => 3,
        ProcessRole::Recorder => 4,
    }
}

fn role_from_code(code: u32) -> Option<ProcessRole> {
    ProcessRole::ALL.into_iter().find(|r| role_code(*r) == code)
}

/// A decoded command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Report status.
    Status,
    /// Stop the process cleanly.
    Stop,
    /// Turn preview image generation on or off.
    SetPreview(bool),
    /// Turn image saving on or off.
    SetSaving(bool),
}

impl Command {
    /// The wire request for this command.
    pub fn to_request(self, nonce: u64) -> ControlRequest {
        let (command, argument) = match self {
            Command::Status => (code::STATUS, 0),
            Command::Stop => (code::STOP, 0),
            Command::SetPreview(on) => (code::SET_PREVIEW, u32::from(on)),
            Command::SetSaving(on) => (code::SET_SAVING, u32::from(on)),
        };
        ControlRequest { version: CONTROL_PROTOCOL_VERSION, command, argument, reserved: 0, nonce }
    }

    /// Short name for messages (`status`, `stop`, `preview on`, ...).
    pub fn describe(self) -> String {
        let on_off = |on: bool| if on { "on" } else { "off" };
        match self {
            Command::Status => "status".into(),
            Command::Stop => "stop".into(),
            Command::SetPreview(on) => format!("preview {}", on_off(on)),
            Command::SetSaving(on) => format!("saving {}", on_off(on)),
        }
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
            other => Err(DecodeError::UnknownCommand(other)),
        }
    }
}

/// A `StaticString` from any text: non-ASCII characters become `?` (iceoryx2 strings hold
/// ASCII only), and the text is truncated to the capacity.
pub fn static_text<const N: usize>(text: &str) -> StaticString<N> {
    let bytes: Vec<u8> = text.bytes().map(|b| if b == 0 || b >= 128 { b'?' } else { b }).take(N).collect();
    StaticString::from_bytes(&bytes).unwrap_or_default()
}

/// The text of a received `StaticString`, checking its length first (a malformed message
/// cannot make this read out of bounds).
pub fn text_of<const N: usize>(text: &StaticString<N>) -> String {
    if text.len() > N {
        return String::from("<malformed text>");
    }
    String::from_utf8_lossy(text.as_bytes()).into_owned()
}

/// A decoded reply, as ctl prints it (`--json` uses these field names).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProcessStatus {
    /// Role of the process.
    #[serde(serialize_with = "serialize_role")]
    pub role: ProcessRole,
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
    /// Frames skipped (source drops for capture, id gaps for readers).
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
    /// Target frame rate (capture), 0 = as fast as possible.
    pub target_fps: f64,
    /// What the acting process does with its flag: preview `on`/`off`; recorder `off`,
    /// `recording` or `disk-low` (saving on and state degraded). `None` for capture and algo.
    pub activity: Option<&'static str>,
    /// The reply's message (preview and recorder: what they are doing, or their last error).
    pub message: String,
}

fn serialize_role<S: serde::Serializer>(role: &ProcessRole, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(role.name())
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
            reserved: 0,
            nonce: 0,
            uptime_ms: 0,
            frames: 0,
            skipped: 0,
            latency_p50_us: u64::MAX,
            latency_p99_us: u64::MAX,
            fps: 0.0,
            target_fps: 0.0,
            camera: StaticString::new(),
            message: StaticString::new(),
        }
    }

    /// Whether the command was carried out.
    pub fn is_ok(&self) -> bool {
        self.result == RESULT_OK
    }

    /// The reply's message text.
    pub fn message_text(&self) -> String {
        text_of(&self.message)
    }

    /// Decodes the status part of the reply; `None` when a field is not understood (another
    /// version, unknown role or state).
    pub fn status(&self) -> Option<ProcessStatus> {
        if self.version != CONTROL_PROTOCOL_VERSION {
            return None;
        }
        let latency = |v: u64| (v != u64::MAX).then_some(v);
        let role = role_from_code(self.role)?;
        let state = ProcessState::from_code(self.state)?;
        let activity = match role {
            ProcessRole::Preview => Some(if self.preview != 0 { "on" } else { "off" }),
            ProcessRole::Recorder if self.saving == 0 => Some("off"),
            ProcessRole::Recorder if state == ProcessState::Degraded => Some("disk-low"),
            ProcessRole::Recorder => Some("recording"),
            ProcessRole::Capture | ProcessRole::Algo => None,
        };
        Some(ProcessStatus {
            role,
            camera: text_of(&self.camera),
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
        })
    }
}

#[cfg(test)]
mod tests;
