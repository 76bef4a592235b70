//! `ctl up`: runs a deployment. Removes what dead processes of the deployment left in shared
//! memory, starts each camera's capture (and fails loudly if one cannot start at all), then the
//! readers the config lists, restarts a crashed process with exponential backoff (a bounded
//! number of times, reset once it has run stably), and on SIGINT/SIGTERM stops the readers
//! first, then capture, and waits for them.
//!
//! User readers with a `command` in `[[camera.reader]]` are started like the built-in readers
//! (after capture), in the config file's folder, with `FRAMEBUS_CONFIG`, `FRAMEBUS_CAMERA` and
//! `FRAMEBUS_ROLE` in their environment (the Rust and Python APIs take their defaults from
//! them). Every child gets the supervisor's log format in `FRAMEBUS_LOG_FORMAT`.
//!
//! Under systemd (`Type=notify`, see `ctl systemd`) the supervisor reports `READY=1` once every
//! capture serves its control service and the readers are started, and `STOPPING=1` when it
//! starts stopping them; children do not see `NOTIFY_SOCKET`.
//!
//! One supervisor per deployment: `ctl up` first takes an exclusive lock on
//! `<state-dir>/supervisor.lock` (released by the kernel when the process ends, however it
//! ends); a second `ctl up` of the deployment exits at once naming the first one's pid.
//!
//! The sibling binaries are found next to ctl's own executable. Children run in their own
//! process group (Ctrl-C reaches only the supervisor, which then stops them in order) and get
//! SIGTERM if the supervisor dies (`PR_SET_PDEATHSIG`), so none outlives it.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use framebus_common::ipc::{connect_control, create_named_node_with, DeploymentGuard, IpcService};
use framebus_common::logging::{self, LOG_FORMAT_ENV};
use framebus_common::names::{ProcessRole, Role};

use crate::metrics::{self, RestartBook};
use framebus_common::shm_budget::BudgetError;
use framebus_common::state::StateStore;
use framebus_common::Deployment;
use iceoryx2::prelude::*;

/// Restart and shutdown policy.
#[derive(Debug, Clone)]
pub struct SupervisorOptions {
    /// Restarts of one process before giving up on it.
    pub max_restarts: u32,
    /// Delay before the first restart; doubled for each further one.
    pub first_backoff: Duration,
    /// Longest delay between restarts.
    pub max_backoff: Duration,
    /// A process that ran this long counts as healthy again: its restart count starts over.
    pub stable_after: Duration,
    /// How long capture may take to serve its control service after starting.
    pub ready_timeout: Duration,
    /// How long a process may take to exit after SIGTERM before it is killed.
    pub stop_grace: Duration,
}

impl Default for SupervisorOptions {
    fn default() -> Self {
        SupervisorOptions {
            max_restarts: 5,
            first_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(10),
            stable_after: Duration::from_secs(30),
            ready_timeout: Duration::from_secs(20),
            stop_grace: Duration::from_secs(10),
        }
    }
}

/// How often the supervisor looks at its children and the signal flag.
const TICK: Duration = Duration::from_millis(50);

/// What a supervised process runs.
#[derive(Debug, Clone)]
enum Program {
    /// A framebus binary next to ctl.
    Builtin(ProcessRole),
    /// A user reader's command line from `[[camera.reader]] command`.
    User(Vec<String>),
    /// The deployment's media server (`[media-server] start = true`), one for all cameras.
    MediaServer,
}

/// Binary of the media server, next to ctl.
const MEDIA_SERVER: &str = "mediaserver";

/// One supervised process.
struct Supervised {
    camera: String,
    role: Role,
    program: Program,
    child: Option<Child>,
    started: Instant,
    restarts: u32,
    restart_at: Option<Instant>,
    /// Starts in a row that failed for lack of shared memory (the retry back-off).
    shortages: u32,
    /// Exited cleanly (e.g. `ctl stop`) or given up on: not restarted.
    done: bool,
    failed: bool,
}

impl Supervised {
    fn label(&self) -> String {
        if self.is_media_server() {
            return "the media server".into();
        }
        format!("{} of camera `{}`", self.role, self.camera)
    }

    fn is_capture(&self) -> bool {
        matches!(self.program, Program::Builtin(ProcessRole::Capture))
    }

