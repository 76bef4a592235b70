//! Export: what of each local camera the deployment's bridge publishes over Zenoh, per its
//! `[camera.export]` table (docs/multi-host.md):
//! - results (the camera's results service) and, with `results-back`, results coming back
//!   from other hosts published into it;
//! - the streamer's H.264 access units (its `encoded` service) when the camera has a streamer;
//! - the recorder's events (its journal's records: clip started, completed, trigger missed)
//!   when the camera has a recorder;
//! - raw frames with `[camera.export.frames]`: a reader like any other (role `bridge`, policy
//!   `max-fps`, queue 1), optionally downscaled, sent with congestion control "drop": a slow
//!   link loses frames here, never slows capture;
//! - control requests of other hosts with `allow-remote-control` (a Zenoh queryable).
//!
//! Frames are read on one thread per camera (the reader loop), remote control requests are
//! answered on one thread per camera, everything else on one thread per camera that wakes on
//! the camera's results-ready event (every producer notifies it) and otherwise every
//! millisecond for the encoded video, results back and the events journal.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use framebus::{Camera, Event, ReaderPolicy};
use framebus_common::config::ExportConfig;
use framebus_common::control::{Command, ControlClient, ControlRequest, Target};
use framebus_common::encoded::AccessUnitHeader;
use framebus_common::ipc::{create_node, open_encoded, open_results, open_results_ready, IpcService, ResultsPublisher};
use framebus_common::journal::read::Follower;
use framebus_common::journal::JournalRecord;
use framebus_common::names::{zenoh_key, Role, ZenohKind, BRIDGE_ROLE};
use framebus_common::protocol::ControlReply;
use framebus_common::results::ResultRecord;
use framebus_common::{clock, CameraConfig, Deployment, FrameHeader, PixelFormat};
use framebus_vision::opencv::core::{Mat, Size};
use framebus_vision::opencv::imgproc;
use framebus_vision::opencv::prelude::*;
use iceoryx2::port::subscriber::Subscriber;
use zenoh::handlers::FifoChannel;
use zenoh::qos::{CongestionControl, Priority};
use zenoh::Wait;

use crate::flow::Flow;
use crate::results::Echoes;
use crate::wire;

/// How often the encoded subscriber, results back and the events journal are looked at
/// (results wake the loop at once).
const POLL: Duration = Duration::from_millis(1);
/// How often a frames thread looks at the bridge's stop flag.
const STOP_CHECK: Duration = Duration::from_millis(100);
/// Longest wait for a local process's reply to a remote control request.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(2);

/// The flows of one exported camera.
#[derive(Debug, Default)]
pub struct CameraFlows {
    /// Camera name.
    pub camera: String,
    /// Raw frames sent.
    pub frames: Flow,
    /// Access units sent.
    pub encoded: Flow,
    /// Results sent.
    pub results: Flow,
    /// The recorder's journal records sent (clip started, completed, trigger missed).
    pub events: Flow,
    /// Results received back and published locally.
    pub results_back: Flow,
    /// Remote control requests answered.
    pub control: Flow,
    /// Which flows this camera's `[camera.export]` and config turn on (frames, encoded, events
    /// — with a recorder —, results back, control; results always).
    pub enabled: [bool; 5],
}

impl CameraFlows {
    /// The figures of its enabled flows.
    pub fn figures(&self) -> Vec<framebus_common::figures::BridgeFlow> {
        let [frames, encoded, events, back, control] = self.enabled;
        [
            (frames, &self.frames, "frames", "out"),
            (encoded, &self.encoded, "encoded", "out"),
            (true, &self.results, "results", "out"),
            (events, &self.events, "events", "out"),
            (back, &self.results_back, "results-back", "in"),
            (control, &self.control, "control", "in"),
        ]
        .into_iter()
        .filter(|(on, ..)| *on)
        .map(|(_, flow, kind, dir)| flow.figures(kind, dir))
        .collect()
    }

