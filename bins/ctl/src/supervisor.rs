//! `ctl up`: runs a deployment. Removes what dead processes of the deployment left in shared
//! memory, starts each camera's capture (and fails loudly if one cannot start at all), then the
//! readers the config lists, restarts a crashed process with exponential backoff (a bounded
//! number of times, reset once it has run stably), and on SIGINT/SIGTERM stops the readers
//! first, then capture, and waits for them.
//!
//! User readers with a `command` in `[[camera.reader]]` are started like the built-in readers
//! (after capture), in the config file's folder, with `FRAMEBUS_CONFIG`, `FRAMEBUS_CAMERA` and
//! `FRAMEBUS_ROLE` in their environment (the Rust and Python APIs take their defaults from
//! them), and `PYTHONUNBUFFERED=1` unless it is set. Every child gets the supervisor's log
//! format in `FRAMEBUS_LOG_FORMAT`.
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
//!
//! Their stdout and stderr are pipes to the supervisor, which logs every line with the child's
//! deployment, camera, role and pid (`supervisor::output`) and keeps the last 20 lines of stderr of each
//! process. The supervisor serves a control service of its own
//! (`framebus/<deployment>/_deployment/supervisor/control`, `supervisor::control`): `ctl restart`,
//! `ctl start`, `ctl logs` and the exit reasons `ctl status` shows.

mod control;
mod launch;
mod output;

use std::process::{Child, ExitStatus};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context};
use framebus_common::ipc::{connect_control, create_named_node_with, DeploymentGuard, IpcService};
use framebus_common::names::{DeploymentProcess, ProcessRole, Role, DEPLOYMENT_SCOPE};

use self::control::Controller;
use self::launch::Launcher;
use self::output::SharedKept;

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
    /// The deployment's bridge to other hosts (`[zenoh]`), one for all cameras.
    Bridge,
}

/// Binary of the media server, next to ctl.
const MEDIA_SERVER: &str = "mediaserver";

/// Binary of the bridge (exports with `[zenoh]`, imports each `[[remote-camera]]` in place of
/// its capture), next to ctl.
const BRIDGE: &str = framebus_common::names::BRIDGE_ROLE;

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
    /// Process id of the running child, else of the last one.
    pid: Option<u32>,
    /// Times it was started.
    starts: u32,
    /// How its last child ended.
    last_exit: Option<LastExit>,
    /// The last lines of stderr (across restarts).
    kept: SharedKept,
    /// `ctl restart`: SIGTERM was sent; started again as soon as it exits, SIGKILLed at this
    /// time if it has not.
    restart_requested: Option<Instant>,
    /// Stopped by the supervisor because its camera's capture ended (the media server: every
    /// capture): starting the capture again starts it too.
    stopped_with_camera: bool,
    /// The threads relaying its outputs.
    relays: Vec<std::thread::JoinHandle<()>>,
}

/// How a child ended, as `ctl status` reports it.
#[derive(Debug, Clone)]
struct LastExit {
    status: ExitStatus,
    /// Wall-clock time the supervisor saw it.
    at: SystemTime,
    /// Restarts counted after it.
    restarts: u32,
    /// Back-off before the next start, when one was scheduled.
    backoff: Option<Duration>,
}

impl LastExit {
    fn new(status: ExitStatus, restarts: u32) -> LastExit {
        LastExit { status, at: SystemTime::now(), restarts, backoff: None }
    }
}

impl Supervised {
    /// A process not started yet.
    fn new(camera: &str, role: Role, program: Program) -> Supervised {
        Supervised {
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
            pid: None,
            starts: 0,
            last_exit: None,
            kept: SharedKept::default(),
            restart_requested: None,
            stopped_with_camera: false,
            relays: Vec::new(),
        }
    }

    fn label(&self) -> String {
        if self.is_media_server() {
            return "the media server".into();
        }
        if matches!(self.program, Program::Bridge) {
            return "the bridge".into();
        }
        format!("{} of camera `{}`", self.role, self.camera)
    }

    fn is_capture(&self) -> bool {
        matches!(self.program, Program::Builtin(ProcessRole::Capture))
    }

    fn is_media_server(&self) -> bool {
        matches!(self.program, Program::MediaServer)
    }

