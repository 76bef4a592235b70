//! [`Recorder`]: wires the pieces of one camera's recorder together. Frames (or access units)
//! come in; the clip state machine ([`crate::clip`]) says which belong to a clip, the held
//! frames ([`crate::preroll`]) keep the pre-roll, the disk guard ([`crate::guard`]) says
//! whether there is room, the segment writer ([`crate::writer`]) writes them, and the journal
//! ([`framebus_common::journal::write`]) and the status ([`crate::status`]) say what happened.

mod held;
mod writing;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use framebus::ProcessReport;
use framebus_common::config::{ImageFormat, RecorderConfig, TriggerConfig, VideoFormat};
use framebus_common::control::{FourccText, FrameFormat};
use framebus_common::journal::{Trigger, TriggerResult, TriggerSource};
use framebus_common::results::Outcome;
use framebus_common::{clock, CameraConfig, FrameHeader};
use framebus_vision::opencv::core::{Mat, Vector};
use framebus_vision::opencv::imgcodecs;

use crate::clip::{Clips, Triggered, TRIGGER_RESULTS};
use crate::disk;
use crate::guard::{DiskGuard, GuardSettings};
use crate::preroll::{FrontAction, PreRoll};
use crate::segment::{SegmentSpec, Skip, SkipReason};
use crate::status::{mib, process_report, status_line, LineContext, Rates, RecorderState, RecorderStatus, Summary};
use crate::writer::SegmentWriter;
use framebus_common::journal::write::Journal;

/// What the loop does with a frame just received ([`Recorder::on_frame`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Write it now: [`Recorder::convert`] while holding the sample, [`Recorder::save`] after.
    Write,
    /// Keep it in memory (pre-roll, or behind frames waiting to be written):
    /// [`Recorder::hold_received`] while holding the sample, [`Recorder::hold_converted`] after
    /// when it says so.
    Hold,
    /// Nothing to do with it.
    Ignore,
}

/// The pre-roll's memory warning is repeated at most this often.
const HELD_WARN_EVERY: Duration = Duration::from_secs(10);
/// A clip whose post-roll ended this long ago with no frame arriving (capture stopped) ends.
const IDLE_CLOSE_NS: u64 = 2_000_000_000;
/// At a stop, frames a clip still wants from memory are written for at most this long; the
/// rest are listed as skipped (`stop`).
const STOP_FLUSH: Duration = Duration::from_secs(5);

/// The newest frame received.
#[derive(Debug, Clone, Copy)]
struct Newest {
    run_id: u64,
    frame_id: u64,
    mono_ns: u64,
    /// When it was received, and how old it was then.
    received: Instant,
    lag_ns: u64,
}

/// The held frames' limits and what was said about them.
#[derive(Debug)]
struct HeldLimits {
    /// Capture time a held frame stays eligible for a pre-roll (0: no pre-roll).
    keep_ns: u64,
    max_bytes: u64,
    max_mb: u64,
    /// Estimated bytes of the full pre-roll (logged against what is measured).
    estimate: u64,
    reported: bool,
    warned: Option<Instant>,
}

/// One camera's recorder. Driven by [`crate::run`]'s loop, or by a test calling its methods.
pub struct Recorder {
    camera: String,
    saving: bool,
    triggers: Vec<TriggerConfig>,
    clips: Clips,
    held: PreRoll,
    limits: HeldLimits,
    writer: SegmentWriter,
    guard: DiskGuard,
    journal: Journal,
    status: RecorderStatus,
    rates: Rates,
    format: Option<FrameFormat>,
    /// (run id, frame id) of the last frame received.
    last_id: Option<(u64, u64)>,
    newest: Option<Newest>,
    /// Time the loop may spend writing held frames per turn.
    budget: Duration,
    bgr: Mat,
    /// `video = "stream"`: whether the access unit being admitted is a key frame (`None`
    /// when frames are encoded here).
    unit_key: Option<bool>,
    /// `video = "stream"`: (encoder run, sequence, frame id) of the last access unit.
    unit_last: Option<(u64, u64, u64)>,
}

/// CLOCK_REALTIME ns of a CLOCK_MONOTONIC instant in the recent past.
fn realtime_of(mono_ns: u64) -> u64 {
    clock::realtime_ns().saturating_sub(clock::monotonic_ns().saturating_sub(mono_ns))
}

fn secs_ns(secs: f64) -> u64 {
    (secs * 1e9) as u64
}