    fn is_media_server(&self) -> bool {
        matches!(self.program, Program::MediaServer)
    }
}

/// Everything the supervisor needs to start a process.
struct Launcher {
    bin_dir: PathBuf,
    config: PathBuf,
}

impl Launcher {
    fn start(&self, proc: &mut Supervised) -> anyhow::Result<()> {
        let (binary, mut command) = match &proc.program {
            Program::Builtin(role) => {
                let binary = self.bin_dir.join(role.name());
                let mut command = Command::new(&binary);
                command.arg("--config").arg(&self.config).arg("--camera").arg(&proc.camera);
                (binary, command)
            }
            Program::User(argv) => {
                let folder = self.config.parent().map(Path::to_path_buf).unwrap_or_default();
                let program = argv.first().map(String::as_str).unwrap_or_default();
                // A path with a `/` is relative to the config file's folder; a bare name is
                // looked up in PATH.
                let binary = if program.contains('/') { folder.join(program) } else { PathBuf::from(program) };
                let mut command = Command::new(&binary);
                command.args(&argv[1..]).current_dir(&folder);
                (binary, command)
            }
            Program::MediaServer => {
                let binary = self.bin_dir.join(MEDIA_SERVER);
                let mut command = Command::new(&binary);
                command.arg("--config").arg(&self.config);
                (binary, command)
            }
        };
        command
            .env("FRAMEBUS_CONFIG", &self.config)
            .env("FRAMEBUS_CAMERA", &proc.camera)
            .env("FRAMEBUS_ROLE", proc.role.as_str())
            .env(LOG_FORMAT_ENV, logging::format().as_str())
            .env_remove("NOTIFY_SOCKET")
            .stdin(Stdio::null())
            .stdout(Stdio::inherit())
            .stderr(Stdio::inherit())
            // Own process group: a terminal's Ctrl-C reaches only the supervisor, which stops
            // the children in order.
            .process_group(0);
        // SAFETY: the closure runs in the forked child before exec and only calls prctl, which
        // is async-signal-safe; it touches no memory of the parent.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command.spawn().with_context(|| format!("starting {} ({})", proc.label(), binary.display()))?;
        tracing::info!(camera = proc.camera, role = %proc.role, pid = child.id(), "started");
        proc.child = Some(child);
        proc.started = Instant::now();
        proc.restart_at = None;
        Ok(())
    }
}

