//! `algo`: runs the per-frame computation on one camera's newest frames. See `algo --help`.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use framebus_algo::AlgoOptions;
use framebus_common::cli::{camera_main, CameraArgs};

/// Subscribes to one camera and processes its newest frames, logging fps, skips and latency.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    #[command(flatten)]
    camera: CameraArgs,
    /// Stop after processing this many frames.
    #[arg(long)]
    max_frames: Option<u64>,
    /// Milliseconds of extra work per frame (simulates a slow algorithm).
    #[arg(long, default_value_t = 0)]
    simulate_work_ms: u64,
    /// Print every statistics report as a JSON line on stdout.
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let options = AlgoOptions {
        max_frames: args.max_frames,
        simulate_work: Duration::from_millis(args.simulate_work_ms),
        json: args.json,
    };
    camera_main("algo", &args.camera, |deployment, camera| framebus_algo::run(deployment, camera, &options).map(drop))
}
