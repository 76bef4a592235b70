//! Command-line arguments of `ctl`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

/// The exit codes of every `ctl` command, shown after each command's help and in the man
/// pages' EXIT STATUS section.
pub const EXIT_CODES: &str = "\
Exit codes: 0 done; 1 a target is not running (nothing serves its control service) or refused \
(the message names the service); 2 bad arguments or config, or another error; 3 busy: a \
target runs but did not answer within --timeout (too many ctl commands at once, no CPU time, \
or paused; `ctl status` shows it as `busy`, `--json` as \"state\": \"busy\"): try again or \
raise --timeout. Not running or refused wins over busy. `ctl up` exits 0 after a clean stop \
(Ctrl-C, SIGTERM) and 2 when a capture cannot start or every process was given up on.";

/// Status and commands for a framebus deployment over iceoryx2, and its supervisor (`ctl up`).
#[derive(Debug, Parser)]
#[command(name = "ctl", version, after_help = EXIT_CODES)]
pub struct Cli {
    /// Deployment config file [default: $FRAMEBUS_CONFIG, else ./framebus.toml, else
    /// configs/default.toml].
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    /// Print machine-readable JSON on stdout.
    #[arg(long, global = true)]
    pub json: bool,
    /// Seconds any wait may take (for a server to appear, for a reply, for a stop).
    #[arg(long, global = true, default_value = "1", value_parser = parse_seconds)]
    pub timeout: Duration,
    /// Log format (stderr).
    #[command(flatten)]
    pub log: framebus_common::logging::LogArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: CtlCommand,
}

/// A `ctl` sub-command.
#[derive(Debug, Subcommand)]
pub enum CtlCommand {
    /// Status of every process of the deployment (or of one camera).
    #[command(after_help = EXIT_CODES)]
    Status {
        /// Only this camera.
        camera: Option<String>,
    },
    /// Stop one process of a camera: capture by default, or a reader by its role (`algo`,
    /// `preview`, `recorder`, a user reader's name); `ctl stop mediaserver` stops the media
    /// server. It exits cleanly after the frame in progress; a supervisor does not restart it.
    /// SIGTERM follows if it still runs after `--timeout`.
    #[command(after_help = EXIT_CODES)]
    Stop {
        /// Camera name, or `mediaserver`.
        camera: String,
        /// Role of the process to stop.
        #[arg(default_value = "capture")]
        role: String,
    },
    /// Restart one process of a camera under `ctl up` (by its role: `capture`, `algo`, ... or a
    /// user reader's name), or every process of the camera (no role), or the media server
    /// (`ctl restart mediaserver`): it stops after its frame in progress and the supervisor
    /// starts it again at once, its restart count (toward `--max-restarts`) reset. Waits up to
    /// `--timeout` for the new process (exit 3 if it is not started by then).
    #[command(after_help = EXIT_CODES)]
    Restart {
        /// Camera name, or `mediaserver`.
        camera: String,
        /// Role of the process (default: every process of the camera).
        role: Option<String>,
    },
    /// Start again, under `ctl up`, a process that was stopped (`ctl stop`) or given up on (or
    /// every such process of the camera: no role); its restart count is reset. Starting a
    /// capture also starts the readers the supervisor stopped with it; `ctl start mediaserver`
    /// starts the media server. Waits up to `--timeout` for the new process.
    #[command(after_help = EXIT_CODES)]
    Start {
        /// Camera name, or `mediaserver`.
        camera: String,
        /// Role of the process (default: every process of the camera).
        role: Option<String>,
    },
    /// The last lines (up to 20, across restarts) a process wrote on stderr, as `ctl up` kept
    /// them (`ctl logs <camera> <role>`, or `ctl logs mediaserver`); `--follow` prints new ones
    /// as they come, until Ctrl-C.
    #[command(after_help = EXIT_CODES)]
    Logs {
        /// Camera name, or `mediaserver`.
        camera: String,
        /// Role of the process (required for a camera).
        role: Option<String>,
        /// Keep printing lines as the process writes them.
        #[arg(long)]
        follow: bool,
    },
    /// Turn preview image generation on or off (recorded, survives restarts).
    #[command(after_help = EXIT_CODES)]
    Preview {
        /// `on` or `off`.
        switch: Switch,
        /// Camera name.
        camera: String,
        /// For a `[[remote-camera]]`: switch the preview of the camera it imports, on the other
        /// host (over Zenoh; answered only with `allow-remote-control = true` there).
        #[arg(long)]
        origin: bool,
    },
    /// Turn image saving on or off (recorded, survives restarts).
    #[command(after_help = EXIT_CODES)]
    Record {
        /// `on` or `off`.
        switch: Switch,
        /// Camera name.
        camera: String,
        /// For a `[[remote-camera]]`: switch the recorder of the camera it imports, on the other
        /// host (over Zenoh; answered only with `allow-remote-control = true` there).
        #[arg(long)]
        origin: bool,
    },
    /// Camera controls of a camera's device, through its capture process (V4L2 cameras).
    Control {
        /// Camera name.
        camera: String,
        /// `list` or `set`.
        #[command(subcommand)]
        action: ControlAction,
    },
    /// Cameras, their service names and recorded flags (no process needs to run).
    #[command(after_help = EXIT_CODES)]
    List,
    /// Recent triggers and the clips they produced, from the recorder's events journal
    /// (`--follow`: its records as they come, until Ctrl-C).
    #[command(after_help = EXIT_CODES)]
    Events(crate::events::EventsArgs),
    /// The deployment's iceoryx2 config (its file prefix and folder) as the TOML file the `iox2`
    /// CLI and other iceoryx2 tools read; `--json` prints it as JSON with the derived paths.
    /// Example: `ctl iox2-config --output config/iceoryx2.toml && iox2 service list`.
    #[command(after_help = EXIT_CODES)]
    Iox2Config {
        /// Write the TOML to this file instead of stdout (folders are created).
        #[arg(long)]
        output: Option<PathBuf>,
    },
    /// The byte layouts of the frame header, the control messages and the results record, as
    /// compiled (size, alignment, iceoryx2 type name, every field's offset and size): the
    /// contract for readers in other languages. Needs no config.
    #[command(after_help = EXIT_CODES)]
    Abi,
    /// The camera's command state (the preview and saving flags `ctl` recorded).
    #[command(after_help = EXIT_CODES)]
    State {
        /// What to do with the state.
        #[command(subcommand)]
        action: StateAction,
    },
    /// Serve every process's figures in the Prometheus text format at `http://<listen>/metrics`
    /// until Ctrl-C (`ctl up` does it itself when `[deployment] metrics` is set); `--once`
    /// prints one scrape instead.
    #[command(after_help = EXIT_CODES)]
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
    #[command(after_help = EXIT_CODES)]
    Up {
        /// Restarts of one process before the supervisor gives up on it.
        #[arg(long, default_value_t = 5)]
        max_restarts: u32,
    },
    /// Write a systemd unit that runs the deployment under `ctl up` (`Type=notify`, restart
    /// policy, hardening, the V4L2 devices it needs), with absolute paths to this ctl and the
    /// config. See docs/systemd.md.
    #[command(after_help = EXIT_CODES)]
    Systemd {
        /// A unit for your own service manager (`systemctl --user`) instead of the system's.
        #[arg(long)]
        user: bool,
        /// Folder to write `framebus-<deployment>.service` into (`-`: print it on stdout).
        /// Default: /etc/systemd/system, with --user ~/.config/systemd/user.
        #[arg(long)]
        output: Option<PathBuf>,
        /// Account the system unit runs as (`User=`). Default: the user running this command
        /// (root: no `User=`, the unit runs as root).
        #[arg(long, conflicts_with = "user")]
        service_user: Option<String>,
    },
    /// Print a completion script for a shell, e.g. `ctl completions bash >
    /// ~/.local/share/bash-completion/completions/ctl`. On TAB the script asks this ctl, which
    /// completes commands, options, and camera and role names from the config in effect
    /// (`--config` on the line, else FRAMEBUS_CONFIG, ./framebus.toml, configs/default.toml).
    #[command(after_help = EXIT_CODES)]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the man page of ctl (roff), or with `--output DIR` write it and one page per
    /// command (`ctl-status.1`, ...) into DIR.
    #[command(after_help = EXIT_CODES)]
    Man {
        /// Folder to write the pages into.
        #[arg(long)]
        output: Option<PathBuf>,
    },
}