/// Runs the deployment until SIGINT/SIGTERM. Errors when a capture cannot start at all, or when
/// the supervisor gave up on a process and nothing is left running.
pub fn run(deployment: &Deployment, options: &SupervisorOptions) -> anyhow::Result<()> {
    // One supervisor per deployment, decided before anything is started, cleaned or bound: a
    // second one ends here and touches nothing. Held until this function returns.
    let _lock = StateStore::of(deployment).lock_supervisor(deployment.name())?;
    match framebus_common::shm_budget::check(deployment, None, true) {
        Ok(()) => {}
        // Space another process holds may come back: start anyway, the processes that cannot
        // get theirs exit with EXIT_SHORT_OF_MEMORY and are retried until it is there.
        Err(BudgetError::Short(short)) => degraded(&format!("{short}")),
        Err(e) => return Err(e.into()),
    }
    let term = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&term)).context("installing the signal handlers")?;
    }
    let launcher = Launcher { bin_dir: sibling_dir()?, config: absolute(&deployment.source_file)? };
    for cam in &deployment.camera {
        for role in cam.processes() {
            let binary = launcher.bin_dir.join(role.name());
            if !binary.is_file() {
                bail!(
                    "`{}` (needed for camera `{}`) is not next to ctl in {}: build every binary (`cargo build --release --bins`)",
                    role.name(),
                    cam.name,
                    launcher.bin_dir.display()
                );
            }
        }
    }
    let media_server = deployment.media_server.as_ref().is_some_and(|m| m.start);
    if media_server && !launcher.bin_dir.join(MEDIA_SERVER).is_file() {
        bail!(
            "`{MEDIA_SERVER}` (needed for [media-server]) is not next to ctl in {}: build every binary (`cargo build --release --bins`)",
            launcher.bin_dir.display()
        );
    }
    let _release = DeploymentGuard::new(deployment.name());
    // Creating the node removes the resources of dead processes of this deployment; the
    // supervisor owns SIGINT/SIGTERM itself (signal-hook), so iceoryx2 must not.
    let node = loop {
        match create_named_node_with(deployment.name(), "supervisor", SignalHandlingMode::Disabled) {
            Ok(node) => break node,
            Err(e) => {
                // Even the node's few pages may be missing in a full /dev/shm: wait for them.
                let Some(short) = framebus_common::shm_budget::short_of(1024 * 1024, "the supervisor's node") else {
                    return Err(e.into());
                };
                degraded(&format!("{e}: {short}; retrying in {SHORTAGE_MAX_BACKOFF:?}"));
                let until = Instant::now() + SHORTAGE_MAX_BACKOFF;
                while Instant::now() < until {
                    if term.load(Ordering::Relaxed) {
                        return Ok(());
                    }
                    std::thread::sleep(TICK);
                }
            }
        }
    };
    tracing::info!(deployment = deployment.name(), config = %launcher.config.display(), "supervisor starting");
    let restarts = RestartBook::default();
    let metrics_stop = Arc::new(AtomicBool::new(false));
    // Metrics are optional: a taken address degrades them (logged, `ctl status`, retried), it
    // never stops the cameras.
    let exporter = deployment.deployment.metrics_addr().map(|listen| {
        metrics::serve_retrying(deployment.clone(), listen, Some(Arc::clone(&restarts)), Arc::clone(&metrics_stop))
    });

    let supervised = |camera: &str, role: Role, program: Program| Supervised {
        camera: camera.to_string(),
        role,
        program,
        child: None,
        started: Instant::now(),
        restarts: 0,
        restart_at: None,
        shortages: 0,
        done: false,
        failed: false,
    };
    let mut procs: Vec<Supervised> = Vec::new();
    if media_server {
        // Started with the readers, before the streamers that publish to it.
        procs.push(supervised("*", Role::new(MEDIA_SERVER).context("media server role")?, Program::MediaServer));
    }
    for cam in &deployment.camera {
        for role in cam.processes() {
            procs.push(supervised(&cam.name, role.into(), Program::Builtin(role)));
        }
        for user in cam.reader.iter().filter(|r| !r.command.is_empty()) {
            let role = Role::new(&user.name).context("validated reader name")?;
            procs.push(supervised(&cam.name, role, Program::User(user.command.clone())));
        }
    }

    // Captures first, each until it serves its control service: a capture that cannot start
    // (bad device, unreadable file) fails the whole start-up with its own error above ours.
    let outcome = start_captures(&node, deployment, &launcher, &mut procs, options, &term)
        .and_then(|()| start_readers(&launcher, &mut procs))
        .and_then(|()| {
            let running = procs.iter().filter(|p| p.child.is_some()).count();
            notify_systemd(&[
                sd_notify::NotifyState::Ready,
                sd_notify::NotifyState::Status(&format!("{running} processes running")),
            ]);
            watch(&launcher, &mut procs, options, &term, &restarts)
        });
    notify_systemd(&[sd_notify::NotifyState::Stopping]);
    stop_all(&mut procs, options.stop_grace);
    metrics_stop.store(true, Ordering::Relaxed);
    if let Some(handle) = exporter {
        let _ = handle.join();
    }
    drop(node);
    outcome
}

fn start_captures(
    node: &Node<IpcService>,
    deployment: &Deployment,
    launcher: &Launcher,
    procs: &mut [Supervised],
    options: &SupervisorOptions,
    term: &AtomicBool,
) -> anyhow::Result<()> {
    for proc in procs.iter_mut().filter(|p| p.is_capture()) {
        launcher.start(proc)?;
        let until = Instant::now() + options.ready_timeout;
        loop {
            if term.load(Ordering::Relaxed) {
                return Ok(());
            }
            if let Some(status) = proc.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                proc.child = None;
                if short_of_memory(status) {
                    // Not a broken camera: retried (capped back-off) until the space is back.
                    schedule_retry(proc, Instant::now());
                    break;
                }
                proc.failed = true;
                bail!(
                    "capture of camera `{}` could not start ({}): see its error above",
                    proc.camera,
                    describe(status)
                );
            }
            let serving = connect_control(node, deployment.name(), &proc.camera, ProcessRole::Capture.name())
                .ok()
                .flatten()
                .is_some_and(|s| s.has_server());
            if serving {
                tracing::info!(camera = proc.camera, "capture is ready");
                break;
            }
            if Instant::now() >= until {
                tracing::warn!(
                    camera = proc.camera,
                    "capture is not serving control after {:?}; starting the readers anyway",
                    options.ready_timeout
                );
                break;
            }
            std::thread::sleep(TICK);
        }
    }
    Ok(())
}

