//! [`Camera`]: one reader of one camera, and its loop.

use std::cell::{Cell, OnceCell, RefCell};
use std::path::Path;
use std::sync::mpsc::TryRecvError;
use std::sync::Arc;
use std::time::{Duration, Instant};

use framebus_common::control::{Command, FourccText, FrameFormat};
use framebus_common::ipc::{
    create_node, open_results, DeploymentGuard, FrameReader, FrameSample, IpcError, IpcService, ResultsPublisher,
};
use framebus_common::results::{Detection, Outcome, ResultRecord};
use framebus_common::state::CameraState;
use framebus_common::{clock, CameraConfig, Deployment, FrameHeader, PixelFormat, ReaderPolicy, Role};
use iceoryx2::node::Node;
use iceoryx2::port::subscriber::Subscriber;

use crate::control::{CommandReceiver, ControlSetup, ControlThread, Handles, ProcessReport, Shared, StopReason};
use crate::Error;

/// The longest the frame thread sleeps before it looks at the stop flag, commands and timers
/// again; frames and commands wake it earlier.
const FRAME_WAIT: Duration = Duration::from_millis(100);

/// Commands that may wait for the frame thread before the oldest is dropped.
const COMMAND_QUEUE: usize = 16;

/// Options for opening a camera; start with [`Camera::builder`] or [`Camera::builder_for`].
#[derive(Debug, Clone)]
pub struct CameraBuilder {
    deployment: Deployment,
    camera: Option<String>,
    role: Option<Role>,
    policy: Option<ReaderPolicy>,
    queue_depth: Option<u32>,
    stats_interval: Duration,
    handles: Handles,
    record: Vec<Command>,
}

impl CameraBuilder {
    fn new(deployment: Deployment, camera: Option<&str>) -> CameraBuilder {
        CameraBuilder {
            deployment,
            camera: camera.map(str::to_string),
            role: None,
            policy: None,
            queue_depth: None,
            stats_interval: Duration::from_secs(1),
            handles: Handles::default(),
            record: Vec::new(),
        }
    }

    /// The role name this reader serves its control service under and `ctl status` lists
    /// (default: `FRAMEBUS_ROLE` when set, else the program's file name, e.g. `reader`). One
    /// process per role and camera.
    pub fn role(mut self, role: &str) -> Result<CameraBuilder, Error> {
        self.role = Some(Role::new(role)?);
        Ok(self)
    }

    /// The policy to use when the config has none for this role (a `[[camera.reader]]` entry,
    /// or the built-in role's table); default `newest`.
    pub fn policy(mut self, policy: ReaderPolicy) -> CameraBuilder {
        self.policy = Some(policy);
        self
    }

    /// The queue depth when the config has none for this role (default 1 for `newest`, the
    /// camera's largest queue for `every`).
    pub fn queue_depth(mut self, depth: u32) -> CameraBuilder {
        self.queue_depth = Some(depth);
        self
    }

    /// Period of the statistics window behind status fps and latency (default 1 s).
    pub fn stats_interval(mut self, interval: Duration) -> CameraBuilder {
        self.stats_interval = interval;
        self
    }

    /// The process acts on `ctl preview on|off`: the loop yields [`Event::Command`] for it.
    pub fn handles_preview(mut self) -> CameraBuilder {
        self.handles.preview = true;
        self
    }

    /// The process acts on `ctl record on|off`: the loop yields [`Event::Command`] for it.
    pub fn handles_saving(mut self) -> CameraBuilder {
        self.handles.saving = true;
        self
    }

    /// Records a flag change at start as if a command had set it (e.g. `--saving true` on the
    /// command line), so a restart without it resumes it.
    pub fn record(mut self, command: Command) -> CameraBuilder {
        self.record.push(command);
        self
    }

