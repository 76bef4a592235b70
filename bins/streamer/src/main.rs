//! `streamer`: encodes one camera as H.264 and publishes it on the camera's encoded service (shared memory). See `--help`.

use std::process::ExitCode;

use clap::Parser;
use framebus_common::cli::{camera_main, CameraArgs};
use framebus_streamer::StreamerOptions;

/// Encodes one camera's frames as H.264 (hardware encoder first) and publishes the access units on shared memory, where the media server and the recorder read them.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    #[command(flatten)]
    camera: CameraArgs,
    /// Print the encoder the machine offers and why, then exit.
    #[arg(long)]
    probe: bool,
    /// Print every statistics report as a JSON line on stdout.
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    camera_main("streamer", &args.camera, |deployment, camera| {
        if args.probe {
            return framebus_streamer::print_probe(camera);
        }
        let options = StreamerOptions { json: args.json };
        framebus_streamer::run(deployment, camera, &options).map(drop)
    })
}
