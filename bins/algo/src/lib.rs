//! The algo process: subscribes to one camera, sleeps until capture's frame-ready event, and
//! runs the per-frame computation on the newest frame only, straight from shared memory. When
//! it is slower than the camera, older frames are dropped from its queue (never making capture
//! wait) and counted as skipped from frame-id gaps.

pub mod cli;
pub mod compute;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use framebus::{Camera, Detection, Event, ProcessReport, ReaderStats};
use framebus_common::config::AlgoConfig;
use framebus_common::header::{FLAG_SCENE, FLAG_SYNTHETIC_STAMP};
use framebus_common::pattern::{verify_stamps, SyntheticPattern};
use framebus_common::stats::LatencyWindow;
use framebus_common::{clock, CameraConfig, Deployment, FrameHeader, PixelFormat, ProcessRole};
use serde::Serialize;

use crate::compute::{FrameMetrics, MotionMeter};

/// Options of one algo run beyond the config.
#[derive(Debug, Clone, Default)]
pub struct AlgoOptions {
    /// Stop after processing this many frames.
    pub max_frames: Option<u64>,
    /// Extra time spent per frame while holding it (simulates a slow algorithm).
    pub simulate_work: Duration,
    /// Print every statistics report as one JSON line on stdout, besides the log.
    pub json: bool,
}

/// What algo found in the frames it processed; reported periodically and at the end, together
/// with the reader figures of the library ([`ReaderStats`]).
#[derive(Debug, Clone, Default)]
pub struct AlgoStats {
    /// Frames processed.
    pub frames: u64,
    /// Synthetic frames whose stamp and pattern checked out.
    pub stamp_ok: u64,
    /// Synthetic frames that failed the check (torn or wrong frame).
    pub stamp_bad: u64,
    /// Frames whose header layout or format this build does not understand.
    pub bad_header: u64,
    /// Metrics of the last frame.
    pub last_metrics: FrameMetrics,
    /// Capture timestamp → processing start.
    pub latency: LatencyWindow,
    /// Publish (send) timestamp → processing start.
    pub publish_latency: LatencyWindow,
}

/// One statistics report, as printed with `--json`.
#[derive(Debug, Clone, Serialize)]
pub struct AlgoReport<'a> {
    /// Camera name.
    pub camera: &'a str,
    /// Frames processed per second over the report interval.
    pub fps: f64,
    /// Frames processed.
    pub frames: u64,
    /// Frames not processed: skipped by the policy (newest/max-fps) or overwritten (every).
    pub skipped: u64,
    /// Of those, frames lost to queue overflow although wanted (`every` only).
    pub overwritten: u64,
    /// Frames the driver dropped while algo was attached.
    pub driver_drops: u64,
    /// Frames whose id did not rise within a capture run (must stay 0).
    pub out_of_order: u64,
    /// Capture restarts seen.
    pub capture_restarts: u64,
    /// Synthetic stamps that checked out.
    pub stamp_ok: u64,
    /// Synthetic stamps that failed (torn or wrong frames).
    pub stamp_bad: u64,
    /// Frames with a header this build does not understand.
    pub bad_header: u64,
    /// First frame id seen in the current capture run.
    pub first_id: u64,
    /// Last frame id seen.
    pub last_id: u64,
    /// Capture → processing start, p50 over the interval (µs).
    pub latency_p50_us: Option<u64>,
    /// Capture → processing start, p99 (µs).
    pub latency_p99_us: Option<u64>,
    /// Publish → processing start, p50 (µs).
    pub publish_latency_p50_us: Option<u64>,
    /// Publish → processing start, p99 (µs).
    pub publish_latency_p99_us: Option<u64>,
    /// Motion score of the last frame: the share of the picture that changed, 0..1 (the
    /// result's score, what `min-score` triggers compare).
    pub motion: f64,
    /// Mean grey-level difference of the last frame against the one before, 0..1.
    pub difference: f64,
    /// Channel means of the last frame.
    pub mean: [f64; 3],
}