    /// Opens the camera: subscribes to its frames and starts serving control. Fails when the
    /// camera is not in the config, all reader slots are taken (the error names the config key
    /// to raise), or another process already serves this role.
    pub fn open(self) -> Result<Camera, Error> {
        let ReaderSettings { camera, role, policy, queue_depth } = self.settings()?;
        let release = DeploymentGuard::new(self.deployment.name());
        let node = create_node(&self.deployment, role.as_str(), &camera.name)?;
        let reader = FrameReader::open(&node, &self.deployment, &camera, queue_depth as usize)?;
        let shared = Arc::new(Shared::new(policy, queue_depth, self.stats_interval));
        let (commands_tx, commands) = std::sync::mpsc::sync_channel(COMMAND_QUEUE);
        let (control, flags) = ControlThread::start(ControlSetup {
            deployment: self.deployment.clone(),
            camera: camera.name.clone(),
            role: role.clone(),
            handles: self.handles,
            record: self.record,
            shared: Arc::clone(&shared),
            commands: commands_tx,
        })?;
        tracing::info!(
            camera = camera.name,
            role = %role,
            policy = %policy,
            queue_depth,
            service = reader.service_name(),
            "reading frames"
        );
        Ok(Camera {
            _control: control,
            reader,
            result_publisher: OnceCell::new(),
            result_subscriber: OnceCell::new(),
            _node: node,
            _release: release,
            deployment: self.deployment,
            camera,
            role,
            policy,
            shared,
            commands,
            flags,
            timers: RefCell::new(Vec::new()),
            next_due: Cell::new(Instant::now()),
            holding: Cell::new(false),
            stopped: Cell::new(None),
            gap: Gaps::default(),
        })
    }
}

/// What a reader opened with a [`CameraBuilder`] gets: the config and the options resolved
/// (the config's `[[camera.reader]]` entry wins over the builder's policy and queue depth).
#[derive(Debug, Clone)]
pub struct ReaderSettings {
    /// The camera's config.
    pub camera: CameraConfig,
    /// The role the reader serves its control service under.
    pub role: Role,
    /// The policy it reads frames with.
    pub policy: ReaderPolicy,
    /// Frames queued for it.
    pub queue_depth: u32,
}

impl CameraBuilder {
    /// The settings [`CameraBuilder::open`] would open the camera with, without opening it
    /// (for tools and language bindings that show them). Fails as `open` does on an unknown
    /// camera or a queue depth the camera's layout cannot give.
    pub fn settings(&self) -> Result<ReaderSettings, Error> {
        let camera = self.deployment.camera(self.camera.as_deref())?.clone();
        let role = match &self.role {
            Some(role) => role.clone(),
            None => program_role()?,
        };
        let configured = camera.reader_spec(&role);
        let policy = configured.as_ref().map(|r| r.policy).or(self.policy).unwrap_or(ReaderPolicy::Newest);
        let layout = camera.slot_layout();
        let default_depth = match policy {
            ReaderPolicy::Every => layout.max_queue_depth as u32,
            _ => 1,
        };
        let queue_depth = configured.as_ref().map(|r| r.queue_depth).or(self.queue_depth).unwrap_or(default_depth);
        if queue_depth < 1 || queue_depth as usize > layout.max_queue_depth {
            return Err(Error::QueueDepth {
                camera: camera.name.clone(),
                depth: queue_depth,
                max: layout.max_queue_depth,
                file: self.deployment.source_file.display().to_string(),
            });
        }
        Ok(ReaderSettings { camera, role, policy, queue_depth })
    }
}

/// The role of a program that does not name one: `FRAMEBUS_ROLE` when set (`ctl up` sets it
/// for the user readers it starts), else the program's file name, made a valid role name.
fn program_role() -> Result<Role, Error> {
    if let Ok(role) = std::env::var("FRAMEBUS_ROLE") {
        return Ok(Role::new(&role)?);
    }
    let exe = std::env::current_exe().ok();
    let stem = exe.as_deref().and_then(Path::file_stem).and_then(|s| s.to_str()).unwrap_or("reader");
    let name: String = stem
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '-' })
        .take(framebus_common::names::MAX_ROLE_NAME)
        .collect();
    Role::new(&name).or_else(|_| Ok(Role::new("reader")?))
}

/// A timer registered with [`Camera::add_timer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TimerId(usize);

#[derive(Debug)]
struct Timer {
    period: Duration,
    due: Instant,
}

