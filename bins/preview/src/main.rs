//! `preview`: serves one camera's live preview over HTTP (and optionally a window). See `preview --help`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use framebus_common::Deployment;
use framebus_preview::PreviewOptions;

/// Subscribes to one camera and serves downscaled JPEG previews with an overlay:
/// `/` (page), `/stream.mjpg`, `/snapshot.jpg`, `/status.json`.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Deployment config file.
    #[arg(long, default_value = "configs/default.toml")]
    config: PathBuf,
    /// Camera to preview (may be omitted when the config has one camera).
    #[arg(long)]
    camera: Option<String>,
    /// Turn the preview on or off, recorded like `ctl preview on|off` (default: the camera's
    /// recorded flag, else `camera.preview.enabled`).
    #[arg(long)]
    enabled: Option<bool>,
    /// Address to serve on, e.g. 127.0.0.1:8080 (default: `camera.preview.listen`).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Also show the preview in a window (needs DISPLAY or WAYLAND_DISPLAY).
    #[arg(long)]
    window: bool,
    /// Print the URL and every statistics report as JSON lines on stdout.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    log: framebus_common::logging::LogArgs,
}

fn main() -> ExitCode {
    let args = Args::parse();
    framebus_common::logging::init("info", args.log.log_format);
    let options = PreviewOptions { enabled: args.enabled, listen: args.listen, window: args.window, json: args.json };
    let result = Deployment::load(&args.config).map_err(anyhow::Error::from).and_then(|deployment| {
        let camera = deployment.camera(args.camera.as_deref())?.clone();
        framebus_common::logging::set_context(deployment.name(), Some(&camera.name), "preview");
        framebus_preview::run(&deployment, &camera, &options)
    });
    match result {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            framebus_common::logging::exit_error("preview", format_args!("{e:#}"));
            ExitCode::from(2)
        }
    }
}
