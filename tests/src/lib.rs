//! Testkit for framebus's multi-process tests: locate the built binaries, give every test its
//! own deployment (service-name prefix, shared-memory prefix, iceoryx2 folder), start processes,
//! read their output with deadlines, and prove that nothing is left behind.

pub mod browser;
pub mod relay;
pub mod webhook;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use framebus_common::ipc::deployment_root;
use framebus_common::names::shm_prefix;

/// Generous bound for anything a test waits on; tests never assert on time, only fail late.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// The target profile folder (`target/<profile>`) of the running test or tool: tests run from
/// `target/<profile>/deps/`, tools of this package (the soak) from `target/<profile>/`.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("executable path");
    let dir = exe.parent().expect("executable folder");
    let dir = if dir.ends_with("deps") { dir.parent().expect("target profile folder") } else { dir };
    dir.to_path_buf()
}

/// Path of a workspace binary (`capture`, `algo`, ...) in the target profile folder.
pub fn bin(name: &str) -> PathBuf {
    let path = profile_dir().join(name);
    assert!(path.is_file(), "{} is not built: run `cargo build --workspace --bins` first", path.display());
    path
}

/// Path of a program on PATH, or a panic that says which package provides it: a missing tool
/// must fail the test, never skip it silently.
pub fn require_tool(name: &str, package: &str) -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths).map(|dir| dir.join(name)).find(|candidate| candidate.is_file())
    });
    found.unwrap_or_else(|| {
        panic!("`{name}` is not installed: install the Debian package `{package}` (scripts/bootstrap.sh does)")
    })
}

