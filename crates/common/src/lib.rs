//! Types and functions shared by every framebus process: the frame header, pixel formats, the
//! deployment config, service naming, iceoryx2 set-up, the synthetic pattern and statistics.
//!
//! Invariant: this crate never links OpenCV or v4l, and does no I/O beyond reading a config
//! file and talking to iceoryx2.

pub mod clock;
pub mod config;
pub mod format;
pub mod header;
pub mod ipc;
pub mod logging;
pub mod names;
pub mod pattern;
pub mod stats;

pub use config::{CameraConfig, ConfigError, Deployment};
pub use format::PixelFormat;
pub use header::FrameHeader;
pub use names::{ProcessRole, ServiceKind};
