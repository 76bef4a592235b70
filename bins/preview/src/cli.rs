//! The command line of `preview` (`preview --help`): in the library, so that tests parse
//! command lines with it (the docs test).

use std::net::SocketAddr;

use clap::Parser;
use framebus_common::cli::CameraArgs;

/// Subscribes to one camera and serves downscaled JPEG previews with an overlay:
/// `/` (page), `/stream.mjpg`, `/snapshot.jpg`, `/status.json`.
#[derive(Debug, Parser)]
#[command(version)]
pub struct Args {
    /// The config, camera and logging options every camera process takes.
    #[command(flatten)]
    pub camera: CameraArgs,
    /// Turn the preview on or off, recorded like `ctl preview on|off` (default: the camera's
    /// recorded flag, else `camera.preview.enabled`).
    #[arg(long)]
    pub enabled: Option<bool>,
    /// Address to serve on, e.g. 127.0.0.1:8080 (default: `camera.preview.listen`).
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Also show the preview in a window (needs DISPLAY or WAYLAND_DISPLAY).
    #[arg(long)]
    pub window: bool,
    /// Print the URL and every statistics report as JSON lines on stdout.
    #[arg(long)]
    pub json: bool,
}
