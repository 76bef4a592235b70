//! The one tracing set-up every framebus binary calls: text for people or JSON lines for log
//! collectors, with the deployment, camera and role of the process on every line, and the one
//! rate limiter for errors that repeat (see [`repeated`]).
//!
//! The identity fields come from [`set_context`], which a process calls once it knows them (after
//! loading its config). They are process-wide, so lines logged from any thread carry them: the
//! reader loop's control thread, the preview's HTTP thread, and iceoryx2's own messages, which
//! arrive through tracing.

mod json;
mod relay;
mod repeats;

use std::io::IsTerminal;
use std::sync::RwLock;

use tracing_subscriber::EnvFilter;

pub use relay::{relay, Origin, Stream, RELAY_TARGET};
pub use repeats::{repeated, RepeatLimiter, Summary, Verdict, REPEAT_BURST, REPEAT_INTERVAL};

/// Environment variable that selects the log format when `--log-format` is not given;
/// `ctl up` sets it for every process it starts.
pub const LOG_FORMAT_ENV: &str = "FRAMEBUS_LOG_FORMAT";

/// How log lines are written to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines (colours on a terminal).
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

impl LogFormat {
    /// The value as written on the command line and in [`LOG_FORMAT_ENV`].
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }
    }
}

/// The `--log-format` option, shared by every binary (flatten it into the binary's arguments).
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct LogArgs {
    /// Log format on stderr: `text` for people, `json` (one object per line, with deployment,
    /// camera and role on every line) for log collectors.
    #[arg(long, value_enum, env = LOG_FORMAT_ENV, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
}

/// Who is logging: the fields every JSON line carries.
#[derive(Debug, Clone, Default)]
struct Context {
    deployment: Option<String>,
    camera: Option<String>,
    role: Option<String>,
}

static CONTEXT: RwLock<Context> = RwLock::new(Context { deployment: None, camera: None, role: None });
static FORMAT: RwLock<LogFormat> = RwLock::new(LogFormat::Text);

/// Installs a stderr tracing subscriber writing `format`. `RUST_LOG` overrides
/// `default_level` (e.g. "info"). iceoryx2's own messages stay at warn unless `RUST_LOG`
/// names `iceoryx2` (e.g. `RUST_LOG=info,iceoryx2=debug`).
pub fn init(default_level: &str, format: LogFormat) {
    if let Ok(mut current) = FORMAT.write() {
        *current = format;
    }
    // Until the process knows its deployment and camera, lines name at least the program.
    if let Ok(mut context) = CONTEXT.write() {
        if context.role.is_none() {
            context.role = std::env::args_os()
                .next()
                .and_then(|arg0| std::path::Path::new(&arg0).file_name().map(|n| n.to_string_lossy().into_owned()));
        }
    }
    let from_env = std::env::var("RUST_LOG").ok().filter(|v| !v.trim().is_empty());
    let filter = from_env
        .as_deref()
        .and_then(|v| EnvFilter::try_new(v).ok())
        // Zenoh logs its session id at info and warns at every session's start that gossip is
        // off and that scouting found no peer in time: the last two follow from the bridge's own
        // settings (no discovery beyond the configured endpoints), so they are hidden, and
        // Zenoh's info lines too, unless RUST_LOG asks for them.
        .unwrap_or_else(|| {
            EnvFilter::new(format!(
                "{default_level},iceoryx2=warn,zenoh=warn,zenoh::net::routing::hat::peer=error,zenoh::net::runtime::orchestrator=error"
            ))
        });
    let iceoryx_level = if from_env.as_deref().is_some_and(|v| v.contains("iceoryx2")) {
        // The tracing filter decides; iceoryx2 hands everything to it.
        iceoryx2::prelude::LogLevel::Trace
    } else {
        iceoryx2::prelude::LogLevel::Warn
    };
    match format {
        LogFormat::Text => {
            // Colours only on a terminal (and never with NO_COLOR set): logs sent to files stay plain.
            let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
            let _ = tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_writer(std::io::stderr)
                .with_target(false)
                .with_ansi(ansi)
                .try_init();
        }
        LogFormat::Json => {
            let installed = tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_writer(std::io::stderr)
                .with_ansi(false)
                .event_format(json::JsonLines)
                .try_init();
            if installed.is_ok() {
                // A panic is a line like any other, not free text in the middle of JSON.
                std::panic::set_hook(Box::new(|info| {
                    tracing::error!(panic = true, "{info}");
                }));
            }
        }
    }
    iceoryx2::prelude::set_log_level(iceoryx_level);
}

/// Records who this process is: every later log line (from any thread) carries `deployment`,
/// `camera` (`None` for processes that serve no single camera, like `ctl`) and `role`.
pub fn set_context(deployment: &str, camera: Option<&str>, role: &str) {
    if let Ok(mut context) = CONTEXT.write() {
        *context = Context {
            deployment: Some(deployment.to_string()),
            camera: camera.map(str::to_string),
            role: Some(role.to_string()),
        };
    }
}

/// The format [`init`] installed (text before any call).
pub fn format() -> LogFormat {
    FORMAT.read().map(|f| *f).unwrap_or_default()
}

/// Reports the error that ends `program`: `<program>: error: <message>` as text, or an `error`
/// line in JSON, so a collector parses the last line of a failed process like any other.
pub fn exit_error(program: &str, message: impl std::fmt::Display) {
    match format() {
        LogFormat::Text => eprintln!("{program}: error: {message}"),
        LogFormat::Json => tracing::error!(exit = true, "{message}"),
    }
}

fn context() -> Context {
    CONTEXT.read().map(|c| c.clone()).unwrap_or_default()
}