/// Runs algo on `camera` until SIGINT/SIGTERM, `ctl stop <camera> algo` or
/// `options.max_frames`; returns the statistics.
pub fn run(deployment: &Deployment, camera: &CameraConfig, options: &AlgoOptions) -> anyhow::Result<AlgoStats> {
    let cam = camera.name.as_str();
    let config = camera.algo.clone().unwrap_or_default();
    let interval = stats_interval(&config);
    let reader =
        Camera::builder_for(deployment, Some(cam)).role(ProcessRole::Algo.name())?.stats_interval(interval).open()?;
    let stats_timer = reader.add_timer(interval);
    let mut worker = Worker {
        stats: AlgoStats {
            latency: LatencyWindow::new(),
            publish_latency: LatencyWindow::new(),
            ..AlgoStats::default()
        },
        meter: MotionMeter::default(),
        patterns: HashMap::new(),
        options: options.clone(),
    };
    let mut report = Report { since: Instant::now(), frames_at: 0 };
    loop {
        match reader.next_event()? {
            Event::Frame(frame) => {
                let header = *frame.header();
                let measured = worker.process(&header, frame.bytes());
                drop(frame);
                if measured {
                    publish_motion(&reader, &header, &worker);
                }
                if options.max_frames.is_some_and(|max| worker.stats.frames >= max) {
                    break;
                }
            }
            Event::Timer(timer) if timer == stats_timer => report.emit(&reader, &mut worker.stats, options.json),
            Event::Timer(_) | Event::Command(_) | Event::Gap(_) => {}
            Event::Stop(reason) => {
                tracing::info!(camera = cam, ?reason, "stopping");
                break;
            }
        }
    }
    report.emit(&reader, &mut worker.stats, options.json);
    Ok(worker.stats)
}

/// A score as reported (JSON lines, results' data): 4 decimals, finer than one changed
/// thumbnail pixel (1/3072).
fn round_score(score: f64) -> f64 {
    (score * 10_000.0).round() / 10_000.0
}

fn stats_interval(config: &AlgoConfig) -> Duration {
    Duration::from_secs_f64(config.stats_interval_secs)
}

/// Publishes the frame's motion as a result: score = share of the picture that changed, one
/// `motion` box per changed region (its score: the share of the box that changed), and the
/// motion score and mean difference in the JSON part; all on the 0..1 score scale.
fn publish_motion(reader: &Camera, header: &FrameHeader, worker: &Worker) {
    let metrics = worker.stats.last_metrics;
    let boxes: Vec<Detection> = worker
        .meter
        .regions()
        .iter()
        .map(|r| Detection { x: r.x, y: r.y, w: r.w, h: r.h, label: "motion".into(), score: r.fill })
        .collect();
    let data =
        serde_json::json!({ "motion": round_score(metrics.motion), "difference": round_score(metrics.difference) });
    if let Err(e) = reader.publish_result(header, Some(metrics.motion), &boxes, Some(&data)) {
        tracing::debug!(frame = header.frame_id, "could not publish the motion result: {e}");
    }
}

struct Worker {
    stats: AlgoStats,
    meter: MotionMeter,
    patterns: HashMap<(PixelFormat, u32, u32), Option<SyntheticPattern>>,
    options: AlgoOptions,
}

