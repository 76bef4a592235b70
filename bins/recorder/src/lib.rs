//! The recorder process: a reader of one camera on the reader loop (crate `framebus`, policy
//! `every`, a deeper queue to ride out slow writes) that writes clips: video segments and/or
//! images with a sidecar index (JSON lines) that lists every frame saved and
//! every frame skipped. A disk guard stops writing below a free-space floor and resumes when
//! space is back (optionally deleting the oldest segments first); retention deletes segments
//! older than `max-age-days` or beyond `max-total-mb`.
//!
//! What is recorded: without triggers, every frame while saving is on (continuous recording).
//! With `[[camera.recorder.trigger]]`s the recorder is armed whenever it runs: it keeps a
//! pre-roll of recent frames (JPEG, in memory, [`preroll`]) and a result that matches a
//! trigger opens a clip from `pre-roll-secs` before the result's frame to `post-roll-secs`
//! after the last matching one ([`clip`]). Saving on (`ctl record on`) is a manual trigger
//! either way: its clip starts with the pre-roll and lasts until saving is off. Every clip is
//! journaled (`<directory>/events/<camera>.jsonl`, [`journal`]) for `ctl events`.
//!
//! The saving state lives in [`Recorder`] and changes only through [`Recorder::set_saving`];
//! the reader loop's control thread forwards `ctl record on|off` and the status reply carries
//! [`Recorder::report`]. The initial state is the camera's recorded saving flag (so a killed,
//! restarted recorder resumes saving), else `[camera.recorder] enabled`; `--saving` on the
//! command line is recorded like a command. SIGHUP re-reads the disk-guard and retention
//! settings (`min-free-mb`, `min-free-inodes`, `delete-oldest`, `max-age-days`,
//! `max-total-mb`) from the config file.

pub mod cli;
pub mod clip;
pub mod disk;
pub mod journal;
pub mod mp4;
pub mod preroll;
pub mod segment;
pub mod stream;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{anyhow, Context};
use framebus::{Camera, Command, Event, ProcessReport, ProcessState};
use framebus_common::config::{ImageFormat, RecorderConfig, TriggerConfig};
use framebus_common::control::{FourccText, FrameFormat};
use framebus_common::figures::{DiskGuard, Figures, LastEvent, RecorderEvents};
use framebus_common::journal::{ClipSegment, JournalRecord, Trigger, TriggerResult, TriggerSource};
use framebus_common::results::Outcome;
use framebus_common::stats::LatencyWindow;
use framebus_common::{clock, signals, CameraConfig, Deployment, FrameHeader, ProcessRole};
use framebus_vision::opencv::core::{Mat, Vector};
use framebus_vision::opencv::imgcodecs;
use framebus_vision::to_bgr;

use crate::clip::{Triggered, Window, Windows};
use crate::disk::Space;
use crate::journal::Journal;
use crate::preroll::PreRoll;
use crate::segment::{Finished, Segment, SegmentSpec, Skip, SkipReason};

/// Options of one recorder run beyond the config.
#[derive(Debug, Clone, Default)]
pub struct RecorderOptions {
    /// Saving on or off, recorded like `ctl record on|off`; `None` resumes the camera's
    /// recorded flag, else takes `enabled` from the config.
    pub saving: Option<bool>,
    /// Print every statistics report as one JSON line on stdout.
    pub json: bool,
}

/// What the recorder is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RecorderState {
    /// Nothing to record: saving is off and no trigger or pre-roll is configured. Frames are
    /// only counted.
    #[default]
    Off,
    /// Waiting for a trigger (or `ctl record on`), holding the pre-roll.
    Armed,
    /// Writing a clip (saving on, or an event's clip).
    Recording,
    /// Free space or free inodes are below the floor (plus the reserve): nothing is written
    /// until they are back.
    DiskLow,
    /// The last segment failed to write (an I/O error the free-space figures do not explain:
    /// EIO, a quota): nothing is written until the retry.
    WriteError,
}

impl RecorderState {
    /// Name used in status lines.
    pub fn name(self) -> &'static str {
        match self {
            RecorderState::Off => "off",
            RecorderState::Armed => "armed",
            RecorderState::Recording => "recording",
            RecorderState::DiskLow => "disk-low",
            RecorderState::WriteError => "write-error",
        }
    }
}

/// Counters and state of a recorder, reported periodically.
#[derive(Debug, Clone, Default)]
pub struct RecorderStatus {
    /// Current state.
    pub state: RecorderState,
    /// Frames received.
    pub frames: u64,
    /// Frames saved (into the video and/or as an image).
    pub written: u64,
    /// Image files written.
    pub images: u64,
    /// Frames of clips not saved (queue overflow, disk low, errors).
    pub skipped: u64,
    /// Errors (disk low, failed writes, failed conversions).
    pub errors: u64,
    /// The last error.
    pub last_error: Option<String>,
    /// Segments completed (finalized) by this run.
    pub segments: u64,
    /// Bytes of the segments this run finished (completed or failed): video, sidecar, images.
    pub bytes_written: u64,
    /// Old segments this run deleted (disk floor, retention).
    pub deletions: u64,
    /// Segments that failed to write by this run (kept as `.failed`, or deleted when empty).
    pub failed_segments: u64,
    /// Base name of the segment being written.
    pub segment: Option<String>,
    /// Id of the clip being written.
    pub clip: Option<String>,
    /// Clips completed by this run.
    pub clips: u64,
    /// Results that matched a trigger (each starts or extends a clip).
    pub triggers: u64,
    /// Triggers whose frames were gone (the result came later than the pre-roll holds).
    pub missed_triggers: u64,
    /// Frames held in memory (pre-roll, and frames waiting to be written).
    pub held_frames: u64,
    /// Bytes of those frames (JPEG).
    pub held_bytes: u64,
    /// Capture time the held frames span, seconds.
    pub held_secs: f64,
    /// Held frames dropped to stay under `pre-roll-max-mb`.
    pub held_dropped: u64,
    /// Free space at the last check, bytes.
    pub free_bytes: u64,
    /// Free inodes at the last check (`None`: the filesystem does not count inodes).
    pub free_inodes: Option<u64>,
    /// Bytes the recorder keeps free on top of `min-free-mb` to close the current segment.
    pub reserve_bytes: u64,
    /// Frames received per second over the last interval.
    pub fps: f64,
    /// Frames saved per second over the last interval.
    pub write_fps: f64,
    /// The event that started the last clip.
    pub last_event: Option<LastEvent>,
    /// Capture → frame written latency, median over the last interval, microseconds.
    pub latency_p50_us: Option<u64>,
    /// Same, 99th percentile.
    pub latency_p99_us: Option<u64>,
}

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

/// Room the recorder keeps on top of `min-free-mb` whatever the frames: FFmpeg's and the
/// sidecar's buffers, the container's header rewrite, filesystem metadata.
const RESERVE_BASE: u64 = 1024 * 1024;
/// Raw frames' worth of room also kept: the next video frame, the next image (a PNG can be
/// as large as the raw frame) and the frames an encoder holds back until the file is closed.
const RESERVE_FRAMES: u64 = 3;
/// Room per frame of the current segment for the index written when it closes (AVI: 16 +
/// 8 bytes per frame; MP4: under 32).
const RESERVE_PER_FRAME: u64 = 64;
/// Inodes kept on top of `min-free-inodes`: a new segment needs up to 3 (sidecar, video,
/// image folder), an image 1.
const INODE_RESERVE: u64 = 4;
/// First wait after a failed segment before the next is started; doubles up to the maximum.
const RETRY_FIRST: Duration = Duration::from_secs(1);
/// Longest wait between attempts after write errors.
const RETRY_MAX: Duration = Duration::from_secs(60);
/// The pre-roll's memory warning is repeated at most this often.
const HELD_WARN_EVERY: Duration = Duration::from_secs(10);
/// How often retention looks at the folder (also after every finished segment).
const RETENTION_EVERY: Duration = Duration::from_secs(5);
/// A clip whose post-roll ended this long ago with no frame arriving (capture stopped) ends.
const IDLE_CLOSE_NS: u64 = 2_000_000_000;
/// At a stop, frames a clip still wants from memory are written for at most this long; the
/// rest are listed as skipped (`stop`).
const STOP_FLUSH: Duration = Duration::from_secs(5);
/// Results kept per trigger in the journal and the sidecar.
const TRIGGER_RESULTS: usize = 4;
/// Most missed triggers journaled: one per this period, with a count of the others.
const MISSED_EVERY: Duration = Duration::from_secs(10);