/// What every segment of `camera` shares.
fn segment_spec(camera: &CameraConfig, config: &RecorderConfig, directory: PathBuf) -> SegmentSpec {
    let image_params = match config.images {
        ImageFormat::Jpeg => Vector::from_slice(&[imgcodecs::IMWRITE_JPEG_QUALITY, config.jpeg_quality as i32]),
        _ => Vector::new(),
    };
    SegmentSpec {
        camera: camera.name.clone(),
        directory,
        video: config.video,
        video_fps: config.effective_video_fps(camera.fps),
        images: config.images,
        image_params,
    }
}

/// Estimated bytes of the full pre-roll: JPEG frames, or with `video = "stream"` the
/// streamer's bitrate over the pre-roll and one GOP more (it is held in whole GOPs).
fn pre_roll_bytes(camera: &CameraConfig, config: &RecorderConfig) -> u64 {
    match (config.video, &camera.streamer) {
        (VideoFormat::Stream, Some(streamer)) if config.effective_pre_roll_secs() > 0.0 => {
            let gop_secs = f64::from(streamer.gop) / config.effective_video_fps(camera.fps).max(1.0);
            let secs = config.effective_pre_roll_secs() + config.result_delay_secs + gop_secs;
            (secs * f64::from(streamer.bitrate_kbps) * 125.0) as u64
        }
        _ => config.pre_roll_estimate(camera.width, camera.height, camera.fps).bytes,
    }
}

/// Logs what the recorder is set up to do: pre-roll, triggers, retention.
fn log_plan(camera: &CameraConfig, config: &RecorderConfig, limits: &HeldLimits, video_fps: f64) {
    if limits.keep_ns > 0 && config.video == VideoFormat::Stream {
        tracing::info!(
            camera = camera.name,
            "pre-roll: {} s (+ {} s for late results) of the streamer's H.264 in whole GOPs: estimated {:.1} MiB (limit pre-roll-max-mb = {}); measured once full",
            config.effective_pre_roll_secs(),
            config.result_delay_secs,
            mib(limits.estimate),
            config.pre_roll_max_mb,
        );
    } else if limits.keep_ns > 0 {
        let estimate = config.pre_roll_estimate(camera.width, camera.height, camera.fps);
        tracing::info!(
            camera = camera.name,
            "pre-roll: {} s (+ {} s for late results) at {}x{}, {video_fps} fps: {} JPEG frames, estimated {:.1} MiB ({:.2} MiB a frame at jpeg-quality {}; limit pre-roll-max-mb = {}); measured once full",
            config.effective_pre_roll_secs(),
            config.result_delay_secs,
            camera.width,
            camera.height,
            estimate.frames,
            mib(estimate.bytes),
            mib(estimate.frame_bytes),
            config.jpeg_quality,
            config.pre_roll_max_mb,
        );
    }
    if !config.trigger.is_empty() {
        let rules: Vec<String> = config.trigger.iter().map(|t| format!("[{}]", t.describe())).collect();
        tracing::info!(
            camera = camera.name,
            "armed: a clip starts on a result matching any of {}; post-roll {} s, clips of at most {} s",
            rules.join(" or "),
            config.post_roll_secs,
            config.max_clip_secs
        );
    }
    if config.max_age_days.is_some() || config.max_total_mb.is_some() {
        tracing::info!(
            camera = camera.name,
            max_age_days = config.max_age_days,
            max_total_mb = config.max_total_mb,
            "retention: the oldest finished segments are deleted first"
        );
    }
}