/// One event of the reader loop ([`Camera::next_event`]).
#[derive(Debug)]
pub enum Event<'a> {
    /// A frame, chosen by the policy; valid until dropped.
    Frame(Frame<'a>),
    /// A command the process acts on (see [`CameraBuilder::handles_preview`]).
    Command(Command),
    /// A timer registered with [`Camera::add_timer`] is due.
    Timer(TimerId),
    /// The reader should end: SIGINT/SIGTERM, `ctl stop`, or [`Camera::request_stop`]. Every
    /// later call returns it again.
    Stop(StopReason),
    /// Frames of the source are missing before the next frame this reader gets: an imported
    /// camera's link was cut or lost messages (the header's `FLAG_GAP_BEFORE`), the source
    /// dropped frames (its `source_drops` rose), or capture restarted. It comes just before
    /// that frame; [`Camera::frames`] skips it. Frames the reader's own policy or queue let go
    /// are not gaps (they are in [`ReaderStats`]).
    Gap(Gap),
}

/// A gap in a camera's frames (see [`Event::Gap`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Gap {
    /// Frames the source counted as lost in it (its `source_drops` rose by this much); 0 when
    /// it could not count them (a restarted sender).
    pub source_lost: u64,
    /// Capture started a new run (its frame ids start again at 1).
    pub restarted: bool,
    /// Capture time from the last frame this reader received before the gap to the first
    /// after it, in ns (0 after a restart: the clocks of two runs are not compared).
    pub duration_ns: u64,
}

/// One reader of one camera: its subscription (queue and policy), its control service (served
/// on a thread of its own) and its loop. See the crate documentation for an example.
///
/// The loop has one wait point ([`Camera::next_event`]) and a closed set of events: a frame,
/// a command, a timer, stop. Stop, commands and due timers come before frames, and each call
/// hands out at most one frame, so no amount of frame work delays them by more than the frame
/// in progress.
pub struct Camera {
    // Field order is drop order: the control thread (and its node) and the ports go before
    // this process's node, and the deployment guard (clean-up of a finished deployment)
    // goes last.
    _control: ControlThread,
    // A frame held back behind a gap event goes before its subscriber.
    gap: Gaps,
    reader: FrameReader,
    result_publisher: OnceCell<ResultsPublisher>,
    result_subscriber: OnceCell<Subscriber<IpcService, ResultRecord, ()>>,
    _node: Node<IpcService>,
    _release: DeploymentGuard,
    deployment: Deployment,
    camera: CameraConfig,
    role: Role,
    policy: ReaderPolicy,
    shared: Arc<Shared>,
    commands: CommandReceiver,
    flags: CameraState,
    timers: RefCell<Vec<Timer>>,
    next_due: Cell<Instant>,
    holding: Cell<bool>,
    stopped: Cell<Option<StopReason>>,
}

/// The gap seen before the next frame, and the frame held back while [`Event::Gap`] is
/// handed out.
#[derive(Default)]
struct Gaps {
    pending: Cell<Option<Gap>>,
    held_back: RefCell<Option<FrameSample>>,
    last_capture_ns: Cell<Option<u64>>,
}

impl std::fmt::Debug for Camera {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Camera")
            .field("camera", &self.camera.name)
            .field("role", &self.role)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl Camera {
    /// Opens `camera` of the deployment in `config` (a framebus TOML file) as a reader named
    /// after the program, with the policy the config gives this role (default `newest`).
    pub fn open(config: impl AsRef<Path>, camera: &str) -> Result<Camera, Error> {
        Camera::builder(config, camera)?.open()
    }

    /// Options for opening `camera` of the deployment in `config`.
    pub fn builder(config: impl AsRef<Path>, camera: &str) -> Result<CameraBuilder, Error> {
        let deployment = Deployment::load(config.as_ref())?;
        Ok(CameraBuilder::new(deployment, Some(camera)))
    }

    /// Options for opening `camera` (or the only camera) of an already loaded deployment.
    pub fn builder_for(deployment: &Deployment, camera: Option<&str>) -> CameraBuilder {
        CameraBuilder::new(deployment.clone(), camera)
    }

    /// The camera's config.
    pub fn config(&self) -> &CameraConfig {
        &self.camera
    }

    /// The deployment's config.
    pub fn deployment(&self) -> &Deployment {
        &self.deployment
    }

    /// This reader's role name.
    pub fn role(&self) -> &Role {
        &self.role
    }

    /// This reader's policy.
    pub fn policy(&self) -> ReaderPolicy {
        self.policy
    }

    /// The camera's preview and saving flags as the process started with them (recorded by
    /// commands, else the config's).
    pub fn flags(&self) -> CameraState {
        self.flags
    }

    /// Name of the frames service (for messages).
    pub fn service_name(&self) -> &str {
        self.reader.service_name()
    }

    /// Frames, one per iteration, until stop (SIGINT/SIGTERM, `ctl stop` or
    /// [`Camera::request_stop`]); commands and timers are skipped (use [`Camera::next_event`]
    /// to see them). Each frame must be dropped before the next one is taken, as a `for` loop
    /// does.
    pub fn frames(&self) -> Frames<'_> {
        Frames { camera: self }
    }

