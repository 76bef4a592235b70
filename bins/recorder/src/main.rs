//! `recorder`: saves one camera's frames as video segments and/or images. See `recorder --help`.

use std::process::ExitCode;

use clap::Parser;
use framebus_common::cli::{camera_main, CameraArgs};
use framebus_recorder::RecorderOptions;

/// Subscribes to one camera and, while saving is on, writes video segments and images with a
/// sidecar index into `camera.recorder.directory`. SIGHUP re-reads the disk-guard settings.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    #[command(flatten)]
    camera: CameraArgs,
    /// Turn saving on or off, recorded like `ctl record on|off` (default: the camera's recorded
    /// flag, else `camera.recorder.enabled`).
    #[arg(long)]
    saving: Option<bool>,
    /// Print every statistics report as a JSON line on stdout.
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let options = RecorderOptions { saving: args.saving, json: args.json };
    camera_main("recorder", &args.camera, |deployment, camera| {
        // Recordings get `file-mode` (private by default), whatever the caller's umask.
        let mode = camera.recorder.clone().unwrap_or_default().file_mode;
        framebus_common::secure_fs::set_creation_mode(mode.0, mode.dir_mode());
        framebus_recorder::run(deployment, camera, &options).map(drop)
    })
}
