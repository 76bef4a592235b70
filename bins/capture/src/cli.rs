//! The command line of `capture` (`capture --help`): in the library, so that tests parse
//! command lines with it (the docs test).

use clap::Parser;
use framebus_common::cli::CameraArgs;

/// Reads one camera (synthetic pattern, video file or V4L2 device) and publishes its frames.
#[derive(Debug, Parser)]
#[command(version)]
pub struct Args {
    /// The config, camera and logging options every camera process takes.
    #[command(flatten)]
    pub camera: CameraArgs,
    /// Stop after this many frames.
    #[arg(long)]
    pub max_frames: Option<u64>,
    /// Wait until this many readers are attached before publishing.
    #[arg(long, default_value_t = 0)]
    pub wait_for_readers: usize,
    /// Seconds between the periodic statistics log lines (publish rate, driver drops).
    #[arg(long)]
    pub stats_interval_secs: Option<f64>,
    /// Print a JSON summary line on stdout when stopping.
    #[arg(long)]
    pub summary: bool,
    /// Only load and check the config, then exit.
    #[arg(long)]
    pub check_config: bool,
}