    /// A process of the whole deployment (the media server, the bridge): it stops once every
    /// capture has ended.
    fn is_deployment_wide(&self) -> bool {
        matches!(self.program, Program::MediaServer | Program::Bridge)
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
    let launcher = Launcher::new(deployment)?;
    let media_server = deployment.media_server.as_ref().is_some_and(|m| m.start);
    // The exporting bridge runs when the deployment has something to export.
    let bridge = deployment.deployment_processes().contains(&DeploymentProcess::Bridge);
    launcher.check_binaries(deployment, media_server, bridge)?;
    let webhook_clients = crate::webhooks::clients(deployment)?;
    let _release = DeploymentGuard::new(deployment.name());
    let Some(node) = create_node(deployment, &term)? else { return Ok(()) };
    tracing::info!(deployment = deployment.name(), config = %launcher.config.display(), "supervisor starting");
    let restarts = RestartBook::default();
    let side = SideServices::start(deployment, webhook_clients, &restarts);

    let mut procs = supervised_processes(deployment, media_server, bridge)?;

    // `ctl restart`, `ctl start`, `ctl logs` and the exit reasons of `ctl status` reach the
    // supervisor over its own control service; without it (e.g. /dev/shm full) the deployment
    // still runs, and it is tried again.
    let mut supervisor = Supervisor {
        launcher: &launcher,
        options,
        node: &node,
        deployment,
        controller: None,
        controller_retry: Instant::now(),
        controller_failed: false,
    };
    supervisor.try_serving();

    // Captures first, each until it serves its control service: a capture that cannot start
    // (bad device, unreadable file) fails the whole start-up with its own error above ours.
    let outcome = supervisor
        .start_captures(&mut procs, &term)
        .and_then(|()| start_readers(&launcher, &mut procs))
        .and_then(|()| {
            let running = procs.iter().filter(|p| p.child.is_some()).count();
            notify_systemd(&[
                sd_notify::NotifyState::Ready,
                sd_notify::NotifyState::Status(&format!("{running} processes running")),
            ]);
            supervisor.watch(&mut procs, &term, &restarts)
        });
    notify_systemd(&[sd_notify::NotifyState::Stopping]);
    stop_all(&mut procs, options.stop_grace);
    wait_for_relays(&mut procs);
    side.stop();
    drop(supervisor);
    drop(node);
    outcome
}

/// What runs beside the children on threads of the supervisor: the metrics exporter and the
/// webhooks.
struct SideServices {
    metrics_stop: Arc<AtomicBool>,
    exporter: Option<std::thread::JoinHandle<()>>,
    webhooks_stop: Arc<AtomicBool>,
    webhooks: Option<crate::webhooks::Webhooks>,
}

impl SideServices {
    /// Starts the metrics exporter (with `[deployment] metrics`) and the webhooks.
    fn start(
        deployment: &Deployment,
        webhook_clients: Vec<crate::webhook_client::Client>,
        restarts: &RestartBook,
    ) -> SideServices {
        let metrics_stop = Arc::new(AtomicBool::new(false));
        // Metrics are optional: a taken address degrades them (logged, `ctl status`, retried), it
        // never stops the cameras.
        let exporter = deployment.deployment.metrics_addr().map(|listen| {
            metrics::serve_retrying(deployment.clone(), listen, Some(Arc::clone(restarts)), Arc::clone(&metrics_stop))
        });
        // Webhooks follow the journals on threads of their own: a receiver that is down or slow
        // never delays the supervisor or a recorder.
        let webhooks_stop = Arc::new(AtomicBool::new(false));
        let webhooks =
            crate::webhooks::start(deployment, webhook_clients, Arc::clone(&webhooks_stop)).unwrap_or_else(|e| {
                tracing::error!("webhooks: {e:#}; no webhook is sent");
                None
            });
        SideServices { metrics_stop, exporter, webhooks_stop, webhooks }
    }

