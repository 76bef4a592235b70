//! Import: one remote camera published into local shared memory as a local camera. Run by
//! `ctl up` in the place of the camera's capture (`bridge --camera <name>`), it serves the
//! capture role's control service, creates the camera's frame bus with the settings any local
//! camera of that config gets (`ipc::open_frame_bus`), and publishes every frame that arrives
//! over Zenoh into a loaned sample, as capture does: readers cannot tell the difference.
//!
//! Frame ids are this process's own (1, 2, 3, ... per run), so readers' accounting holds; the
//! origin's frame id goes into `sequence`, frames lost on the link are added to
//! `source_drops` (readers count them as the source's drops), and the capture time is moved
//! into this host's monotonic clock through the wall clocks (exact on one host, as good as
//! the two hosts' clock sync across hosts).
//!
//! Events: the origin recorder's journal records are appended to this camera's copy of that
//! journal (`<recordings>/origin/events/<camera>.jsonl`, read by `ctl events <camera> --origin`).
//!
//! Results: the origin's results are published into the local results service (about the
//! local frame they came with), and local results about imported frames go back to the origin
//! on the `results-back` key (published there when its `[camera.export] results-back = true`).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use anyhow::Context;
use framebus_common::config::{RemoteSourceConfig, RemoteVideo};
use framebus_common::control::server::{Answer, ControlServer, Metrics};
use framebus_common::control::{Command, FrameFormat, LatencyHistogram, ProcessState};
use framebus_common::encoded::AccessUnitHeader;
use framebus_common::figures::Figures;
use framebus_common::ipc::{create_node, open_frame_bus, open_results, DeploymentGuard, IpcService, ResultsPublisher};
use framebus_common::journal::write::Journal;
use framebus_common::journal::{origin_directory, JournalRecord};
use framebus_common::names::{zenoh_key, ZenohKind};
use framebus_common::protocol::FourccText;
use framebus_common::results::ResultRecord;
use framebus_common::stats::StatusWindow;
use framebus_common::{clock, signals, CameraConfig, Deployment, FrameHeader, ProcessRole, Role};
use iceoryx2::port::notifier::Notifier;
use iceoryx2::prelude::*;
use zenoh::handlers::{FifoChannel, FifoChannelHandler, IntoHandler, RingChannel, RingChannelHandler};
use zenoh::sample::Sample;
use zenoh::Wait;

use crate::flow::{Flow, Link};
use crate::results::Echoes;
use crate::wire::{self, LossCounter};

/// Without a frame for this long, the link is reported down (state `degraded`).
pub const LINK_DOWN_AFTER: Duration = Duration::from_secs(2);
/// Frames waiting between Zenoh and the publisher: the newest two (older ones are dropped, and
/// counted through the sender's sequence numbers).
const FRAME_QUEUE: usize = 2;
/// Longest wait for a frame or an origin's result before local results are looked at (bounds
/// how long a local result waits before it goes back to the origin). Frames and the origin's
/// results wake the loop at once (the doorbell).
const RESULTS_WAIT: Duration = Duration::from_millis(2);
/// Access units waiting between Zenoh and the decoder.
const AU_QUEUE: usize = 64;
/// Longest events-journal record taken from the link (a clip's record lists its segments: a
/// few KiB); longer ones are dropped and counted, so a peer cannot make the copy grow fast.
const MAX_EVENT_BYTES: usize = 256 * 1024;
/// Local frames whose origin ids are kept to map results both ways.
const ID_MAP: usize = 256;

/// `channel` whose every sample also rings `bell` (a full bell already rings: nothing lost).
fn ringing<H>(
    channel: impl IntoHandler<Sample, Handler = H>,
    bell: std::sync::mpsc::SyncSender<()>,
) -> (impl Fn(Sample) + Send + Sync + 'static, H) {
    let (callback, handler) = channel.into_handler();
    let ring = move |sample: Sample| {
        callback.call(sample);
        let _ = bell.try_send(());
    };
    (ring, handler)
}

/// The origin of one imported frame.
#[derive(Debug, Clone, Copy)]
struct Origin {
    local_id: u64,
    frame_id: u64,
    run_id: u64,
    capture_mono_ns: u64,
}

