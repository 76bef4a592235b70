//! `algo`: runs the per-frame computation on one camera's newest frames. See `algo --help`.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use framebus_algo::AlgoOptions;
use framebus_common::cli::camera_main;

use framebus_algo::cli::Args;

fn main() -> ExitCode {
    let args = Args::parse();
    let options = AlgoOptions {
        max_frames: args.max_frames,
        simulate_work: Duration::from_millis(args.simulate_work_ms),
        json: args.json,
    };
    camera_main("algo", &args.camera, |deployment, camera| framebus_algo::run(deployment, camera, &options).map(drop))
}
