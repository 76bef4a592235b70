//! The one tracing set-up every framebus binary calls.

use tracing_subscriber::EnvFilter;

/// Installs a stderr tracing subscriber. `RUST_LOG` overrides `default_level` (e.g. "info").
pub fn init(default_level: &str) {
    // iceoryx2's own messages arrive through tracing too; keep its chatter at warn.
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(format!("{default_level},iceoryx2=warn")));
    let _ =
        tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false).try_init();
    iceoryx2::prelude::set_log_level(iceoryx2::prelude::LogLevel::Warn);
}