    /// Registers a timer: [`Event::Timer`] every `period` (first after one period).
    pub fn add_timer(&self, period: Duration) -> TimerId {
        let mut timers = self.timers.borrow_mut();
        timers.push(Timer { period, due: Instant::now() + period });
        TimerId(timers.len() - 1)
    }

    /// Ends the loop: the next [`Camera::next_event`] returns [`Event::Stop`].
    pub fn request_stop(&self) {
        self.shared.request_stop(StopReason::Program);
    }

    /// Why the reader should stop, once it should.
    pub fn stop_reason(&self) -> Option<StopReason> {
        self.shared.stop_reason()
    }

    /// Updates what the status reply says beyond the reader figures (message, state, flags
    /// acted on, latency to report).
    pub fn report(&self, update: impl FnOnce(&mut ProcessReport)) {
        update(&mut self.shared.lock().report);
    }

    /// The reader's figures now.
    pub fn stats(&self) -> ReaderStats {
        let inner = self.shared.lock();
        let acc = &inner.accounting;
        ReaderStats {
            processed: acc.processed,
            skipped: acc.skipped,
            overwritten: acc.overwritten,
            driver_drops: acc.driver_drops,
            capture_restarts: acc.capture_restarts,
            out_of_order: acc.out_of_order,
            first_frame_id: acc.run.map_or(0, |r| r.first_id),
            last_frame_id: acc.run.map_or(0, |r| r.last_id),
            fps: inner.window.fps,
            latency_p50_us: inner.window.p50_us,
            latency_p99_us: inner.window.p99_us,
        }
    }

    /// Publishes a result about `frame` on the camera's results service, as this reader's
    /// role: an overall `score`, labelled `boxes` (pixels) and free-form `data` (JSON, up to
    /// 1 KiB). The preview draws it, the recorder's triggers look at it, `ctl events` lists it.
    pub fn publish_result(
        &self,
        frame: &FrameHeader,
        score: Option<f64>,
        boxes: &[Detection],
        data: Option<&serde_json::Value>,
    ) -> Result<(), Error> {
        let json = data.map(|d| d.to_string()).unwrap_or_default();
        let record = ResultRecord::new(
            self.role.as_str(),
            (frame.run_id, frame.frame_id, frame.capture_mono_ns),
            score,
            boxes,
            &json,
        )?;
        let publisher = match self.result_publisher.get() {
            Some(publisher) => publisher,
            None => {
                let publisher = ResultsPublisher::create(&self._node, self.deployment.name(), &self.camera.name)?;
                self.result_publisher.get_or_init(|| publisher)
            }
        };
        publisher.publish(record)?;
        Ok(())
    }

    /// Results published on the camera since the last call (by any producer, this one
    /// included), oldest first. The first call subscribes: results published before it are not
    /// seen.
    pub fn results(&self) -> Result<Vec<Outcome>, Error> {
        let subscriber = match self.result_subscriber.get() {
            Some(subscriber) => subscriber,
            None => {
                let service = open_results(&self._node, self.deployment.name(), &self.camera.name)?;
                let subscriber = service
                    .subscriber_builder()
                    .create()
                    .map_err(|e| IpcError::new(format!("camera `{}`: subscribing to results", self.camera.name), e))?;
                self.result_subscriber.get_or_init(|| subscriber)
            }
        };
        let mut found = Vec::new();
        loop {
            match subscriber.receive() {
                Ok(Some(sample)) => found.extend(sample.payload().decode()),
                Ok(None) => return Ok(found),
                Err(e) => {
                    return Err(IpcError::new(format!("camera `{}`: receiving results", self.camera.name), e).into())
                }
            }
        }
    }

