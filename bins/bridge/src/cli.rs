//! The command line of `bridge` (`bridge --help`): in the library, so that tests parse command
//! lines with it (the docs test).

use std::path::PathBuf;

use clap::Parser;
use framebus_common::logging::LogArgs;

/// Links the deployment to other hosts over Zenoh (its `[zenoh]` table): exports the cameras
/// with `[camera.export]`; with `--camera`, imports that `[[remote-camera]]` into local shared
/// memory (what `ctl up` runs in place of the remote camera's capture).
#[derive(Debug, Parser)]
#[command(version)]
pub struct Args {
    /// Deployment config file.
    #[arg(long, default_value = "configs/default.toml")]
    pub config: PathBuf,
    /// Import this remote camera (a `[[remote-camera]]` name) instead of exporting.
    #[arg(long)]
    pub camera: Option<String>,
    /// `--log-format`.
    #[command(flatten)]
    pub log: LogArgs,
}
