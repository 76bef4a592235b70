//! The one tracing set-up every framebus binary calls.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Installs a stderr tracing subscriber. `RUST_LOG` overrides `default_level` (e.g. "info").
pub fn init(default_level: &str) {
    // iceoryx2's own messages arrive through tracing too; keep its chatter at warn.
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(format!("{default_level},iceoryx2=warn")));
    // Colours only on a terminal (and never with NO_COLOR set): logs sent to files stay plain.
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(ansi)
        .try_init();
    iceoryx2::prelude::set_log_level(iceoryx2::prelude::LogLevel::Warn);
}
