//! The capture process: opens one camera's source, reserves the camera's frame slots in shared
//! memory and publishes every frame once, written directly into a loaned iceoryx2 sample, then
//! wakes readers with an event. Readers never make it wait: a slow reader loses its oldest
//! queued frame instead.

//!
//! - [`source`]: frame sources (synthetic, file, V4L2) behind the [`source::FrameSource`] trait.
//! - `output`: the publisher, sized for the samples a zero-copy source lends its device.
//! - `step`: the capture loop, one frame per step: pacing, grab, publish, reconnect.
//! - `control`: answering control requests between frames.
//! - [`pipeline`]: board set-up before the device opens (media-ctl).

pub mod cli;
mod control;
mod output;
pub mod pipeline;
pub mod source;
mod step;

use std::time::Duration;

use anyhow::{bail, Context};
use framebus_common::control::{ControlServer, FourccText, FrameFormat, Metrics, ProcessState};
use framebus_common::ipc::{create_node, open_frame_bus, DeploymentGuard};
use framebus_common::state::StateStore;
use framebus_common::{CameraConfig, Deployment, ProcessRole};
use serde::Serialize;

use crate::control::Control;
pub use crate::control::{camera_controls, ControlsRequest};
use crate::output::{describe_layout, layout_for, FrameOutput};
use crate::pipeline::{pipeline_for, MediaPipeline};
use crate::source::{open_source, Effective, Pacing, SourceFormat};
use crate::step::Capture;

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
    /// Frames the device wrote straight into shared memory (USERPTR): capture touched no pixel.
    pub zero_copy_frames: u64,
    /// Frames capture wrote into shared memory itself (copied, converted, decoded, generated).
    pub written_frames: u64,
    /// CPU time of the process while the loop ran, ns (everything: waiting on the device,
    /// dequeuing, writing, publishing, control; with an emulated device also its sensor).
    pub cpu_ns: u64,
    /// What the source delivered, as negotiated (format, frame rate, drops, reconnects).
    pub effective: Option<Effective>,
}

/// `capture --summary`'s JSON document (field names are a contract: tests and the bench read
/// them).
#[derive(Serialize)]
struct SummaryDocument {
    frames: u64,
    seconds: f64,
    fps: f64,
    publish_cost_ns: u64,
    loan_ns: u64,
    write_ns: u64,
    send_ns: u64,
    notify_ns: u64,
    zero_copy_frames: u64,
    written_frames: u64,
    cpu_ns: u64,
    #[serde(flatten)]
    effective: Option<EffectiveDocument>,
}

/// What the source delivered, in the summary.
#[derive(Serialize)]
struct EffectiveDocument {
    format: String,
    width: u32,
    height: u32,
    device_format: Option<String>,
    memory: Option<&'static str>,
    source_fps: f64,
    source_drops: u64,
    reconnects: u64,
}