fn start_readers(launcher: &Launcher, procs: &mut [Supervised]) -> anyhow::Result<()> {
    for proc in procs.iter_mut().filter(|p| !p.is_capture()) {
        launcher.start(proc)?;
    }
    Ok(())
}

/// Longest wait between two starts of a process that found /dev/shm short of space: the
/// deployment recovers within this (plus a start) once the space is back.
const SHORTAGE_MAX_BACKOFF: Duration = Duration::from_secs(2);

/// Whether a child exited because /dev/shm lacked free space (see `shm_budget`).
fn short_of_memory(status: ExitStatus) -> bool {
    status.code() == Some(i32::from(framebus_common::shm_budget::EXIT_SHORT_OF_MEMORY))
}

/// Schedules another start of `proc` after a shortage of shared memory: 0.25 s, 0.5 s, 1 s,
/// then every [`SHORTAGE_MAX_BACKOFF`], for as long as it lasts.
fn schedule_retry(proc: &mut Supervised, now: Instant) {
    proc.shortages = proc.shortages.saturating_add(1);
    let delay = Duration::from_millis(250).saturating_mul(1 << (proc.shortages - 1).min(8)).min(SHORTAGE_MAX_BACKOFF);
    degraded(&format!(
        "{} exited with code {}: not enough shared memory (its error is above); retry {} in {delay:?}",
        proc.label(),
        framebus_common::shm_budget::EXIT_SHORT_OF_MEMORY,
        proc.shortages
    ));
    proc.restart_at = Some(now + delay);
}

/// Logs and reports (systemd `STATUS=`) that the deployment runs degraded, and why.
fn degraded(reason: &str) {
    tracing::warn!("degraded: {reason}");
    notify_systemd(&[sd_notify::NotifyState::Status(&format!("degraded: {reason}"))]);
}

/// Watches the children until a termination signal, restarting crashed ones.
fn watch(
    launcher: &Launcher,
    procs: &mut [Supervised],
    options: &SupervisorOptions,
    term: &AtomicBool,
    restarts: &RestartBook,
) -> anyhow::Result<()> {
    while !term.load(Ordering::Relaxed) {
        let now = Instant::now();
        for proc in procs.iter_mut() {
            if let Some(child) = proc.child.as_mut() {
                let status = match child.try_wait() {
                    Ok(Some(status)) => status,
                    Ok(None) => continue,
                    Err(e) => {
                        tracing::warn!(camera = proc.camera, role = %proc.role, "cannot query the process: {e}");
                        continue;
                    }
                };
                proc.child = None;
                if status.success() {
                    tracing::info!(camera = proc.camera, role = %proc.role, "exited cleanly; not restarting");
                    proc.done = true;
                    continue;
                }
                if proc.started.elapsed() >= options.stable_after {
                    proc.restarts = 0;
                    proc.shortages = 0;
                }
                if short_of_memory(status) {
                    // A resource that can come back: never given up on, not counted as a crash.
                    schedule_retry(proc, now);
                    continue;
                }
                if proc.restarts >= options.max_restarts {
                    tracing::error!(
                        camera = proc.camera,
                        role = %proc.role,
                        "{} after {} restarts; giving up on it",
                        describe(status),
                        proc.restarts
                    );
                    proc.done = true;
                    proc.failed = true;
                    continue;
                }
                proc.restarts += 1;
                if let Ok(mut book) = restarts.lock() {
                    *book.entry((proc.camera.clone(), proc.role.as_str().to_string())).or_default() += 1;
                }
                let delay =
                    options.first_backoff.saturating_mul(1 << (proc.restarts - 1).min(16)).min(options.max_backoff);
                tracing::warn!(
                    camera = proc.camera,
                    role = %proc.role,
                    "{}; restart {} of {} in {delay:?}",
                    describe(status),
                    proc.restarts,
                    options.max_restarts
                );
                proc.restart_at = Some(now + delay);
            } else if proc.restart_at.is_some_and(|at| at <= now) {
                if let Err(e) = launcher.start(proc) {
                    tracing::error!(camera = proc.camera, role = %proc.role, "{e:#}; giving up on it");
                    proc.restart_at = None;
                    proc.done = true;
                    proc.failed = true;
                }
            }
        }
        stop_readers_of_ended_cameras(procs, options.stop_grace);
        if procs.iter().all(|p| p.done) {
            let failed: Vec<String> = procs.iter().filter(|p| p.failed).map(Supervised::label).collect();
            if failed.is_empty() {
                tracing::info!("every process has exited cleanly");
                return Ok(());
            }
            bail!("gave up on {}; nothing is left running", failed.join(", "));
        }
        std::thread::sleep(TICK);
    }
    tracing::info!("termination requested: stopping readers, then capture");
    Ok(())
}

