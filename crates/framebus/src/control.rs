//! The reader's control thread: serves the process's control service off the frame path, so
//! `ctl status` is answered in milliseconds and `ctl stop`/SIGTERM are seen while the reader's
//! code spends seconds on one frame.
//!
//! The thread owns a node of its own (iceoryx2 ports stay on the thread that created them) and
//! the [`ControlServer`]. It answers status from [`Shared`], which the frame thread updates per
//! frame; forwards the commands the process acts on (preview, saving) to the frame thread as
//! events; turns `stop` and SIGINT/SIGTERM into the stop flag; and closes the statistics
//! window (fps, latency percentiles) on its own clock.

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::mpsc::{Receiver, Sender, SyncSender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use framebus_common::control::server::ReaderFigures;
use framebus_common::control::{Answer, Command, ControlServer, FrameFormat, LatencyHistogram, Metrics, ProcessState};
use framebus_common::figures::Figures;
use framebus_common::ipc::{create_named_node, IpcError};
use framebus_common::state::CameraState;
use framebus_common::stats::StatusWindow;
use framebus_common::{signals, Deployment, ReaderPolicy, Role};

use crate::accounting::Accounting;

/// How often the control thread looks at signals and the statistics window while no request
/// arrives (requests wake it at once).
const CONTROL_TICK: Duration = Duration::from_millis(50);

/// Why the reader stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// SIGINT or SIGTERM.
    Signal,
    /// A `stop` command (`ctl stop <camera> <role>`).
    Command,
    /// The program asked for it ([`crate::Camera::request_stop`]).
    Program,
}

impl StopReason {
    fn code(self) -> u8 {
        match self {
            StopReason::Signal => 1,
            StopReason::Command => 2,
            StopReason::Program => 3,
        }
    }

    fn from_code(code: u8) -> Option<StopReason> {
        match code {
            1 => Some(StopReason::Signal),
            2 => Some(StopReason::Command),
            3 => Some(StopReason::Program),
            _ => None,
        }
    }
}

/// What the process adds to its status beyond the reader figures.
#[derive(Debug, Clone, Default)]
pub struct ProcessReport {
    /// State to report instead of running/waiting (e.g. [`ProcessState::Degraded`]).
    pub state: Option<ProcessState>,
    /// One line on what the process is doing (preview: its URL; recorder: its segment).
    pub message: String,
    /// Preview on/off as the process acts on it (a preview process).
    pub preview: Option<bool>,
    /// Saving on/off as the process acts on it (a recorder).
    pub saving: Option<bool>,
    /// Latency p50/p99 in µs to report instead of capture → delivery (e.g. capture → image
    /// ready); set by processes whose work ends later than delivery.
    pub latency_us: Option<(Option<u64>, Option<u64>)>,
    /// Recorder: bytes written since it started.
    pub bytes_written: u64,
    /// Recorder: segments completed since it started.
    pub segments: u64,
    /// Recorder: old segments deleted since it started.
    pub deletions: u64,
    /// Preview: viewers connected.
    pub viewers: u32,
    /// The process's own figures, answered to `figures` requests (`ctl status`, metrics): the
    /// streamer's and the recorder's ([`framebus_common::figures`]); `None` refuses them.
    pub figures: Option<Figures>,
}

/// State shared by the frame thread and the control thread.
#[derive(Debug)]
pub(crate) struct Shared {
    inner: Mutex<Inner>,
    stop: AtomicU8,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub accounting: Accounting,
    pub window: StatusWindow,
    /// Capture → delivery latency since the reader started.
    pub histogram: LatencyHistogram,
    /// Time frames were held by the reader's code, ns, smoothed (EWMA, α = 1/8).
    pub held_ns: f64,
    pub format: Option<FrameFormat>,
    pub report: ProcessReport,
    pub queue_depth: u32,
}

impl Shared {
    pub fn new(policy: ReaderPolicy, queue_depth: u32, stats_interval: Duration) -> Shared {
        Shared {
            inner: Mutex::new(Inner {
                accounting: Accounting::new(policy),
                window: StatusWindow::new(stats_interval),
                histogram: LatencyHistogram::default(),
                held_ns: 0.0,
                format: None,
                report: ProcessReport::default(),
                queue_depth,
            }),
            stop: AtomicU8::new(0),
        }
    }

    /// The shared state, locked. A panic while it was held does not poison the figures: they
    /// are counters, still meaningful.
    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records why the reader stops (the first reason wins).
    pub fn request_stop(&self, reason: StopReason) {
        let _ = self.stop.compare_exchange(0, reason.code(), Ordering::Relaxed, Ordering::Relaxed);
    }

    /// A frame handed out `held_ns` ago was released.
    pub fn released(&self, held_ns: u64) {
        let mut inner = self.lock();
        inner.held_ns =
            if inner.held_ns == 0.0 { held_ns as f64 } else { inner.held_ns + (held_ns as f64 - inner.held_ns) / 8.0 };
    }

    /// Why the reader stops, once it should.
    pub fn stop_reason(&self) -> Option<StopReason> {
        if signals::termination_requested() {
            self.request_stop(StopReason::Signal);
        }
        StopReason::from_code(self.stop.load(Ordering::Relaxed))
    }