    /// Waits for and returns the next event (see [`Event`] for their order).
    pub fn next_event(&self) -> Result<Event<'_>, Error> {
        loop {
            if let Some(reason) = self.stopped.get().or_else(|| self.shared.stop_reason()) {
                self.stopped.set(Some(reason));
                return Ok(Event::Stop(reason));
            }
            match self.commands.try_recv() {
                Ok(command) => return Ok(Event::Command(command)),
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => {}
            }
            let now = Instant::now();
            if let Some(timer) = self.take_due_timer(now) {
                return Ok(Event::Timer(timer));
            }
            if self.holding.get() {
                return Err(Error::FrameStillHeld);
            }
            let wait =
                self.next_timer_due().map_or(FRAME_WAIT, |due| due.saturating_duration_since(now).min(FRAME_WAIT));
            if let ReaderPolicy::MaxFps(_) = self.policy {
                let due = self.next_due.get();
                if now < due {
                    // Not due: sleep without waking for frames (they are skipped in the queue).
                    std::thread::sleep(due.saturating_duration_since(now).min(wait));
                    continue;
                }
            }
            if let Some(sample) = self.take()? {
                if let Some(gap) = self.gap.pending.take() {
                    *self.gap.held_back.borrow_mut() = Some(sample);
                    return Ok(Event::Gap(gap));
                }
                return Ok(Event::Frame(self.hand_out(sample)));
            }
            self.reader.wait(wait);
        }
    }

    /// Takes the frame the policy wants, if one is queued; counts the others.
    fn take(&self) -> Result<Option<FrameSample>, Error> {
        if let Some(sample) = self.gap.held_back.borrow_mut().take() {
            return Ok(Some(sample));
        }
        let newest_only = !matches!(self.policy, ReaderPolicy::Every);
        loop {
            let Some(sample) = self.reader.next()? else { return Ok(None) };
            let mut inner = self.shared.lock();
            let header = sample.user_header();
            let (attached, drops, restarts) =
                (inner.accounting.run.is_some(), inner.accounting.driver_drops, inner.accounting.capture_restarts);
            inner.accounting.received(header);
            let source_lost = inner.accounting.driver_drops.saturating_sub(drops);
            let restarted = inner.accounting.capture_restarts > restarts;
            let flagged = header.flags & framebus_common::header::FLAG_GAP_BEFORE != 0;
            if attached && (source_lost > 0 || restarted || flagged) {
                let previous = self.gap.pending.take().unwrap_or_default();
                let duration_ns = match self.gap.last_capture_ns.get() {
                    Some(last) if !restarted && !previous.restarted => header.capture_mono_ns.saturating_sub(last),
                    _ => 0,
                };
                self.gap.pending.set(Some(Gap {
                    source_lost: previous.source_lost + source_lost,
                    restarted: previous.restarted || restarted,
                    duration_ns: if previous.restarted || restarted { 0 } else { previous.duration_ns + duration_ns },
                }));
            }
            self.gap.last_capture_ns.set(Some(header.capture_mono_ns));
            if newest_only && self.reader.has_more() {
                // A newer frame is queued: release this one unread.
                inner.accounting.skipped();
                continue;
            }
            return Ok(Some(sample));
        }
    }

    fn hand_out(&self, sample: FrameSample) -> Frame<'_> {
        let header = *sample.user_header();
        let now_ns = clock::monotonic_ns();
        {
            let mut inner = self.shared.lock();
            inner.accounting.processed();
            let latency_ns = now_ns.saturating_sub(header.capture_mono_ns);
            inner.window.record_ns(latency_ns);
            inner.histogram.record_us(latency_ns / 1000);
            inner.format = Some(FrameFormat {
                width: header.width,
                height: header.height,
                fourcc: FourccText(header.pixel_format),
            });
        }
        if let ReaderPolicy::MaxFps(fps) = self.policy {
            let period = Duration::from_secs_f64(1.0 / fps);
            let now = Instant::now();
            // Even spacing without catching up a backlog.
            self.next_due.set((self.next_due.get() + period).max(now));
        }
        self.holding.set(true);
        Frame { sample, camera: self, received_ns: now_ns }
    }

    fn take_due_timer(&self, now: Instant) -> Option<TimerId> {
        let mut timers = self.timers.borrow_mut();
        let (index, timer) = timers.iter_mut().enumerate().filter(|(_, t)| t.due <= now).min_by_key(|(_, t)| t.due)?;
        // The next one a period later, without a burst after a long frame.
        timer.due = (timer.due + timer.period).max(now);
        Some(TimerId(index))
    }

    fn next_timer_due(&self) -> Option<Instant> {
        self.timers.borrow().iter().map(|t| t.due).min()
    }
}

