//! The fixed sizes, limits and paths that config validation and the iceoryx2 set-up ([`crate::ipc`])
//! both follow: service capacities, where iceoryx2 keeps a deployment's files, the socket-path
//! limit that bounds a deployment's name, and the exit code of a process short of shared memory.
//!
//! The bottom of `common`'s layering (types and limits → config → ipc): this module imports
//! only [`crate::names`], so the config can check a value against a limit without reaching up
//! into the service code.

use crate::names::shm_prefix;

/// Producers of results for one camera at once (algo, user readers).
pub const RESULTS_MAX_PUBLISHERS: usize = 8;

/// Readers of results for one camera at once (preview, recorder, `ctl events`, users).
pub const RESULTS_MAX_SUBSCRIBERS: usize = 8;

/// Results a results reader may have queued.
pub const RESULTS_QUEUE: usize = 64;

/// Clients that may talk to one process's control service at once (ctl runs, the supervisor,
/// tools). More wait their turn (ctl retries within its `--timeout`, then reports "busy"). Each
/// place costs the serving process about 30 KiB of shared memory (measured with the 1432-byte
/// reply: 0.9 MiB per process for 32 places), counted by `SlotLayout::shared_memory_bytes`.
pub const CONTROL_MAX_CLIENTS: usize = 32;

/// Shared memory one process's control service takes, counted generously (see
/// [`CONTROL_MAX_CLIENTS`]).
pub const CONTROL_BYTES_PER_PROCESS: u64 = CONTROL_MAX_CLIENTS as u64 * 32 * 1024;

/// The folder above every deployment's iceoryx2 folder ([`deployment_root`]).
pub const ICEORYX2_BASE: &str = "/tmp/iceoryx2";

/// Folder where iceoryx2 keeps the node and service files of `deployment`.
pub fn deployment_root(deployment: &str) -> String {
    format!("{ICEORYX2_BASE}/{}/", shm_prefix(deployment).trim_end_matches('_'))
}

/// Longest path a Unix socket may have on Linux (`sun_path` holds 108 bytes with the NUL).
pub const MAX_SOCKET_PATH: usize = 107;

/// Length of the longest event-socket path of `deployment`: iceoryx2 0.10 binds every listener
/// (frame-ready, control wake-ups) to `<root folder><prefix><listener id>.event`, the id a u128
/// in decimal of up to 39 digits (it grows with the ports a process has created). The name
/// appears twice (folder and prefix), which is what limits its length.
pub fn longest_event_socket_path(deployment: &str) -> usize {
    deployment_root(deployment).len() + shm_prefix(deployment).len() + 39 + ".event".len()
}

/// Exit code of a process that could not start because /dev/shm lacks space that may come back
/// (sysexits' `EX_TEMPFAIL`): `ctl up` retries it with a capped back-off and never gives up.
pub const EXIT_SHORT_OF_MEMORY: u8 = 75;
