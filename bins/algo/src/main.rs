//! `algo`: runs the per-frame computation on one camera's newest frames. See `algo --help`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use framebus_algo::AlgoOptions;
use framebus_common::Deployment;

/// Subscribes to one camera and processes its newest frames, logging fps, skips and latency.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Deployment config file.
    #[arg(long, default_value = "configs/default.toml")]
    config: PathBuf,
    /// Camera to read (may be omitted when the config has one camera).
    #[arg(long)]
    camera: Option<String>,
    /// Stop after processing this many frames.
    #[arg(long)]
    max_frames: Option<u64>,
    /// Milliseconds of extra work per frame (simulates a slow algorithm).
    #[arg(long, default_value_t = 0)]
    simulate_work_ms: u64,
    /// Print every statistics report as a JSON line on stdout.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    log: framebus_common::logging::LogArgs,
}

fn main() -> ExitCode {
    let args = Args::parse();
    framebus_common::logging::init("info", args.log.log_format);
    let options = AlgoOptions {
        max_frames: args.max_frames,
        simulate_work: Duration::from_millis(args.simulate_work_ms),
        json: args.json,
    };
    let result = Deployment::load(&args.config).map_err(anyhow::Error::from).and_then(|deployment| {
        let camera = deployment.camera(args.camera.as_deref())?.clone();
        framebus_common::logging::set_context(deployment.name(), Some(&camera.name), "algo");
        framebus_algo::run(&deployment, &camera, &options)
    });
    match result {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            framebus_common::logging::exit_error("algo", format_args!("{e:#}"));
            ExitCode::from(2)
        }
    }
}