/// Runs the import of `camera` until SIGINT/SIGTERM or `ctl stop`.
pub fn run(deployment: &Deployment, camera: &CameraConfig, remote: &RemoteSourceConfig) -> anyhow::Result<()> {
    signals::install();
    let cam = camera.name.as_str();
    let _release = DeploymentGuard::new(deployment.name());
    let node = create_node(deployment, crate::ROLE, cam)?;
    let (publisher, notifier) = open_frames(&node, deployment, camera)?;
    let results = open_results(&node, deployment.name(), cam)?;
    let result_publisher = ResultsPublisher::create(&node, deployment.name(), cam)?;
    let result_subscriber = results
        .subscriber_builder()
        .create()
        .map_err(|e| anyhow::anyhow!("camera `{cam}`: subscribing to its results: {e:?}"))?;
    let control = ControlServer::create(&node, deployment, cam, &Role::from(ProcessRole::Capture))?;

    let session = crate::session::open(deployment, crate::session::Listening::Listen)?;
    let mut link = RemoteLink::declare(&session, camera, remote)?;
    let origin = format!("{}/{}/{}", remote.site, remote.deployment, remote.camera);
    tracing::info!(camera = cam, origin, key = link.video_key, video = remote.video.name(), "importing frames");

    let mut state = Import::new();
    let events = EventsWriter::start(deployment, camera, link.events.take(), &state.events_in)?;
    let run_id = clock::realtime_ns();
    let output = Output { publisher, notifier, run_id, camera: cam.to_string() };
    let mut next_roll = Instant::now();
    let mut stop = false;
    let mut back_seq = 0u64;
    while !stop && !signals::termination_requested() {
        // Woken by a frame or an origin's result; local results are looked at between them.
        let _ = link.doorbell.recv_timeout(RESULTS_WAIT);
        link.publish_frames(&output, &mut state, camera, &origin)?;
        // The origin's results, about the local frame they came with.
        link.publish_origin_results(&result_publisher, &mut state, run_id);
        // Local results about imported frames go back to the origin.
        link.send_results_back(&result_subscriber, &mut state, run_id, &mut back_seq);
        state.watch_link(cam, &origin);
        state.window.roll(state.frames);
        if Instant::now() >= next_roll {
            next_roll += Duration::from_secs(1);
            for flow in [&state.frames_in, &state.results_in, &*state.events_in, &state.results_back] {
                flow.roll();
            }
        }
        control.poll(|command| match command {
            Command::Status => {
                Answer::Status(Box::new(state.metrics(camera, &origin, crate::session::peers(&session))))
            }
            Command::Figures(_) => {
                match Figures::Bridge(state.figures(cam, &origin, crate::session::peers(&session))).to_message() {
                    Ok(json) => Answer::Done(json),
                    Err(e) => Answer::Refused(e.to_string()),
                }
            }
            Command::Stop => {
                stop = true;
                Answer::Done("stopping".into())
            }
            _ => Answer::Ignored,
        });
    }
    events.stop();
    tracing::info!(camera = cam, frames = state.frames, lost = state.loss.lost, "import stopped");
    Ok(())
}

/// The camera's frame bus as capture would open it: its publisher (its shared memory reserved
/// in the deployment's budget) and its frame-ready notifier.
fn open_frames(
    node: &Node<IpcService>,
    deployment: &Deployment,
    camera: &CameraConfig,
) -> anyhow::Result<(FramePublisher, Notifier<IpcService>)> {
    let cam = camera.name.as_str();
    let bus = open_frame_bus(node, deployment, camera)?;
    let layout = camera.slot_layout();
    let publisher = bus
        .frames
        .publisher_builder()
        .initial_max_slice_len(layout.frame_bytes)
        .allocation_strategy(AllocationStrategy::Static)
        .max_loaned_samples(1)
        .create()
        .map_err(|e| match e {
            iceoryx2::port::publisher::PublisherCreateError::ExceedsMaxSupportedPublishers => anyhow::anyhow!(
                "camera `{cam}`: another process already publishes its frames (a second `bridge --camera {cam}`?): stop it first"
            ),
            e => anyhow::anyhow!("camera `{cam}`: creating the publisher on `{}`: {e:?}", bus.frames_name),
        })?;
    framebus_common::shm_budget::reserve_data_segment(
        deployment.name(),
        publisher.id().value(),
        &format!("camera `{cam}`'s frame segment"),
    )
    .with_context(|| format!("camera `{cam}`: reserving the shared memory of `{}`", bus.frames_name))?;
    let notifier = bus
        .ready
        .notifier_builder()
        .create()
        .map_err(|e| anyhow::anyhow!("camera `{cam}`: creating the frame-ready notifier: {e:?}"))?;
    Ok((publisher, notifier))
}

