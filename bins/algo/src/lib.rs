//! The algo process: subscribes to one camera, sleeps until capture's frame-ready event, and
//! runs the per-frame computation on the newest frame only, straight from shared memory. When
//! it is slower than the camera, older frames are dropped from its queue (never making capture
//! wait) and counted as skipped from frame-id gaps.

pub mod compute;

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use anyhow::anyhow;
use framebus_common::config::AlgoConfig;
use framebus_common::control::{Answer, Command, ControlServer, FourccText, FrameFormat, Metrics, ProcessState};
use framebus_common::header::FLAG_SYNTHETIC_STAMP;
use framebus_common::ipc::{create_node, reader_waitset, DeploymentGuard, FrameReader, Take};
use framebus_common::pattern::SyntheticPattern;
use framebus_common::stats::LatencyWindow;
use framebus_common::{clock, CameraConfig, Deployment, FrameHeader, PixelFormat, ProcessRole};
use iceoryx2::prelude::*;

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

/// Counters of a run; reported periodically and at the end.
#[derive(Debug, Clone, Default)]
pub struct AlgoStats {
    /// Frames processed.
    pub frames: u64,
    /// Frames never processed, from gaps in the frame ids.
    pub skipped: u64,
    /// Frames whose id was not above the previous one within one capture run (must stay 0).
    pub out_of_order: u64,
    /// Times the frame ids started again (capture restarted).
    pub capture_restarts: u64,
    /// Synthetic frames whose stamp and pattern checked out.
    pub stamp_ok: u64,
    /// Synthetic frames that failed the check (torn or wrong frame).
    pub stamp_bad: u64,
    /// Frames whose header layout or format this build does not understand.
    pub bad_header: u64,
    /// First and last frame id processed.
    pub first_id: u64,
    /// Last frame id processed.
    pub last_id: u64,
    /// Capture run of the last frame processed.
    pub last_run_id: u64,
    /// Metrics of the last frame.
    pub last_metrics: FrameMetrics,
    /// Size and format of the last frame.
    pub last_format: Option<FrameFormat>,
    /// Capture timestamp → processing start.
    pub latency: LatencyWindow,
    /// Publish (send) timestamp → processing start.
    pub publish_latency: LatencyWindow,
}

impl AlgoStats {
    fn record_id(&mut self, run_id: u64, id: u64) {
        if self.frames == 0 {
            self.first_id = id;
        } else if run_id != self.last_run_id {
            // Capture restarted: ids start again at 1; the new run's frames before `id` were missed.
            self.capture_restarts += 1;
            self.skipped += id.saturating_sub(1);
        } else if id > self.last_id {
            self.skipped += id - self.last_id - 1;
        } else {
            self.out_of_order += 1;
        }
        self.last_run_id = run_id;
        self.last_id = id;
        self.frames += 1;
    }

    /// One-line JSON report; `fps` is over the last interval.
    pub fn to_json(&mut self, camera: &str, fps: f64) -> String {
        let p = |w: &mut LatencyWindow, q: f64| w.percentile_us(q).map_or("null".to_string(), |v| v.to_string());
        format!(
            concat!(
                "{{\"camera\":\"{}\",\"fps\":{:.1},\"frames\":{},\"skipped\":{},\"out_of_order\":{},\"capture_restarts\":{},",
                "\"stamp_ok\":{},\"stamp_bad\":{},\"bad_header\":{},\"first_id\":{},\"last_id\":{},",
                "\"latency_p50_us\":{},\"latency_p99_us\":{},\"publish_latency_p50_us\":{},\"publish_latency_p99_us\":{},",
                "\"motion\":{:.2},\"mean\":[{:.1},{:.1},{:.1}]}}"
            ),
            camera, fps, self.frames, self.skipped, self.out_of_order, self.capture_restarts,
            self.stamp_ok, self.stamp_bad, self.bad_header, self.first_id, self.last_id,
            p(&mut self.latency, 50.0), p(&mut self.latency, 99.0),
            p(&mut self.publish_latency, 50.0), p(&mut self.publish_latency, 99.0),
            self.last_metrics.motion, self.last_metrics.mean[0], self.last_metrics.mean[1], self.last_metrics.mean[2],
        )
    }
}

