//! The command line of `recorder` (`recorder --help`): in the library, so that tests parse
//! command lines with it (the docs test).

use clap::Parser;
use framebus_common::cli::CameraArgs;

/// Subscribes to one camera and, while saving is on, writes video segments and images with a
/// sidecar index into `camera.recorder.directory`. SIGHUP re-reads the disk-guard settings.
#[derive(Debug, Parser)]
#[command(version)]
pub struct Args {
    /// The config, camera and logging options every camera process takes.
    #[command(flatten)]
    pub camera: CameraArgs,
    /// Turn saving on or off, recorded like `ctl record on|off` (default: the camera's recorded
    /// flag, else `camera.recorder.enabled`).
    #[arg(long)]
    pub saving: Option<bool>,
    /// Print every statistics report as a JSON line on stdout.
    #[arg(long)]
    pub json: bool,
}