    /// The status reply's metrics.
    fn metrics(&self) -> Metrics {
        let mut inner = self.lock();
        let processed = inner.accounting.processed;
        inner.window.roll(processed);
        let inner = &*inner;
        let acc = &inner.accounting;
        let window = &inner.window;
        let report = &inner.report;
        let (p50, p99) = report.latency_us.unwrap_or((window.p50_us, window.p99_us));
        let flowing = window.fps > 0.0 || window.frames_in_open_window(processed) > 0;
        let state = report.state.unwrap_or(if flowing { ProcessState::Running } else { ProcessState::Waiting });
        let run = acc.run;
        Metrics {
            state,
            frames: processed,
            fps: window.fps,
            skipped: acc.skipped,
            latency_p50_us: p50,
            latency_p99_us: p99,
            format: inner.format,
            target_fps: match acc.policy {
                ReaderPolicy::MaxFps(fps) => fps,
                _ => 0.0,
            },
            preview: report.preview,
            saving: report.saving,
            message: report.message.clone(),
            histogram: inner.histogram,
            cost_ns: inner.held_ns as u64,
            bytes_written: report.bytes_written,
            segments: report.segments,
            deletions: report.deletions,
            viewers: report.viewers,
            reader: Some(ReaderFigures {
                policy: acc.policy.code(),
                queue_depth: inner.queue_depth,
                skipped: acc.skipped,
                overwritten: acc.overwritten,
                driver_drops: acc.driver_drops,
                first_frame_id: run.map_or(0, |r| r.first_id),
                last_frame_id: run.map_or(0, |r| r.last_id),
            }),
        }
    }
}

/// Which flag commands the process acts on (the others are recorded and acknowledged).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Handles {
    pub preview: bool,
    pub saving: bool,
}

/// What the control thread needs to start.
pub(crate) struct ControlSetup {
    pub deployment: Deployment,
    pub camera: String,
    pub role: Role,
    pub handles: Handles,
    /// Flag changes the program makes at start (e.g. `--saving true`), recorded like commands.
    pub record: Vec<Command>,
    pub shared: Arc<Shared>,
    pub commands: SyncSender<Command>,
}

/// The running control thread; stopped and joined on drop.
#[derive(Debug)]
pub(crate) struct ControlThread {
    shutdown: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl ControlThread {
    /// Starts the thread and waits until it serves (or failed to); returns the camera's flags
    /// as the process starts with them.
    pub fn start(setup: ControlSetup) -> Result<(ControlThread, CameraState), IpcError> {
        let shutdown = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<CameraState, IpcError>>();
        let stop = Arc::clone(&shutdown);
        let name = format!("control-{}", setup.role);
        let handle = std::thread::Builder::new()
            .name(name)
            .spawn(move || serve(setup, &stop, ready_tx))
            .map_err(|e| IpcError::new("starting the control thread", e))?;
        let thread = ControlThread { shutdown, handle: Some(handle) };
        match ready_rx.recv() {
            Ok(Ok(flags)) => Ok((thread, flags)),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(IpcError::new("starting the control thread", "it ended before serving")),
        }
    }
}

impl Drop for ControlThread {
    fn drop(&mut self) {
        self.shutdown.store(true, Ordering::Relaxed);
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

fn serve(setup: ControlSetup, shutdown: &AtomicBool, ready: Sender<Result<CameraState, IpcError>>) {
    let ControlSetup { deployment, camera, role, handles, record, shared, commands } = setup;
    let started = (|| {
        let node = create_named_node(deployment.name(), &format!("{role}-{camera}-control"))?;
        let server = ControlServer::create(&node, &deployment, &camera, &role)?;
        for command in &record {
            if let Err(e) = server.record(command) {
                tracing::warn!(camera, "`{}` on the command line is not persisted: {e}", command.describe());
            }
        }
        Ok::<_, IpcError>((node, server))
    })();
    let (_node, server) = match started {
        Ok(started) => started,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let _ = ready.send(Ok(server.state()));
    drop(ready);
    let mut last_roll = Instant::now();
    while !shutdown.load(Ordering::Relaxed) {
        server.poll(|command| answer(&shared, handles, &commands, command));
        if shared.stop_reason().is_some() {
            // Keep answering until the frame thread has finished its frame and ends the
            // reader (it joins this thread): `ctl status` then shows `stopping`.
            shared.lock().report.state = Some(ProcessState::Stopping);
        }
        if last_roll.elapsed() >= CONTROL_TICK {
            let mut inner = shared.lock();
            let processed = inner.accounting.processed;
            inner.window.roll(processed);
            last_roll = Instant::now();
        }
        if let Err(e) = server.listener().timed_wait(|_| {}, CONTROL_TICK) {
            tracing::debug!(camera, "control listener: {e:?}");
        }
    }
}

fn answer(shared: &Shared, handles: Handles, commands: &SyncSender<Command>, command: Command) -> Answer {
    let forward = |command: Command| {
        // A full channel means the frame thread is many commands behind; the newest state is
        // what matters and the report already shows it.
        let _ = commands.try_send(command);
    };
    match command {
        Command::Status => Answer::Status(Box::new(shared.metrics())),
        Command::Figures(part) if part.is_empty() => {
            match shared.lock().report.figures.as_ref().map(Figures::to_message) {
                Some(Ok(json)) => Answer::Done(json),
                Some(Err(e)) => Answer::Refused(e.to_string()),
                None => Answer::Ignored,
            }
        }
        Command::Figures(part) => Answer::Refused(format!("`figures {part}`: this process takes no part name")),
        Command::Stop => {
            shared.request_stop(StopReason::Command);
            Answer::Done("stopping after the frame in progress".into())
        }
        Command::SetPreview(on) if handles.preview => {
            shared.lock().report.preview = Some(on);
            forward(Command::SetPreview(on));
            Answer::Done(format!("preview {}", if on { "on" } else { "off" }))
        }
        Command::SetSaving(on) if handles.saving => {
            shared.lock().report.saving = Some(on);
            forward(Command::SetSaving(on));
            Answer::Done(format!("saving {}", if on { "on" } else { "off" }))
        }
        _ => Answer::Ignored,
    }
}

/// The frame thread's end of the command channel.
pub(crate) type CommandReceiver = Receiver<Command>;
