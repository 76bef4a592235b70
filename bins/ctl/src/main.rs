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
    // `ctl status | head`: a reader that closed stdout ends ctl quietly, after its iceoryx2
    // resources were released (the print's panic unwinds through their destructors).
    let quiet_on_broken_pipe = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !is_broken_stdout(info.payload()) {
            quiet_on_broken_pipe(info);
        }
    }));
    let ran = match std::panic::catch_unwind(|| framebus_ctl::run(&cli)) {
        Ok(ran) => ran,
        Err(payload) if is_broken_stdout(payload.as_ref()) => return ExitCode::SUCCESS,
        Err(payload) => std::panic::resume_unwind(payload),
    };
    match ran {
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

/// Whether a panic is the standard library's "failed printing to stdout" of a closed pipe.
fn is_broken_stdout(payload: &(dyn std::any::Any + Send)) -> bool {
    let message = payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())
        .unwrap_or("");
    message.starts_with("failed printing to stdout") && message.contains("Broken pipe")
}
