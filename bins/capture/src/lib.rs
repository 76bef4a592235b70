//! The capture process: opens one camera's source, reserves the camera's frame slots in shared
//! memory and publishes every frame once, written directly into a loaned iceoryx2 sample, then
//! wakes readers with an event. Readers never make it wait: a slow reader loses its oldest
//! queued frame instead.

pub mod pipeline;
pub mod source;

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use framebus_common::control::{Answer, Command, ControlServer, FourccText, FrameFormat, Metrics, ProcessState};
use framebus_common::header::{FLAG_SYNTHETIC_STAMP, FRAME_HEADER_VERSION};
use framebus_common::ipc::{create_node, open_frame_bus, DeploymentGuard, IpcService};
use framebus_common::stats::StatusWindow;
use framebus_common::{clock, signals, CameraConfig, Deployment, FrameHeader, ProcessRole};
use iceoryx2::prelude::*;

use crate::pipeline::{pipeline_for, MediaPipeline};
use crate::source::{open_source, stamps_frames, Effective, FrameSource, Pacing, SourceError};

/// Options of one capture run beyond the config (mostly for tests and benchmarks).
#[derive(Debug, Clone, Default)]
pub struct CaptureOptions {
    /// Stop after publishing this many frames.
    pub max_frames: Option<u64>,
    /// Do not publish before this many readers are attached (benchmarks).
    pub wait_for_readers: usize,
    /// Interval of the periodic statistics log line (default 5 s).
    pub stats_interval: Option<Duration>,
}

/// Default interval of capture's periodic statistics log line.
pub const DEFAULT_STATS_INTERVAL: Duration = Duration::from_secs(5);

/// What a capture run did, printed as JSON by `capture --summary`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CaptureSummary {
    /// Frames published.
    pub frames: u64,
    /// Seconds from the first to the last frame.
    pub seconds: f64,
    /// Mean nanoseconds per frame spent in loan + write + send + notify.
    pub publish_cost_ns: f64,
    /// Mean nanoseconds per frame of each phase: loan, write, send, notify.
    pub phase_ns: [f64; 4],
    /// What the source delivered, as negotiated (format, frame rate, drops, reconnects).
    pub effective: Option<Effective>,
}

impl CaptureSummary {
    /// One-line JSON.
    pub fn to_json(&self) -> String {
        let effective = self.effective.as_ref().map_or(String::new(), |e| {
            format!(
                ",\"format\":\"{}\",\"width\":{},\"height\":{},\"device_format\":{},\"source_fps\":{:.3},\"source_drops\":{},\"reconnects\":{}",
                e.published.format,
                e.published.width,
                e.published.height,
                e.device_format.map_or("null".to_string(), |f| format!("\"{f}\"")),
                e.fps,
                e.source_drops,
                e.reconnects
            )
        });
        format!(
            "{{\"frames\":{},\"seconds\":{:.3},\"fps\":{:.1},\"publish_cost_ns\":{:.0},\"loan_ns\":{:.0},\"write_ns\":{:.0},\"send_ns\":{:.0},\"notify_ns\":{:.0}{effective}}}",
            self.frames,
            self.seconds,
            if self.seconds > 0.0 { self.frames as f64 / self.seconds } else { 0.0 },
            self.publish_cost_ns,
            self.phase_ns[0],
            self.phase_ns[1],
            self.phase_ns[2],
            self.phase_ns[3],
        )
    }
}

/// One line for logs: what the device delivers and what is published.
pub fn describe_effective(e: &Effective) -> String {
    let published = format!("{} {}x{}", e.published.format, e.published.width, e.published.height);
    let fps = if e.fps > 0.0 { format!("{:.3} fps", e.fps) } else { "unpaced".to_string() };
    match e.device_format {
        Some(device) => format!(
            "device delivers {device} {}x{} at {fps}, publishing {published}",
            e.published.width, e.published.height
        ),
        None => format!("publishing {published} at {fps}"),
    }
}

