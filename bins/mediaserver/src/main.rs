//! `mediaserver`: serves the deployment's camera streams over RTSP and WebRTC. See `--help`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use framebus_common::Deployment;

/// Fans each camera's H.264 stream (published by its streamer) out to RTSP and WebRTC viewers.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Deployment config file (its `[media-server]` table).
    #[arg(long, default_value = "configs/default.toml")]
    config: PathBuf,
    /// Accepted for symmetry with the other processes (`ctl up` passes none); ignored.
    #[arg(long, hide = true)]
    camera: Option<String>,
    #[command(flatten)]
    log: framebus_common::logging::LogArgs,
}

fn main() -> ExitCode {
    let args = Args::parse();
    framebus_common::logging::init("info", args.log.log_format);
    let result = Deployment::load(&args.config).map_err(anyhow::Error::from).and_then(|deployment| {
        framebus_common::logging::set_context(deployment.name(), None, "mediaserver");
        framebus_mediaserver::run(&deployment)
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            framebus_common::logging::exit_error("mediaserver", format_args!("{e:#}"));
            ExitCode::from(2)
        }
    }
}
