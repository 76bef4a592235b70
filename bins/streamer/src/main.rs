//! `streamer`: encodes one camera as H.264 and publishes it on the camera's encoded service (shared memory). See `--help`.

use std::process::ExitCode;

use clap::Parser;
use framebus_common::cli::camera_main;
use framebus_streamer::StreamerOptions;

use framebus_streamer::cli::Args;

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
