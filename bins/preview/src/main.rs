//! `preview`: serves one camera's live preview over HTTP (and optionally a window). See `preview --help`.

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Parser;
use framebus_common::cli::{camera_main, CameraArgs};
use framebus_preview::PreviewOptions;

/// Subscribes to one camera and serves downscaled JPEG previews with an overlay:
/// `/` (page), `/stream.mjpg`, `/snapshot.jpg`, `/status.json`.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    #[command(flatten)]
    camera: CameraArgs,
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
}

fn main() -> ExitCode {
    let args = Args::parse();
    let options = PreviewOptions { enabled: args.enabled, listen: args.listen, window: args.window, json: args.json };
    camera_main("preview", &args.camera, |deployment, camera| {
        framebus_preview::run(deployment, camera, &options).map(drop)
    })
}
