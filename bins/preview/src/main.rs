//! `preview`: serves one camera's live preview over HTTP (and optionally a window). See `preview --help`.

use std::process::ExitCode;

use clap::Parser;
use framebus_common::cli::camera_main;
use framebus_preview::PreviewOptions;

use framebus_preview::cli::Args;

fn main() -> ExitCode {
    let args = Args::parse();
    let options = PreviewOptions { enabled: args.enabled, listen: args.listen, window: args.window, json: args.json };
    camera_main("preview", &args.camera, |deployment, camera| {
        framebus_preview::run(deployment, camera, &options).map(drop)
    })
}
