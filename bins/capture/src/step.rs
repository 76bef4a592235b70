//! The capture loop, one frame per step: pace (answering control requests meanwhile), lend a
//! zero-copy source the samples its device lacks, grab, publish, count; a source that becomes
//! unavailable is reopened with backoff, after the media pipeline set-up runs again.

use std::time::{Duration, Instant};

use anyhow::Context;
use framebus_common::control::ProcessState;
use framebus_common::ipc::IpcService;
use framebus_common::stats::StatusWindow;
use framebus_common::{clock, CameraConfig};
use iceoryx2::prelude::*;

use crate::control::Control;
use crate::output::FrameOutput;
use crate::pipeline::MediaPipeline;
use crate::source::{describe_error, FrameSource, Grab, Pacing, SourceError};
use crate::{CaptureOptions, DEFAULT_STATS_INTERVAL};

/// Backoff between reconnect attempts: starts here, doubles, stops at [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Whether the loop goes on.
enum Flow {
    Continue,
    Stop,
}

/// The running loop and everything it keeps between frames.
pub(crate) struct Capture<'a> {
    cam: &'a str,
    camera: &'a CameraConfig,
    node: &'a Node<IpcService>,
    source: &'a mut dyn FrameSource,
    pipeline: &'a mut dyn MediaPipeline,
    output: &'a mut FrameOutput,
    control: &'a mut Control,
    max_frames: Option<u64>,
    pacing: Pacing,
    next_due: Instant,
    started: Instant,
    /// Process CPU time when the loop started and when it ended (ns).
    cpu_at: (u64, u64),
    window: StatusWindow,
    stats: RateLog,
    backoff: Duration,
    bad_frames: u64,
    frame_id: u64,
}

