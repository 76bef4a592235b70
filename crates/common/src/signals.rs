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
//!
//! SIGBUS in a /dev/shm mapping (a page tmpfs could not back: /dev/shm is full) ends the
//! process with exit code 75 and a message instead of a signal death ([`install_sigbus`]).

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
    install_sigbus();
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

/// What a process writes to stderr (with `write(2)`, the only output a signal handler may make)
/// before it exits with [`crate::limits::EXIT_SHORT_OF_MEMORY`] after touching a page of
/// shared memory that could not be backed.
pub const SIGBUS_SHM_MESSAGE: &str = "\nnot enough shared memory: a page of an iceoryx2 segment in /dev/shm could not be backed (is /dev/shm full?); exiting with 75 so that `ctl up` retries\n";

/// Path prefix of the mappings whose SIGBUS means "/dev/shm could not back a page".
const SHM_MAPPING_PREFIX: &[u8] = b"/dev/shm/";

/// Turns the SIGBUS of a full /dev/shm into an error exit: installs (once per process) a SIGBUS
/// handler that, when the kernel raised SIGBUS for an address inside a mapping of a file under
/// /dev/shm (looked up in `/proc/self/maps`), writes [`SIGBUS_SHM_MESSAGE`] to stderr and calls
/// `_exit(75)` ([`crate::limits::EXIT_SHORT_OF_MEMORY`]; `ctl up` retries such an exit).
/// Any other SIGBUS (another mapping, one sent with `kill`, or `/proc` unreadable) gets the
/// default action, as if no handler were installed: the process dies of SIGBUS.
///
/// iceoryx2 0.10 creates its segments with `ftruncate` only, so a page is taken from tmpfs when
/// it is first touched, and a full /dev/shm answers that touch with SIGBUS. Every framebus
/// process installs this through node creation ([`crate::ipc`]); call it earlier if you map
/// shared memory before creating a node.
pub fn install_sigbus() {
    static SIGBUS: std::sync::Once = std::sync::Once::new();
    SIGBUS.call_once(|| {
        // SAFETY: a zeroed sigaction is a valid value; the handler has the SA_SIGINFO signature.
        let installed = unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_sigbus as *const () as libc::sighandler_t;
            action.sa_flags = libc::SA_SIGINFO;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(libc::SIGBUS, &action, std::ptr::null_mut())
        };
        if installed != 0 {
            tracing::error!("could not install the SIGBUS handler: {}", std::io::Error::last_os_error());
        }
    });
}

/// The SIGBUS handler. Async-signal-safe: it calls only `open`, `read`, `close`, `write`,
/// `_exit`, `sigaction` and `raise`, allocates nothing and takes no lock.
extern "C" fn on_sigbus(_signal: libc::c_int, info: *mut libc::siginfo_t, _context: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo to an SA_SIGINFO handler; si_addr is meaningful
    // for the fault codes (si_code > 0), which are the only ones looked at.
    let (code, address) = unsafe { ((*info).si_code, (*info).si_addr() as usize) };
    if code > 0 && in_shm_mapping(address) {
        // SAFETY: write(2) of a static buffer and _exit(2) are async-signal-safe.
        unsafe {
            libc::write(libc::STDERR_FILENO, SIGBUS_SHM_MESSAGE.as_ptr().cast(), SIGBUS_SHM_MESSAGE.len());
            libc::_exit(i32::from(crate::limits::EXIT_SHORT_OF_MEMORY));
        }
    }
    // Not ours: the default action. SIGBUS is blocked while this runs, so the raised one is
    // delivered (and ends the process) when the handler returns; a fault would recur anyway.
    // SAFETY: sigaction and raise are async-signal-safe; a zeroed sigaction with SIG_DFL is valid.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = libc::SIG_DFL;
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(libc::SIGBUS, &action, std::ptr::null_mut());
        libc::raise(libc::SIGBUS);
    }
}

