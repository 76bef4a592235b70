//! The command line of `mediaserver` (`mediaserver --help`): in the library, so that tests parse
//! command lines with it (the docs test).

use std::path::PathBuf;

use clap::Parser;

/// Fans each camera's H.264 stream (published by its streamer) out to RTSP and WebRTC viewers.
#[derive(Debug, Parser)]
#[command(version)]
pub struct Args {
    /// Deployment config file (its `[media-server]` table).
    #[arg(long, default_value = "configs/default.toml")]
    pub config: PathBuf,
    /// Accepted for symmetry with the other processes (`ctl up` passes none); ignored.
    #[arg(long, hide = true)]
    pub camera: Option<String>,
    /// Log format (stderr).
    #[command(flatten)]
    pub log: framebus_common::logging::LogArgs,
}