    /// Closes every flow's one-second window.
    pub fn roll(&self) {
        for flow in [&self.frames, &self.encoded, &self.results, &self.events, &self.results_back, &self.control] {
            flow.roll();
        }
    }
}

/// What [`start`] returns: the flows of every exported camera, and the threads to join.
pub type Started = (Vec<Arc<CameraFlows>>, Vec<std::thread::JoinHandle<()>>);

/// Starts the export threads of every camera with `[camera.export]`; they end when `stop` is
/// set (or at SIGINT/SIGTERM, for the frame readers).
pub fn start(deployment: &Deployment, session: &zenoh::Session, stop: &Arc<AtomicBool>) -> anyhow::Result<Started> {
    let site = deployment.zenoh.as_ref().map(|z| z.site.clone()).context("no [zenoh] table")?;
    let mut flows = Vec::new();
    let mut threads = Vec::new();
    for camera in &deployment.camera {
        let Some(export) = camera.export.clone() else { continue };
        let exports_encoded = export.exports_encoded(camera);
        let flow = Arc::new(CameraFlows {
            camera: camera.name.clone(),
            enabled: [
                export.frames.is_some(),
                exports_encoded,
                camera.recorder.is_some(),
                export.results_back,
                export.allow_remote_control,
            ],
            ..CameraFlows::default()
        });
        let keys = Keys { site: site.clone(), deployment: deployment.name().to_string(), camera: camera.name.clone() };
        if let Some(frames) = &export.frames {
            let frames_publisher = session
                .declare_publisher(keys.of(ZenohKind::Frames))
                .congestion_control(CongestionControl::Drop)
                .priority(Priority::DataLow)
                .wait()
                .map_err(|e| anyhow::anyhow!("declaring `{}`: {e}", keys.of(ZenohKind::Frames)))?;
            let (deployment, camera, flow, frames_stop) =
                (deployment.clone(), camera.clone(), Arc::clone(&flow), Arc::clone(stop));
            let size = frames.size(&camera);
            let max_fps = frames.max_fps;
            threads.push(
                std::thread::Builder::new()
                    .name(format!("frames-{}", camera.name))
                    .spawn(move || {
                        if let Err(e) =
                            export_frames(&deployment, &camera, max_fps, size, &frames_publisher, &flow, &frames_stop)
                        {
                            tracing::error!(camera = camera.name, "exporting frames: {e:#}");
                        }
                    })
                    .context("starting a frames thread")?,
            );
        }
        tracing::info!(
            camera = camera.name,
            prefix = keys.of(ZenohKind::Frames).trim_end_matches("/frames"),
            frames = export.frames.is_some(),
            encoded = exports_encoded,
            remote_control = export.allow_remote_control,
            results_back = export.results_back,
            "exporting"
        );
        let mut side = Side::declare(session, &keys, &export, camera)?;
        if let Some(queryable) = side.control.take() {
            threads.push(spawn_remote_control(deployment, &camera.name, queryable, &flow, stop)?);
        }
        let (deployment, camera, thread_flow, stop) =
            (deployment.clone(), camera.clone(), Arc::clone(&flow), Arc::clone(stop));
        threads.push(
            std::thread::Builder::new()
                .name(format!("export-{}", camera.name))
                .spawn(move || {
                    if let Err(e) = side.run(&deployment, &camera, &export, &thread_flow, &stop) {
                        tracing::error!(camera = camera.name, "exporting results and video: {e:#}");
                    }
                })
                .context("starting an export thread")?,
        );
        flows.push(flow);
    }
    Ok((flows, threads))
}

/// The key expressions of one camera.
#[derive(Debug, Clone)]
struct Keys {
    site: String,
    deployment: String,
    camera: String,
}

impl Keys {
    fn of(&self, kind: ZenohKind) -> String {
        zenoh_key(&self.site, &self.deployment, &self.camera, kind)
    }
}

