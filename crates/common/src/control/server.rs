//! The control server every framebus process embeds: decodes requests, keeps the camera's
//! preview/saving flags (loaded from the state file at start, persisted on change), fills the
//! fields every reply shares, and leaves only the process-specific part to a closure.
//!
//! Wiring in a process (a few lines):
//!
//! ```ignore
//! let control = ControlServer::create(&node, &deployment, cam, &Role::from(ProcessRole::Capture))?;
//! let saving = control.state().saving;                    // the flag to resume with
//! // on wake-up (or every loop iteration):
//! control.poll(|command| match command {
//!     Command::Status => Answer::Status(Box::new(metrics())),
//!     Command::Stop => { stop = true; Answer::Done(String::new()) }
//!     _ => Answer::Ignored,
//! });
//! ```
//!
//! Readers do not wire it themselves: the reader loop (crate `framebus`) runs it on a control
//! thread of its own, so status is answered while a frame takes seconds.
//!
//! Flags: at start the server takes each flag recorded in the camera's state file, else the
//! config's initial value ([`CameraState::initial`]); a command updates and persists it; a
//! status request re-reads the file, so every process of the camera reports the same recorded
//! flags, except that the process acting on a flag reports its own (see [`Metrics::saving`]).

use std::cell::Cell;
use std::time::Instant;

use iceoryx2::port::listener::Listener;
use iceoryx2::port::server::Server;
use iceoryx2::prelude::*;
use iceoryx2::service::port_factory::server::ServerCreateError;

use super::{
    Command, ControlReply, ControlRequest, FrameFormat, LatencyHistogram, ProcessState, RESULT_ERROR, RESULT_OK,
};
use crate::config::Deployment;
use crate::ipc::{serve_control, ControlServices, IpcError, IpcService};
use crate::names::Role;
use crate::state::{CameraState, StateError, StateStore};

/// What a process reports in a status reply besides the fields the server fills itself.
#[derive(Debug, Clone, PartialEq)]
pub struct Metrics {
    /// Lifecycle state.
    pub state: ProcessState,
    /// Frames published or processed so far.
    pub frames: u64,
    /// Frames per second over the last statistics window.
    pub fps: f64,
    /// Frames skipped so far.
    pub skipped: u64,
    /// Latency p50 in µs over the last statistics window.
    pub latency_p50_us: Option<u64>,
    /// Latency p99 in µs over the last statistics window.
    pub latency_p99_us: Option<u64>,
    /// Frame format handled, when known.
    pub format: Option<FrameFormat>,
    /// Target frame rate (capture's pacing; 0 = as fast as possible).
    pub target_fps: f64,
    /// Preview on/off as the process acts on it (the preview process); `None` reports the
    /// camera's recorded flag.
    pub preview: Option<bool>,
    /// Saving on/off as the process acts on it (the recorder); `None` reports the camera's
    /// recorded flag.
    pub saving: Option<bool>,
    /// What the process is doing, or its last error, for the reply's message (e.g. the
    /// recorder's `disk-low: ...`); truncated to the reply's capacity.
    pub message: String,
    /// Reader accounting (readers only; `None` for capture).
    pub reader: Option<ReaderFigures>,
    /// Latency histogram since the process started.
    pub histogram: LatencyHistogram,
    /// Capture: mean publish cost; readers: mean time a frame was held; ns.
    pub cost_ns: u64,
    /// Recorder: bytes written.
    pub bytes_written: u64,
    /// Recorder: segments completed.
    pub segments: u64,
    /// Recorder: old segments deleted.
    pub deletions: u64,
    /// Preview: viewers connected.
    pub viewers: u32,
}