impl Worker {
    /// Checks and measures one frame; whether it was measured (its metrics are current).
    fn process(&mut self, header: &FrameHeader, payload: &[u8]) -> bool {
        let now = clock::monotonic_ns();
        self.stats.frames += 1;
        self.stats.latency.record_ns(now.saturating_sub(header.capture_mono_ns));
        self.stats.publish_latency.record_ns(now.saturating_sub(header.publish_mono_ns));
        let Some(format) = header.format().filter(|_| header.is_current_layout()) else {
            self.stats.bad_header += 1;
            return false;
        };
        if header.flags & FLAG_SYNTHETIC_STAMP != 0 {
            let checked = if header.flags & FLAG_SCENE != 0 {
                // A scene: the stamps only (the picture between them is not the pattern).
                verify_stamps(format, header.width, header.height, header.frame_id, payload).map_err(|e| e.to_string())
            } else {
                let key = (format, header.width, header.height);
                let pattern = self
                    .patterns
                    .entry(key)
                    .or_insert_with(|| SyntheticPattern::new(format, header.width, header.height));
                match pattern {
                    Some(pattern) => pattern.verify(header.frame_id, payload).map_err(|e| e.to_string()),
                    None => Err(format!("no synthetic pattern exists for {format} {}x{}", header.width, header.height)),
                }
            };
            match checked {
                Ok(()) => self.stats.stamp_ok += 1,
                Err(e) => {
                    self.stats.stamp_bad += 1;
                    framebus_common::logging::repeated(
                        tracing::Level::WARN,
                        "algo.integrity",
                        format_args!("frame {}: integrity check failed: {e}", header.frame_id),
                    );
                }
            }
        }
        let measured = match self.meter.measure(header, payload) {
            Ok(metrics) => {
                self.stats.last_metrics = metrics;
                true
            }
            Err(e) => {
                framebus_common::logging::repeated(
                    tracing::Level::WARN,
                    "algo.computation",
                    format_args!("frame {}: computation failed: {e}", header.frame_id),
                );
                false
            }
        };
        if !self.options.simulate_work.is_zero() {
            std::thread::sleep(self.options.simulate_work);
        }
        measured
    }
}

struct Report {
    since: Instant,
    frames_at: u64,
}

impl Report {
    fn emit(&mut self, reader: &Camera, stats: &mut AlgoStats, json: bool) {
        let elapsed = self.since.elapsed().as_secs_f64();
        let fps = if elapsed > 0.0 { (stats.frames - self.frames_at) as f64 / elapsed } else { 0.0 };
        self.since = Instant::now();
        self.frames_at = stats.frames;
        let figures: ReaderStats = reader.stats();
        let line = AlgoReport {
            camera: &reader.config().name,
            fps: (fps * 10.0).round() / 10.0,
            frames: stats.frames,
            skipped: figures.skipped + figures.overwritten,
            overwritten: figures.overwritten,
            driver_drops: figures.driver_drops,
            out_of_order: figures.out_of_order,
            capture_restarts: figures.capture_restarts,
            stamp_ok: stats.stamp_ok,
            stamp_bad: stats.stamp_bad,
            bad_header: stats.bad_header,
            first_id: figures.first_frame_id,
            last_id: figures.last_frame_id,
            latency_p50_us: stats.latency.percentile_us(50.0),
            latency_p99_us: stats.latency.percentile_us(99.0),
            publish_latency_p50_us: stats.publish_latency.percentile_us(50.0),
            publish_latency_p99_us: stats.publish_latency.percentile_us(99.0),
            motion: round_score(stats.last_metrics.motion),
            difference: round_score(stats.last_metrics.difference),
            mean: stats.last_metrics.mean.map(|m| (m * 10.0).round() / 10.0),
        };
        if json {
            match serde_json::to_string(&line) {
                Ok(text) => println!("{text}"),
                Err(e) => tracing::warn!("could not encode the report: {e}"),
            }
        }
        tracing::info!(
            camera = line.camera,
            "fps={fps:.1} frames={} skipped={} overwritten={} latency p50={}us p99={}us stamp_bad={} motion={:.4}",
            line.frames,
            line.skipped,
            line.overwritten,
            line.latency_p50_us.unwrap_or(0),
            line.latency_p99_us.unwrap_or(0),
            line.stamp_bad,
            line.motion
        );
        reader.report(|r: &mut ProcessReport| {
            r.message = format!("motion {:.4}, {} stamp errors", line.motion, line.stamp_bad);
        });
        stats.latency.clear();
        stats.publish_latency.clear();
    }
}