/// The camera's frame publisher.
type FramePublisher = iceoryx2::port::publisher::Publisher<IpcService, [u8], FrameHeader>;

/// The Zenoh side of one import: the origin's frames (or access units) and results, both
/// ringing one doorbell, the decoder of H.264, and the results-back publisher.
struct RemoteLink {
    video_key: String,
    frames: zenoh::pubsub::Subscriber<RingChannelHandler<Sample>>,
    results: zenoh::pubsub::Subscriber<FifoChannelHandler<Sample>>,
    back: zenoh::pubsub::Publisher<'static>,
    /// The origin recorder's journal records.
    events: Option<zenoh::pubsub::Subscriber<RingChannelHandler<Sample>>>,
    doorbell: std::sync::mpsc::Receiver<()>,
    decoder: Option<crate::decoder::Decoder>,
}

impl RemoteLink {
    /// Subscribes to `remote`'s frames and results and declares the results-back key.
    fn declare(session: &zenoh::Session, camera: &CameraConfig, remote: &RemoteSourceConfig) -> anyhow::Result<Self> {
        let cam = camera.name.as_str();
        let key = |kind| zenoh_key(&remote.site, &remote.deployment, &remote.camera, kind);
        // Raw frames: the newest two wait (older ones dropped, counted by sequence). H.264: every
        // access unit of the last few seconds waits (a lost one costs pictures up to the next key
        // frame), then the oldest go.
        let (video_key, queue) = match remote.video {
            RemoteVideo::Raw => (key(ZenohKind::Frames), FRAME_QUEUE),
            RemoteVideo::H264 => (key(ZenohKind::Encoded), AU_QUEUE),
        };
        // Frames and the origin's results ring one doorbell: the loop wakes when either arrives.
        let (bell, doorbell) = std::sync::mpsc::sync_channel::<()>(1);
        let frames = session
            .declare_subscriber(video_key.clone())
            .with(ringing(RingChannel::new(queue), bell.clone()))
            .wait()
            .map_err(|e| anyhow::anyhow!("camera `{cam}`: subscribing to `{video_key}`: {e}"))?;
        let decoder = match remote.video {
            RemoteVideo::Raw => None,
            RemoteVideo::H264 => Some(crate::decoder::Decoder::new(camera.width, camera.height)?),
        };
        // The newest 64 records wait (a flood loses the oldest, counted by sequence).
        let events = session
            .declare_subscriber(key(ZenohKind::Events))
            .with(RingChannel::new(64))
            .wait()
            .map_err(|e| anyhow::anyhow!("camera `{cam}`: subscribing to `{}`: {e}", key(ZenohKind::Events)))?;
        let results = session
            .declare_subscriber(key(ZenohKind::Results))
            .with(ringing(FifoChannel::new(256), bell))
            .wait()
            .map_err(|e| anyhow::anyhow!("camera `{cam}`: subscribing to `{}`: {e}", key(ZenohKind::Results)))?;
        let back = session
            .declare_publisher(key(ZenohKind::ResultsBack))
            .congestion_control(zenoh::qos::CongestionControl::Drop)
            .express(true)
            .wait()
            .map_err(|e| anyhow::anyhow!("camera `{cam}`: declaring `{}`: {e}", key(ZenohKind::ResultsBack)))?;
        Ok(RemoteLink { video_key, frames, results, back, events: Some(events), doorbell, decoder })
    }

