//! `recorder`: saves one camera's frames as video segments and/or images. See `recorder --help`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use framebus_common::Deployment;
use framebus_recorder::RecorderOptions;

/// Subscribes to one camera and, while saving is on, writes video segments and images with a
/// sidecar index into `camera.recorder.directory`. SIGHUP re-reads the disk-guard settings.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Deployment config file.
    #[arg(long, default_value = "configs/default.toml")]
    config: PathBuf,
    /// Camera to record (may be omitted when the config has one camera).
    #[arg(long)]
    camera: Option<String>,
    /// Turn saving on or off, recorded like `ctl record on|off` (default: the camera's recorded
    /// flag, else `camera.recorder.enabled`).
    #[arg(long)]
    saving: Option<bool>,
    /// Print every statistics report as a JSON line on stdout.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    log: framebus_common::logging::LogArgs,
}

fn main() -> ExitCode {
    let args = Args::parse();
    framebus_common::logging::init("info", args.log.log_format);
    let options = RecorderOptions { saving: args.saving, json: args.json };
    let result = Deployment::load(&args.config).map_err(anyhow::Error::from).and_then(|deployment| {
        let camera = deployment.camera(args.camera.as_deref())?.clone();
        framebus_common::logging::set_context(deployment.name(), Some(&camera.name), "recorder");
        // Recordings get `file-mode` (private by default), whatever the caller's umask.
        let mode = camera.recorder.clone().unwrap_or_default().file_mode;
        framebus_common::secure_fs::set_creation_mode(mode.0, mode.dir_mode());
        framebus_recorder::run(&deployment, &camera, &options)
    });
    match result {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            framebus_common::logging::exit_error("recorder", format_args!("{e:#}"));
            ExitCode::from(2)
        }
    }
}