/// A reader's accounting as its status reply carries it (see
/// [`super::ReaderAccounting`] for the meaning of each figure).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ReaderFigures {
    /// Policy wire code ([`crate::policy::ReaderPolicy::code`]).
    pub policy: u32,
    /// Queue depth.
    pub queue_depth: u32,
    /// Frames released unread by the policy.
    pub skipped: u64,
    /// Frames lost to queue overflow although wanted.
    pub overwritten: u64,
    /// Frames the driver dropped since the reader attached.
    pub driver_drops: u64,
    /// First frame id seen in the current capture run.
    pub first_frame_id: u64,
    /// Last frame id seen in the current capture run.
    pub last_frame_id: u64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            state: ProcessState::Running,
            frames: 0,
            fps: 0.0,
            skipped: 0,
            latency_p50_us: None,
            latency_p99_us: None,
            format: None,
            target_fps: 0.0,
            preview: None,
            saving: None,
            message: String::new(),
            reader: None,
            histogram: LatencyHistogram::default(),
            cost_ns: 0,
            bytes_written: 0,
            segments: 0,
            deletions: 0,
            viewers: 0,
        }
    }
}

/// A process's answer to one decoded command.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// Carried out; the text (may be empty) says what was done.
    Done(String),
    /// The process's metrics, for [`Command::Status`].
    Status(Box<Metrics>),
    /// Refused, with the reason; the flags are left unchanged.
    Refused(String),
    /// The process does not act on this command: a flag change is still recorded (another
    /// process of the camera acts on it), a stop or a camera-control command is refused.
    Ignored,
}

/// The control server of one process: an iceoryx2 server plus the listener of the event that
/// clients notify after sending. Poll it once per loop iteration, or attach
/// [`ControlServer::listener`] to a waitset and poll when it fires.
#[derive(Debug)]
pub struct ControlServer {
    server: Server<IpcService, ControlRequest, (), ControlReply, ()>,
    listener: Listener<IpcService>,
    services: ControlServices,
    role: Role,
    camera: String,
    started: Instant,
    flags: Cell<CameraState>,
    initial: CameraState,
    store: StateStore,
}

impl ControlServer {
    /// Serves the control service of `role` for `camera`; loads the camera's flags (recorded
    /// ones over the config's initial values). Fails when another process already serves it (a
    /// second instance of the same process).
    pub fn create(
        node: &Node<IpcService>,
        deployment: &Deployment,
        camera: &str,
        role: &Role,
    ) -> Result<ControlServer, IpcError> {
        let services = serve_control(node, deployment.name(), camera, role.as_str())?;
        // The listener before the server: a client that sees the server notifies after sending,
        // and that wake-up must find a listener (else the request waits for the next one).
        let listener = match &services.ready {
            Some(ready) => ready
                .listener_builder()
                .create()
                .map_err(|e| IpcError::new(format!("creating the control listener of `{}`", services.name), e))?,
            None => return Err(IpcError::new(format!("control event service of `{}`", services.name), "missing")),
        };
        let server = services.requests.server_builder().create().map_err(|e| match e {
            ServerCreateError::ExceedsMaxSupportedServers => IpcError::new(
                format!(
                    "serving `{}`: another {role} process of camera `{camera}` is already running (stop it first)",
                    services.name
                ),
                e,
            ),
            e => IpcError::new(format!("serving `{}`", services.name), e),
        })?;
        let store = StateStore::of(deployment);
        let initial = CameraState::initial(deployment.camera(Some(camera)).ok());
        let flags = store.effective(camera, initial);
        tracing::info!(
            camera,
            service = services.name,
            preview = flags.preview,
            saving = flags.saving,
            "serving control requests"
        );
        Ok(ControlServer {
            server,
            listener,
            services,
            role: role.clone(),
            camera: camera.to_string(),
            started: Instant::now(),
            flags: Cell::new(flags),
            initial,
            store,
        })
    }

    /// Records a flag change the process makes itself (e.g. `recorder --saving true` on its
    /// command line): it counts as a command, so a restart without the option resumes it.
    /// `Status` and `Stop` change nothing. Returns the flags now in effect.
    pub fn record(&self, command: &Command) -> Result<CameraState, StateError> {
        let mut flags = self.flags.get();
        match command {
            Command::SetPreview(on) => flags.preview = *on,
            Command::SetSaving(on) => flags.saving = *on,
            _ => return Ok(flags),
        }
        self.flags.set(flags);
        self.store.update(&self.camera, |recorded| match command {
            Command::SetPreview(on) => recorded.preview = Some(*on),
            _ => recorded.saving = Some(flags.saving),
        })?;
        Ok(flags)
    }

    /// The listener to attach to a waitset: it fires when a client sent a request.
    pub fn listener(&self) -> &Listener<IpcService> {
        &self.listener
    }