impl CaptureSummary {
    /// One-line JSON.
    pub fn to_json(&self) -> String {
        let round = |v: f64, digits: i32| (v * 10f64.powi(digits)).round() / 10f64.powi(digits);
        let document = SummaryDocument {
            frames: self.frames,
            seconds: round(self.seconds, 3),
            fps: round(if self.seconds > 0.0 { self.frames as f64 / self.seconds } else { 0.0 }, 1),
            publish_cost_ns: self.publish_cost_ns.round() as u64,
            loan_ns: self.phase_ns[0].round() as u64,
            write_ns: self.phase_ns[1].round() as u64,
            send_ns: self.phase_ns[2].round() as u64,
            notify_ns: self.phase_ns[3].round() as u64,
            zero_copy_frames: self.zero_copy_frames,
            written_frames: self.written_frames,
            cpu_ns: self.cpu_ns,
            effective: self.effective.as_ref().map(|e| EffectiveDocument {
                format: e.published.format.to_string(),
                width: e.published.width,
                height: e.published.height,
                device_format: e.device_format.map(|f| f.to_string()),
                memory: e.memory,
                source_fps: round(e.fps, 3),
                source_drops: e.source_drops,
                reconnects: e.reconnects,
            }),
        };
        serde_json::to_string(&document).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
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

/// The frame rate `ctl status` shows as the target: the source's period, none for an unpaced
/// source, else what the driver granted (the configured rate when it does not say).
fn target_fps(pacing: Pacing, effective: &Effective, camera: &CameraConfig) -> f64 {
    match pacing {
        Pacing::Period(period) => 1.0 / period.as_secs_f64().max(1e-9),
        Pacing::Unpaced => 0.0,
        Pacing::Device if effective.fps > 0.0 => effective.fps,
        Pacing::Device => camera.fps,
    }
}

/// Fails when the source's largest frame does not fit the slots the config reserves.
fn check_slots_fit(cam: &str, format: &SourceFormat, frame_bytes: usize) -> anyhow::Result<()> {
    if format.max_frame_bytes() > frame_bytes {
        bail!(
            "camera `{cam}`: the source delivers {}x{} {} frames of up to {} bytes, larger than the {}-byte slots the config reserves",
            format.width, format.height, format.format, format.max_frame_bytes(), frame_bytes
        );
    }
    Ok(())
}

/// Set-up: opens the source, sizes and creates the publisher, serves control, waits for
/// readers when asked; then runs the loop ([`step`]) and summarises it.
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
    let lent = source.lending().map_or(0, |l| l.buffers);
    let layout = layout_for(camera, lent);
    check_slots_fit(cam, &format, layout.frame_bytes)?;
    let _release = DeploymentGuard::new(deployment.name());
    let node = create_node(deployment, ProcessRole::Capture.name(), cam)?;
    // Before the frame segment exists: a segment larger than the free space of /dev/shm ends in
    // SIGBUS when its pages are touched.
    framebus_common::shm_budget::check(deployment, Some(cam), false)?;
    let bus = open_frame_bus(&node, deployment, camera)?;
    let mut output = FrameOutput::create(deployment.name(), &bus, &layout, camera, &*source)?;
    let mut control = Control {
        server: ControlServer::create(&node, deployment, cam, &ProcessRole::Capture.into())?,
        metrics: Metrics {
            state: ProcessState::Running,
            format: Some(FrameFormat {
                width: format.width,
                height: format.height,
                fourcc: FourccText(format.format.fourcc()),
            }),
            target_fps: target_fps(source.pacing(), &effective, camera),
            ..Metrics::default()
        },
        stop: false,
        store: StateStore::of(deployment),
        camera: cam.to_string(),
    };
    tracing::info!(
        camera = cam,
        source = source.describe(),
        service = bus.frames_name,
        "shared memory: {}",
        describe_layout(&layout, lent)
    );

    if options.wait_for_readers > 0 {
        control.metrics.state = ProcessState::Waiting;
        while output.readers(&bus) < options.wait_for_readers {
            if !control.wait(&node, Duration::from_millis(1), &mut *source) || control.stop {
                source.close();
                return Ok(CaptureSummary { effective: Some(source.effective()), ..CaptureSummary::default() });
            }
        }
        control.metrics.state = ProcessState::Running;
    }

    let mut capture = Capture::new(camera, &node, &mut *source, pipeline, &mut output, &mut control, options);
    let result = capture.run();
    let (frames, seconds, cpu_ns) = (capture.frames(), capture.seconds(), capture.cpu_ns());
    drop(capture);
    let effective = source.effective();
    // The device lets go of the samples it holds before the publisher goes.
    source.close();
    result?;
    let (publish_cost_ns, phase_ns) = output.means(frames);
    Ok(CaptureSummary {
        frames,
        seconds,
        publish_cost_ns,
        phase_ns,
        zero_copy_frames: output.zero_copy_frames,
        written_frames: output.written_frames,
        cpu_ns,
        effective: Some(effective),
    })
}
