//! `recorder`: saves one camera's frames as video segments and/or images. See `recorder --help`.

use std::process::ExitCode;

use clap::Parser;
use framebus_common::cli::camera_main;
use framebus_recorder::RecorderOptions;

use framebus_recorder::cli::Args;

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