    /// The camera's flags as this process knows them (persisted ones at start, then every
    /// change received).
    pub fn state(&self) -> CameraState {
        self.flags.get()
    }

    /// The iceoryx2 id of the server port: its response data segment in /dev/shm is named by it
    /// (see [`crate::shm_budget::reserve_data_segment`]).
    pub fn port_id(&self) -> u128 {
        self.server.id().value()
    }

    /// Name of the request/response service.
    pub fn service_name(&self) -> &str {
        &self.services.name
    }

    /// Answers every pending request; `handler` is called once per well-formed command (a
    /// malformed one is answered with an error without calling it). Returns how many requests
    /// were answered. Never blocks.
    pub fn poll(&self, mut handler: impl FnMut(Command) -> Answer) -> usize {
        // Consume the wake-ups first: a request arriving after this still finds its event.
        if let Err(e) = self.listener.try_wait(|_| {}) {
            tracing::debug!(service = self.services.name, "control listener: {e:?}");
        }
        let mut answered = 0;
        loop {
            let active = match self.server.receive() {
                Ok(Some(active)) => active,
                Ok(None) => break,
                Err(e) => {
                    crate::logging::repeated(
                        tracing::Level::WARN,
                        "control.receive",
                        format_args!("{}: receiving control requests: {e:?}", self.services.name),
                    );
                    break;
                }
            };
            if !active.is_connected() {
                // Its client is gone (it gave up at its deadline): nobody waits for the reply,
                // and a command nobody waits for is not carried out. Dropping it releases it.
                tracing::debug!(service = self.services.name, "dropping a request whose client has gone");
                continue;
            }
            let request = *active.payload();
            let reply = self.answer(&request, &mut handler);
            if let Err(e) = active.send_copy(reply) {
                tracing::debug!(service = self.services.name, "sending a control reply: {e:?}");
            }
            answered += 1;
        }
        answered
    }

    fn answer(&self, request: &ControlRequest, handler: &mut impl FnMut(Command) -> Answer) -> ControlReply {
        let mut reply = self.base_reply(request);
        let command = match request.decode() {
            Ok(command) => command,
            Err(e) => {
                // Any local process of the user can send these, as fast as it likes.
                crate::logging::repeated(
                    tracing::Level::WARN,
                    "control.malformed-request",
                    format_args!("camera `{}`, {}: malformed control request: {e}", self.camera, self.role),
                );
                return self.error(reply, e.to_string());
            }
        };
        if command == Command::Status {
            // Another process of the camera (or ctl) may have recorded a change since.
            match self.store.recorded(&self.camera) {
                Ok(recorded) => self.flags.set(recorded.over(self.initial)),
                Err(e) => tracing::debug!(camera = self.camera, "keeping the known flags: {e}"),
            }
        }
        let answer = handler(command.clone());
        let message = match (&command, answer) {
            (_, Answer::Refused(why)) => return self.error(reply, why),
            (Command::Status, answer) => {
                let metrics = match answer {
                    Answer::Status(metrics) => *metrics,
                    _ => Metrics::default(),
                };
                let flags = self.flags.get();
                fill_metrics(&mut reply, &metrics, flags);
                reply.set_message(&metrics.message);
                return reply;
            }
            (Command::Stop, Answer::Ignored) => {
                return self.error(reply, format!("{} does not stop on command", self.role));
            }
            (Command::ListControls(_) | Command::SetControls(_), Answer::Ignored) => {
                return self
                    .error(reply, format!("{} has no camera controls: send control commands to capture", self.role));
            }
            (Command::Figures(_), Answer::Ignored) => {
                return self.error(
                    reply,
                    format!(
                        "{} has no figures beyond its status (the streamer, the recorder and the media server have)",
                        self.role
                    ),
                );
            }
            (command, Answer::Ignored) if command.is_for_supervisor() => {
                return self.error(
                    reply,
                    format!(
                        "{} does not take `{}`: it is a command for the supervisor (`ctl up`)",
                        self.role,
                        command.describe()
                    ),
                );
            }
            (
                Command::Stop
                | Command::ListControls(_)
                | Command::SetControls(_)
                | Command::Restart(_)
                | Command::Start(_)
                | Command::Supervised(_)
                | Command::Logs(..)
                | Command::Figures(_),
                answer,
            ) => {
                if command == Command::Stop {
                    tracing::info!(camera = self.camera, role = %self.role, "stop requested");
                }
                match answer {
                    Answer::Done(text) if !text.is_empty() => text,
                    _ if command == Command::Stop => "stopping".to_string(),
                    _ => command.describe(),
                }
            }
            (Command::SetPreview(_) | Command::SetSaving(_), answer) => {
                tracing::info!(camera = self.camera, role = %self.role, "{} (control request)", command.describe());
                let mut text = match answer {
                    Answer::Done(text) if !text.is_empty() => text,
                    // Only the process that acts on a flag records it: it applies and records
                    // commands in the order it receives them, so the file ends as it runs.
                    // Another process of the camera (capture for `preview`) may see two racing
                    // commands in the other order; had it recorded too, the file could end
                    // saying `off` while the preview ran (or `on` while it was off).
                    Answer::Ignored => {
                        return {
                            let flags = self.flags.get();
                            reply.preview = u32::from(flags.preview);
                            reply.saving = u32::from(flags.saving);
                            reply.set_message(&format!(
                                "{}: {} does not act on it (the process that does records it)",
                                command.describe(),
                                self.role
                            ));
                            reply
                        }
                    }
                    _ => command.describe(),
                };
                if let Err(e) = self.record(&command) {
                    tracing::warn!(camera = self.camera, "could not persist the flags: {e}");
                    text.push_str(&format!(" (not persisted: {e})"));
                }
                text
            }
        };
        let flags = self.flags.get();
        reply.preview = u32::from(flags.preview);
        reply.saving = u32::from(flags.saving);
        reply.set_message(&message);
        reply
    }

