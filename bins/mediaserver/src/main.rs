//! `mediaserver`: serves the deployment's camera streams over RTSP and WebRTC. See `--help`.

use std::process::ExitCode;

use clap::Parser;
use framebus_common::Deployment;

use framebus_mediaserver::cli::Args;

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