impl Recorder {
    /// A recorder of `camera` writing to `directory` (created if missing).
    pub fn new(camera: &CameraConfig, config: RecorderConfig, directory: PathBuf) -> anyhow::Result<Recorder> {
        std::fs::create_dir_all(&directory).with_context(|| {
            format!("camera `{}`: creating the recordings folder `{}`", camera.name, directory.display())
        })?;
        for leftover in disk::partial_files(&directory, &camera.name) {
            tracing::warn!(
                camera = camera.name,
                "incomplete segment file from an earlier run (was it killed?): `{}`; completed segments are intact",
                leftover.display()
            );
        }
        let spec = segment_spec(camera, &config, directory);
        let video_fps = spec.video_fps;
        let pre_roll = config.effective_pre_roll_secs();
        let limits = HeldLimits {
            keep_ns: if pre_roll > 0.0 { secs_ns(pre_roll + config.result_delay_secs) } else { 0 },
            max_bytes: config.pre_roll_max_bytes(),
            max_mb: config.pre_roll_max_mb,
            estimate: pre_roll_bytes(camera, &config),
            reported: false,
            warned: None,
        };
        log_plan(camera, &config, &limits, video_fps);
        let frame_bytes = u64::from(camera.width) * u64::from(camera.height) * 3;
        let max_clip_ns = secs_ns(config.max_clip_secs);
        let mut recorder = Recorder {
            camera: camera.name.clone(),
            saving: false,
            triggers: config.trigger.clone(),
            clips: Clips::new(&camera.name, secs_ns(pre_roll), secs_ns(config.post_roll_secs), max_clip_ns, video_fps),
            held: PreRoll::new(config.jpeg_quality),
            limits,
            guard: DiskGuard::new(&camera.name, &spec.directory, GuardSettings::of(&config), frame_bytes),
            journal: Journal::new(&spec.directory, &camera.name),
            writer: SegmentWriter::new(spec, &config),
            status: RecorderStatus::default(),
            rates: Rates::new(),
            format: None,
            last_id: None,
            newest: None,
            // Half a frame interval per loop turn for held frames (at least one frame a turn).
            budget: Duration::from_secs_f64((0.5 / video_fps).max(0.005)),
            bgr: Mat::default(),
            unit_key: None,
            unit_last: None,
        };
        recorder.check_disk();
        recorder.apply_retention();
        recorder.update_state();
        Ok(recorder)
    }

    /// Whether the recorder may write: saving is on, or triggers or a pre-roll wait for an
    /// event.
    fn active(&self) -> bool {
        self.saving || !self.triggers.is_empty() || self.limits.keep_ns > 0
    }

    /// Whether results are read at all (triggers are configured).
    pub fn has_triggers(&self) -> bool {
        !self.triggers.is_empty()
    }

    /// Time the loop may spend per turn writing held frames ([`Recorder::pump`]).
    pub fn budget(&self) -> Duration {
        self.budget
    }

    /// The capture time "now" for a command: the newest frame's, or the clock's when later.
    fn command_time(&self) -> u64 {
        let now = clock::monotonic_ns();
        self.newest.map_or(now, |n| n.mono_ns.max(now))
    }

    /// Turns saving on or off (what a control service calls for "record on/off"). On is a
    /// manual trigger: a clip that starts with the pre-roll (frames from before the command)
    /// and lasts until off. Off ends it (its held frames written first) unless an event's
    /// post-roll still runs, so the segment is finalized and plays.
    pub fn set_saving(&mut self, on: bool) {
        self.set_saving_at(on, self.command_time());
    }

    /// [`Recorder::set_saving`] as if the command came at capture time `now` (CLOCK_MONOTONIC
    /// ns): the pre-roll of a manual clip reaches back from there.
    pub fn set_saving_at(&mut self, on: bool, now: u64) {
        if on == self.saving {
            return;
        }
        tracing::info!(camera = self.camera, directory = %self.writer.spec().directory.display(), "saving {}", if on { "on" } else { "off" });
        self.saving = on;
        if on {
            self.writer.restart_images();
            if self.clips.clip().is_none() {
                self.writer.clear_pending();
            }
            // A command to save is also a request to try again now.
            self.writer.end_retry(true);
            self.check_disk();
            let frame_id = self.newest.map_or(0, |n| n.frame_id);
            let trigger = Trigger {
                source: TriggerSource::Manual,
                rule: None,
                frame_id,
                utc: clock::format_utc(realtime_of(now)),
                realtime_ns: realtime_of(now),
                results: Vec::new(),
                continues: None,
            };
            self.clips.windows().manual_on(now, trigger, frame_id + 1);
            self.pump(Some(self.budget));
        } else {
            let newest = self.newest.map_or(now, |n| n.mono_ns);
            self.clips.windows().manual_off(newest);
            // What the clip still wants is in memory: write it, then end the clip unless an
            // event keeps it going.
            self.pump(None);
            if self.clips.window().is_some_and(|w| w.ended_before(newest.saturating_add(1))) {
                self.close_window("saving-off");
            }
            if self.clips.clip().is_none() {
                self.writer.clear_pending();
            }
        }
        self.update_state();
    }

    /// Whether saving is on.
    pub fn saving(&self) -> bool {
        self.saving
    }

    /// The current status (what a control service returns for "status").
    pub fn status(&self) -> RecorderStatus {
        self.status.clone()
    }

    /// What the control reply adds to the reader figures (see [`process_report`]).
    pub fn report(&self) -> ProcessReport {
        let summary = Summary {
            saving: self.saving,
            triggers: self.triggers.len(),
            low_reason: self.guard.low_reason(),
            retry_in: self.writer.retry_in(),
            min_free_bytes: self.guard.settings().min_free_mb.saturating_mul(1024 * 1024),
        };
        process_report(&self.status, summary)
    }