/// Runs capture for `camera` until SIGINT/SIGTERM, the end of a non-looping file, or
/// `options.max_frames`.
pub fn run(deployment: &Deployment, camera: &CameraConfig, options: &CaptureOptions) -> anyhow::Result<CaptureSummary> {
    let cam = camera.name.as_str();
    let mut pipeline = pipeline_for(camera);
    pipeline
        .setup(camera)
        .with_context(|| format!("camera `{cam}`: media pipeline `{}` set-up failed", pipeline.name()))?;
    let result = run_with_source(deployment, camera, options, &mut *pipeline);
    if let Err(e) = pipeline.teardown(camera) {
        tracing::warn!(camera = cam, "media pipeline teardown failed: {e:#}");
    }
    result
}

fn run_with_source(
    deployment: &Deployment,
    camera: &CameraConfig,
    options: &CaptureOptions,
    pipeline: &mut dyn MediaPipeline,
) -> anyhow::Result<CaptureSummary> {
    let cam = camera.name.as_str();
    let mut source = open_source(deployment, camera)?;
    let format = source.format();
    let effective = source.effective();
    tracing::info!(camera = cam, "effective format: {}", describe_effective(&effective));
    let layout = camera.slot_layout();
    if format.max_frame_bytes() > layout.frame_bytes {
        bail!(
            "camera `{cam}`: the source delivers {}x{} {} frames of up to {} bytes, larger than the {}-byte slots the config reserves",
            format.width, format.height, format.format, format.max_frame_bytes(), layout.frame_bytes
        );
    }
    let _release = DeploymentGuard::new(deployment.name());
    let node = create_node(deployment, ProcessRole::Capture.name(), cam)?;
    // Before the frame segment exists: a segment larger than the free space of /dev/shm ends in
    // SIGBUS when its pages are touched.
    framebus_common::shm_budget::check(deployment, Some(cam), false)?;
    let bus = open_frame_bus(&node, deployment, camera)?;
    let publisher = bus
        .frames
        .publisher_builder()
        .initial_max_slice_len(layout.frame_bytes)
        .allocation_strategy(AllocationStrategy::Static)
        .max_loaned_samples(layout.publisher_loans)
        .create()
        .map_err(|e| anyhow::anyhow!("camera `{cam}`: creating the publisher on `{}`: {e:?}", bus.frames_name))?;
    let notifier = bus
        .ready
        .notifier_builder()
        .create()
        .map_err(|e| anyhow::anyhow!("camera `{cam}`: creating the frame-ready notifier: {e:?}"))?;
    let pacing = source.pacing();
    let mut control = Control {
        server: ControlServer::create(&node, deployment, cam, &ProcessRole::Capture.into())?,
        metrics: Metrics {
            state: ProcessState::Running,
            format: Some(FrameFormat {
                width: format.width,
                height: format.height,
                fourcc: FourccText(format.format.fourcc()),
            }),
            target_fps: match pacing {
                Pacing::Period(period) => 1.0 / period.as_secs_f64().max(1e-9),
                Pacing::Unpaced => 0.0,
                // What the driver granted (the configured rate when it does not say).
                Pacing::Device if effective.fps > 0.0 => effective.fps,
                Pacing::Device => camera.fps,
            },
            ..Metrics::default()
        },
        stop: false,
    };
    let mut window = StatusWindow::new(Duration::from_secs(1));
    tracing::info!(
        camera = cam,
        source = source.describe(),
        service = bus.frames_name,
        "shared memory: {} slots x {} bytes = {:.1} MiB ({} readers x (queue {} + {} borrowed) + {} loaned)",
        layout.slots(),
        layout.frame_bytes,
        layout.payload_bytes() as f64 / (1024.0 * 1024.0),
        layout.max_readers,
        layout.max_queue_depth,
        layout.reader_borrows,
        layout.publisher_loans,
    );

    if options.wait_for_readers > 0 {
        control.metrics.state = ProcessState::Waiting;
        while bus.frames.dynamic_config().number_of_subscribers() < options.wait_for_readers {
            if !control.wait(&node, Duration::from_millis(1)) || control.stop {
                return Ok(CaptureSummary { effective: Some(source.effective()), ..CaptureSummary::default() });
            }
        }
        control.metrics.state = ProcessState::Running;
    }

    let stamp_flag = if stamps_frames(camera) { FLAG_SYNTHETIC_STAMP } else { 0 };
    let run_id = clock::realtime_ns();
    let mut frame_id: u64 = 0;
    let mut publish_ns_total: u128 = 0;
    let mut phase_totals = [0u64; 4];
    let mut next_due = Instant::now();
    let started = Instant::now();
    let mut stats = RateLog::new(options.stats_interval.unwrap_or(DEFAULT_STATS_INTERVAL));
    let mut backoff = Duration::from_millis(100);
    let mut bad_frames: u64 = 0;
    tracing::info!(camera = cam, "capturing: {} at {:?}", source.describe(), pacing);

    loop {
        // Pacing, answering control requests meanwhile; the wait ends early on SIGINT/SIGTERM
        // (the flag of `framebus_common::signals`) or a stop command, which end the loop.
        let waited = match pacing {
            Pacing::Period(period) => {
                let now = Instant::now();
                let wait = next_due.saturating_duration_since(now);
                next_due = if now > next_due + period { now + period } else { next_due + period };
                control.wait(&node, wait)
            }
            Pacing::Unpaced | Pacing::Device => control.wait(&node, Duration::ZERO),
        };
        if !waited {
            tracing::info!(camera = cam, frames = frame_id, "termination requested, stopping");
            break;
        }
        if control.stop {
            tracing::info!(camera = cam, frames = frame_id, "stop requested over control, stopping");
            break;
        }
        window.roll(frame_id);
        control.metrics.fps = window.fps;
        control.metrics.latency_p50_us = window.p50_us;
        control.metrics.latency_p99_us = window.p99_us;
        let grab = match source.grab() {
            Ok(grab) => grab,
            Err(SourceError::NoFrameYet) => continue,
            Err(SourceError::BadFrame(why)) => {
                bad_frames += 1;
                log_bad_frame(cam, bad_frames, &why);
                continue;
            }
            Err(SourceError::Ended) => {
                tracing::info!(camera = cam, frames = frame_id, "source ended");
                break;
            }
            Err(SourceError::Unavailable(why)) => {
                tracing::warn!(camera = cam, "source unavailable: {why}; retrying in {backoff:?}");
                control.metrics.state = ProcessState::Degraded;
                if !control.wait(&node, backoff) || control.stop {
                    tracing::info!(camera = cam, frames = frame_id, "stopping while the source is unavailable");
                    break;
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
                if let Err(e) = pipeline.setup(camera) {
                    tracing::warn!(camera = cam, "media pipeline `{}` set-up failed: {e:#}", pipeline.name());
                    continue;
                }
                match source.reconnect() {
                    Ok(()) => tracing::info!(camera = cam, "source back: {}", source.describe()),
                    Err(SourceError::Fatal(e)) => return Err(e),
                    Err(e) => tracing::warn!(camera = cam, "reconnect failed: {}", describe_source_error(&e)),
                }
                continue;
            }
            Err(SourceError::Fatal(e)) => {
                return Err(e.context(format!("camera `{cam}`: capturing from {}", source.describe())))
            }
        };
        backoff = Duration::from_millis(100);
        control.metrics.state = ProcessState::Running;
        let publish_start = clock::monotonic_ns();
        let published = publish_frame(
            &publisher,
            &mut *source,
            FrameIdentity { run_id, frame_id: frame_id + 1 },
            &grab,
            stamp_flag,
            format,
            &mut phase_totals,
        )
        .with_context(|| format!("camera `{cam}`: publishing frame {}", frame_id + 1))?;
        if let Err(why) = published {
            // The frame gets no id: ids stay contiguous for what readers actually receive.
            bad_frames += 1;
            log_bad_frame(cam, bad_frames, &why);
            continue;
        }
        frame_id += 1;
        // Readers wait on this event; a failed notify only delays them until the next frame.
        let sent = clock::monotonic_ns();
        if let Err(e) = notifier.notify() {
            tracing::debug!(camera = cam, "notify failed: {e:?}");
        }
        let done = clock::monotonic_ns();
        phase_totals[3] += done.saturating_sub(sent);
        let cost = done.saturating_sub(publish_start);
        publish_ns_total += u128::from(cost);
        // Smoothed publish cost (EWMA, α = 1/8) for status and metrics.
        control.metrics.cost_ns =
            if control.metrics.cost_ns == 0 { cost } else { (control.metrics.cost_ns * 7 + cost) / 8 };
        let latency = done.saturating_sub(grab.capture_mono_ns);
        window.record_ns(latency);
        control.metrics.histogram.record_us(latency / 1000);
        control.metrics.frames = frame_id;
        control.metrics.skipped = grab.source_drops;
        stats.tick(cam, frame_id, &grab);
        if options.max_frames.is_some_and(|max| frame_id >= max) {
            break;
        }
    }
    Ok(CaptureSummary {
        frames: frame_id,
        seconds: started.elapsed().as_secs_f64(),
        publish_cost_ns: if frame_id > 0 { publish_ns_total as f64 / frame_id as f64 } else { 0.0 },
        phase_ns: phase_totals.map(|total| if frame_id > 0 { total as f64 / frame_id as f64 } else { 0.0 }),
        effective: Some(source.effective()),
    })
}

/// Unusable frames are logged through the process's rate limiter (the first few, then one
/// line per interval with the count), so a flaky camera cannot flood the log.
fn log_bad_frame(camera: &str, count: u64, why: &str) {
    framebus_common::logging::repeated(
        tracing::Level::WARN,
        "capture.unusable-frame",
        format_args!("camera `{camera}`: skipping an unusable frame ({count} so far): {why}"),
    );
}

/// Sleep slices between control polls: bounds how long a command waits while capture paces.
const CONTROL_SLICE: Duration = Duration::from_millis(20);

/// Capture's control server and what it reports.
struct Control {
    server: ControlServer,
    metrics: Metrics,
    stop: bool,
}

impl Control {
    /// Answers pending control requests.
    fn poll(&mut self) {
        let metrics = &self.metrics;
        let stop = &mut self.stop;
        self.server.poll(|command| match command {
            Command::Status => Answer::Status(Box::new(metrics.clone())),
            Command::Stop => {
                *stop = true;
                Answer::Done("capture stopping".into())
            }
            // Capture carries the flags in its status; preview and recorder act on them.
            Command::SetPreview(_) | Command::SetSaving(_) => Answer::Ignored,
            Command::ListControls | Command::SetControls(_) => {
                Answer::Refused("camera controls at runtime are not available in this build".into())
            }
        });
        if self.stop {
            self.metrics.state = ProcessState::Stopping;
        }
    }

    /// Sleeps `duration` in slices, answering control requests in between (at least once);
    /// returns early after a stop command. `false` when termination was requested (SIGINT or
    /// SIGTERM; any other signal, e.g. the SIGCONT after a SIGSTOP, only shortens a slice).
    fn wait(&mut self, node: &Node<IpcService>, duration: Duration) -> bool {
        let until = Instant::now() + duration;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            // An interrupted sleep returns early; whether it was a termination request is
            // the signal flag's to say, not the interruption's.
            let _ = node.wait(left.min(CONTROL_SLICE));
            if signals::termination_requested() {
                return false;
            }
            self.poll();
            if self.stop || Instant::now() >= until {
                return true;
            }
        }
    }
}