/// Reads the camera's frames as the `bridge` reader and sends them, downscaled to `size`.
fn export_frames(
    deployment: &Deployment,
    camera: &CameraConfig,
    max_fps: f64,
    size: (u32, u32),
    publisher: &zenoh::pubsub::Publisher<'_>,
    flow: &CameraFlows,
    stop: &AtomicBool,
) -> anyhow::Result<()> {
    let reader = Camera::builder_for(deployment, Some(&camera.name))
        .role(BRIDGE_ROLE)?
        .policy(ReaderPolicy::MaxFps(max_fps))
        .queue_depth(1)
        .open()?;
    // The bridge's own stop (`ctl stop` of the bridge) is looked at on this timer.
    reader.add_timer(STOP_CHECK);
    let resize = size != (camera.width, camera.height);
    let mut seq = 0u64;
    let mut small = Mat::default();
    loop {
        match reader.next_event()? {
            Event::Stop(_) => return Ok(()),
            Event::Frame(frame) => {
                let mut header: FrameHeader = *frame.header();
                let message = if resize && header.format() == Some(PixelFormat::Bgr3) {
                    let mat = framebus_vision::frame_mat(frame.header(), frame.bytes())?;
                    imgproc::resize(
                        &mat,
                        &mut small,
                        Size::new(size.0 as i32, size.1 as i32),
                        0.0,
                        0.0,
                        imgproc::INTER_AREA,
                    )
                    .with_context(|| {
                        format!("camera `{}`: downscaling a frame to {}x{}", camera.name, size.0, size.1)
                    })?;
                    drop(mat);
                    drop(frame);
                    let bytes = small.data_bytes()?;
                    header.width = size.0;
                    header.height = size.1;
                    header.stride = size.0 * 3;
                    header.payload_len = bytes.len() as u32;
                    seq += 1;
                    wire::message(seq, &header, bytes)
                } else {
                    seq += 1;
                    let message = wire::message(seq, &header, frame.bytes());
                    drop(frame);
                    message
                };
                let len = message.len();
                match publisher.put(message).wait() {
                    Ok(()) => flow
                        .frames
                        .count_with_latency(len, clock::monotonic_ns().saturating_sub(header.capture_mono_ns)),
                    Err(_) => flow.frames.drop_one(),
                }
            }
            Event::Timer(_) if stop.load(Ordering::Relaxed) => return Ok(()),
            Event::Command(_) | Event::Timer(_) | Event::Gap(_) => {}
        }
    }
}

/// Everything of one camera but its frames: results out and back, encoded video, control.
struct Side {
    results: zenoh::pubsub::Publisher<'static>,
    encoded: Option<zenoh::pubsub::Publisher<'static>>,
    /// The recorder's journal records, when the camera has a recorder.
    events: Option<zenoh::pubsub::Publisher<'static>>,
    back: Option<zenoh::pubsub::Subscriber<FifoChannelHandler>>,
    control: Option<zenoh::query::Queryable<FifoChannelHandlerQuery>>,
}

type FifoChannelHandler = zenoh::handlers::FifoChannelHandler<zenoh::sample::Sample>;
type FifoChannelHandlerQuery = zenoh::handlers::FifoChannelHandler<zenoh::query::Query>;