/// The clip being written: from its first frame to its end (post-roll over, saving off,
/// `max-clip-secs`, stop).
#[derive(Debug)]
struct Clip {
    id: String,
    trigger: Trigger,
    first_live_frame_id: u64,
    first_frame_id: u64,
    first_mono_ns: u64,
    last_frame_id: u64,
    last_mono_ns: u64,
    frames: u64,
    skipped: u64,
    /// Triggers its window had counted before this clip began (a continued clip's window
    /// started earlier).
    triggers_before: u64,
    segments: Vec<ClipSegment>,
    /// Segments opened for it.
    parts: u32,
    /// The segment whose header carries the trigger (none yet, or it was discarded).
    trigger_in: Option<String>,
}

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

/// One camera's recorder. Driven by [`run`]'s loop, or by a test calling its methods.
pub struct Recorder {
    camera: String,
    config: RecorderConfig,
    spec: SegmentSpec,
    saving: bool,
    disk_low: bool,
    segment: Option<Segment>,
    /// Ranges not saved while no segment was open (disk low, failed opens).
    pending: Vec<Skip>,
    bgr: Mat,
    /// (run id, frame id) of the last frame received.
    last_id: Option<(u64, u64)>,
    image_counter: u64,
    last_image: Option<Instant>,
    status: RecorderStatus,
    format: Option<FrameFormat>,
    latency: LatencyWindow,
    interval_start: Instant,
    frames_at: u64,
    written_at: u64,
    /// After a failed segment: when the next may start.
    retry_at: Option<Instant>,
    /// The wait before the next retry; grows while segments keep failing.
    retry_wait: Duration,
    /// Bytes of the last frame as converted (BGR): sizes the reserve.
    frame_bytes: u64,
    /// Why the disk guard stopped writing (while `disk_low`).
    low_reason: Option<String>,
    /// The configured triggers (none: continuous recording while saving is on).
    triggers: Vec<TriggerConfig>,
    /// Capture time a held frame stays eligible for a pre-roll (0: no pre-roll).
    keep_ns: u64,
    max_clip_ns: u64,
    windows: Windows,
    held: PreRoll,
    held_max_bytes: u64,
    /// Estimated bytes of the full pre-roll (logged against what is measured).
    held_estimate: u64,
    held_reported: bool,
    held_warned: Option<Instant>,
    journal: Journal,
    clip: Option<Clip>,
    /// Last frame taken into the current clip (run id, frame id): gaps are listed as skipped.
    clip_last: Option<(u64, u64)>,
    newest: Option<Newest>,
    /// Time the loop may spend writing held frames per turn.
    budget: Duration,
    retention_at: Instant,
    missed_at: Option<Instant>,
    missed_since: u64,
    /// `video = "stream"`: whether the access unit being admitted is a key frame (`None`
    /// when frames are encoded here).
    unit_key: Option<bool>,
    /// `video = "stream"`: access units were lost (or none came yet): nothing is written
    /// before the next key frame.
    need_key: bool,
    /// `video = "stream"`: (encoder run, sequence, frame id) of the last access unit.
    unit_last: Option<(u64, u64, u64)>,
}

/// The event of a trigger, as the recorder's figures report it: its time and a label (the
/// first box label of the result that caused it, else its producer; `manual`, `continued`).
fn last_event(trigger: &Trigger) -> LastEvent {
    let (source, label) = match trigger.source {
        TriggerSource::Result => {
            let first = trigger.results.first();
            let label = first
                .and_then(|r| r.boxes.first().map(|b| b.label.clone()))
                .or_else(|| first.map(|r| r.producer.clone()))
                .unwrap_or_default();
            ("result", label)
        }
        TriggerSource::Manual => ("manual", "manual".to_string()),
        TriggerSource::Continued => ("continued", "continued".to_string()),
    };
    LastEvent {
        utc: trigger.utc.clone(),
        unix_secs: trigger.realtime_ns as f64 / 1e9,
        source: source.to_string(),
        label,
    }
}

/// Most pending skip ranges kept; later ones merge into the last (the count stays exact).
const MAX_PENDING: usize = 4096;

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// CLOCK_REALTIME ns of a CLOCK_MONOTONIC instant in the recent past.
fn realtime_of(mono_ns: u64) -> u64 {
    clock::realtime_ns().saturating_sub(clock::monotonic_ns().saturating_sub(mono_ns))
}

