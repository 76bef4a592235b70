//! Read a framebus camera from your own program: frames in place in shared memory (zero
//! copies), under a policy, with `ctl status` and `ctl stop` answered for you.
//!
//! ```no_run
//! fn main() -> Result<(), framebus::Error> {
//!     let camera = framebus::Camera::open("configs/default.toml", "cam0")?;
//!     for frame in camera.frames() {
//!         let frame = frame?;
//!         let pixels: &[u8] = frame.bytes(); // in shared memory, read-only
//!         println!("frame {} {}x{} {} bytes", frame.id(), frame.width(), frame.height(), pixels.len());
//!     } // ends on SIGINT/SIGTERM or `ctl stop cam0 <role>`
//!     Ok(())
//! }
//! ```
//!
//! What you get:
//! - **A policy** ([`ReaderPolicy`]), from the config (`[[camera.reader]] name = "<role>"
//!   policy = "every"`) or [`CameraBuilder::policy`]: `newest` (default; frames that arrive
//!   while you work are skipped), `every` (lossless while you keep up; overflow is counted,
//!   capture never waits), `max-fps` (at most N frames a second).
//! - **Control for free.** A thread of the library serves the process's control service under
//!   its role name (default: the program's file name; [`CameraBuilder::role`]). `ctl status`
//!   lists it with fps, latency and where every frame went (processed, skipped, overwritten,
//!   driver drops), and answers within milliseconds even while one frame takes seconds.
//!   `ctl stop <camera> <role>`, SIGINT and SIGTERM end the loop after the frame in progress.
//!   A second Ctrl-C exits at once.
//! - **One loop with a closed set of events** ([`Camera::next_event`]: frame, command, timer,
//!   stop) for programs that also act on commands or run periodic work; the built-in algo,
//!   preview and recorder processes are written on it.
//!
//! A frame is valid only until it is dropped (the sample goes back to capture): copy what you
//! keep. Taking a frame while still holding the previous one is an error
//! ([`Error::FrameStillHeld`]). With the `opencv` feature, `Frame::mat()` gives a `Mat` over
//! the same memory.

mod accounting;
mod camera;
mod control;

pub use camera::{Camera, CameraBuilder, Event, Frame, Frames, Gap, ReaderSettings, ReaderStats, TimerId};
pub use control::{ProcessReport, StopReason};
pub use framebus_common::control::{Command, ProcessState};
pub use framebus_common::results::{Detection, Outcome};
pub use framebus_common::{CameraConfig, Deployment, FrameHeader, PixelFormat, ReaderPolicy, Role};

/// Why opening a camera or reading a frame failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The config file could not be read or is invalid (the message names the file and key).
    #[error(transparent)]
    Config(#[from] framebus_common::ConfigError),
    /// An iceoryx2 operation failed (the message names the camera and service; e.g. all reader
    /// slots taken, or another process already serving this role).
    #[error(transparent)]
    Ipc(#[from] framebus_common::ipc::IpcError),
    /// The role name is not valid.
    #[error(transparent)]
    Role(#[from] framebus_common::names::RoleNameError),
    /// The queue depth does not fit the camera's shared-memory layout.
    #[error("camera `{camera}`: queue depth {depth} is not possible: allowed 1 to {max} with the `slots` and `max-readers` of {file} (raise `slots` for deeper queues)")]
    QueueDepth {
        /// Camera name.
        camera: String,
        /// The queue depth asked for.
        depth: u32,
        /// The largest possible.
        max: usize,
        /// The config file.
        file: String,
    },
    /// The previous frame is still held: drop it before taking the next one (a reader holds
    /// one frame at a time; copy what you keep).
    #[error("the previous frame is still held: drop it before taking the next one (copy what you keep)")]
    FrameStillHeld,
    /// A result does not fit the results record (too many boxes, JSON too long).
    #[error(transparent)]
    Result(#[from] framebus_common::results::ResultError),
    /// An OpenCV call failed.
    #[error("opencv: {0}")]
    OpenCv(String),
}