/// Whether `address` lies in a mapping of a file under /dev/shm, read from `/proc/self/maps`
/// byte by byte through a small stack buffer (async-signal-safe: no allocation, no lock).
/// `false` when the file cannot be read.
fn in_shm_mapping(address: usize) -> bool {
    // SAFETY: open/read/close with a NUL-terminated path and a buffer of the length passed.
    let fd = unsafe { libc::open(c"/proc/self/maps".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return false;
    }
    let mut line = MapsLine::default();
    let mut buffer = [0u8; 256];
    let mut found = false;
    'read: loop {
        // SAFETY: see above.
        let n = unsafe { libc::read(fd, buffer.as_mut_ptr().cast(), buffer.len()) };
        if n <= 0 {
            break;
        }
        for &byte in &buffer[..n as usize] {
            if line.feed(byte, address) {
                found = true;
                break 'read;
            }
        }
    }
    // SAFETY: fd was opened above.
    unsafe { libc::close(fd) };
    found
}

/// A parser of `/proc/<pid>/maps` fed one byte at a time: `start-end perms offset dev inode
/// path`, one mapping per line.
#[derive(Default)]
struct MapsLine {
    start: usize,
    end: usize,
    /// 0: start, 1: end, 2..=5: perms, offset, dev, inode, 6: path.
    field: u8,
    /// Bytes of the path that matched [`SHM_MAPPING_PREFIX`] so far (`usize::MAX` on a mismatch).
    matched: usize,
    in_space: bool,
}

impl MapsLine {
    /// Takes the next byte; `true` at the end of a line mapping a /dev/shm file over `address`.
    fn feed(&mut self, byte: u8, address: usize) -> bool {
        if byte == b'\n' {
            let hit = self.matched == SHM_MAPPING_PREFIX.len() && (self.start..self.end).contains(&address);
            *self = MapsLine::default();
            return hit;
        }
        match self.field {
            0 | 1 => match (byte, hex_digit(byte)) {
                (b'-', _) if self.field == 0 => self.field = 1,
                (b' ', _) if self.field == 1 => {
                    self.field = 2;
                    self.in_space = true;
                }
                (_, Some(digit)) if self.field == 0 => {
                    self.start = self.start.wrapping_mul(16).wrapping_add(digit);
                }
                (_, Some(digit)) => self.end = self.end.wrapping_mul(16).wrapping_add(digit),
                _ => self.matched = usize::MAX,
            },
            _ if byte == b' ' => {
                if !self.in_space && self.field < 6 {
                    self.field += 1;
                }
                self.in_space = true;
                if self.field == 6 && self.matched != 0 && self.matched < SHM_MAPPING_PREFIX.len() {
                    self.matched = usize::MAX;
                }
            }
            _ => {
                self.in_space = false;
                if self.field == 6 && self.matched < SHM_MAPPING_PREFIX.len() {
                    self.matched = if SHM_MAPPING_PREFIX[self.matched] == byte { self.matched + 1 } else { usize::MAX };
                }
            }
        }
        false
    }
}

