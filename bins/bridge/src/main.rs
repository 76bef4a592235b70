//! `bridge`: the deployment's link to other hosts over Zenoh. See `bridge --help`.

use std::process::ExitCode;

use clap::Parser;
use framebus_bridge::cli::Args;

fn main() -> ExitCode {
    framebus_bridge::main(&Args::parse())
}