fn describe_source_error(e: &SourceError) -> String {
    match e {
        SourceError::Ended => "source ended".into(),
        SourceError::Unavailable(why) | SourceError::BadFrame(why) => why.clone(),
        SourceError::NoFrameYet => "no frame yet".into(),
        SourceError::Fatal(e) => format!("{e:#}"),
    }
}

/// Which frame of which capture run is being published.
#[derive(Debug, Clone, Copy)]
struct FrameIdentity {
    run_id: u64,
    frame_id: u64,
}

type FramePublisher = iceoryx2::port::publisher::Publisher<framebus_common::ipc::IpcService, [u8], FrameHeader>;

/// Loans a sample, lets the source write the frame into it, fills the header and sends it.
/// `Ok(Err(why))`: the source could not write this frame; the sample is returned unsent.
fn publish_frame(
    publisher: &FramePublisher,
    source: &mut dyn FrameSource,
    id: FrameIdentity,
    grab: &source::Grab,
    flags: u32,
    format: source::SourceFormat,
    phase_totals: &mut [u64; 4],
) -> anyhow::Result<Result<(), String>> {
    let start = clock::monotonic_ns();
    let mut sample =
        publisher.loan_slice_uninit(grab.payload_len).map_err(|e| anyhow::anyhow!("loaning a sample: {e:?}"))?;
    let loaned = clock::monotonic_ns();
    let FrameIdentity { run_id, frame_id } = id;
    match source.write_into(frame_id, sample.payload_mut()) {
        Ok(()) => {}
        Err(SourceError::BadFrame(why)) => return Ok(Err(why)),
        Err(SourceError::Fatal(e)) => return Err(e),
        Err(other) => anyhow::bail!("writing the frame: {}", describe_source_error(&other)),
    }
    *sample.user_header_mut() = FrameHeader {
        layout_version: FRAME_HEADER_VERSION,
        header_size: core::mem::size_of::<FrameHeader>() as u32,
        frame_id,
        sequence: grab.sequence,
        capture_mono_ns: grab.capture_mono_ns,
        capture_realtime_ns: grab.capture_realtime_ns,
        publish_mono_ns: clock::monotonic_ns(),
        width: format.width,
        height: format.height,
        stride: format.format.stride(format.width),
        pixel_format: format.format.fourcc(),
        payload_len: grab.payload_len as u32,
        flags,
        source_drops: grab.source_drops,
        run_id,
    };
    // SAFETY: `write_into` wrote every one of the `payload_len` bytes (its contract).
    let sample = unsafe { sample.assume_init() };
    let written = clock::monotonic_ns();
    sample.send().map_err(|e| anyhow::anyhow!("sending: {e:?}"))?;
    phase_totals[0] += loaned.saturating_sub(start);
    phase_totals[1] += written.saturating_sub(loaned);
    phase_totals[2] += clock::monotonic_ns().saturating_sub(written);
    Ok(Ok(()))
}

/// Logs the publish rate and the source's (driver's) drops periodically.
struct RateLog {
    interval: Duration,
    since: Instant,
    frames_at_start: u64,
    drops_at_start: u64,
}

impl RateLog {
    fn new(interval: Duration) -> RateLog {
        RateLog { interval, since: Instant::now(), frames_at_start: 0, drops_at_start: 0 }
    }

    fn tick(&mut self, camera: &str, frames: u64, grab: &source::Grab) {
        let elapsed = self.since.elapsed();
        if elapsed >= self.interval {
            let fps = (frames - self.frames_at_start) as f64 / elapsed.as_secs_f64();
            let drops = grab.source_drops;
            tracing::info!(
                camera,
                frames,
                "publishing at {fps:.1} fps, driver drops {drops} (+{})",
                drops.saturating_sub(self.drops_at_start)
            );
            self.since = Instant::now();
            self.frames_at_start = frames;
            self.drops_at_start = drops;
        }
    }
}