    /// The frame format last received.
    pub fn format(&self) -> Option<FrameFormat> {
        self.format
    }

    /// Changes the disk guard's floors and whether it may delete old segments.
    pub fn set_disk_guard(&mut self, min_free_mb: u64, min_free_inodes: u64, delete_oldest: bool) {
        self.guard.set(GuardSettings { min_free_mb, min_free_inodes, delete_oldest, ..self.guard.settings() });
        tracing::info!(
            camera = self.camera,
            min_free_mb,
            min_free_inodes,
            delete_oldest,
            "disk guard settings changed"
        );
        self.check_disk();
    }

    /// Changes the retention limits (and applies them at once).
    pub fn set_retention(&mut self, max_age_days: Option<f64>, max_total_mb: Option<u64>) {
        self.guard.set(GuardSettings { max_age_days, max_total_mb, ..self.guard.settings() });
        tracing::info!(camera = self.camera, max_age_days, max_total_mb, "retention settings changed");
        self.apply_retention();
    }

    fn update_state(&mut self) {
        let writing = self.saving || self.clips.clip().is_some();
        self.status.state = match (self.active(), self.guard.is_low(), self.writer.retrying(), writing) {
            (false, _, _, _) => RecorderState::Off,
            (true, true, _, _) => RecorderState::DiskLow,
            (true, false, true, _) => RecorderState::WriteError,
            (true, false, false, true) => RecorderState::Recording,
            (true, false, false, false) => RecorderState::Armed,
        };
        let current = self.writer.base();
        if self.status.segment.as_deref() != current {
            self.status.segment = current.map(str::to_string);
        }
        let clip = self.clips.clip().map(|c| c.id.as_str());
        if self.status.clip.as_deref() != clip {
            self.status.clip = clip.map(str::to_string);
        }
        self.status.held_frames = self.held.len() as u64;
        self.status.held_bytes = self.held.bytes();
        self.status.held_secs = self.held.span_ns() as f64 / 1e9;
    }

    /// Counts an error, keeps it as the last error and logs it, rate-limited per `kind` (the
    /// process's one limiter, `framebus_common::logging::repeated`).
    fn error(&mut self, kind: &'static str, message: String) {
        self.status.errors += 1;
        framebus_common::logging::repeated(
            tracing::Level::ERROR,
            kind,
            format_args!("camera `{}`: {message}", self.camera),
        );
        self.status.last_error = Some(message);
    }

    /// Lists frames of the clip not saved: in the open segment, or pending for the next one.
    fn skip(&mut self, first: u64, last: u64, reason: SkipReason) {
        let count = last - first + 1;
        self.status.skipped += count;
        self.clips.count_skipped(count, last);
        self.writer.skip(Skip { first, last, reason });
    }

    /// Results published on the camera (read on every loop turn): each that matches a trigger
    /// opens a clip or extends the running one, by the capture time of the frame it is about.
    /// Results about an older capture run are ignored.
    pub fn on_results(&mut self, results: &[Outcome]) {
        if self.triggers.is_empty() {
            return;
        }
        let run = self.newest.map(|n| n.run_id);
        let matched: Vec<(usize, &Outcome)> = results
            .iter()
            .filter(|r| run.is_none_or(|run| r.run_id >= run))
            .filter_map(|r| self.triggers.iter().position(|t| t.matches(r)).map(|rule| (rule, r)))
            .collect();
        if matched.is_empty() {
            return;
        }
        let caused: Vec<TriggerResult> = matched
            .iter()
            .take(TRIGGER_RESULTS)
            .map(|(_, r)| TriggerResult {
                producer: r.producer.clone(),
                frame_id: r.frame_id,
                run_id: r.run_id,
                score: r.score,
                boxes: r.boxes.clone(),
            })
            .collect();
        let now = clock::monotonic_ns();
        let first_live = self.newest.map_or(0, |n| n.frame_id) + 1;
        for (rule, result) in matched {
            self.status.triggers += 1;
            // The frame's capture time (never in the future: a producer's clock is not trusted).
            let t = match result.capture_mono_ns {
                0 => self.newest.map_or(now, |n| n.mono_ns),
                t => t.min(now),
            };
            let trigger = Trigger {
                source: TriggerSource::Result,
                rule: Some(rule),
                frame_id: result.frame_id,
                utc: clock::format_utc(realtime_of(t)),
                realtime_ns: realtime_of(t),
                results: caused.clone(),
                continues: None,
            };
            if self.clips.windows().trigger(t, trigger, first_live) == Triggered::Opened {
                tracing::info!(
                    camera = self.camera,
                    producer = result.producer,
                    frame = result.frame_id,
                    score = result.score,
                    "trigger [{}]: a clip opens",
                    self.triggers[rule].describe()
                );
            }
        }
        self.update_state();
    }

