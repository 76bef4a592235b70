//! `ctl`: status and commands for a running deployment, and `ctl up` to run one. See `ctl --help`.

use std::process::ExitCode;

use clap::Parser;
use framebus_ctl::cli::Cli;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Operator-facing output goes to stdout; logging (warnings, `ctl up`) to stderr.
    framebus_common::logging::init(if cli.is_up() { "info" } else { "warn" }, cli.log.log_format);
    match framebus_ctl::run(&cli) {
        Ok(outcome) => ExitCode::from(outcome.exit_code()),
        Err(e) => {
            framebus_common::logging::exit_error("ctl", format_args!("{e:#}"));
            ExitCode::from(2)
        }
    }
}