    /// Stops the webhooks (after a short chance for the clips the stop ended), then the
    /// metrics exporter.
    fn stop(self) {
        if let Some(webhooks) = self.webhooks {
            // The clips the stop ended are journaled by now: their events get a short chance.
            webhooks.drain(Duration::from_secs(2));
            self.webhooks_stop.store(true, Ordering::Relaxed);
            webhooks.join();
        }
        self.metrics_stop.store(true, Ordering::Relaxed);
        if let Some(handle) = self.exporter {
            let _ = handle.join();
        }
    }
}

/// The supervisor's node, waited for while /dev/shm is too full for even its few pages;
/// `None` when a stop was asked meanwhile. Creating it removes the resources of dead processes
/// of this deployment; the supervisor owns SIGINT/SIGTERM itself (signal-hook), so iceoryx2
/// must not.
fn create_node(deployment: &Deployment, term: &AtomicBool) -> anyhow::Result<Option<Node<IpcService>>> {
    loop {
        match create_named_node_with(deployment.name(), "supervisor", SignalHandlingMode::Disabled) {
            Ok(node) => return Ok(Some(node)),
            Err(e) => {
                // Even the node's few pages may be missing in a full /dev/shm: wait for them.
                let Some(short) = framebus_common::shm_budget::short_of(1024 * 1024, "the supervisor's node") else {
                    return Err(e.into());
                };
                degraded(&format!("{e}: {short}; retrying in {SHORTAGE_MAX_BACKOFF:?}"));
                let until = Instant::now() + SHORTAGE_MAX_BACKOFF;
                while Instant::now() < until {
                    if term.load(Ordering::Relaxed) {
                        return Ok(None);
                    }
                    std::thread::sleep(TICK);
                }
            }
        }
    }
}

/// Every process of the deployment, in start order: the media server and the bridge, then
/// each camera's processes and user readers.
fn supervised_processes(deployment: &Deployment, media_server: bool, bridge: bool) -> anyhow::Result<Vec<Supervised>> {
    let mut procs: Vec<Supervised> = Vec::new();
    if media_server {
        // Started with the readers, before the streamers that publish to it.
        // Its camera is the deployment scope, as on its control service: `ctl restart
        // mediaserver` asks for `_deployment mediaserver`.
        procs.push(Supervised::new(DEPLOYMENT_SCOPE, DeploymentProcess::MediaServer.role(), Program::MediaServer));
    }
    if bridge {
        procs.push(Supervised::new(DEPLOYMENT_SCOPE, DeploymentProcess::Bridge.role(), Program::Bridge));
    }
    for cam in &deployment.camera {
        for role in cam.processes() {
            procs.push(Supervised::new(&cam.name, role.into(), Program::Builtin(role)));
        }
        for user in cam.reader.iter().filter(|r| !r.command.is_empty()) {
            let role = Role::new(&user.name).context("validated reader name")?;
            procs.push(Supervised::new(&cam.name, role, Program::User(user.command.clone())));
        }
    }
    Ok(procs)
}

/// The children's last lines, still in their pipes, are logged before the supervisor ends
/// (waited for at most a second in all).
fn wait_for_relays(procs: &mut [Supervised]) {
    let until = Instant::now() + Duration::from_secs(1);
    for relay in procs.iter_mut().flat_map(|p| p.relays.drain(..)) {
        while !relay.is_finished() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// How often the supervisor tries again to serve its control service when it could not.
const CONTROLLER_RETRY: Duration = Duration::from_secs(2);

/// The supervisor's loop state: how to start processes, its policy and its control service.
struct Supervisor<'a> {
    launcher: &'a Launcher,
    options: &'a SupervisorOptions,
    node: &'a Node<IpcService>,
    deployment: &'a Deployment,
    controller: Option<Controller>,
    /// When to try serving the control service again, while it is not served.
    controller_retry: Instant,
    /// Serving it failed at least once.
    controller_failed: bool,
}

impl Supervisor<'_> {
    /// Serves the control service if it is not served yet (tried every [`CONTROLLER_RETRY`];
    /// the first failure is logged, and the success after it).
    fn try_serving(&mut self) {
        if self.controller.is_some() || Instant::now() < self.controller_retry {
            return;
        }
        let failed_before = self.controller_failed;
        match Controller::create(self.node, self.deployment) {
            Ok(controller) => {
                if failed_before {
                    tracing::info!("serving `ctl restart`, `ctl start` and `ctl logs` now");
                }
                self.controller = Some(controller);
            }
            Err(e) => {
                if !failed_before {
                    tracing::warn!(
                        "{e:#}; `ctl restart`, `ctl start` and `ctl logs` cannot reach this supervisor until it can serve them (tried every {CONTROLLER_RETRY:?})"
                    );
                }
                self.controller_failed = true;
                self.controller_retry = Instant::now() + CONTROLLER_RETRY;
            }
        }
    }

    /// Sleeps at most `pause`, waking early to answer a control request (then answered).
    fn pause(&mut self, procs: &mut [Supervised], pause: Duration, starting: bool) {
        self.try_serving();
        match &self.controller {
            Some(controller) => controller.wait_and_serve(pause, procs, self.options, starting),
            None => std::thread::sleep(pause),
        }
    }

    /// Starts each capture and waits until it serves its control service (answering control
    /// requests meanwhile; `ctl restart` and `ctl start` are refused until the start-up ends).
    fn start_captures(&mut self, procs: &mut [Supervised], term: &AtomicBool) -> anyhow::Result<()> {
        for i in 0..procs.len() {
            if !procs[i].is_capture() {
                continue;
            }
            self.launcher.start(&mut procs[i])?;
            let until = Instant::now() + self.options.ready_timeout;
            loop {
                if term.load(Ordering::Relaxed) {
                    return Ok(());
                }
                let proc = &mut procs[i];
                if let Some(status) = proc.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                    proc.child = None;
                    proc.last_exit = Some(LastExit::new(status, proc.restarts));
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
                let serving =
                    connect_control(self.node, self.deployment.name(), &proc.camera, ProcessRole::Capture.name())
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
                        self.options.ready_timeout
                    );
                    break;
                }
                self.pause(procs, TICK, true);
            }
        }
        Ok(())
    }
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