    /// Publishes every frame that arrived (raw, or decoded from the access units that
    /// arrived); a frame that does not fit `camera` is dropped and counted.
    fn publish_frames(
        &mut self,
        output: &Output,
        state: &mut Import,
        camera: &CameraConfig,
        origin: &str,
    ) -> anyhow::Result<()> {
        while let Ok(Some(sample)) = self.frames.try_recv() {
            let payload = sample.payload();
            match self.decoder.as_mut() {
                // Raw: the pixels are copied once, from Zenoh's buffers straight into shared memory.
                None => {
                    let whole;
                    let parsed = match frame_parts(payload) {
                        Some(parts) => Some(parts),
                        None => {
                            whole = payload.to_bytes();
                            wire::parse::<FrameHeader>(&whole).map(|(seq, header, pixels)| (seq, header, vec![pixels]))
                        }
                    };
                    match parsed {
                        Some((seq, header, pixels)) if fits(camera, &header, pixels.iter().map(|p| p.len()).sum()) => {
                            state.see(seq, payload.len());
                            output.publish(state, header, &pixels)?;
                        }
                        _ => state.mismatch(camera, origin),
                    }
                }
                Some(decoder) => {
                    let bytes = payload.to_bytes();
                    match wire::parse::<AccessUnitHeader>(&bytes) {
                        Some((seq, header, au)) => {
                            let lost = state.see(seq, bytes.len());
                            decoder.push(&header, au, lost)?;
                        }
                        None => state.mismatch(camera, origin),
                    }
                }
            }
        }
        while let Some((au, pixels)) = self.decoder.as_mut().and_then(|d| d.pull()) {
            if pixels.len() != camera.frame_bytes() {
                state.mismatch(camera, origin);
                continue;
            }
            let header = FrameHeader {
                layout_version: framebus_common::header::FRAME_HEADER_VERSION,
                header_size: core::mem::size_of::<FrameHeader>() as u32,
                frame_id: au.frame_id,
                sequence: au.frame_id,
                capture_mono_ns: au.capture_mono_ns,
                capture_realtime_ns: au.capture_realtime_ns,
                width: camera.width,
                height: camera.height,
                stride: camera.width * 3,
                pixel_format: camera.format().fourcc(),
                payload_len: pixels.len() as u32,
                run_id: au.run,
                ..FrameHeader::default()
            };
            output.publish(state, header, &[&pixels])?;
        }
        Ok(())
    }

    /// Publishes every result of the origin into the local results service, about the local
    /// frame it came with (frame id 0 when that frame is no longer known).
    fn publish_origin_results(&self, publisher: &ResultsPublisher, state: &mut Import, run_id: u64) {
        while let Ok(Some(sample)) = self.results.try_recv() {
            let bytes = sample.payload().to_bytes();
            let Some((seq, mut record, _)) = wire::parse::<ResultRecord>(&bytes) else {
                state.results_in.drop_one();
                continue;
            };
            state.results_in.add_drops(state.results_loss.see(seq));
            match state.ids.iter().find(|o| o.frame_id == record.frame_id && o.run_id == record.run_id) {
                Some(o) => {
                    record.frame_id = o.local_id;
                    record.capture_mono_ns = clock::monotonic_ns();
                }
                None => {
                    record.frame_id = 0;
                    record.capture_mono_ns = clock::monotonic_ns();
                }
            }
            record.run_id = run_id;
            record.publish_mono_ns = clock::monotonic_ns();
            state.echoes.published(&record);
            match publisher.publish(record) {
                Ok(_) => state.results_in.count(bytes.len()),
                Err(_) => state.results_in.drop_one(),
            }
        }
    }

    /// Sends every local result about an imported frame back to the origin (in the origin's
    /// ids); echoes of the origin's own results and results of other runs stay here.
    fn send_results_back(
        &self,
        subscriber: &iceoryx2::port::subscriber::Subscriber<IpcService, ResultRecord, ()>,
        state: &mut Import,
        run_id: u64,
        back_seq: &mut u64,
    ) {
        while let Ok(Some(sample)) = subscriber.receive() {
            let mut record = *sample.payload();
            drop(sample);
            if state.echoes.is_echo(&record) || record.run_id != run_id {
                continue;
            }
            let Some(o) = state.ids.iter().find(|o| o.local_id == record.frame_id).copied() else { continue };
            record.frame_id = o.frame_id;
            record.run_id = o.run_id;
            record.capture_mono_ns = o.capture_mono_ns;
            *back_seq += 1;
            let message = wire::message(*back_seq, &record, &[]);
            let len = message.len();
            match self.back.put(message).wait() {
                Ok(()) => state.results_back.count(len),
                Err(_) => state.results_back.drop_one(),
            }
        }
    }
}