fn hex_digit(byte: u8) -> Option<usize> {
    match byte {
        b'0'..=b'9' => Some(usize::from(byte - b'0')),
        b'a'..=b'f' => Some(usize::from(byte - b'a' + 10)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    fn parse(maps: &str, address: usize) -> bool {
        let mut line = MapsLine::default();
        maps.bytes().any(|b| line.feed(b, address))
    }

    /// Only an address inside a mapping whose file is under /dev/shm counts.
    #[test]
    fn maps_lines_tell_dev_shm_mappings_by_address() {
        let maps = "\
55d0c0a00000-55d0c0a21000 r-xp 00000000 08:01 1234                       /usr/bin/capture
7f0000000000-7f0000400000 rw-s 00000000 00:1a 77                         /dev/shm/framebus_lab_ab_12.data
7f0000400000-7f0000500000 rw-p 00000000 00:00 0 
7f0000500000-7f0000600000 rw-s 00000000 00:1a 78                         /dev/shm/framebus_lab_ab_13.connection (deleted)
7f0000600000-7f0000700000 rw-s 00000000 00:05 79                         /memfd:fake-v4l2 (deleted)
7f0000700000-7f0000800000 rw-s 00000000 00:1b 80                         /tmp/dev/shm/x
";
        assert!(parse(maps, 0x7f00_0000_0000));
        assert!(parse(maps, 0x7f00_003f_ffff));
        assert!(parse(maps, 0x7f00_0050_1000), "a removed segment still counts");
        assert!(!parse(maps, 0x7f00_0040_0000), "anonymous memory");
        assert!(!parse(maps, 0x7f00_0060_0000), "a memfd");
        assert!(!parse(maps, 0x7f00_0070_0000), "a path that only contains /dev/shm/");
        assert!(!parse(maps, 0x55d0_c0a0_0000), "the program");
        assert!(!parse(maps, 0x1000), "unmapped");
    }

    /// Environment variable that makes [`sigbus_probe`] (run as a child of the test binary)
    /// fault in a truncated mapping: `shm` (a /dev/shm file) or `other` (a file elsewhere).
    const PROBE: &str = "FRAMEBUS_SIGBUS_PROBE";

    /// Runs `sigbus_probe` in a child process of this test binary with the probe `kind`.
    fn run_probe(kind: &str) -> std::process::Output {
        let exe = std::env::current_exe().expect("test binary path");
        std::process::Command::new(exe)
            .args(["--exact", "signals::tests::sigbus_probe", "--nocapture", "--test-threads=1"])
            .env(PROBE, kind)
            .output()
            .expect("test binary runs")
    }

    /// Not a test on its own (does nothing without [`PROBE`]): maps two pages of a file, truncates
    /// it to nothing and touches the mapping, which the kernel answers with SIGBUS (BUS_ADRERR),
    /// as it does for a page a full tmpfs cannot back.
    #[test]
    fn sigbus_probe() {
        let Ok(kind) = std::env::var(PROBE) else { return };
        install_sigbus();
        let dir = if kind == "shm" { std::path::PathBuf::from("/dev/shm") } else { std::env::temp_dir() };
        let path = dir.join(format!("framebus-sigbus-probe-{}", std::process::id()));
        let file = std::fs::OpenOptions::new().create_new(true).read(true).write(true).open(&path).expect("probe file");
        std::fs::remove_file(&path).expect("unlink probe file");
        file.set_len(8192).expect("size");
        use std::os::fd::AsRawFd;
        // SAFETY: a fresh shared mapping of 8192 bytes of an open file.
        let memory = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                8192,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        assert_ne!(memory, libc::MAP_FAILED);
        file.set_len(0).expect("truncate");
        // SAFETY: inside the mapping; the page has no file behind it any more: SIGBUS.
        unsafe { std::ptr::write_volatile(memory.cast::<u8>().add(4096), 1) };
        unreachable!("no SIGBUS");
    }

    /// A SIGBUS in a /dev/shm mapping ends the process with 75 and the message; one elsewhere is
    /// still a death by SIGBUS.
    #[test]
    fn sigbus_in_shared_memory_exits_75_with_a_message_and_any_other_stays_a_signal() {
        let shm = run_probe("shm");
        let stderr = String::from_utf8_lossy(&shm.stderr);
        assert_eq!(shm.status.code(), Some(75), "{:?}\n{stderr}", shm.status);
        assert!(stderr.contains("not enough shared memory: a page of an iceoryx2 segment in /dev/shm"), "{stderr}");
        let other = run_probe("other");
        assert_eq!(other.status.signal(), Some(libc::SIGBUS), "{:?}", other.status);
        assert!(!String::from_utf8_lossy(&other.stderr).contains("not enough shared memory"));
    }
}
