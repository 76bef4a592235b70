//! What every camera process's command line and `main` share: `--config`, `--camera`,
//! `--log-format`, and the steps from arguments to an exit code, so each `main.rs` only adds
//! its own options and calls its library.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::config::{CameraConfig, Deployment};
use crate::logging::{self, LogArgs};
use crate::shm_budget;

/// The options every camera process takes (flatten them into the binary's arguments).
#[derive(Debug, Clone, clap::Args)]
pub struct CameraArgs {
    /// Deployment config file.
    #[arg(long, default_value = "configs/default.toml")]
    pub config: PathBuf,
    /// Camera (may be omitted when the config has one camera).
    #[arg(long)]
    pub camera: Option<String>,
    /// `--log-format`.
    #[command(flatten)]
    pub log: LogArgs,
}

/// The body of a camera process's `main`: sets up logging, loads and validates the config,
/// picks the camera, names the process in every log line, then calls `run`. Exit code 0, or
/// 2 after `<role>: error: <message with its causes>` (a bad config, or `run` failing), or
/// [`shm_budget::EXIT_SHORT_OF_MEMORY`] when the cause is a /dev/shm short of free space (the
/// supervisor then retries without giving up).
pub fn camera_main<E: std::fmt::Display + AsRef<dyn std::error::Error + Send + Sync + 'static>>(
    role: &str,
    args: &CameraArgs,
    run: impl FnOnce(&Deployment, &CameraConfig) -> Result<(), E>,
) -> ExitCode {
    // Before any shared memory is touched: a page /dev/shm cannot back is an exit 75.
    crate::signals::install_sigbus();
    logging::init("info", args.log.log_format);
    let deployment = match Deployment::load(&args.config) {
        Ok(deployment) => deployment,
        Err(e) => return fail(role, e),
    };
    let camera = match deployment.camera(args.camera.as_deref()) {
        Ok(camera) => camera.clone(),
        Err(e) => return fail(role, e),
    };
    logging::set_context(deployment.name(), Some(&camera.name), role);
    match run(&deployment, &camera) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if shm_budget::find_shortage(e.as_ref()).is_some() {
                fail(role, e);
                return ExitCode::from(shm_budget::EXIT_SHORT_OF_MEMORY);
            }
            // An iceoryx2 port that could not reserve its segment reports only "could not be
            // created": with (almost) nothing free in /dev/shm, that is why.
            match shm_budget::short_of(
                READER_SHARED_MEMORY,
                &format!("{role} of camera `{}` could not create its ports", camera.name),
            ) {
                Some(short) => {
                    fail(role, format_args!("{e:#}: {short}"));
                    ExitCode::from(shm_budget::EXIT_SHORT_OF_MEMORY)
                }
                None => fail(role, e),
            }
        }
    }
}

/// Shared memory a process creates besides the frame segment: its control service (about
/// 1 MiB) and its connections; below this much free, a failure to start is put down to /dev/shm.
const READER_SHARED_MEMORY: u64 = crate::limits::CONTROL_BYTES_PER_PROCESS + 1024 * 1024;

fn fail(role: &str, error: impl std::fmt::Display) -> ExitCode {
    logging::exit_error(role, format_args!("{error:#}"));
    ExitCode::from(2)
}