impl<'a> Capture<'a> {
    pub fn new(
        camera: &'a CameraConfig,
        node: &'a Node<IpcService>,
        source: &'a mut dyn FrameSource,
        pipeline: &'a mut dyn MediaPipeline,
        output: &'a mut FrameOutput,
        control: &'a mut Control,
        options: &CaptureOptions,
    ) -> Capture<'a> {
        let pacing = source.pacing();
        Capture {
            cam: camera.name.as_str(),
            camera,
            node,
            source,
            pipeline,
            output,
            control,
            max_frames: options.max_frames,
            pacing,
            next_due: Instant::now(),
            started: Instant::now(),
            cpu_at: (0, 0),
            window: StatusWindow::new(Duration::from_secs(1)),
            stats: RateLog::new(options.stats_interval.unwrap_or(DEFAULT_STATS_INTERVAL)),
            backoff: FIRST_BACKOFF,
            bad_frames: 0,
            frame_id: 0,
        }
    }

    /// Frames published so far.
    pub fn frames(&self) -> u64 {
        self.frame_id
    }

    /// Seconds since the loop started.
    pub fn seconds(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// CPU time the process used while the loop ran (ns).
    pub fn cpu_ns(&self) -> u64 {
        self.cpu_at.1.saturating_sub(self.cpu_at.0)
    }

    /// Runs until a signal, a stop command, the end of the source or `max_frames`.
    pub fn run(&mut self) -> anyhow::Result<()> {
        tracing::info!(camera = self.cam, "capturing: {} at {:?}", self.source.describe(), self.pacing);
        self.started = Instant::now();
        self.cpu_at = (clock::process_cpu_ns(), 0);
        let result = self.loop_steps();
        self.cpu_at.1 = clock::process_cpu_ns();
        result
    }

    fn loop_steps(&mut self) -> anyhow::Result<()> {
        while let Flow::Continue = self.step()? {}
        Ok(())
    }

    /// One frame (or one wait for one).
    fn step(&mut self) -> anyhow::Result<Flow> {
        if let Flow::Stop = self.pace() {
            return Ok(Flow::Stop);
        }
        self.window.roll(self.frame_id);
        self.control.metrics.fps = self.window.fps;
        self.control.metrics.latency_p50_us = self.window.p50_us;
        self.control.metrics.latency_p99_us = self.window.p99_us;
        let grabbed = self.output.supply(&mut *self.source).and_then(|()| self.source.grab());
        let grab = match grabbed {
            Ok(grab) => grab,
            Err(e) => return self.on_source_error(e),
        };
        self.backoff = FIRST_BACKOFF;
        self.control.metrics.state = ProcessState::Running;
        let id = self.frame_id + 1;
        let published = self
            .output
            .publish(&mut *self.source, id, &grab)
            .with_context(|| format!("camera `{}`: publishing frame {id}", self.cam))?;
        let cost = match published {
            Ok(cost) => cost,
            Err(why) => {
                // The frame gets no id: ids stay contiguous for what readers actually receive.
                self.bad_frame(&why);
                return Ok(Flow::Continue);
            }
        };
        self.frame_id = id;
        // Smoothed publish cost (EWMA, α = 1/8) for status and metrics.
        let metrics = &mut self.control.metrics;
        metrics.cost_ns = if metrics.cost_ns == 0 { cost } else { (metrics.cost_ns * 7 + cost) / 8 };
        let latency = clock::monotonic_ns().saturating_sub(grab.capture_mono_ns);
        self.window.record_ns(latency);
        self.control.metrics.histogram.record_us(latency / 1000);
        self.control.metrics.frames = id;
        self.control.metrics.skipped = grab.source_drops;
        self.stats.tick(self.cam, id, &grab);
        if self.max_frames.is_some_and(|max| id >= max) {
            return Ok(Flow::Stop);
        }
        Ok(Flow::Continue)
    }

    /// Waits for the next frame's turn (timer-paced sources), answering control requests; stops
    /// on SIGINT/SIGTERM (iceoryx2 reports it through `node.wait`) or a stop command.
    fn pace(&mut self) -> Flow {
        let wait = match self.pacing {
            Pacing::Period(period) => {
                let now = Instant::now();
                let wait = self.next_due.saturating_duration_since(now);
                self.next_due = if now > self.next_due + period { now + period } else { self.next_due + period };
                wait
            }
            Pacing::Unpaced | Pacing::Device => Duration::ZERO,
        };
        if !self.control.wait(self.node, wait, &mut *self.source) {
            tracing::info!(camera = self.cam, frames = self.frame_id, "termination requested, stopping");
            return Flow::Stop;
        }
        if self.control.stop {
            tracing::info!(camera = self.cam, frames = self.frame_id, "stop requested over control, stopping");
            return Flow::Stop;
        }
        Flow::Continue
    }

    fn on_source_error(&mut self, e: SourceError) -> anyhow::Result<Flow> {
        match e {
            SourceError::NoFrameYet => Ok(Flow::Continue),
            SourceError::BadFrame(why) => {
                self.bad_frame(&why);
                Ok(Flow::Continue)
            }
            SourceError::Ended => {
                tracing::info!(camera = self.cam, frames = self.frame_id, "source ended");
                Ok(Flow::Stop)
            }
            SourceError::Unavailable(why) => self.reconnect(&why),
            SourceError::Fatal(e) => {
                Err(e.context(format!("camera `{}`: capturing from {}", self.cam, self.source.describe())))
            }
        }
    }

    /// The source is gone: wait (backoff, doubling), set the media pipeline up again, reopen.
    fn reconnect(&mut self, why: &str) -> anyhow::Result<Flow> {
        let cam = self.cam;
        tracing::warn!(camera = cam, "source unavailable: {why}; retrying in {:?}", self.backoff);
        self.control.metrics.state = ProcessState::Degraded;
        if !self.control.wait(self.node, self.backoff, &mut *self.source) || self.control.stop {
            tracing::info!(camera = cam, frames = self.frame_id, "stopping while the source is unavailable");
            return Ok(Flow::Stop);
        }
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
        if let Err(e) = self.pipeline.setup(self.camera) {
            tracing::warn!(camera = cam, "media pipeline `{}` set-up failed: {e:#}", self.pipeline.name());
            return Ok(Flow::Continue);
        }
        match self.source.reconnect() {
            Ok(()) => tracing::info!(camera = cam, "source back: {}", self.source.describe()),
            Err(SourceError::Fatal(e)) => return Err(e),
            Err(e) => tracing::warn!(camera = cam, "reconnect failed: {}", describe_error(&e)),
        }
        Ok(Flow::Continue)
    }

    /// Unusable frames are logged through the process's rate limiter (the first few, then one
    /// line per interval with the count), so a flaky camera cannot flood the log.
    fn bad_frame(&mut self, why: &str) {
        self.bad_frames += 1;
        framebus_common::logging::repeated(
            tracing::Level::WARN,
            "capture.unusable-frame",
            format_args!("camera `{}`: skipping an unusable frame ({} so far): {why}", self.cam, self.bad_frames),
        );
    }
}

/// Logs the publish rate and the source's (driver's) drops periodically.
struct RateLog {
    window: StatusWindow,
    drops_at_start: u64,
}

impl RateLog {
    fn new(interval: Duration) -> RateLog {
        RateLog { window: StatusWindow::new(interval), drops_at_start: 0 }
    }

    fn tick(&mut self, camera: &str, frames: u64, grab: &Grab) {
        if self.window.roll(frames) {
            let fps = self.window.fps;
            let drops = grab.source_drops;
            tracing::info!(
                camera,
                frames,
                "publishing at {fps:.1} fps, driver drops {drops} (+{})",
                drops.saturating_sub(self.drops_at_start)
            );
            self.drops_at_start = drops;
        }
    }
}
