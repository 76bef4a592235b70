//! Types and functions shared by every framebus process: the frame header, pixel formats, the
//! deployment config, service naming, iceoryx2 set-up, the control protocol and the persisted
//! command state, the synthetic pattern and statistics.
//!
//! Invariant: this crate never links OpenCV or v4l, and does no I/O beyond reading a config
//! file, the small per-camera command-state files (`state`), talking to iceoryx2 (and guarding
//! its node counter, `node_counter`), reading the recorder's events journal (`journal::read`) and
//! reading the free space of /dev/shm (`shm_budget`).

pub mod abi;
pub mod cli;
pub mod clock;
pub mod config;
pub mod control;
pub mod encoded;
pub mod figures;
pub mod format;
pub mod fs_space;
pub mod header;
pub mod ipc;
pub mod journal;
pub mod limits;
pub mod logging;
pub mod names;
pub mod pattern;
pub mod policy;
pub mod protocol;
pub mod results;
pub mod scene;
pub mod secure_fs;
pub mod shm_budget;
pub mod signals;
pub mod state;
pub mod stats;

pub use ipc::node_counter;

pub use config::{CameraConfig, ConfigError, Deployment};
pub use format::PixelFormat;
pub use header::FrameHeader;
pub use names::{ProcessRole, Role, ServiceKind};
pub use policy::ReaderPolicy;