impl Supervisor<'_> {
    /// Watches the children until a termination signal, restarting crashed ones and answering
    /// control requests.
    fn watch(&mut self, procs: &mut [Supervised], term: &AtomicBool, restarts: &RestartBook) -> anyhow::Result<()> {
        let options = self.options;
        while !term.load(Ordering::Relaxed) {
            let now = Instant::now();
            for proc in procs.iter_mut() {
                if let Some(child) = proc.child.as_mut() {
                    let status = match child.try_wait() {
                        Ok(Some(status)) => status,
                        Ok(None) => {
                            // `ctl restart` of a process that did not stop within the grace.
                            if proc.restart_requested.is_some_and(|at| at <= now) {
                                tracing::warn!(
                                    camera = proc.camera,
                                    role = %proc.role,
                                    pid = child.id(),
                                    "did not stop within {:?} of the restart request; killing it",
                                    options.stop_grace
                                );
                                let _ = child.kill();
                                proc.restart_requested = Some(now + options.stop_grace);
                            }
                            continue;
                        }
                        Err(e) => {
                            tracing::warn!(camera = proc.camera, role = %proc.role, "cannot query the process: {e}");
                            continue;
                        }
                    };
                    proc.child = None;
                    self.exited(proc, status, now, restarts);
                } else if proc.restart_at.is_some_and(|at| at <= now) {
                    if let Err(e) = self.launcher.start(proc) {
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
            // Sooner when a start is due (`ctl restart`, `ctl start`: at once).
            let next = procs.iter().filter_map(|p| p.restart_at).min();
            let pause = next.map_or(TICK, |at| at.saturating_duration_since(Instant::now()).min(TICK));
            self.pause(procs, pause, false);
        }
        tracing::info!("termination requested: stopping readers, then capture");
        Ok(())
    }

    /// A child ended with `status`: schedules its restart, or marks it done.
    fn exited(&self, proc: &mut Supervised, status: ExitStatus, now: Instant, restarts: &RestartBook) {
        let options = self.options;
        if proc.restart_requested.take().is_some() {
            // `ctl restart`: started again at once, its give-up counter reset.
            tracing::info!(camera = proc.camera, role = %proc.role, "{}; starting it again (restart requested)", describe(status));
            proc.restarts = 0;
            proc.shortages = 0;
            proc.last_exit = Some(LastExit::new(status, 0));
            proc.restart_at = Some(now);
            return;
        }
        proc.last_exit = Some(LastExit::new(status, proc.restarts));
        if status.success() {
            tracing::info!(camera = proc.camera, role = %proc.role, "exited cleanly; not restarting");
            proc.done = true;
            return;
        }
        if proc.started.elapsed() >= options.stable_after {
            proc.restarts = 0;
            proc.shortages = 0;
        }
        if short_of_memory(status) {
            // A resource that can come back: never given up on, not counted as a crash.
            schedule_retry(proc, now);
            if let Some(exit) = proc.last_exit.as_mut() {
                exit.backoff = proc.restart_at.map(|at| at.saturating_duration_since(now));
            }
            return;
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
            return;
        }
        proc.restarts += 1;
        if let Ok(mut book) = restarts.lock() {
            *book.entry((proc.camera.clone(), proc.role.as_str().to_string())).or_default() += 1;
        }
        let delay = options.first_backoff.saturating_mul(1 << (proc.restarts - 1).min(16)).min(options.max_backoff);
        tracing::warn!(
            camera = proc.camera,
            role = %proc.role,
            "{}; restart {} of {} in {delay:?}",
            describe(status),
            proc.restarts,
            options.max_restarts
        );
        proc.last_exit = Some(LastExit { backoff: Some(delay), ..LastExit::new(status, proc.restarts) });
        proc.restart_at = Some(now + delay);
    }
}

/// A camera whose capture has ended for good (stopped with `ctl stop`, or given up on) has
/// nothing left to read: its readers are stopped too, so that the supervisor ends once every
/// camera has (as the original control process stopped when its camera died).
fn stop_readers_of_ended_cameras(procs: &mut [Supervised], grace: Duration) {
    let ended: Vec<String> = procs.iter().filter(|p| p.is_capture() && p.done).map(|p| p.camera.clone()).collect();
    // The media server serves every camera: it stops once every capture has ended.
    if procs.iter().filter(|p| p.is_capture()).all(|p| p.done) {
        let mut servers: Vec<&mut Supervised> =
            procs.iter_mut().filter(|p| p.is_deployment_wide() && !p.done).collect();
        if !servers.is_empty() {
            tracing::info!("every capture has ended: stopping the media server and the bridge");
            servers.iter_mut().for_each(|p| p.stopped_with_camera = true);
            stop_group(servers, grace);
        }
    }
    for camera in ended {
        let mut readers: Vec<&mut Supervised> =
            procs.iter_mut().filter(|p| p.camera == camera && !p.is_capture() && !p.done).collect();
        if readers.is_empty() {
            continue;
        }
        tracing::info!(camera, "capture has ended: stopping the camera's readers");
        readers.iter_mut().for_each(|p| p.stopped_with_camera = true);
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
        proc.restart_requested = None;
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
            proc.last_exit = Some(LastExit::new(status, proc.restarts));
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

/// How a child ended, for the log: `exited with code 3`, `killed by signal 11 (SIGSEGV)`.
fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with code {code}"),
        (None, Some(signal)) => format!("killed by signal {signal} ({})", signal_name(signal)),
        _ => "ended".into(),
    }
}

/// How a child ended, short, for `ctl status`: `exited 3`, `killed by SIGSEGV (core dumped)`.
fn reason(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited {code}"),
        (None, Some(signal)) if status.core_dumped() => format!("killed by {} (core dumped)", signal_name(signal)),
        (None, Some(signal)) => format!("killed by {}", signal_name(signal)),
        _ => "ended".into(),
    }
}

/// The name of a signal (`SIGSEGV`), or `signal N` for one without a usual name.
fn signal_name(signal: i32) -> String {
    let known = [
        (libc::SIGHUP, "SIGHUP"),
        (libc::SIGINT, "SIGINT"),
        (libc::SIGQUIT, "SIGQUIT"),
        (libc::SIGILL, "SIGILL"),
        (libc::SIGTRAP, "SIGTRAP"),
        (libc::SIGABRT, "SIGABRT"),
        (libc::SIGBUS, "SIGBUS"),
        (libc::SIGFPE, "SIGFPE"),
        (libc::SIGKILL, "SIGKILL"),
        (libc::SIGUSR1, "SIGUSR1"),
        (libc::SIGSEGV, "SIGSEGV"),
        (libc::SIGUSR2, "SIGUSR2"),
        (libc::SIGPIPE, "SIGPIPE"),
        (libc::SIGALRM, "SIGALRM"),
        (libc::SIGTERM, "SIGTERM"),
        (libc::SIGXCPU, "SIGXCPU"),
        (libc::SIGXFSZ, "SIGXFSZ"),
        (libc::SIGSYS, "SIGSYS"),
    ];
    known.iter().find(|(n, _)| *n == signal).map_or_else(|| format!("signal {signal}"), |(_, name)| name.to_string())
}
