//! The command line of `algo` (`algo --help`): in the library, so that tests parse
//! command lines with it (the docs test).

use clap::Parser;
use framebus_common::cli::CameraArgs;

/// Subscribes to one camera and processes its newest frames, logging fps, skips and latency.
#[derive(Debug, Parser)]
#[command(version)]
pub struct Args {
    /// The config, camera and logging options every camera process takes.
    #[command(flatten)]
    pub camera: CameraArgs,
    /// Stop after processing this many frames.
    #[arg(long)]
    pub max_frames: Option<u64>,
    /// Milliseconds of extra work per frame (simulates a slow algorithm).
    #[arg(long, default_value_t = 0)]
    pub simulate_work_ms: u64,
    /// Print every statistics report as a JSON line on stdout.
    #[arg(long)]
    pub json: bool,
}
