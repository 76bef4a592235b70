//! The command line of `streamer` (`streamer --help`): in the library, so that tests parse
//! command lines with it (the docs test).

use clap::Parser;
use framebus_common::cli::CameraArgs;

/// Encodes one camera's frames as H.264 (hardware encoder first) and publishes the access units on shared memory, where the media server and the recorder read them.
#[derive(Debug, Parser)]
#[command(version)]
pub struct Args {
    /// The config, camera and logging options every camera process takes.
    #[command(flatten)]
    pub camera: CameraArgs,
    /// Print the encoder the machine offers and why, then exit.
    #[arg(long)]
    pub probe: bool,
    /// Print every statistics report as a JSON line on stdout.
    #[arg(long)]
    pub json: bool,
}