impl Side {
    fn declare(
        session: &zenoh::Session,
        keys: &Keys,
        export: &ExportConfig,
        camera: &CameraConfig,
    ) -> anyhow::Result<Side> {
        let declare = |kind| {
            let key = keys.of(kind);
            session
                .declare_publisher(key.clone())
                .congestion_control(CongestionControl::Block)
                // Sent at once, not batched with later messages (results are small and rare).
                .express(true)
                .wait()
                .map_err(|e| anyhow::anyhow!("declaring `{key}`: {e}"))
        };
        let results = declare(ZenohKind::Results)?;
        let events = match camera.recorder {
            Some(_) => Some(declare(ZenohKind::Events)?),
            None => None,
        };
        let encoded = if export.exports_encoded(camera) {
            let key = keys.of(ZenohKind::Encoded);
            Some(
                session
                    .declare_publisher(key.clone())
                    .congestion_control(CongestionControl::Drop)
                    .priority(Priority::DataHigh)
                    .express(true)
                    .wait()
                    .map_err(|e| anyhow::anyhow!("declaring `{key}`: {e}"))?,
            )
        } else {
            None
        };
        let back = if export.results_back {
            let key = keys.of(ZenohKind::ResultsBack);
            Some(
                session
                    .declare_subscriber(key.clone())
                    .with(FifoChannel::new(256))
                    .wait()
                    .map_err(|e| anyhow::anyhow!("subscribing to `{key}`: {e}"))?,
            )
        } else {
            None
        };
        let control = if export.allow_remote_control {
            let key = keys.of(ZenohKind::Control);
            Some(
                session
                    .declare_queryable(key.clone())
                    .with(FifoChannel::new(16))
                    .wait()
                    .map_err(|e| anyhow::anyhow!("declaring the queryable `{key}`: {e}"))?,
            )
        } else {
            None
        };
        Ok(Side { results, encoded, events, back, control })
    }

    fn run(
        &self,
        deployment: &Deployment,
        camera: &CameraConfig,
        export: &ExportConfig,
        flow: &CameraFlows,
        stop: &AtomicBool,
    ) -> anyhow::Result<()> {
        let cam = camera.name.as_str();
        let node = create_node(deployment, BRIDGE_ROLE, cam)?;
        let results = open_results(&node, deployment.name(), cam)?;
        let subscriber = results
            .subscriber_builder()
            .create()
            .map_err(|e| anyhow::anyhow!("camera `{cam}`: subscribing to its results: {e:?}"))?;
        // Woken by every result a producer sends (and every `POLL` for the other flows).
        let results_ready = open_results_ready(&node, deployment.name(), cam)?
            .listener_builder()
            .create()
            .map_err(|e| anyhow::anyhow!("camera `{cam}`: listening to its results-ready event: {e:?}"))?;
        let back_publisher =
            if export.results_back { Some(ResultsPublisher::create(&node, deployment.name(), cam)?) } else { None };
        let encoded = match &self.encoded {
            Some(_) => Some(
                open_encoded(&node, deployment.name(), camera)?
                    .subscriber_builder()
                    .create()
                    .map_err(|e| anyhow::anyhow!("camera `{cam}`: subscribing to its encoded video: {e:?}"))?,
            ),
            None => None,
        };
        let mut journal = match (&self.events, &camera.recorder) {
            (Some(publisher), Some(recorder)) => {
                Some(Journal::follow(publisher, &deployment.resolve_path(&recorder.directory), cam)?)
            }
            _ => None,
        };
        let mut echoes = Echoes::default();
        let (mut results_seq, mut encoded_seq) = (0u64, 0u64);
        while !stop.load(Ordering::Relaxed) {
            let mut moved = self.send_results(&subscriber, &mut echoes, &mut results_seq, flow);
            if let (Some(subscriber), Some(publisher)) = (&encoded, &self.encoded) {
                moved += send_encoded(subscriber, publisher, &mut encoded_seq, flow);
            }
            if let (Some(back), Some(publisher)) = (&self.back, &back_publisher) {
                moved += receive_results_back(back, publisher, &mut echoes, flow);
            }
            if let Some(journal) = journal.as_mut() {
                journal.send_new(cam, flow);
            }
            if moved == 0 {
                if let Err(e) = results_ready.timed_wait(|_| {}, POLL) {
                    tracing::debug!(camera = cam, "results-ready wait: {e:?}");
                    std::thread::sleep(POLL);
                }
            }
        }
        Ok(())
    }