impl Recorder {
    /// A recorder of `camera` writing to `directory` (created if missing).
    pub fn new(camera: &CameraConfig, config: RecorderConfig, directory: PathBuf) -> anyhow::Result<Recorder> {
        std::fs::create_dir_all(&directory).with_context(|| {
            format!("camera `{}`: creating the recordings folder `{}`", camera.name, directory.display())
        })?;
        let image_params = match config.images {
            ImageFormat::Jpeg => Vector::from_slice(&[imgcodecs::IMWRITE_JPEG_QUALITY, config.jpeg_quality as i32]),
            _ => Vector::new(),
        };
        let video_fps = config.effective_video_fps(camera.fps);
        let spec = SegmentSpec {
            camera: camera.name.clone(),
            directory,
            video: config.video,
            video_fps,
            images: config.images,
            image_params,
        };
        for leftover in disk::partial_files(&spec.directory, &camera.name) {
            tracing::warn!(
                camera = camera.name,
                "incomplete segment file from an earlier run (was it killed?): `{}`; completed segments are intact",
                leftover.display()
            );
        }
        let secs_ns = |secs: f64| (secs * 1e9) as u64;
        let pre_roll = config.effective_pre_roll_secs();
        let keep_ns = if pre_roll > 0.0 { secs_ns(pre_roll + config.result_delay_secs) } else { 0 };
        let estimate = config.pre_roll_estimate(camera.width, camera.height, camera.fps);
        if keep_ns > 0 {
            tracing::info!(
                camera = camera.name,
                "pre-roll: {pre_roll} s (+ {} s for late results) at {}x{}, {video_fps} fps: {} JPEG frames, estimated {:.1} MiB ({:.2} MiB a frame at jpeg-quality {}; limit pre-roll-max-mb = {}); measured once full",
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
        // Half a frame interval per loop turn for held frames (at least one frame a turn).
        let budget = Duration::from_secs_f64((0.5 / video_fps).max(0.005));
        let mut recorder = Recorder {
            camera: camera.name.clone(),
            triggers: config.trigger.clone(),
            keep_ns,
            max_clip_ns: secs_ns(config.max_clip_secs),
            windows: Windows::new(secs_ns(pre_roll), secs_ns(config.post_roll_secs)),
            held: PreRoll::new(config.jpeg_quality),
            held_max_bytes: config.pre_roll_max_bytes(),
            held_estimate: estimate.bytes,
            held_reported: false,
            held_warned: None,
            journal: Journal::new(&spec.directory, &camera.name),
            clip: None,
            clip_last: None,
            newest: None,
            budget,
            retention_at: Instant::now(),
            missed_at: None,
            missed_since: 0,
            unit_key: None,
            need_key: true,
            unit_last: None,
            config,
            spec,
            saving: false,
            disk_low: false,
            segment: None,
            pending: Vec::new(),
            bgr: Mat::default(),
            last_id: None,
            image_counter: 0,
            last_image: None,
            status: RecorderStatus::default(),
            format: None,
            latency: LatencyWindow::new(),
            interval_start: Instant::now(),
            frames_at: 0,
            written_at: 0,
            retry_at: None,
            retry_wait: Duration::ZERO,
            frame_bytes: u64::from(camera.width) * u64::from(camera.height) * 3,
            low_reason: None,
        };
        recorder.check_disk();
        recorder.apply_retention();
        recorder.update_state();
        Ok(recorder)
    }

    /// Whether the recorder may write: saving is on, or triggers or a pre-roll wait for an
    /// event.
    fn active(&self) -> bool {
        self.saving || !self.triggers.is_empty() || self.keep_ns > 0
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
        tracing::info!(camera = self.camera, directory = %self.spec.directory.display(), "saving {}", if on { "on" } else { "off" });
        self.saving = on;
        if on {
            self.image_counter = 0;
            if self.clip.is_none() {
                self.pending.clear();
            }
            // A command to save is also a request to try again now.
            self.retry_at = None;
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
            self.windows.manual_on(now, trigger, frame_id + 1);
            self.pump(Some(self.budget));
        } else {
            let newest = self.newest.map_or(now, |n| n.mono_ns);
            self.windows.manual_off(newest);
            // What the clip still wants is in memory: write it, then end the clip unless an
            // event keeps it going.
            self.pump(None);
            if self.windows.current().is_some_and(|w| w.ended_before(newest.saturating_add(1))) {
                self.close_window("saving-off");
            }
            if self.clip.is_none() {
                self.pending.clear();
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

    /// What the control reply adds to the reader figures: the saving flag as acted on, state
    /// `degraded` while the disk is below the floor or after a write error, frame-written
    /// latency, and a one-line summary (`off`, `armed …`, `recording ...`, `disk-low: ...`,
    /// `write-error ...`).
    pub fn report(&self) -> ProcessReport {
        let s = &self.status;
        let failed = match s.failed_segments {
            0 => String::new(),
            n => format!(" ({n} segment(s) failed)"),
        };
        let mut message = match s.state {
            RecorderState::Off => format!("off: {} segment(s) completed{failed}", s.segments),
            RecorderState::Armed => format!(
                "armed: {}, pre-roll {:.1} s held ({} frames, {:.1} MiB); {} clip(s), {} segment(s) completed{failed}",
                match self.triggers.len() {
                    0 => "for `ctl record on`".to_string(),
                    n => format!("{n} trigger(s)"),
                },
                s.held_secs,
                s.held_frames,
                mib(s.held_bytes),
                s.clips,
                s.segments
            ),
            RecorderState::Recording => format!(
                "recording {}: {} written, {} images, {} segment(s) completed{failed}{}",
                s.segment.as_deref().unwrap_or("(waiting for frames)"),
                s.written,
                s.images,
                s.segments,
                s.clip.as_deref().map(|c| format!("; clip {c}")).unwrap_or_default()
            ),
            RecorderState::DiskLow => {
                format!("disk-low{failed}: {}", self.low_reason.as_deref().unwrap_or("free space below the floor"))
            }
            RecorderState::WriteError => format!(
                "write-error (retry in {:.0} s){failed}: {}",
                self.retry_at.map_or(0.0, |at| at.saturating_duration_since(Instant::now()).as_secs_f64()),
                s.last_error.as_deref().unwrap_or("a segment failed to write")
            ),
        };
        if matches!(s.state, RecorderState::Off | RecorderState::Armed | RecorderState::Recording) {
            if let Some(error) = &s.last_error {
                message.push_str(&format!("; {} error(s), last: {error}", s.errors));
            }
        }
        ProcessReport {
            state: matches!(s.state, RecorderState::DiskLow | RecorderState::WriteError)
                .then_some(ProcessState::Degraded),
            message,
            saving: Some(self.saving),
            latency_us: (s.state == RecorderState::Recording || self.saving)
                .then_some((s.latency_p50_us, s.latency_p99_us)),
            bytes_written: s.bytes_written,
            segments: s.segments,
            deletions: s.deletions,
            figures: Some(Figures::Recorder(RecorderEvents {
                clips: s.clips,
                triggers: s.triggers,
                missed_triggers: s.missed_triggers,
                preroll_frames: s.held_frames,
                preroll_bytes: s.held_bytes,
                last_event: s.last_event.clone(),
                disk_guard: DiskGuard {
                    state: if self.disk_low { "low" } else { "ok" }.to_string(),
                    free_bytes: s.free_bytes,
                    min_free_bytes: self.config.min_free_mb.saturating_mul(1024 * 1024),
                },
            })),
            ..ProcessReport::default()
        }
    }

    /// The frame format last received.
    pub fn format(&self) -> Option<FrameFormat> {
        self.format
    }

    /// Changes the disk guard's floors and whether it may delete old segments.
    pub fn set_disk_guard(&mut self, min_free_mb: u64, min_free_inodes: u64, delete_oldest: bool) {
        self.config.min_free_mb = min_free_mb;
        self.config.min_free_inodes = min_free_inodes;
        self.config.delete_oldest = delete_oldest;
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
        self.config.max_age_days = max_age_days;
        self.config.max_total_mb = max_total_mb;
        tracing::info!(camera = self.camera, max_age_days, max_total_mb, "retention settings changed");
        self.apply_retention();
    }

    fn update_state(&mut self) {
        let writing = self.saving || self.clip.is_some();
        self.status.state = match (self.active(), self.disk_low, self.retry_at.is_some(), writing) {
            (false, _, _, _) => RecorderState::Off,
            (true, true, _, _) => RecorderState::DiskLow,
            (true, false, true, _) => RecorderState::WriteError,
            (true, false, false, true) => RecorderState::Recording,
            (true, false, false, false) => RecorderState::Armed,
        };
        let current = self.segment.as_ref().map(Segment::base);
        if self.status.segment.as_deref() != current {
            self.status.segment = current.map(str::to_string);
        }
        let clip = self.clip.as_ref().map(|c| c.id.as_str());
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
        if let Some(clip) = &mut self.clip {
            clip.skipped += count;
            clip.last_frame_id = clip.last_frame_id.max(last);
        }
        let skip = Skip { first, last, reason };
        if let Some(segment) = &mut self.segment {
            // A failed line fails the segment; the caller ends it (`end_failed_segment`).
            let _ = segment.skip(skip);
            return;
        }
        self.push_pending(skip);
    }

    fn push_pending(&mut self, skip: Skip) {
        let full = self.pending.len() >= MAX_PENDING;
        match self.pending.last_mut() {
            Some(prev) if full || (prev.reason == skip.reason && prev.last + 1 == skip.first) => {
                prev.last = prev.last.max(skip.last)
            }
            _ => self.pending.push(skip),
        }
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
            if self.windows.trigger(t, trigger, first_live) == Triggered::Opened {
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
            if self.windows.current().is_some_and(|w| w.wants(t)) {
                return if self.admit(header) { Disposition::Write } else { Disposition::Ignore };
            }
        }
        if self.keep_ns > 0 || !self.held.is_empty() {
            Disposition::Hold
        } else {
            Disposition::Ignore
        }
    }

    /// Keeps a received frame (holding its sample): an MJPG frame is copied as it is (returns
    /// false: done); any other is converted to BGR (returns true: call
    /// [`Recorder::hold_converted`] once the sample is released).
    pub fn hold_received(&mut self, header: &FrameHeader, payload: &[u8]) -> bool {
        if PreRoll::is_jpeg(header) {
            let len = (header.payload_len as usize).min(payload.len());
            self.held.hold_jpeg(header, &payload[..len]);
            return false;
        }
        match to_bgr(header, payload, &mut self.bgr) {
            Ok(()) => true,
            Err(e) => {
                self.error("convert", format!("converting frame {} for the pre-roll: {e}", header.frame_id));
                false
            }
        }
    }

    /// Encodes the frame converted by [`Recorder::hold_received`] into the held frames.
    pub fn hold_converted(&mut self, header: &FrameHeader) {
        if let Err(e) = self.held.hold_bgr(header, &self.bgr) {
            self.error("pre-roll", format!("{e:#}"));
        }
    }

    /// Writes held frames that a clip wants, oldest first, for at most `budget` (at least one
    /// frame; `None`: all of them), and lets go of held frames no clip can want any more
    /// (older than the pre-roll, before the clip, or beyond `pre-roll-max-mb`).
    pub fn pump(&mut self, budget: Option<Duration>) {
        let started = Instant::now();
        let mut wrote = 0u64;
        // Behind the camera (the frame just received was already two frame intervals old: the
        // queue is filling): one held frame a turn, so the live frames come first.
        let interval = 2 * self.budget.as_nanos() as u64;
        let behind = self
            .newest
            .is_some_and(|n| n.received.elapsed().as_nanos() < u128::from(interval) && n.lag_ns > 2 * interval);
        let budget = budget.map(|b| if behind { Duration::ZERO } else { b });
        while let Some(front) = self.held.front().copied() {
            let t = front.capture_mono_ns;
            self.settle(t);
            let over = self.held.bytes() > self.held_max_bytes;
            let wanted = self.windows.current().map(|w| (w.wants(t), t < w.start_ns));
            match wanted {
                Some((true, _)) => {
                    // Over the memory limit the writer catches up whatever the budget.
                    if wrote > 0 && !over && budget.is_some_and(|b| started.elapsed() >= b) {
                        break;
                    }
                    self.write_held();
                    wrote += 1;
                }
                Some((false, true)) => self.held.drop_front(),
                _ => {
                    let newest = self.newest.map_or(t, |n| n.mono_ns);
                    if over {
                        self.status.held_dropped += 1;
                        if self.held_warned.is_none_or(|at| at.elapsed() >= HELD_WARN_EVERY) {
                            self.held_warned = Some(Instant::now());
                            tracing::warn!(
                                camera = self.camera,
                                "pre-roll: {:.1} MiB held, over pre-roll-max-mb = {}: dropping the oldest frames (the pre-roll is {:.1} s instead of {:.1} s); lower jpeg-quality or pre-roll-secs, or raise pre-roll-max-mb",
                                mib(self.held.bytes()),
                                self.config.pre_roll_max_mb,
                                self.held.span_ns() as f64 / 1e9,
                                self.keep_ns as f64 / 1e9
                            );
                        }
                        self.held.drop_front();
                    } else if newest.saturating_sub(t) > self.keep_ns {
                        self.held.drop_front();
                    } else {
                        break;
                    }
                }
            }
        }
        if wrote > 0 || !self.held.is_empty() {
            self.update_state();
        }
        if !self.held_reported
            && self.keep_ns > 0
            && self.held.span_ns() + self.budget.as_nanos() as u64 >= self.keep_ns
        {
            self.held_reported = true;
            tracing::info!(
                camera = self.camera,
                "pre-roll full: {} frames over {:.1} s hold {:.1} MiB measured ({:.0} KiB a frame; estimated {:.1} MiB)",
                self.held.len(),
                self.held.span_ns() as f64 / 1e9,
                mib(self.held.bytes()),
                self.held.bytes() as f64 / 1024.0 / self.held.len().max(1) as f64,
                mib(self.held_estimate)
            );
        }
    }

    /// Takes the oldest held frame into the clip: accounts it, decodes it and writes it.
    fn write_held(&mut self) {
        let Some(held) = self.held.pop() else { return };
        let header = held.header;
        if self.admit(&header) {
            match PreRoll::decode(&held, &mut self.bgr) {
                Ok(()) => self.save(&header),
                Err(e) => {
                    self.error("decode", format!("{e:#}"));
                    self.skip(header.frame_id, header.frame_id, SkipReason::Error);
                }
            }
        }
        self.held.recycle(held.jpeg);
    }

    /// Closes every window that is over for a frame captured at `t` (frames arrive in order,
    /// so no later frame can want it).
    fn settle(&mut self, t: u64) {
        while self.windows.current().is_some_and(|w| w.ended_before(t)) {
            self.close_window("post-roll");
        }
    }

    /// Ends the current window: its clip (if a frame started one) completes with `reason`; a
    /// window that never got a frame is a missed trigger.
    fn close_window(&mut self, reason: &str) {
        let last = self.clip.as_ref().map(|c| c.last_mono_ns);
        if self.clip.is_some() {
            self.end_clip(reason);
        } else if let Some(window) = self.windows.current().cloned() {
            self.missed(&window);
        }
        self.windows.close_current(last);
        self.update_state();
    }

    /// Journals a trigger that made no clip (rate-limited: a producer whose results always
    /// come late would otherwise fill the journal).
    fn missed(&mut self, window: &Window) {
        self.status.missed_triggers += 1;
        if self.missed_at.is_some_and(|at| at.elapsed() < MISSED_EVERY) {
            self.missed_since += 1;
            return;
        }
        let reason = if window.trigger.source == TriggerSource::Manual {
            "no frame arrived while saving was on".to_string()
        } else {
            format!(
                "no frame of its clip was held any more: the result came later than the pre-roll keeps frames ({:.1} s: pre-roll-secs + result-delay-secs)",
                self.keep_ns as f64 / 1e9
            )
        };
        tracing::warn!(camera = self.camera, frame = window.trigger.frame_id, "trigger missed: {reason}");
        self.journal.write(&JournalRecord::TriggerMissed {
            utc: clock::format_utc(clock::realtime_ns()),
            reason,
            trigger: window.trigger.clone(),
            also_missed: std::mem::take(&mut self.missed_since),
        });
        self.missed_at = Some(Instant::now());
    }

    /// Starts a clip at `header` (the first frame its window wants); `continues` names the
    /// clip it continues after `max-clip-secs`.
    fn start_clip(&mut self, header: &FrameHeader, continues: Option<String>) {
        let (mut trigger, first_live, triggers) = match self.windows.current() {
            Some(w) => (w.trigger.clone(), w.first_live_frame_id, w.triggers.saturating_sub(1)),
            None => {
                let realtime_ns = header.capture_realtime_ns;
                let utc = clock::format_utc(realtime_ns);
                let manual = Trigger {
                    source: TriggerSource::Manual,
                    rule: None,
                    frame_id: header.frame_id,
                    utc,
                    realtime_ns,
                    results: Vec::new(),
                    continues: None,
                };
                (manual, header.frame_id, 0)
            }
        };
        let mut first_live = first_live;
        if let Some(previous) = continues {
            trigger = Trigger {
                source: TriggerSource::Continued,
                rule: None,
                frame_id: header.frame_id,
                utc: clock::format_utc(header.capture_realtime_ns),
                realtime_ns: header.capture_realtime_ns,
                results: Vec::new(),
                continues: Some(previous),
            };
            first_live = first_live.max(header.frame_id);
        }
        let id = format!(
            "{}_{}_{:010}",
            self.camera,
            clock::format_utc_compact(header.capture_realtime_ns),
            header.frame_id
        );
        let from_pre_roll = first_live.saturating_sub(header.frame_id);
        tracing::info!(
            camera = self.camera,
            clip = id,
            first_frame = header.frame_id,
            first_live_frame = first_live,
            "clip started ({:?} trigger, frame {}; {from_pre_roll} frame(s) from before it)",
            trigger.source,
            trigger.frame_id
        );
        self.status.last_event = Some(last_event(&trigger));
        self.journal.write(&JournalRecord::ClipStarted {
            clip: id.clone(),
            camera: self.camera.clone(),
            utc: clock::format_utc(clock::realtime_ns()),
            first_frame_id: header.frame_id,
            first_frame_utc: clock::format_utc(header.capture_realtime_ns),
            first_live_frame_id: first_live,
            run_id: header.run_id,
            trigger: trigger.clone(),
        });
        self.clip = Some(Clip {
            id,
            trigger,
            first_live_frame_id: first_live,
            first_frame_id: header.frame_id,
            first_mono_ns: header.capture_mono_ns,
            last_frame_id: header.frame_id,
            last_mono_ns: header.capture_mono_ns,
            frames: 0,
            skipped: 0,
            triggers_before: triggers,
            segments: Vec::new(),
            parts: 0,
            trigger_in: None,
        });
        self.clip_last = None;
        self.update_state();
    }

    /// Ends the current clip: finishes its segment and journals the clip with its files.
    fn end_clip(&mut self, reason: &str) {
        self.finish_segment(reason);
        // Frames not saved while no segment was open belong to this clip only.
        self.pending.clear();
        let Some(clip) = self.clip.take() else { return };
        // The trigger that opened the window (or, continued, the clip's start) and those since.
        let triggers = self.windows.current().map_or(1, |w| w.triggers.saturating_sub(clip.triggers_before));
        self.clip_last = None;
        self.status.clips += 1;
        let frame_ns = 1e9 / self.spec.video_fps.max(1.0);
        let duration_secs = (clip.last_mono_ns.saturating_sub(clip.first_mono_ns) as f64 + frame_ns) / 1e9;
        tracing::info!(
            camera = self.camera,
            clip = clip.id,
            frames = clip.frames,
            skipped = clip.skipped,
            reason,
            "clip completed: frames {} to {}, {duration_secs:.1} s, {} segment(s)",
            clip.first_frame_id,
            clip.last_frame_id,
            clip.segments.len()
        );
        self.journal.write(&JournalRecord::ClipCompleted {
            clip: clip.id,
            utc: clock::format_utc(clock::realtime_ns()),
            first_frame_id: clip.first_frame_id,
            last_frame_id: clip.last_frame_id,
            frames: clip.frames,
            skipped: clip.skipped,
            duration_secs: (duration_secs * 1000.0).round() / 1000.0,
            triggers,
            reason: reason.to_string(),
            segments: clip.segments,
        });
        self.update_state();
    }

    /// Takes a frame its clip wants (live or held, in order): starts the clip or splits it at
    /// `max-clip-secs`, lists frames missing since the last one as skipped, then the disk guard
    /// and the segment. Returns whether to write it.
    fn admit(&mut self, header: &FrameHeader) -> bool {
        let (run, id, t) = (header.run_id, header.frame_id, header.capture_mono_ns);
        match &self.clip {
            None => self.start_clip(header, None),
            Some(clip) if t.saturating_sub(clip.first_mono_ns) >= self.max_clip_ns => {
                let previous = clip.id.clone();
                self.end_clip("max-clip");
                self.start_clip(header, Some(previous));
            }
            Some(_) => {}
        }
        match self.clip_last.replace((run, id)) {
            Some((last_run, _)) if last_run != run => {
                // Capture restarted (a new run, ids begin again at 1): the segment ends here.
                self.finish_segment("capture-restart");
                self.pending.clear();
                if id > 1 {
                    self.skip(1, id - 1, SkipReason::Dropped);
                }
            }
            Some((_, last)) if id > last + 1 => self.skip(last + 1, id - 1, SkipReason::Dropped),
            _ => {}
        }
        if let Some(clip) = &mut self.clip {
            clip.last_frame_id = clip.last_frame_id.max(id);
            clip.last_mono_ns = t;
        }
        self.end_failed_segment();
        if self.disk_low {
            self.skip(id, id, SkipReason::DiskLow);
            return false;
        }
        // Stream video: a segment ends (and the next starts) only at a key frame.
        let rotate = self.unit_key != Some(false)
            && self.segment.as_ref().is_some_and(|s| {
                s.size != (header.width, header.height)
                    || t.saturating_sub(s.first_mono_ns) as f64 >= self.config.segment_secs * 1e9
            });
        if rotate {
            self.finish_segment("segment-length");
        }
        // After a failed segment (this one or an earlier one), wait for the retry.
        if self.segment.is_none() && self.retry_at.is_some_and(|at| Instant::now() < at) {
            self.skip(id, id, SkipReason::Error);
            return false;
        }
        // The disk guard before every frame written (a statvfs, about a microsecond): below the
        // floor plus the reserve the segment is finished while there is still room to close it.
        self.frame_bytes = u64::from(header.width) * u64::from(header.height) * 3;
        self.check_disk();
        if self.disk_low {
            self.skip(id, id, SkipReason::DiskLow);
            return false;
        }
        match self.unit_key {
            Some(false) if self.need_key || self.segment.is_none() => {
                self.skip(id, id, SkipReason::KeyFrame);
                return false;
            }
            Some(true) => self.need_key = false,
            _ => {}
        }
        if self.segment.is_none() {
            let extra = self.segment_header_fields();
            match Segment::open(&self.spec, header, extra.as_ref()) {
                Ok(segment) => {
                    tracing::info!(camera = self.camera, segment = segment.base(), "segment started");
                    if let Some(clip) = &mut self.clip {
                        clip.parts += 1;
                        if clip.trigger_in.is_none() {
                            clip.trigger_in = Some(segment.base().to_string());
                        }
                    }
                    self.segment = Some(segment);
                    self.retry_at = None;
                    for skip in std::mem::take(&mut self.pending) {
                        let count = skip.last - skip.first + 1;
                        self.status.skipped -= count;
                        if let Some(clip) = &mut self.clip {
                            clip.skipped -= count;
                        }
                        self.skip(skip.first, skip.last, skip.reason);
                    }
                    self.update_state();
                }
                Err(e) => {
                    self.error("open", format!("starting a segment in `{}`: {e:#}", self.spec.directory.display()));
                    self.skip(id, id, SkipReason::Error);
                    self.retry_later();
                    return false;
                }
            }
        }
        true
    }

    /// What a new segment's header line says about its clip: the clip id and part, and in the
    /// first segment kept the trigger (time, results) and the pre-roll boundary.
    fn segment_header_fields(&self) -> Option<serde_json::Map<String, serde_json::Value>> {
        let clip = self.clip.as_ref()?;
        let mut fields = serde_json::Map::new();
        fields.insert("clip".into(), clip.id.clone().into());
        fields.insert("clip_part".into(), (clip.parts + 1).into());
        if clip.trigger_in.is_none() {
            fields.insert("trigger".into(), serde_json::to_value(&clip.trigger).unwrap_or_default());
            fields.insert("clip_first_frame_id".into(), clip.first_frame_id.into());
            fields.insert("first_live_frame_id".into(), clip.first_live_frame_id.into());
        }
        Some(fields)
    }

    /// Converts the frame to BGR into the recorder's own buffer (the only step that reads the
    /// sample).
    pub fn convert(&mut self, header: &FrameHeader, payload: &[u8]) -> bool {
        match to_bgr(header, payload, &mut self.bgr) {
            Ok(()) => true,
            Err(e) => {
                self.error("convert", format!("converting frame {}: {e}", header.frame_id));
                self.skip(header.frame_id, header.frame_id, SkipReason::Error);
                false
            }
        }
    }

    /// Writes the converted frame into the current segment (image when due, video, sidecar).
    /// A write error ends the segment (it is finished as `.failed`, see docs/recorder.md).
    pub fn save(&mut self, header: &FrameHeader) {
        let image_due = self.config.images != ImageFormat::Off && self.image_due();
        let Some(segment) = &mut self.segment else { return };
        let params = image_due.then_some(&self.spec.image_params);
        match segment.write(header, &self.bgr, params) {
            Ok(wrote_image) => {
                self.status.written += 1;
                if let Some(clip) = &mut self.clip {
                    clip.frames += 1;
                }
                self.latency.record_ns(clock::monotonic_ns().saturating_sub(header.capture_mono_ns));
                if wrote_image {
                    self.status.images += 1;
                    self.last_image = Some(Instant::now());
                }
            }
            Err(_) => {
                // Not in the video nor the sidecar: listed as skipped, then the segment ends.
                self.skip(header.frame_id, header.frame_id, SkipReason::Error);
                self.end_failed_segment();
            }
        }
    }

    /// `video = "stream"`: takes one access unit of the streamer (see [`stream`]): decides
    /// whether it is recorded (saving on, disk, key frames) and writes it into the segment. A
    /// new encoder run (the streamer restarted or reconnected) or a capture restart ends the
    /// segment; lost access units make the recorder wait for the next key frame.
    pub fn on_unit(&mut self, unit: &framebus_common::encoded::AccessUnitHeader, data: &[u8]) {
        let header = stream::frame_header(unit);
        let (run, sequence, id) = (unit.run, unit.sequence, unit.frame_id);
        match self.unit_last {
            Some((last_run, _, _)) if last_run != run => {
                tracing::info!(
                    camera = self.camera,
                    "the streamer started a new encoder run: new segment at its first key frame"
                );
                self.finish_segment("stream-restart");
                self.need_key = true;
            }
            Some((_, _, last_id)) if id <= last_id => {
                tracing::info!(camera = self.camera, "capture restarted (frame ids begin again at {id})");
                self.finish_segment("capture-restart");
                self.clip_last = None;
                self.need_key = true;
            }
            Some((_, last_sequence, _)) if sequence != last_sequence + 1 => {
                tracing::debug!(camera = self.camera, "access units lost before frame {id}: waiting for a key frame");
                self.need_key = true;
            }
            _ => {}
        }
        self.unit_last = Some((run, sequence, id));
        self.unit_key = Some(unit.is_key_frame());
        if self.on_frame(&header) == Disposition::Write {
            self.save_unit(&header, unit, data);
        }
    }

    /// Writes an admitted access unit into the current segment.
    fn save_unit(&mut self, header: &FrameHeader, unit: &framebus_common::encoded::AccessUnitHeader, data: &[u8]) {
        let Some(segment) = &mut self.segment else { return };
        match segment.write_unit(header, unit, data) {
            Ok(()) => {
                self.status.written += 1;
                if let Some(clip) = &mut self.clip {
                    clip.frames += 1;
                }
                self.latency.record_ns(clock::monotonic_ns().saturating_sub(header.capture_mono_ns));
            }
            Err(_) => {
                self.skip(header.frame_id, header.frame_id, SkipReason::Error);
                self.end_failed_segment();
                self.need_key = true;
            }
        }
    }

    fn image_due(&mut self) -> bool {
        let n = self.image_counter;
        self.image_counter += 1;
        if !n.is_multiple_of(u64::from(self.config.image_every)) {
            return false;
        }
        if self.config.image_max_fps > 0.0 {
            if let Some(last) = self.last_image {
                return last.elapsed().as_secs_f64() >= 1.0 / self.config.image_max_fps;
            }
        }
        true
    }

    /// Ends the current segment if a write into it failed: it is finished (kept as `.failed`
    /// unless its video still checks out), and no new segment starts before a retry delay,
    /// or before free space is back when the disk is low.
    fn end_failed_segment(&mut self) {
        let Some(error) = self.segment.as_ref().and_then(|s| s.error().map(str::to_string)) else { return };
        let base = self.segment.as_ref().map(|s| s.base().to_string()).unwrap_or_default();
        self.error("write", format!("writing segment `{base}`: {error}"));
        self.finish_segment("write-error");
        if self.retry_at.is_none() {
            self.retry_later();
        }
        // A full disk shows here and the guard takes over (resuming when space is back).
        self.check_disk();
    }

    /// No new segment before a delay that doubles while segments keep failing.
    fn retry_later(&mut self) {
        self.retry_wait = (self.retry_wait * 2).clamp(RETRY_FIRST, RETRY_MAX);
        self.retry_at = Some(Instant::now() + self.retry_wait);
        self.update_state();
    }

    /// Finishes the current segment: completed (the video checks out against the sidecar),
    /// failed (kept as `.failed`, a retry delay starts) or discarded (no frame saved; its
    /// skipped ranges go to the next segment). A finished segment is listed in its clip, and
    /// retention runs.
    fn finish_segment(&mut self, reason: &str) {
        let Some(segment) = self.segment.take() else {
            self.update_state();
            return;
        };
        let base = segment.base().to_string();
        let (frames, skipped) = (segment.frames, segment.skipped);
        let (first_frame_id, last_frame_id, ext) = (segment.first_frame_id, segment.last_frame_id, segment.video_ext());
        let entry = |status: &str, failed: bool| {
            let name = |e: &str| if failed { format!("{base}.failed.{e}") } else { format!("{base}.{e}") };
            ClipSegment {
                segment: base.clone(),
                video: ext.map(name),
                sidecar: name("jsonl"),
                frames,
                first_frame_id,
                last_frame_id,
                status: status.to_string(),
            }
        };
        let mut listed = None;
        match segment.finish(reason) {
            Finished::Completed { sidecar, error } => {
                self.status.segments += 1;
                self.status.bytes_written += disk::segment_bytes(&self.spec.directory.join(&base));
                if error.is_none() {
                    self.retry_wait = Duration::ZERO;
                }
                tracing::info!(
                    camera = self.camera,
                    segment = base,
                    frames,
                    skipped,
                    reason,
                    "segment completed: {}",
                    sidecar.display()
                );
                listed = Some(entry("completed", false));
            }
            Finished::Failed { error, sidecar } => {
                self.status.failed_segments += 1;
                self.status.bytes_written += disk::segment_bytes(&self.spec.directory.join(&base));
                self.error(
                    "finish",
                    format!(
                        "segment `{base}` is incomplete ({frames} frames listed) and kept as `{}`: {error}",
                        sidecar.display()
                    ),
                );
                let failed = sidecar.to_string_lossy().contains(".failed.");
                listed = Some(entry("failed", failed));
                if self.retry_at.is_none() {
                    self.retry_later();
                }
            }
            Finished::Discarded { error, skips } => {
                if let Some(error) = error {
                    self.status.failed_segments += 1;
                    self.error("finish", format!("segment `{base}` saved no frame and was deleted: {error}"));
                }
                if let Some(clip) = &mut self.clip {
                    if clip.trigger_in.as_deref() == Some(base.as_str()) {
                        // The next segment of the clip carries its trigger instead.
                        clip.trigger_in = None;
                    }
                }
                for skip in skips {
                    self.push_pending(skip);
                }
            }
        }
        if let (Some(entry), Some(clip)) = (listed, self.clip.as_mut()) {
            clip.segments.push(entry);
        }
        self.update_state();
        self.apply_retention();
    }

    /// Bytes kept free on top of `min-free-mb`: the room the recorder needs to finish the
    /// current segment cleanly (its index grows with its frames) and to write the next frame.
    pub fn reserve_bytes(&self) -> u64 {
        let frames = self.segment.as_ref().map_or(0, |s| s.frames);
        RESERVE_BASE
            .saturating_add(RESERVE_FRAMES.saturating_mul(self.frame_bytes))
            .saturating_add(RESERVE_PER_FRAME.saturating_mul(frames))
    }

    /// Why `space` is too little (bytes or inodes below the floor plus the reserve; `slack`
    /// extra of each is asked for to resume, so the state does not flap), or `None`.
    fn shortage(&self, space: Space, slack: bool) -> Option<String> {
        let reserve = self.reserve_bytes();
        let need = self.config.min_free_bytes().saturating_add(reserve).saturating_add(if slack { reserve } else { 0 });
        let dir = self.spec.directory.display();
        if space.bytes < need {
            return Some(format!(
                "free space on `{dir}` is {} MiB, below the floor of {} MiB (min-free-mb) + {:.1} MiB the recorder keeps to close its segment",
                space.bytes / (1024 * 1024),
                self.config.min_free_mb,
                reserve as f64 / (1024.0 * 1024.0)
            ));
        }
        let inode_need = self.config.min_free_inodes.saturating_add(INODE_RESERVE * if slack { 2 } else { 1 });
        match space.inodes {
            Some(inodes) if inodes < inode_need => Some(format!(
                "free inodes on `{dir}`: {inodes}, below the floor of {} (min-free-inodes) + {INODE_RESERVE} the recorder keeps",
                self.config.min_free_inodes
            )),
            _ => None,
        }
    }

    /// The disk guard: measures free space and inodes; below the floor plus the reserve
    /// deletes the oldest finished segments (when allowed) and, if still below, finishes the
    /// segment (there is still room to close it) and stops writing with an error until space
    /// is back. Runs before every frame written and on the housekeeping timer.
    pub fn check_disk(&mut self) {
        let dir = &self.spec.directory;
        let mut space = match disk::space(dir) {
            Ok(space) => space,
            Err(e) => {
                let message = format!("measuring free space of `{}`: {e}", dir.display());
                self.error("statvfs", message);
                return;
            }
        };
        let active = self.active();
        if active && self.config.delete_oldest && self.shortage(space, self.disk_low).is_some() {
            space = self.delete_oldest(space);
        }
        self.status.free_bytes = space.bytes;
        self.status.free_inodes = space.inodes;
        self.status.reserve_bytes = self.reserve_bytes();
        let shortage = self.shortage(space, self.disk_low);
        match shortage {
            Some(why) if !self.disk_low && active => {
                self.disk_low = true;
                self.finish_segment("disk-low");
                self.low_reason = Some(why.clone());
                self.error("disk-low", format!("{why}: stopped writing until space is back"));
                self.update_state();
            }
            None if self.disk_low => {
                self.disk_low = false;
                self.low_reason = None;
                // Space is back: whatever failed for want of it may be tried again now.
                self.retry_at = None;
                tracing::info!(
                    camera = self.camera,
                    free_mib = space.bytes / (1024 * 1024),
                    free_inodes = space.inodes,
                    "free space is back above the floor: writing again"
                );
                self.update_state();
            }
            _ => {}
        }
    }

    fn delete_oldest(&mut self, mut space: Space) -> Space {
        let segments = match disk::finished_segments(&self.spec.directory, &self.camera) {
            Ok(s) => s,
            Err(e) => {
                self.error("delete", format!("listing segments in `{}`: {e}", self.spec.directory.display()));
                return space;
            }
        };
        for base in segments {
            if self.shortage(space, self.disk_low).is_none() {
                break;
            }
            match disk::delete_segment(&base) {
                Ok(bytes) => {
                    self.status.deletions += 1;
                    tracing::warn!(
                        camera = self.camera,
                        freed = bytes,
                        "deleted the oldest segment `{}` to free space",
                        base.display()
                    );
                    self.journal_deletion(&base, "disk-floor", bytes);
                }
                Err(e) => {
                    self.error("delete", format!("deleting segment `{}`: {e}", base.display()));
                    break;
                }
            }
            space = disk::space(&self.spec.directory).unwrap_or(space);
        }
        space
    }

    fn journal_deletion(&mut self, base: &Path, reason: &str, bytes: u64) {
        let segment = base.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        self.journal.write(&JournalRecord::SegmentDeleted {
            utc: clock::format_utc(clock::realtime_ns()),
            segment,
            reason: reason.to_string(),
            bytes,
        });
    }

    /// Retention: deletes this camera's finished segments (completed or failed, never the one
    /// being written) older than `max-age-days`, then the oldest while all of them hold more
    /// than `max-total-mb`. Every deletion is logged, counted and journaled.
    pub fn apply_retention(&mut self) {
        self.retention_at = Instant::now();
        let max_age = self.config.max_age_days.map(|days| Duration::from_secs_f64(days * 86_400.0));
        let max_total = self.config.max_total_mb.map(|mb| mb.saturating_mul(1024 * 1024));
        if max_age.is_none() && max_total.is_none() {
            return;
        }
        let dir = self.spec.directory.clone();
        let segments = match disk::finished_segments_with_sizes(&dir, &self.camera) {
            Ok(segments) => segments,
            Err(e) => {
                self.error("retention", format!("listing segments in `{}`: {e}", dir.display()));
                return;
            }
        };
        let current = self.segment.as_ref().map_or(0, |s| disk::partial_bytes(&dir.join(s.base())));
        for (i, why) in disk::retention_plan(&segments, current, SystemTime::now(), max_age, max_total) {
            let segment = &segments[i];
            match disk::delete_segment(&segment.base) {
                Ok(bytes) => {
                    self.status.deletions += 1;
                    tracing::info!(
                        camera = self.camera,
                        freed = bytes,
                        "retention ({}): deleted segment `{}`",
                        why.name(),
                        segment.base.display()
                    );
                    self.journal_deletion(&segment.base, why.name(), bytes);
                }
                Err(e) => {
                    self.error("delete", format!("retention: deleting segment `{}`: {e}", segment.base.display()));
                    break;
                }
            }
        }
    }

    /// Periodic housekeeping: disk guard, sidecar flush (which notices a full disk within the
    /// period), the end of a clip whose frames stopped coming, retention, rate-limited error
    /// lines.
    pub fn housekeeping(&mut self) {
        self.check_disk();
        if let Some(segment) = &mut self.segment {
            // A failed flush fails the segment; it is ended right below.
            let _ = segment.flush();
        }
        self.end_failed_segment();
        if self.active() && !self.disk_low && self.retry_at.is_some_and(|at| Instant::now() >= at) {
            // The retry is due: the next frame starts a segment.
            self.retry_at = None;
            self.update_state();
        }
        // Capture stopped (or the file ended) during a post-roll: no later frame will end it.
        let now = clock::monotonic_ns();
        if self.held.is_empty()
            && self.windows.current().is_some_and(|w| !w.manual && now > w.until_ns.saturating_add(IDLE_CLOSE_NS))
        {
            self.close_window("post-roll");
        }
        if self.retention_at.elapsed() >= RETENTION_EVERY {
            self.apply_retention();
        }
        self.update_state();
    }

    /// Closes the statistics interval and returns the status as one JSON line.
    pub fn report_line(&mut self) -> String {
        let elapsed = self.interval_start.elapsed().as_secs_f64();
        if elapsed > 0.0 {
            self.status.fps = (self.status.frames - self.frames_at) as f64 / elapsed;
            self.status.write_fps = (self.status.written - self.written_at) as f64 / elapsed;
        }
        self.interval_start = Instant::now();
        self.frames_at = self.status.frames;
        self.written_at = self.status.written;
        self.status.latency_p50_us = self.latency.percentile_us(50.0);
        self.status.latency_p99_us = self.latency.percentile_us(99.0);
        self.latency.clear();
        self.update_state();
        let s = &self.status;
        serde_json::json!({
            "camera": self.camera,
            "state": s.state.name(),
            "saving": self.saving,
            "frames": s.frames,
            "written": s.written,
            "images": s.images,
            "skipped": s.skipped,
            "errors": s.errors,
            "last_error": s.last_error,
            "segments": s.segments,
            "failed_segments": s.failed_segments,
            "segment": s.segment,
            "bytes_written": s.bytes_written,
            "deletions": s.deletions,
            "clip": s.clip,
            "clips": s.clips,
            "triggers": s.triggers,
            "missed_triggers": s.missed_triggers,
            "held_frames": s.held_frames,
            "held_bytes": s.held_bytes,
            "held_secs": (s.held_secs * 100.0).round() / 100.0,
            "held_dropped": s.held_dropped,
            "pre_roll_estimate_bytes": self.held_estimate,
            "last_frame_id": self.newest.map_or(0, |n| n.frame_id),
            "free_mb": s.free_bytes / (1024 * 1024),
            "free_inodes": s.free_inodes,
            "reserve_mb": (s.reserve_bytes as f64 / (1024.0 * 1024.0) * 10.0).ceil() / 10.0,
            "min_free_mb": self.config.min_free_mb,
            "min_free_inodes": self.config.min_free_inodes,
            "fps": (s.fps * 10.0).round() / 10.0,
            "write_fps": (s.write_fps * 10.0).round() / 10.0,
            "latency_p50_us": s.latency_p50_us,
            "latency_p99_us": s.latency_p99_us,
            "directory": self.spec.directory.display().to_string(),
            "journal": self.journal.path().display().to_string(),
        })
        .to_string()
    }

    /// Finishes at a stop: the held frames the clip still wants are written (for at most
    /// 5 s; the rest are listed as skipped), then the clip and its segment end, so
    /// the files play.
    pub fn finish(&mut self) {
        let deadline = Instant::now() + STOP_FLUSH;
        while let Some(front) = self.held.front().copied() {
            let t = front.capture_mono_ns;
            self.settle(t);
            if !self.windows.current().is_some_and(|w| w.wants(t)) {
                self.held.drop_front();
                continue;
            }
            if Instant::now() < deadline {
                self.write_held();
            } else {
                if self.clip.is_some() {
                    self.skip(front.frame_id, front.frame_id, SkipReason::Stop);
                }
                self.held.drop_front();
            }
        }
        self.close_all("stop");
    }

    /// Ends the clip (or segment) being written and forgets every window.
    fn close_all(&mut self, reason: &str) {
        if self.clip.is_some() {
            self.end_clip(reason);
        } else {
            self.finish_segment(reason);
        }
        while self.windows.any() {
            self.windows.close_current(None);
        }
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

/// The housekeeping timer of both recorder loops: a SIGHUP re-reads the disk-guard and
/// retention settings, then the disk guard and retention run and the status is refreshed.
fn housekeeping_tick(deployment: &Deployment, camera: &str, recorder: &mut Recorder, reader: &Camera) {
    if signals::take_hangup() {
        tracing::info!(
            camera,
            "SIGHUP: re-reading the disk-guard and retention settings from {}",
            deployment.source_file.display()
        );
        reload_settings(&deployment.source_file, camera, recorder);
    }
    recorder.housekeeping();
    reader.report(|r| *r = recorder.report());
}

/// The statistics timer of both recorder loops: the status line, on stdout with `--json`.
fn print_stats(recorder: &mut Recorder, json: bool) {
    let line = recorder.report_line();
    if json {
        println!("{line}");
    }
}

fn reload_settings(config_file: &Path, camera: &str, recorder: &mut Recorder) {
    match Deployment::load(config_file).map_err(anyhow::Error::from).and_then(|d| {
        let cam = d.camera(Some(camera))?;
        cam.recorder.clone().ok_or_else(|| anyhow!("camera `{camera}` has no [camera.recorder] table any more"))
    }) {
        Ok(cfg) => {
            recorder.set_disk_guard(cfg.min_free_mb, cfg.min_free_inodes, cfg.delete_oldest);
            recorder.set_retention(cfg.max_age_days, cfg.max_total_mb);
        }
        Err(e) => tracing::error!(camera, "SIGHUP: keeping the current disk-guard and retention settings: {e:#}"),
    }
}

/// How often the disk guard looks at free space.
const HOUSEKEEPING: Duration = Duration::from_millis(250);

/// Runs the recorder of `camera` until SIGINT/SIGTERM or `ctl stop <camera> recorder`;
/// finalizes the current segment and returns the final status.
pub fn run(
    deployment: &Deployment,
    camera: &CameraConfig,
    options: &RecorderOptions,
) -> anyhow::Result<RecorderStatus> {
    let cam = camera.name.as_str();
    let config = camera.recorder.clone().unwrap_or_default();
    let directory = deployment.resolve_path(&config.directory);
    let stats_interval = Duration::from_secs_f64(config.stats_interval_secs);
    let stream_video = config.video == framebus_common::config::VideoFormat::Stream;
    let mut recorder = Recorder::new(camera, config, directory)?;
    signals::install_hangup();
    if stream_video {
        return stream::run_stream(deployment, camera, options, recorder, stats_interval);
    }

    // Precedence: --saving (recorded like a command, so a restart without it resumes it), else
    // the camera's recorded flag (a killed recorder resumes saving), else `enabled` from the
    // config (the control server resolves those two).
    let mut builder = Camera::builder_for(deployment, Some(cam))
        .role(ProcessRole::Recorder.name())?
        .stats_interval(stats_interval)
        .handles_saving();
    if let Some(on) = options.saving {
        builder = builder.record(Command::SetSaving(on));
    }
    let reader = builder.open()?;
    let triggered = recorder.has_triggers();
    if triggered {
        // Subscribes now: results published from here on are seen.
        reader.results().with_context(|| format!("camera `{cam}`: reading results for the recorder's triggers"))?;
    }
    recorder.set_saving(reader.flags().saving);
    reader.report(|r| *r = recorder.report());
    let house = reader.add_timer(HOUSEKEEPING);
    let stats = reader.add_timer(stats_interval);
    let budget = recorder.budget();
    let mut results_failed = false;

    let outcome = (|| loop {
        let event = reader.next_event()?;
        if triggered {
            // Every turn, before the frame: a result about it decides whether it is wanted.
            match reader.results() {
                Ok(results) => recorder.on_results(&results),
                Err(e) if !results_failed => {
                    results_failed = true;
                    tracing::error!(camera = cam, "reading results: {e}");
                }
                Err(_) => {}
            }
        }
        match event {
            Event::Frame(frame) => {
                let header = *frame.header();
                if header.is_current_layout() {
                    match recorder.on_frame(&header) {
                        Disposition::Write => {
                            let converted = recorder.convert(&header, frame.bytes());
                            // The sample is released before the slow part (encode, disk).
                            drop(frame);
                            if converted {
                                recorder.save(&header);
                            }
                        }
                        Disposition::Hold => {
                            let encode = recorder.hold_received(&header, frame.bytes());
                            drop(frame);
                            if encode {
                                recorder.hold_converted(&header);
                            }
                        }
                        Disposition::Ignore => {}
                    }
                }
            }
            Event::Command(Command::SetSaving(on)) => {
                recorder.set_saving(on);
                reader.report(|r| *r = recorder.report());
            }
            Event::Command(_) => {}
            Event::Timer(timer) if timer == house => housekeeping_tick(deployment, cam, &mut recorder, &reader),
            Event::Timer(timer) if timer == stats => print_stats(&mut recorder, options.json),
            Event::Timer(_) => {}
            Event::Stop(_) => return Ok::<(), anyhow::Error>(()),
        }
        recorder.pump(Some(budget));
    })();
    // Off the bus first: the held frames a clip still wants may take a few seconds to write,
    // and `ctl stop` should see the process gone from control meanwhile.
    drop(reader);
    recorder.finish();
    let line = recorder.report_line();
    if options.json {
        println!("{line}");
    }
    outcome?;
    Ok(recorder.status())
}

#[cfg(test)]
mod tests;
