//! `capture`: publishes one camera's frames into shared memory. See `capture --help`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use framebus_capture::CaptureOptions;
use framebus_common::Deployment;

/// Reads one camera (synthetic pattern, video file or V4L2 device) and publishes its frames.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Deployment config file.
    #[arg(long, default_value = "configs/default.toml")]
    config: PathBuf,
    /// Camera to capture (may be omitted when the config has one camera).
    #[arg(long)]
    camera: Option<String>,
    /// Stop after this many frames.
    #[arg(long)]
    max_frames: Option<u64>,
    /// Wait until this many readers are attached before publishing.
    #[arg(long, default_value_t = 0)]
    wait_for_readers: usize,
    /// Seconds between the periodic statistics log lines (publish rate, driver drops).
    #[arg(long)]
    stats_interval_secs: Option<f64>,
    /// Print a JSON summary line on stdout when stopping.
    #[arg(long)]
    summary: bool,
    /// Only load and check the config, then exit.
    #[arg(long)]
    check_config: bool,
    #[command(flatten)]
    log: framebus_common::logging::LogArgs,
}

fn main() -> ExitCode {
    let args = Args::parse();
    framebus_common::logging::init("info", args.log.log_format);
    let result = Deployment::load(&args.config).map_err(anyhow::Error::from).and_then(|deployment| {
        let camera = deployment.camera(args.camera.as_deref())?.clone();
        framebus_common::logging::set_context(deployment.name(), Some(&camera.name), "capture");
        if args.check_config {
            framebus_common::shm_budget::check(&deployment, None, true)?;
            return Ok(None);
        }
        // Early, before the source is opened (memory of dead processes of the deployment counts
        // as free); checked again exactly once the node has removed them.
        framebus_common::shm_budget::check(&deployment, Some(&camera.name), true)?;
        let stats_interval = match args.stats_interval_secs {
            Some(secs) if secs.is_finite() && secs > 0.0 => Some(std::time::Duration::from_secs_f64(secs)),
            Some(secs) => anyhow::bail!("--stats-interval-secs {secs}: use a number of seconds above 0"),
            None => None,
        };
        let options =
            CaptureOptions { max_frames: args.max_frames, wait_for_readers: args.wait_for_readers, stats_interval };
        framebus_capture::run(&deployment, &camera, &options).map(Some)
    });
    match result {
        Ok(summary) => {
            if let (true, Some(summary)) = (args.summary, summary) {
                println!("{}", summary.to_json());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            framebus_common::logging::exit_error("capture", format_args!("{e:#}"));
            ExitCode::from(2)
        }
    }
}