/// Runs algo on `camera` until SIGINT/SIGTERM or `options.max_frames`; returns the statistics.
pub fn run(deployment: &Deployment, camera: &CameraConfig, options: &AlgoOptions) -> anyhow::Result<AlgoStats> {
    let cam = camera.name.as_str();
    let config = camera.algo.clone().unwrap_or_default();
    let _release = DeploymentGuard::new(deployment.name());
    let node = create_node(deployment, ProcessRole::Algo, cam)?;
    let reader = FrameReader::open(&node, deployment, camera, config.queue_depth as usize)?;
    let waitset = reader_waitset()?;
    let frame_guard = waitset
        .attach_notification(reader.listener())
        .map_err(|e| anyhow!("attaching the frame-ready listener of `{}`: {e:?}", reader.service_name()))?;
    let tick_guard =
        waitset.attach_interval(stats_interval(&config)).map_err(|e| anyhow!("attaching the stats timer: {e:?}"))?;
    let control = ControlServer::create(&node, deployment, cam, ProcessRole::Algo)?;
    let control_guard = waitset
        .attach_notification(control.listener())
        .map_err(|e| anyhow!("attaching the control listener of `{}`: {e:?}", control.service_name()))?;
    tracing::info!(
        camera = cam,
        service = reader.service_name(),
        queue_depth = config.queue_depth,
        "waiting for frames"
    );

    let mut worker = Worker {
        stats: AlgoStats::default(),
        meter: MotionMeter::default(),
        patterns: HashMap::new(),
        options: options.clone(),
    };
    worker.stats.latency = LatencyWindow::new();
    worker.stats.publish_latency = LatencyWindow::new();
    let mut report = Report { since: Instant::now(), frames_at: 0, last: Metrics::default() };
    report.last.state = ProcessState::Waiting;
    let mut failure: Option<anyhow::Error> = None;

    let outcome = waitset.wait_and_process(|id| {
        if id.has_event_from(&frame_guard) {
            // Newest frame only: older queued ones are dropped (and counted from the id gap).
            let taken = reader.take_frames(Take::Newest, |sample| {
                worker.process(sample.user_header(), sample.payload());
                match options.max_frames {
                    Some(max) if worker.stats.frames >= max => ControlFlow::Break(()),
                    _ => ControlFlow::Continue(()),
                }
            });
            match taken {
                Ok(ControlFlow::Continue(())) => {}
                Ok(ControlFlow::Break(())) => return CallbackProgression::Stop,
                Err(e) => {
                    failure = Some(e.into());
                    return CallbackProgression::Stop;
                }
            }
        }
        if id.has_event_from(&tick_guard) {
            report.emit(cam, &mut worker.stats, options.json);
        }
        // Also on the stats timer: a backstop should a wake-up ever be missed.
        if id.has_event_from(&control_guard) || id.has_event_from(&tick_guard) {
            control.poll(|command| match command {
                Command::Status => Answer::Status(report.metrics(&worker.stats)),
                // Algo carries the flags in its status; preview and recorder act on them.
                Command::Stop | Command::SetPreview(_) | Command::SetSaving(_) => Answer::Ignored,
            });
        }
        CallbackProgression::Continue
    });
    if let Some(e) = failure {
        return Err(e);
    }
    outcome.map_err(|e| anyhow!("waiting for frames of camera `{cam}`: {e:?}"))?;
    report.emit(cam, &mut worker.stats, options.json);
    Ok(worker.stats)
}

fn stats_interval(config: &AlgoConfig) -> Duration {
    Duration::from_secs_f64(config.stats_interval_secs)
}

struct Worker {
    stats: AlgoStats,
    meter: MotionMeter,
    patterns: HashMap<(PixelFormat, u32, u32), Option<SyntheticPattern>>,
    options: AlgoOptions,
}

impl Worker {
    fn process(&mut self, header: &FrameHeader, payload: &[u8]) {
        let now = clock::monotonic_ns();
        self.stats.latency.record_ns(now.saturating_sub(header.capture_mono_ns));
        self.stats.publish_latency.record_ns(now.saturating_sub(header.publish_mono_ns));
        let Some(format) = header.format().filter(|_| header.is_current_layout()) else {
            self.stats.bad_header += 1;
            return;
        };
        self.stats.record_id(header.run_id, header.frame_id);
        self.stats.last_format =
            Some(FrameFormat { width: header.width, height: header.height, fourcc: FourccText(header.pixel_format) });
        let payload = &payload[..(header.payload_len as usize).min(payload.len())];
        if header.flags & FLAG_SYNTHETIC_STAMP != 0 {
            let key = (format, header.width, header.height);
            let pattern =
                self.patterns.entry(key).or_insert_with(|| SyntheticPattern::new(format, header.width, header.height));
            let checked = match pattern {
                Some(pattern) => pattern.verify(header.frame_id, payload).map_err(|e| e.to_string()),
                None => Err(format!("no synthetic pattern exists for {format} {}x{}", header.width, header.height)),
            };
            match checked {
                Ok(()) => self.stats.stamp_ok += 1,
                Err(e) => {
                    self.stats.stamp_bad += 1;
                    tracing::warn!(frame = header.frame_id, "integrity check failed: {e}");
                }
            }
        }
        match self.meter.measure(header, payload) {
            Ok(metrics) => self.stats.last_metrics = metrics,
            Err(e) => tracing::warn!(frame = header.frame_id, "computation failed: {e}"),
        }
        if !self.options.simulate_work.is_zero() {
            std::thread::sleep(self.options.simulate_work);
        }
    }
}

struct Report {
    since: Instant,
    frames_at: u64,
    /// Figures of the last complete interval, for status replies.
    last: Metrics,
}

impl Report {
    /// Status: live counters plus the last interval's rate and latency.
    fn metrics(&self, stats: &AlgoStats) -> Metrics {
        Metrics { frames: stats.frames, skipped: stats.skipped, format: stats.last_format, ..self.last.clone() }
    }

    fn emit(&mut self, camera: &str, stats: &mut AlgoStats, json: bool) {
        let elapsed = self.since.elapsed().as_secs_f64();
        let fps = if elapsed > 0.0 { (stats.frames - self.frames_at) as f64 / elapsed } else { 0.0 };
        self.since = Instant::now();
        self.frames_at = stats.frames;
        self.last = Metrics {
            state: if fps > 0.0 { ProcessState::Running } else { ProcessState::Waiting },
            frames: stats.frames,
            fps,
            skipped: stats.skipped,
            latency_p50_us: stats.latency.percentile_us(50.0),
            latency_p99_us: stats.latency.percentile_us(99.0),
            format: stats.last_format,
            ..Metrics::default()
        };
        let line = stats.to_json(camera, fps);
        if json {
            println!("{line}");
        }
        tracing::info!(
            camera,
            "fps={fps:.1} frames={} skipped={} latency p50={}us p99={}us stamp_bad={} motion={:.2}",
            stats.frames,
            stats.skipped,
            stats.latency.percentile_us(50.0).unwrap_or(0),
            stats.latency.percentile_us(99.0).unwrap_or(0),
            stats.stamp_bad,
            stats.last_metrics.motion
        );
        stats.latency.clear();
        stats.publish_latency.clear();
    }
}