/// The thread that writes the origin's events: a flood of records (or a slow disk) never holds
/// up frames, results or control.
struct EventsWriter {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

impl EventsWriter {
    /// Starts writing what `subscriber` receives into `camera`'s copy of its origin's journal,
    /// counted in `flow`.
    fn start(
        deployment: &Deployment,
        camera: &CameraConfig,
        subscriber: Option<zenoh::pubsub::Subscriber<RingChannelHandler<Sample>>>,
        flow: &std::sync::Arc<Flow>,
    ) -> anyhow::Result<EventsWriter> {
        let recordings = deployment.recordings_directory(camera);
        let journal = OriginJournal {
            journal: Journal::new(&origin_directory(&recordings), &camera.name),
            recordings,
            ready: false,
        };
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (thread_stop, flow) = (std::sync::Arc::clone(&stop), std::sync::Arc::clone(flow));
        let thread = std::thread::Builder::new()
            .name(format!("events-{}", camera.name))
            .spawn(move || {
                if let Some(subscriber) = subscriber {
                    write_origin_events(&subscriber, journal, &flow, &thread_stop);
                }
            })
            .context("starting the events thread")?;
        Ok(EventsWriter { stop, thread })
    }

    /// Stops the thread (within 100 ms) and waits for it.
    fn stop(self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = self.thread.join();
    }
}

/// Appends every record of the origin's events journal that arrives to this camera's copy of
/// it ([`origin_directory`]: `ctl events <camera> --origin`), in order, until `stop`; a message
/// that is not a journal record (or is longer than [`MAX_EVENT_BYTES`]) is dropped and counted.
fn write_origin_events(
    subscriber: &zenoh::pubsub::Subscriber<RingChannelHandler<Sample>>,
    mut journal: OriginJournal,
    flow: &Flow,
    stop: &std::sync::atomic::AtomicBool,
) {
    let mut loss = LossCounter::default();
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let sample = match subscriber.recv_timeout(Duration::from_millis(100)) {
            Ok(Some(sample)) => sample,
            Ok(None) => continue,
            Err(_) => return,
        };
        let bytes = sample.payload().to_bytes();
        let record = wire::parse_text(&bytes)
            .map(|(seq, line)| (seq, line.trim()))
            .filter(|(_, line)| line.len() <= MAX_EVENT_BYTES && JournalRecord::parse(line).is_some());
        let Some((seq, line)) = record else {
            flow.drop_one();
            continue;
        };
        flow.add_drops(loss.see(seq));
        journal.write_line(line);
        flow.count(bytes.len());
    }
}

/// This camera's copy of its origin's events journal, in `<recordings>/origin` (both folders
/// created at the first record: a viewer without a recorder has no recordings folder yet).
struct OriginJournal {
    journal: Journal,
    recordings: std::path::PathBuf,
    ready: bool,
}

impl OriginJournal {
    /// Appends one record (best effort: a failure is logged by the journal, rate-limited).
    fn write_line(&mut self, line: &str) {
        if !self.ready {
            let origin = origin_directory(&self.recordings);
            let made = std::fs::create_dir_all(&self.recordings)
                .map_err(|e| format!("creating `{}`: {e}", self.recordings.display()))
                .and_then(|()| framebus_common::secure_fs::ensure_real_dir(&origin, 0o777).map_err(|e| e.to_string()));
            match made {
                Ok(_) => self.ready = true,
                Err(e) => framebus_common::logging::repeated(
                    tracing::Level::WARN,
                    "bridge.import.journal",
                    format_args!("the origin's events journal: {e}: record dropped"),
                ),
            }
        }
        if self.ready {
            self.journal.write_line(line);
        }
    }
}

/// Where imported frames go: the camera's publisher and frame-ready notifier.
struct Output {
    publisher: FramePublisher,
    notifier: Notifier<IpcService>,
    run_id: u64,
    camera: String,
}

