//! `streamer`: encodes one camera as H.264 and publishes it to the media server. See `--help`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use framebus_common::Deployment;
use framebus_streamer::StreamerOptions;

/// Encodes one camera's frames as H.264 (hardware encoder first) and publishes them over RTSP.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Deployment config file.
    #[arg(long, default_value = "configs/default.toml")]
    config: PathBuf,
    /// Camera to stream (may be omitted when the config has one camera).
    #[arg(long)]
    camera: Option<String>,
    /// Publish to this RTSP URL instead of the configured one.
    #[arg(long)]
    url: Option<String>,
    /// Print the encoder the machine offers and why, then exit.
    #[arg(long)]
    probe: bool,
    /// Print every statistics report as a JSON line on stdout.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    log: framebus_common::logging::LogArgs,
}

fn main() -> ExitCode {
    let args = Args::parse();
    framebus_common::logging::init("info", args.log.log_format);
    let result = Deployment::load(&args.config).map_err(anyhow::Error::from).and_then(|deployment| {
        let camera = deployment.camera(args.camera.as_deref())?.clone();
        framebus_common::logging::set_context(deployment.name(), Some(&camera.name), "streamer");
        if args.probe {
            return framebus_streamer::print_probe(&camera);
        }
        let options = StreamerOptions { json: args.json, url: args.url.clone() };
        framebus_streamer::run(&deployment, &camera, &options).map(|_| ())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            framebus_common::logging::exit_error("streamer", format_args!("{e:#}"));
            ExitCode::from(2)
        }
    }
}