    /// Sends every waiting local result (but the origin's own echoes) on the results key;
    /// returns how many were taken.
    fn send_results(
        &self,
        subscriber: &Subscriber<IpcService, ResultRecord, ()>,
        echoes: &mut Echoes,
        seq: &mut u64,
        flow: &CameraFlows,
    ) -> usize {
        let mut taken = 0;
        while let Ok(Some(sample)) = subscriber.receive() {
            taken += 1;
            let record = *sample.payload();
            drop(sample);
            if echoes.is_echo(&record) {
                continue;
            }
            *seq += 1;
            let message = wire::message(*seq, &record, &[]);
            let len = message.len();
            match self.results.put(message).wait() {
                Ok(()) => flow.results.count(len),
                Err(_) => flow.results.drop_one(),
            }
        }
        taken
    }
}

/// The recorder's journal of one camera, followed from its end at start-up (records journaled
/// while no bridge ran are not sent: the site's own `ctl events` has them), each new record
/// sent as its JSON line on the `events` key, in order (congestion control "block": reliable
/// while the link is up).
struct Journal<'a> {
    publisher: &'a zenoh::pubsub::Publisher<'static>,
    follower: Follower,
    next_look: std::time::Instant,
    seq: u64,
}

impl<'a> Journal<'a> {
    /// How often the journal file is looked at.
    const LOOK_EVERY: Duration = Duration::from_millis(100);

    fn follow(
        publisher: &'a zenoh::pubsub::Publisher<'static>,
        recordings: &std::path::Path,
        cam: &str,
    ) -> anyhow::Result<Self> {
        let follower = Follower::from_end(recordings, cam)
            .with_context(|| format!("camera `{cam}`: following its recorder's events journal"))?;
        Ok(Journal { publisher, follower, next_look: std::time::Instant::now(), seq: 0 })
    }

    /// Sends the records appended since the last look (at most every [`Self::LOOK_EVERY`]).
    fn send_new(&mut self, cam: &str, flow: &CameraFlows) {
        let now = std::time::Instant::now();
        if now < self.next_look {
            return;
        }
        self.next_look = now + Self::LOOK_EVERY;
        let lines = match self.follower.poll(&mut |skipped| tracing::warn!(camera = cam, "events journal: {skipped}")) {
            Ok(lines) => lines,
            Err(e) => {
                framebus_common::logging::repeated(
                    tracing::Level::WARN,
                    "bridge.export.journal",
                    format_args!("camera `{cam}`: reading its events journal: {e}"),
                );
                return;
            }
        };
        for line in lines {
            // Only whole records the format knows cross the link.
            if JournalRecord::parse(&line).is_none() {
                continue;
            }
            self.seq += 1;
            let message = wire::text_message(self.seq, line.trim());
            let len = message.len();
            match self.publisher.put(message).wait() {
                Ok(()) => flow.events.count(len),
                Err(_) => flow.events.drop_one(),
            }
        }
    }
}

/// Sends every waiting encoded access unit on the encoded key; returns how many were taken.
fn send_encoded(
    subscriber: &Subscriber<IpcService, [u8], AccessUnitHeader>,
    publisher: &zenoh::pubsub::Publisher<'static>,
    seq: &mut u64,
    flow: &CameraFlows,
) -> usize {
    let mut taken = 0;
    while let Ok(Some(sample)) = subscriber.receive() {
        taken += 1;
        *seq += 1;
        let header: AccessUnitHeader = *sample.user_header();
        let message = wire::message(*seq, &header, sample.payload());
        drop(sample);
        let len = message.len();
        match publisher.put(message).wait() {
            Ok(()) => {
                flow.encoded.count_with_latency(len, clock::monotonic_ns().saturating_sub(header.capture_mono_ns))
            }
            Err(_) => flow.encoded.drop_one(),
        }
    }
    taken
}

/// Publishes every result that came back from an importer into the local results service;
/// returns how many messages were taken.
fn receive_results_back(
    back: &zenoh::pubsub::Subscriber<FifoChannelHandler>,
    publisher: &ResultsPublisher,
    echoes: &mut Echoes,
    flow: &CameraFlows,
) -> usize {
    let mut taken = 0;
    while let Ok(Some(sample)) = back.try_recv() {
        taken += 1;
        let bytes = sample.payload().to_bytes();
        let Some((_, mut record, _)) = wire::parse::<ResultRecord>(&bytes) else {
            flow.results_back.drop_one();
            continue;
        };
        record.publish_mono_ns = clock::monotonic_ns();
        echoes.published(&record);
        match publisher.publish(record) {
            Ok(_) => flow.results_back.count(bytes.len()),
            Err(_) => flow.results_back.drop_one(),
        }
    }
    taken
}