impl Output {
    /// Publishes one frame (`header` as the origin wrote it) with this run's next frame id,
    /// as capture would: loaned sample, every byte written, header, send, notify.
    fn publish(&self, state: &mut Import, header: FrameHeader, pixels: &[&[u8]]) -> anyhow::Result<()> {
        let cam = &self.camera;
        let local_id = state.frames + 1;
        let len = pixels.iter().map(|p| p.len()).sum();
        let mut sample = self
            .publisher
            .loan_slice_uninit(len)
            .map_err(|e| anyhow::anyhow!("camera `{cam}`: loaning a sample: {e:?}"))?;
        // One copy of the whole frame into shared memory (a memcpy per part).
        let memory = sample.payload_mut();
        let mut at = 0;
        for part in pixels {
            let to = &mut memory[at..at + part.len()];
            // SAFETY: `MaybeUninit<u8>` has the layout of `u8`; `to` and `part` have the same
            // length and do not overlap (shared memory vs Zenoh's buffers).
            unsafe { std::ptr::copy_nonoverlapping(part.as_ptr(), to.as_mut_ptr().cast::<u8>(), part.len()) };
            at += part.len();
        }
        // SAFETY: the loop above wrote every one of the `len` bytes.
        let mut sample = unsafe { sample.assume_init() };
        let now_mono = clock::monotonic_ns();
        let age = clock::realtime_ns().saturating_sub(header.capture_realtime_ns);
        let out = sample.user_header_mut();
        *out = header;
        out.frame_id = local_id;
        out.sequence = header.frame_id;
        out.run_id = self.run_id;
        out.capture_mono_ns = now_mono.saturating_sub(age);
        out.source_drops = header.source_drops.saturating_add(state.loss.lost);
        // The synthetic stamp encodes the origin's frame id (and a downscale erases it): not
        // checkable against this camera's own ids.
        out.flags &= !(framebus_common::header::FLAG_SYNTHETIC_STAMP | framebus_common::header::FLAG_SCENE);
        if std::mem::take(&mut state.gap) {
            out.flags |= framebus_common::header::FLAG_GAP_BEFORE;
        }
        out.publish_mono_ns = clock::monotonic_ns();
        sample.send().map_err(|e| anyhow::anyhow!("camera `{cam}`: sending a frame: {e:?}"))?;
        if let Err(e) = self.notifier.notify() {
            tracing::debug!(camera = cam, "frame-ready notify: {e:?}");
        }
        state.frames = local_id;
        state.frames_in.record_latency(age);
        state.window.record_ns(age);
        state.histogram.record_us(age / 1000);
        if state.ids.len() == ID_MAP {
            state.ids.pop_front();
        }
        state.ids.push_back(Origin {
            local_id,
            frame_id: header.frame_id,
            run_id: header.run_id,
            capture_mono_ns: header.capture_mono_ns,
        });
        state.last_frame = Some(Instant::now());
        if let Some(since) = state.link.set(true) {
            state.came_back = Some(since);
        }
        Ok(())
    }
}

/// Whether a received frame is what this camera publishes (size and format of its config).
fn fits(camera: &CameraConfig, header: &FrameHeader, pixels_len: usize) -> bool {
    header.width == camera.width
        && header.height == camera.height
        && header.pixel_format == camera.format().fourcc()
        && pixels_len == camera.frame_bytes()
}

/// A raw frame message's sequence number, header and pixels, the pixels as the parts Zenoh
/// holds them in (a large message arrives in fragments): no copy. `None` when it is too short.
fn frame_parts(payload: &zenoh::bytes::ZBytes) -> Option<(u64, FrameHeader, Vec<&[u8]>)> {
    let mut slices = payload.slices();
    let first = slices.next()?;
    // The sequence number and header come first, in the first part (`None` when that part is
    // shorter: the caller then copies the message into one piece).
    let (seq, header, rest) = wire::parse::<FrameHeader>(first)?;
    let mut parts = Vec::with_capacity(8);
    if !rest.is_empty() {
        parts.push(rest);
    }
    parts.extend(slices);
    Some((seq, header, parts))
}

/// The import's running figures.
struct Import {
    frames: u64,
    loss: LossCounter,
    mismatched: u64,
    last_frame: Option<Instant>,
    link: Link,
    /// Set when frames came back after a cut: since when the link was down (logged, then
    /// cleared).
    came_back: Option<std::time::SystemTime>,
    /// Frames of the origin are missing before the next frame published (a cut link, lost
    /// messages, a restarted sender): it carries `FLAG_GAP_BEFORE`.
    gap: bool,
    window: StatusWindow,
    histogram: LatencyHistogram,
    ids: VecDeque<Origin>,
    echoes: Echoes,
    frames_in: Flow,
    results_in: Flow,
    results_loss: LossCounter,
    results_back: Flow,
    /// Shared with the events thread.
    events_in: std::sync::Arc<Flow>,
}