impl Drop for Camera {
    fn drop(&mut self) {
        let s = self.shared.lock().accounting;
        tracing::info!(
            camera = self.camera.name,
            role = %self.role,
            processed = s.processed,
            skipped = s.skipped,
            overwritten = s.overwritten,
            driver_drops = s.driver_drops,
            published = s.published(),
            "reader stopped"
        );
    }
}

/// A reader's figures (see [`Camera::stats`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReaderStats {
    /// Frames handed to the reader's code.
    pub processed: u64,
    /// Frames its policy released unread (including queue gaps of `newest`/`max-fps`).
    pub skipped: u64,
    /// Frames lost to queue overflow although wanted (`every`).
    pub overwritten: u64,
    /// Frames the driver dropped while attached.
    pub driver_drops: u64,
    /// Capture restarts seen.
    pub capture_restarts: u64,
    /// Frames whose id did not rise (must stay 0).
    pub out_of_order: u64,
    /// First frame id seen in the current capture run.
    pub first_frame_id: u64,
    /// Last frame id seen.
    pub last_frame_id: u64,
    /// Frames processed per second over the last statistics window.
    pub fps: f64,
    /// Capture → delivery latency p50 (µs), last window.
    pub latency_p50_us: Option<u64>,
    /// Capture → delivery latency p99 (µs), last window.
    pub latency_p99_us: Option<u64>,
}

/// The frames of a camera, as an iterator (see [`Camera::frames`]).
#[derive(Debug)]
pub struct Frames<'a> {
    camera: &'a Camera,
}

impl<'a> Iterator for Frames<'a> {
    type Item = Result<Frame<'a>, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            match self.camera.next_event() {
                Ok(Event::Frame(frame)) => return Some(Ok(frame)),
                Ok(Event::Stop(_)) => return None,
                Ok(Event::Command(_) | Event::Timer(_) | Event::Gap(_)) => continue,
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

/// One frame, read in place in shared memory (zero copies). Valid until dropped: drop it (or
/// let the loop iteration end) before taking the next one; copy what you need to keep.
pub struct Frame<'a> {
    sample: FrameSample,
    camera: &'a Camera,
    received_ns: u64,
}

impl std::fmt::Debug for Frame<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Frame").field("header", self.header()).finish_non_exhaustive()
    }
}

impl Frame<'_> {
    /// The frame header (id, timestamps, size, format, ...).
    pub fn header(&self) -> &FrameHeader {
        self.sample.user_header()
    }

    /// Frame id: rises by one per published frame within a capture run.
    pub fn id(&self) -> u64 {
        self.header().frame_id
    }

    /// Width in pixels.
    pub fn width(&self) -> u32 {
        self.header().width
    }

    /// Height in pixels.
    pub fn height(&self) -> u32 {
        self.header().height
    }

    /// Pixel format, if this build knows it.
    pub fn pixel_format(&self) -> Option<PixelFormat> {
        self.header().format()
    }

    /// The frame's bytes (`payload_len` of them), read-only, in shared memory.
    pub fn bytes(&self) -> &[u8] {
        let payload = self.sample.payload();
        &payload[..(self.header().payload_len as usize).min(payload.len())]
    }

    /// Capture → handed to this reader, in nanoseconds.
    pub fn latency_ns(&self) -> u64 {
        self.received_ns.saturating_sub(self.header().capture_mono_ns)
    }

    /// The frame as an OpenCV `Mat` over shared memory (no copy): BGR3/RGB3 `CV_8UC3`, GREY
    /// `CV_8UC1`, YUYV `CV_8UC2`, NV12 one `CV_8UC1` of height × 3/2, MJPG the JPEG bytes.
    #[cfg(feature = "opencv")]
    pub fn mat(
        &self,
    ) -> Result<framebus_vision::opencv::boxed_ref::BoxedRef<'_, framebus_vision::opencv::core::Mat>, Error> {
        framebus_vision::frame_mat(self.header(), self.bytes()).map_err(|e| Error::OpenCv(e.to_string()))
    }
}

impl Drop for Frame<'_> {
    fn drop(&mut self) {
        self.camera.holding.set(false);
        self.camera.shared.released(clock::monotonic_ns().saturating_sub(self.received_ns));
    }
}