    /// Accounts a received frame and says what to do with it: write it now (its clip wants it
    /// and nothing older waits), keep it in memory (pre-roll, or behind held frames), or
    /// nothing.
    pub fn on_frame(&mut self, header: &FrameHeader) -> Disposition {
        self.status.frames += 1;
        self.format =
            Some(FrameFormat { width: header.width, height: header.height, fourcc: FourccText(header.pixel_format) });
        let (run, id, t) = (header.run_id, header.frame_id, header.capture_mono_ns);
        if self.last_id.replace((run, id)).is_some_and(|(last_run, _)| last_run != run) {
            tracing::info!(camera = self.camera, "capture restarted (frame ids begin again at {id})");
        }
        let lag_ns = clock::monotonic_ns().saturating_sub(t);
        self.newest = Some(Newest { run_id: run, frame_id: id, mono_ns: t, received: Instant::now(), lag_ns });
        if self.held.is_empty() {
            self.settle(t);
            if self.clips.wants(t) {
                return if self.admit(header) { Disposition::Write } else { Disposition::Ignore };
            }
        }
        if self.limits.keep_ns > 0 || !self.held.is_empty() {
            Disposition::Hold
        } else {
            Disposition::Ignore
        }
    }

    /// Periodic housekeeping: disk guard, sidecar flush (which notices a full disk within the
    /// period), the end of a clip whose frames stopped coming, retention, rate-limited error
    /// lines.
    pub fn housekeeping(&mut self) {
        self.check_disk();
        // A failed flush fails the segment; it is ended right below.
        self.writer.flush();
        self.end_failed_segment();
        if self.active() && !self.guard.is_low() && self.writer.end_retry(false) {
            // The retry is due: the next frame starts a segment.
            self.update_state();
        }
        // Capture stopped (or the file ended) during a post-roll: no later frame will end it.
        let now = clock::monotonic_ns();
        if self.held.is_empty()
            && self.clips.window().is_some_and(|w| !w.manual && now > w.until_ns.saturating_add(IDLE_CLOSE_NS))
        {
            self.close_window("post-roll");
        }
        if self.guard.retention_due() {
            self.apply_retention();
        }
        self.update_state();
    }

    /// Closes the statistics interval and returns the status as one JSON line.
    pub fn report_line(&mut self) -> String {
        self.rates.close(&mut self.status);
        self.update_state();
        let settings = self.guard.settings();
        let context = LineContext {
            camera: &self.camera,
            saving: self.saving,
            pre_roll_estimate_bytes: self.limits.estimate,
            last_frame_id: self.newest.map_or(0, |n| n.frame_id),
            min_free_mb: settings.min_free_mb,
            min_free_inodes: settings.min_free_inodes,
            directory: &self.writer.spec().directory,
            journal: self.journal.path(),
        };
        status_line(&self.status, &context)
    }

    /// Finishes at a stop: the held frames the clip still wants are written (for at most
    /// 5 s; the rest are listed as skipped), then the clip and its segment end, so
    /// the files play.
    pub fn finish(&mut self) {
        let deadline = Instant::now() + STOP_FLUSH;
        while let Some((_, action)) = self.front_action() {
            match action {
                FrontAction::ReachBack => {
                    if let Some(t) = self.held.front().map(|h| h.capture_mono_ns) {
                        self.clips.windows().reach_back(t);
                    }
                }
                FrontAction::Write if Instant::now() < deadline => self.write_held(),
                FrontAction::Write => {
                    if let Some(id) = self.held.front().filter(|_| self.clips.clip().is_some()).map(|h| h.frame_id) {
                        self.skip(id, id, SkipReason::Stop);
                    }
                    self.drop_held();
                }
                _ => self.drop_held(),
            }
        }
        self.close_all("stop");
    }

    /// Ends the clip (or segment) being written and forgets every window.
    fn close_all(&mut self, reason: &str) {
        if self.clips.clip().is_some() {
            self.end_clip(reason);
        } else {
            self.finish_segment(reason);
        }
        self.clips.close_all();
        self.held.clear();
        self.update_state();
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        // Every exit path but SIGKILL leaves a playable, renamed segment.
        self.close_all("stop");
    }
}