/// A `ctl state` action.
#[derive(Debug, Subcommand)]
pub enum StateAction {
    /// Forget the flags commands recorded for a camera: its running processes and every later
    /// start take the config's `enabled` again.
    Reset {
        /// Camera name.
        camera: String,
    },
}

/// What `ctl control <camera>` does.
#[derive(Debug, Subcommand)]
pub enum ControlAction {
    /// Every control of the device: name, type, range and step, default, current value, menu
    /// items, and whether it is read-only or inactive (an automatic mode overrides it).
    List,
    /// Set controls while capturing, in order: `name=value ...` by normalised name (as `list`
    /// prints it), an integer, `true`/`false` or a menu item (quote names with spaces:
    /// `auto_exposure="Manual Mode"`). Nothing is set when one is wrong (the error lists what
    /// the device offers); prints what the device kept. Recorded in the camera's state: set
    /// again after a reconnect and when capture restarts.
    Set {
        /// `name=value` settings.
        #[arg(required = true)]
        settings: Vec<String>,
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

    /// Whether the command works without a config file (completions, man pages).
    pub fn needs_no_config(&self) -> bool {
        matches!(self.command, CtlCommand::Completions { .. } | CtlCommand::Man { .. })
    }
}

fn parse_seconds(text: &str) -> Result<Duration, String> {
    let secs: f64 = text.parse().map_err(|_| format!("`{text}` is not a number of seconds"))?;
    if !(secs > 0.0 && secs <= 3600.0) {
        return Err(format!("`{text}`: allowed more than 0 up to 3600 seconds"));
    }
    Ok(Duration::from_secs_f64(secs))
}