/// Starts the thread answering `cam`'s remote control requests: its own, because a request
/// waits up to [`CONTROL_TIMEOUT`] for the local process and must not hold up results, video
/// and events meanwhile.
fn spawn_remote_control(
    deployment: &Deployment,
    cam: &str,
    queryable: zenoh::query::Queryable<FifoChannelHandlerQuery>,
    flow: &Arc<CameraFlows>,
    stop: &Arc<AtomicBool>,
) -> anyhow::Result<std::thread::JoinHandle<()>> {
    let (deployment, cam, flow, stop) = (deployment.clone(), cam.to_string(), Arc::clone(flow), Arc::clone(stop));
    std::thread::Builder::new()
        .name(format!("control-{cam}"))
        .spawn(move || {
            if let Err(e) = serve_remote_control(&deployment, &cam, &queryable, &flow, &stop) {
                tracing::error!(camera = cam, "answering remote control: {e:#}");
            }
        })
        .context("starting a remote control thread")
}

/// Answers remote control queries one after another until `stop` (each waits up to
/// [`CONTROL_TIMEOUT`] for the local process).
fn serve_remote_control(
    deployment: &Deployment,
    cam: &str,
    queryable: &zenoh::query::Queryable<FifoChannelHandlerQuery>,
    flow: &CameraFlows,
    stop: &AtomicBool,
) -> anyhow::Result<()> {
    let node = create_node(deployment, BRIDGE_ROLE, cam)?;
    let client = ControlClient::new(&node, deployment.name());
    while !stop.load(Ordering::Relaxed) {
        let query = match queryable.recv_timeout(STOP_CHECK) {
            Ok(Some(query)) => query,
            Ok(None) => continue,
            Err(_) => return Ok(()),
        };
        let reply = answer_control(&client, cam, &query);
        match query.reply(query.key_expr().clone(), wire::bytes_of(&reply).to_vec()).wait() {
            Ok(()) => flow.control.count(core::mem::size_of::<ControlReply>()),
            Err(_) => flow.control.drop_one(),
        }
    }
    Ok(())
}

/// A remote control request (`role\0` then the request record) carried out by the local
/// process `role` of `camera`; its reply, or an error reply saying why not.
fn answer_control(client: &ControlClient<'_>, camera: &str, query: &zenoh::query::Query) -> ControlReply {
    let error = |text: &str| {
        let mut reply = ControlReply::empty();
        reply.result = framebus_common::protocol::RESULT_ERROR;
        reply.set_message(text);
        reply.set_camera(camera);
        reply
    };
    let bytes = query.payload().map(|p| p.to_bytes().into_owned()).unwrap_or_default();
    let Some(nul) = bytes.iter().position(|b| *b == 0) else { return error("malformed remote request") };
    let Ok(role) = Role::new(&String::from_utf8_lossy(&bytes[..nul])) else { return error("invalid role") };
    let Some((request, _)) = wire::read::<ControlRequest>(&bytes[nul + 1..]) else {
        return error("malformed remote request");
    };
    let command = match request.decode() {
        Ok(command) => command,
        Err(e) => return error(&format!("{e}")),
    };
    if matches!(command, Command::Stop) || command.is_for_supervisor() {
        return error("refused over the network: stop, restart, start and logs are for the host's own ctl");
    }
    tracing::info!(camera, role = %role, command = command.describe(), "remote control request");
    match client.send(&Target::new(camera, role.clone()), &command, CONTROL_TIMEOUT) {
        Ok(reply) => reply,
        Err(e) => error(&format!("{role} of camera `{camera}`: {e}")),
    }
}
