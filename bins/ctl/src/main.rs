//! `ctl`: status and commands for a running deployment, and `ctl up` to run one. See `ctl --help`.

use std::process::ExitCode;

use clap::Parser;
use framebus_ctl::cli::Cli;

fn main() -> ExitCode {
    // The shell asking for completions (`FRAMEBUS_COMPLETE=bash ctl -- ...`): answered, then exit.
    framebus_ctl::complete::complete_from_env();
    let cli = Cli::parse();
    // A page of /dev/shm that cannot be backed ends ctl with 75 and a message, not SIGBUS.
    framebus_common::signals::install_sigbus();
    // Operator-facing output goes to stdout; logging (warnings, `ctl up`) to stderr.
    framebus_common::logging::init(if cli.is_up() { "info" } else { "warn" }, cli.log.log_format);
    match framebus_ctl::run(&cli) {
        Ok(outcome) => ExitCode::from(outcome.exit_code()),
        Err(e) => {
            // An iceoryx2 resource that could not be created in a full /dev/shm says only that
            // it failed: add why. (A page that cannot be backed later ends ctl with 75 and a
            // message from the SIGBUS handler, `signals::install_sigbus`.)
            match framebus_common::shm_budget::short_of(1024 * 1024, "ctl could not create its iceoryx2 resources") {
                Some(short) if framebus_common::shm_budget::find_shortage(e.as_ref()).is_none() => {
                    framebus_common::logging::exit_error("ctl", format_args!("{e:#}: {short}"));
                    ExitCode::from(framebus_common::shm_budget::EXIT_SHORT_OF_MEMORY)
                }
                _ => {
                    framebus_common::logging::exit_error("ctl", format_args!("{e:#}"));
                    ExitCode::from(2)
                }
            }
        }
    }
}
