//! The one owner of SIGINT, SIGTERM and (where asked for) SIGHUP in framebus processes (through signal-hook).
//!
//! Only SIGINT and SIGTERM (and a `stop` command) end a process. iceoryx2's own signal
//! handling is disabled on every node (see [`crate::ipc`]) because it reports any interrupted
//! wait, e.g. the EINTR that SIGCONT causes after a SIGSTOP, as a termination request: a paused
//! and continued process must keep running. Waits in framebus therefore treat an interrupted
//! wait as "look at the flags", never as "stop".
//!
//! A second SIGINT while the first one is still being handled (Ctrl-C twice) exits at once with
//! status 130: the way out of a frame that never ends. SIGTERM never does that, so supervisors
//! may repeat it safely.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

struct Flags {
    terminate: Arc<AtomicBool>,
    hangup: Arc<AtomicBool>,
}

static FLAGS: OnceLock<Flags> = OnceLock::new();

fn flags() -> &'static Flags {
    FLAGS.get_or_init(|| {
        let flags = Flags { terminate: Arc::new(AtomicBool::new(false)), hangup: Arc::new(AtomicBool::new(false)) };
        // The conditional exit is registered first: it sees the flag as it was before this
        // signal, so only a second SIGINT exits.
        let registered = signal_hook::flag::register_conditional_shutdown(
            signal_hook::consts::SIGINT,
            130,
            Arc::clone(&flags.terminate),
        )
        .and_then(|_| signal_hook::flag::register(signal_hook::consts::SIGINT, Arc::clone(&flags.terminate)))
        .and_then(|_| signal_hook::flag::register(signal_hook::consts::SIGTERM, Arc::clone(&flags.terminate)));
        if let Err(e) = registered {
            tracing::error!("could not install the SIGINT/SIGTERM handlers: {e}");
        }
        flags
    })
}

/// Installs the handlers (once per process; later calls do nothing). Every framebus process
/// calls it through node creation; call it yourself before any other wait if you need the
/// handlers earlier.
pub fn install() {
    flags();
}

/// Whether SIGINT or SIGTERM arrived (or [`request_termination`] was called).
pub fn termination_requested() -> bool {
    flags().terminate.load(Ordering::Relaxed)
}

/// Asks this process to end as if SIGTERM had arrived (e.g. after a `stop` command).
pub fn request_termination() {
    flags().terminate.store(true, Ordering::Relaxed);
}

/// Makes SIGHUP set a flag (read with [`take_hangup`]) instead of ending the process: for
/// processes that re-read their configuration on SIGHUP (the recorder). Once per process.
pub fn install_hangup() {
    static HANGUP: std::sync::Once = std::sync::Once::new();
    HANGUP.call_once(|| {
        if let Err(e) = signal_hook::flag::register(signal_hook::consts::SIGHUP, Arc::clone(&flags().hangup)) {
            tracing::error!("could not install the SIGHUP handler: {e}");
        }
    });
}

/// Whether SIGHUP arrived since the last call (re-read configuration).
pub fn take_hangup() -> bool {
    flags().hangup.swap(false, Ordering::Relaxed)
}
