//! `capture`: publishes one camera's frames into shared memory. See `capture --help`.

use std::process::ExitCode;

use clap::Parser;
use framebus_capture::CaptureOptions;
use framebus_common::cli::camera_main;

use framebus_capture::cli::Args;

fn main() -> ExitCode {
    let args = Args::parse();
    camera_main("capture", &args.camera, |deployment, camera| {
        if args.check_config {
            return framebus_common::shm_budget::check(deployment, None, true).map_err(anyhow::Error::from);
        }
        // Early, before the source is opened (memory of dead processes of the deployment counts
        // as free); checked again exactly once the node has removed them.
        framebus_common::shm_budget::check(deployment, Some(&camera.name), true)?;
        let stats_interval = match args.stats_interval_secs {
            Some(secs) if secs.is_finite() && secs > 0.0 => Some(std::time::Duration::from_secs_f64(secs)),
            Some(secs) => anyhow::bail!("--stats-interval-secs {secs}: use a number of seconds above 0"),
            None => None,
        };
        let options =
            CaptureOptions { max_frames: args.max_frames, wait_for_readers: args.wait_for_readers, stats_interval };
        let summary = framebus_capture::run(deployment, camera, &options)?;
        if args.summary {
            println!("{}", summary.to_json());
        }
        Ok(())
    })
}