/// Runs a command to its end with stdin closed: (exit code, stdout, stderr).
pub fn run(command: &mut Command) -> (Option<i32>, String, String) {
    let output = command.stdin(Stdio::null()).output().unwrap_or_else(|e| panic!("running {command:?}: {e}"));
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Path of an example of the workspace (`reader`), built by `cargo build --examples`.
pub fn example(name: &str) -> PathBuf {
    let path = profile_dir().join("examples").join(name);
    assert!(path.is_file(), "{} is not built: run `cargo build --workspace --bins --examples` first", path.display());
    path
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A deployment of one test: a unique name and a config file in a temporary folder.
pub struct TestDeployment {
    /// Deployment name (unique per test and process).
    pub name: String,
    /// The temporary folder holding the config and anything the test writes.
    pub dir: tempfile::TempDir,
    /// The config file.
    pub config: PathBuf,
}

impl TestDeployment {
    /// Writes a config: `[deployment] name = <unique>` (command state kept in the test's
    /// folder) followed by `body` (the cameras).
    pub fn new(body: &str) -> TestDeployment {
        let name = format!("t{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed));
        let dir = tempfile::tempdir().expect("temp dir");
        let config = dir.path().join("deployment.toml");
        std::fs::write(&config, format!("[deployment]\nname = \"{name}\"\nstate-dir = \"state\"\n\n{body}"))
            .expect("write config");
        TestDeployment { name, dir, config }
    }

    /// Runs `ctl --config <this config> <args>` to completion: (exit code, stdout, stderr).
    pub fn ctl(&self, args: &[&str]) -> (Option<i32>, String, String) {
        let mut all = vec!["--config", self.config.to_str().expect("utf-8 path")];
        all.extend_from_slice(args);
        Proc::output("ctl", &all)
    }

    /// Polls `ctl status --json` (bounded by [`DEADLINE`]) until `pred` holds for its output;
    /// returns that output.
    pub fn wait_status(&self, mut pred: impl FnMut(&serde_json::Value) -> bool) -> serde_json::Value {
        let until = Instant::now() + DEADLINE;
        loop {
            let (_, out, err) = self.ctl(&["status", "--json", "--timeout", "2"]);
            if let Ok(value) = serde_json::from_str::<serde_json::Value>(&out) {
                if pred(&value) {
                    return value;
                }
            }
            assert!(Instant::now() < until, "ctl status never matched within {DEADLINE:?}; last:\n{out}\n{err}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Starts a binary with `--config <this config>` and `args`.
    pub fn spawn(&self, binary: &str, args: &[&str]) -> Proc {
        let mut all = vec!["--config", self.config.to_str().expect("utf-8 path")];
        all.extend_from_slice(args);
        Proc::spawn(binary, &all)
    }

    /// Files of this deployment left in /dev/shm or iceoryx2's folders.
    pub fn leftovers(&self) -> Vec<String> {
        let prefix = shm_prefix(&self.name);
        let mut found: Vec<String> = std::fs::read_dir("/dev/shm")
            .map(|entries| {
                entries
                    .flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.starts_with(&prefix))
                    .map(|n| format!("/dev/shm/{n}"))
                    .collect()
            })
            .unwrap_or_default();
        let root = deployment_root(&self.name);
        if Path::new(&root).exists() {
            found.push(root);
        }
        found
    }

    /// Waits (bounded) until nothing of this deployment is left, else panics listing it.
    pub fn assert_no_leftovers(&self) {
        let until = Instant::now() + Duration::from_secs(5);
        loop {
            let left = self.leftovers();
            if left.is_empty() {
                return;
            }
            assert!(Instant::now() < until, "left behind: {left:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for TestDeployment {
    /// A test that failed half-way killed its processes (their `Proc`s, declared after the
    /// deployment, are dropped first, with SIGKILL): their shared memory is removed here, as
    /// the deployment's last process would, so a failed test leaves nothing behind either.
    fn drop(&mut self) {
        framebus_common::ipc::release_if_last(&self.name);
    }
}

/// Output lines of a child, collected by a reader thread.
type Lines = Arc<Mutex<Vec<String>>>;

/// A started process. Killed (SIGKILL) on drop if still running.
pub struct Proc {
    /// The child.
    pub child: Child,
    /// Name for messages.
    pub name: String,
    stdout_rx: Receiver<String>,
    stderr: Lines,
}

impl Proc {
    /// Starts `binary` (a workspace binary name) with `args`, capturing stdout and stderr.
    pub fn spawn(binary: &str, args: &[&str]) -> Proc {
        Proc::spawn_command(binary, Command::new(bin(binary)).args(args))
    }

    /// Starts a prepared command (for extra environment variables).
    pub fn spawn_command(name: &str, command: &mut Command) -> Proc {
        // A RUST_LOG the test set on the command wins over the suite's.
        if !command.get_envs().any(|(key, _)| key == "RUST_LOG") {
            command.env("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()));
        }
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env("NO_COLOR", "1")
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr_pipe = child.stderr.take().expect("piped stderr");
        let (tx, stdout_rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr: Lines = Arc::default();
        let sink = Arc::clone(&stderr);
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stderr_pipe);
            let mut buf = String::new();
            loop {
                buf.clear();
                match reader.read_line(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => sink.lock().map(|mut l| l.push(buf.trim_end().to_string())).unwrap_or(()),
                }
            }
        });
        Proc { child, name: name.to_string(), stdout_rx, stderr }
    }

    /// The next stdout line satisfying `pred`, waiting at most `timeout`; panics otherwise.
    pub fn wait_stdout(&mut self, timeout: Duration, mut pred: impl FnMut(&str) -> bool) -> String {
        let until = Instant::now() + timeout;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match self.stdout_rx.recv_timeout(left) {
                Ok(line) if pred(&line) => return line,
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => {
                    panic!("{}: no matching stdout line within {timeout:?}; stderr:\n{}", self.name, self.stderr_text())
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("{}: exited before a matching stdout line; stderr:\n{}", self.name, self.stderr_text())
                }
            }
        }
    }

    /// The next stdout line parsed as JSON that satisfies `pred`.
    pub fn wait_json(
        &mut self,
        timeout: Duration,
        mut pred: impl FnMut(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let line = self.wait_stdout(timeout, |l| serde_json::from_str::<serde_json::Value>(l).is_ok_and(|v| pred(&v)));
        serde_json::from_str(&line).expect("matched line is JSON")
    }

    /// Waits until stderr has a line containing `needle`.
    pub fn wait_stderr(&self, timeout: Duration, needle: &str) -> String {
        let until = Instant::now() + timeout;
        loop {
            if let Some(line) = self.stderr.lock().ok().and_then(|l| l.iter().find(|l| l.contains(needle)).cloned()) {
                return line;
            }
            assert!(
                Instant::now() < until,
                "{}: no stderr line with `{needle}`; stderr:\n{}",
                self.name,
                self.stderr_text()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Everything written to stderr so far.
    pub fn stderr_text(&self) -> String {
        self.stderr.lock().map(|l| l.join("\n")).unwrap_or_default()
    }

    /// Sends a signal.
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill has no memory-safety preconditions.
        unsafe { libc::kill(self.child.id() as i32, signal) };
    }

    /// Waits for the exit (bounded); returns the exit code (None when killed by a signal).
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let until = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                // Give the reader threads a moment to drain the pipes.
                std::thread::sleep(Duration::from_millis(20));
                return status.code();
            }
            assert!(
                Instant::now() < until,
                "{} did not exit within {timeout:?}; stderr:\n{}",
                self.name,
                self.stderr_text()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGTERM, then waits for a clean exit and returns its code.
    pub fn terminate(&mut self) -> Option<i32> {
        self.signal(libc::SIGTERM);
        self.wait_exit(DEADLINE)
    }

    /// SIGKILL and reap.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Runs to completion, returning (exit code, stdout, stderr).
    pub fn output(binary: &str, args: &[&str]) -> (Option<i32>, String, String) {
        let mut child = Command::new(bin(binary))
            .args(args)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {binary}: {e}"));
        let mut out = String::new();
        let mut err = String::new();
        if let Some(mut s) = child.stdout.take() {
            let _ = s.read_to_string(&mut out);
        }
        if let Some(mut s) = child.stderr.take() {
            let _ = s.read_to_string(&mut err);
        }
        let status = child.wait().expect("wait");
        (status.code(), out, err)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The entry of `role` (e.g. `"capture"`) of `camera` in `ctl status --json` output
/// (`Null` when absent).
pub fn process_status<'a>(status: &'a serde_json::Value, camera: &str, role: &str) -> &'a serde_json::Value {
    status["processes"]
        .as_array()
        .and_then(|all| all.iter().find(|p| p["camera"] == camera && p["role"] == role))
        .unwrap_or(&serde_json::Value::Null)
}

/// Whether a process with this pid exists (zombies included).
pub fn pid_alive(pid: u32) -> bool {
    // SAFETY: signal 0 only checks for existence; no memory is involved.
    unsafe { libc::kill(pid as i32, 0) == 0 }
}

/// The camera table of a synthetic camera with an algo reader, for test configs.
pub fn synthetic_camera(name: &str, width: u32, height: u32, fps: u32) -> String {
    format!(
        "[[camera]]\nname = \"{name}\"\nwidth = {width}\nheight = {height}\nfps = {fps}\n\n[camera.source]\nkind = \"synthetic\"\n\n[camera.algo]\nstats-interval-secs = 0.5\n"
    )
}

/// A minimal HTTP/1.1 GET against `base` (e.g. `http://127.0.0.1:8080/`) for `path`; returns
/// (status code, head, body). Reads until the server closes (every framebus response but the
/// stream does).
pub fn http_get(base: &str, path: &str) -> (u16, String, Vec<u8>) {
    use std::io::Write;
    let host = base.trim_start_matches("http://").trim_end_matches('/');
    let mut stream = std::net::TcpStream::connect(host).unwrap_or_else(|e| panic!("connecting to {host}: {e}"));
    stream.set_read_timeout(Some(DEADLINE)).expect("read timeout");
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").expect("send request");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or_else(|| panic!("{path}: no response head"));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, head, raw[split + 4..].to_vec())
}

/// CPU time (user + system) a process has used so far, from `/proc/<pid>/stat`.
pub fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc/<pid>/stat");
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
    // SAFETY: sysconf has no memory-safety preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_millis(ticks * 1000 / hz)
}

/// Frames in the first video stream of `path` as decoded by ffprobe, or `None` when ffprobe
/// cannot open it.
pub fn ffprobe_frames(path: &Path) -> Option<u64> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", "v:0", "-show_entries", "stream=nb_read_frames"])
        .args(["-of", "csv=p=0"])
        .arg(path)
        .output()
        .expect("ffprobe is installed (scripts/bootstrap.sh)");
    if !out.status.success() {
        return None;
    }
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}