impl Import {
    /// No frame yet.
    fn new() -> Self {
        Import {
            frames: 0,
            loss: LossCounter::default(),
            mismatched: 0,
            last_frame: None,
            link: Link::default(),
            came_back: None,
            gap: false,
            window: StatusWindow::new(Duration::from_secs(1)),
            histogram: LatencyHistogram::default(),
            ids: VecDeque::with_capacity(ID_MAP),
            echoes: Echoes::default(),
            frames_in: Flow::default(),
            results_in: Flow::default(),
            results_loss: LossCounter::default(),
            results_back: Flow::default(),
            events_in: std::sync::Arc::default(),
        }
    }

    /// Marks the link down after `LINK_DOWN_AFTER` without a frame, and logs both ways.
    fn watch_link(&mut self, cam: &str, origin: &str) {
        if !self.link.degraded() && self.last_frame.is_some_and(|t| t.elapsed() >= LINK_DOWN_AFTER) {
            self.link.set(false);
            self.gap = true;
            tracing::warn!(camera = cam, origin, "link down: no frame for {LINK_DOWN_AFTER:?}");
        }
        if let Some(since) = self.came_back.take() {
            let down = since.elapsed().unwrap_or_default();
            tracing::info!(camera = cam, origin, down_ms = down.as_millis() as u64, "link up: frames arrive");
        }
    }

    /// Counts a frame or access-unit message of `len` bytes with sequence number `seq`;
    /// returns how many messages were lost just before it (at least 1 after a restarted
    /// sender: what came before is unknown, so the decoder waits for a key frame).
    fn see(&mut self, seq: u64, len: usize) -> u64 {
        let restarted = self.loss.last().is_some_and(|last| seq <= last);
        let lost = self.loss.see(seq);
        self.frames_in.count(len);
        self.frames_in.add_drops(lost);
        if lost > 0 || restarted {
            self.gap = true;
        }
        if restarted {
            lost.max(1)
        } else {
            lost
        }
    }

    /// The `figures` reply: link state and the four flows.
    fn figures(&self, camera: &str, origin: &str, peers: usize) -> framebus_common::figures::BridgeCamera {
        let flows = vec![
            self.frames_in.figures("frames", "in"),
            self.results_in.figures("results", "in"),
            self.events_in.figures("events", "in"),
            self.results_back.figures("results-back", "out"),
        ];
        self.link.camera(camera, "import", origin.to_string(), peers, flows)
    }

    fn mismatch(&mut self, camera: &CameraConfig, origin: &str) {
        self.mismatched += 1;
        framebus_common::logging::repeated(
            tracing::Level::WARN,
            "bridge.import.mismatch",
            format_args!(
                "camera `{}`: a frame from {origin} does not fit {}x{} {} (the origin's export must match this [[remote-camera]]'s width, height and pixel-format): dropped",
                camera.name, camera.width, camera.height, camera.pixel_format
            ),
        );
    }

    fn metrics(&self, camera: &CameraConfig, origin: &str, peers: usize) -> Metrics {
        let link = match self.link.down_since() {
            Some(since) => format!("link down since {}", crate::wall_time(since)),
            None if self.link.state() == "up" => "link up".to_string(),
            None => "no frame yet".to_string(),
        };
        let (results_in, _, _) = self.results_in.read();
        let (results_back, _, _) = self.results_back.read();
        Metrics {
            state: if self.link.state() == "up" { ProcessState::Running } else { ProcessState::Degraded },
            frames: self.frames,
            fps: self.window.fps,
            skipped: self.loss.lost,
            latency_p50_us: self.window.p50_us,
            latency_p99_us: self.window.p99_us,
            format: Some(FrameFormat {
                width: camera.width,
                height: camera.height,
                fourcc: FourccText(camera.format().fourcc()),
            }),
            target_fps: camera.fps,
            message: format!(
                "remote {origin} over zenoh: {link}, peers {peers}, frames lost {}, mismatched {}, results in {} back {} lost {}",
                self.loss.lost, self.mismatched, results_in, results_back, self.results_loss.lost
            ),
            histogram: self.histogram,
            ..Metrics::default()
        }
    }
}