/// A camera whose capture has ended for good (stopped with `ctl stop`, or given up on) has
/// nothing left to read: its readers are stopped too, so that the supervisor ends once every
/// camera has (as the original control process stopped when its camera died).
fn stop_readers_of_ended_cameras(procs: &mut [Supervised], grace: Duration) {
    let ended: Vec<String> = procs.iter().filter(|p| p.is_capture() && p.done).map(|p| p.camera.clone()).collect();
    // The media server serves every camera: it stops once every capture has ended.
    if procs.iter().filter(|p| p.is_capture()).all(|p| p.done) {
        let servers: Vec<&mut Supervised> = procs.iter_mut().filter(|p| p.is_media_server() && !p.done).collect();
        if !servers.is_empty() {
            tracing::info!("every capture has ended: stopping the media server");
            stop_group(servers, grace);
        }
    }
    for camera in ended {
        let readers: Vec<&mut Supervised> =
            procs.iter_mut().filter(|p| p.camera == camera && !p.is_capture() && !p.done).collect();
        if readers.is_empty() {
            continue;
        }
        tracing::info!(camera, "capture has ended: stopping the camera's readers");
        stop_group(readers, grace);
    }
}

/// Stops the readers, then the captures: SIGTERM, then SIGKILL after `grace`.
fn stop_all(procs: &mut [Supervised], grace: Duration) {
    for captures in [false, true] {
        let group: Vec<&mut Supervised> =
            procs.iter_mut().filter(|p| p.is_capture() == captures && p.child.is_some()).collect();
        stop_group(group, grace);
    }
}

/// SIGTERM to every process of `group`, then waits for each, SIGKILL after `grace`; marks them
/// done (not restarted).
fn stop_group(mut group: Vec<&mut Supervised>, grace: Duration) {
    for proc in &group {
        if let Some(child) = &proc.child {
            // SAFETY: kill has no memory-safety preconditions; the pid is our unreaped child.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        }
    }
    let until = Instant::now() + grace;
    for proc in group.iter_mut() {
        proc.done = true;
        proc.restart_at = None;
        let Some(mut child) = proc.child.take() else { continue };
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) if Instant::now() < until => std::thread::sleep(Duration::from_millis(10)),
                Ok(None) | Err(_) => {
                    tracing::warn!(camera = proc.camera, role = %proc.role, "did not stop within {grace:?}; killing it");
                    let _ = child.kill();
                    break child.wait().ok();
                }
            }
        };
        if let Some(status) = status {
            tracing::info!(camera = proc.camera, role = %proc.role, "stopped ({})", describe(status));
        }
    }
}

/// Tells systemd (when it started us with `NOTIFY_SOCKET`) about the supervisor's state; without
/// systemd this does nothing.
fn notify_systemd(states: &[sd_notify::NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!("could not notify systemd ({states:?}): {e}");
    }
}

fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with code {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        _ => "ended".into(),
    }
}

/// Folder of ctl's own executable, where the sibling binaries are.
fn sibling_dir() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("locating ctl's own executable")?;
    exe.parent().map(Path::to_path_buf).with_context(|| format!("folder of `{}`", exe.display()))
}

fn absolute(path: &Path) -> anyhow::Result<PathBuf> {
    std::path::absolute(path).with_context(|| format!("resolving config path `{}`", path.display()))
}