    fn base_reply(&self, request: &ControlRequest) -> ControlReply {
        let flags = self.flags.get();
        let mut reply = ControlReply::empty();
        reply.result = RESULT_OK;
        reply.command = request.command;
        reply.nonce = request.nonce;
        reply.set_role(&self.role);
        reply.pid = std::process::id();
        reply.state = ProcessState::Running.code();
        reply.preview = u32::from(flags.preview);
        reply.saving = u32::from(flags.saving);
        reply.uptime_ms = self.started.elapsed().as_millis() as u64;
        reply.set_camera(&self.camera);
        reply
    }

    fn error(&self, mut reply: ControlReply, message: String) -> ControlReply {
        reply.result = RESULT_ERROR;
        reply.set_message(&message);
        reply
    }
}

fn fill_metrics(reply: &mut ControlReply, metrics: &Metrics, flags: CameraState) {
    reply.state = metrics.state.code();
    reply.preview = u32::from(metrics.preview.unwrap_or(flags.preview));
    reply.saving = u32::from(metrics.saving.unwrap_or(flags.saving));
    reply.frames = metrics.frames;
    reply.fps = metrics.fps;
    reply.skipped = metrics.skipped;
    reply.latency_p50_us = metrics.latency_p50_us.unwrap_or(u64::MAX);
    reply.latency_p99_us = metrics.latency_p99_us.unwrap_or(u64::MAX);
    if let Some(format) = metrics.format {
        reply.width = format.width;
        reply.height = format.height;
        reply.pixel_format = format.fourcc.0;
    }
    reply.target_fps = metrics.target_fps;
    reply.latency_buckets = metrics.histogram.cumulative();
    reply.latency_sum_us = metrics.histogram.sum_us;
    reply.latency_count = metrics.histogram.count();
    reply.cost_ns = metrics.cost_ns;
    reply.bytes_written = metrics.bytes_written;
    reply.segments = metrics.segments;
    reply.deletions = metrics.deletions;
    reply.viewers = metrics.viewers;
    if let Some(r) = metrics.reader {
        reply.policy = r.policy;
        reply.queue_depth = r.queue_depth;
        reply.skipped = r.skipped;
        reply.overwritten = r.overwritten;
        reply.driver_drops = r.driver_drops;
        reply.first_frame_id = r.first_frame_id;
        reply.last_frame_id = r.last_frame_id;
    }
}
