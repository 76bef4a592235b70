//! Command-line arguments of `ctl`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

/// Status and commands for a framebus deployment over iceoryx2, and its supervisor (`ctl up`).
///
/// Exit codes: 0 done; 1 a target did not answer or refused (the message names the service);
/// 2 bad arguments or config.
#[derive(Debug, Parser)]
#[command(version)]
pub struct Cli {
    /// Deployment config file.
    #[arg(long, global = true, default_value = "configs/default.toml")]
    pub config: PathBuf,
    /// Print machine-readable JSON on stdout.
    #[arg(long, global = true)]
    pub json: bool,
    /// Seconds any wait may take (for a server to appear, for a reply, for a stop).
    #[arg(long, global = true, default_value = "1", value_parser = parse_seconds)]
    pub timeout: Duration,
    /// What to do.
    #[command(subcommand)]
    pub command: CtlCommand,
}

/// A `ctl` sub-command.
#[derive(Debug, Subcommand)]
pub enum CtlCommand {
    /// Status of every process of the deployment (or of one camera).
    Status {
        /// Only this camera.
        camera: Option<String>,
    },
    /// Stop one process of a camera: capture by default, or a reader by its role (`algo`,
    /// `preview`, `recorder`, a user reader's name). It exits cleanly after the frame in
    /// progress; a supervisor does not restart it. SIGTERM follows if it still runs after
    /// `--timeout`.
    Stop {
        /// Camera name.
        camera: String,
        /// Role of the process to stop.
        #[arg(default_value = "capture")]
        role: String,
    },
    /// Turn preview image generation on or off (recorded, survives restarts).
    Preview {
        /// `on` or `off`.
        switch: Switch,
        /// Camera name.
        camera: String,
    },
    /// Turn image saving on or off (recorded, survives restarts).
    Record {
        /// `on` or `off`.
        switch: Switch,
        /// Camera name.
        camera: String,
    },
    /// Cameras, their service names and recorded flags (no process needs to run).
    List,
    /// Recent triggers and the clips they produced, from the recorder's events journal
    /// (`--follow`: its records as they come, until Ctrl-C).
    Events(crate::events::EventsArgs),
    /// Serve every process's figures in the Prometheus text format at `http://<listen>/metrics`
    /// until Ctrl-C (`ctl up` does it itself when `[deployment] metrics` is set); `--once`
    /// prints one scrape instead.
    Metrics {
        /// Address to listen on (default: `[deployment] metrics`, else 127.0.0.1:9464).
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        /// Print one scrape on stdout and exit.
        #[arg(long)]
        once: bool,
    },
    /// Run the deployment: start every configured process, restart crashed ones, stop all on
    /// Ctrl-C/SIGTERM.
    Up {
        /// Restarts of one process before the supervisor gives up on it.
        #[arg(long, default_value_t = 5)]
        max_restarts: u32,
    },
}

/// `on` or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Switch {
    /// Turn on.
    On,
    /// Turn off.
    Off,
}

impl Switch {
    /// Whether this is `on`.
    pub fn is_on(self) -> bool {
        self == Switch::On
    }
}

impl Cli {
    /// Whether the command is `ctl up` (which logs at info level).
    pub fn is_up(&self) -> bool {
        matches!(self.command, CtlCommand::Up { .. })
    }
}

fn parse_seconds(text: &str) -> Result<Duration, String> {
    let secs: f64 = text.parse().map_err(|_| format!("`{text}` is not a number of seconds"))?;
    if !(secs > 0.0 && secs <= 3600.0) {
        return Err(format!("`{text}`: allowed more than 0 up to 3600 seconds"));
    }
    Ok(Duration::from_secs_f64(secs))
}
