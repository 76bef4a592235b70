//! The recorder process: a reader of one camera on the reader loop (crate `framebus`, policy
//! `every`, a deeper queue to ride out slow writes) that, while saving is on,
//! writes video segments and/or images with a sidecar index (JSON lines) that lists every frame
//! saved and every frame skipped. A disk guard stops writing below a free-space floor and
//! resumes when space is back (optionally deleting the oldest segments first).
//!
//! The saving state lives in [`Recorder`] and changes only through [`Recorder::set_saving`],
//! which the loop calls for `ctl record on|off` (a command event of the reader loop, whose
//! control thread answers status with [`Recorder::report`]). The
//! initial state is the camera's recorded saving flag (so a killed, restarted recorder resumes
//! saving), else `[camera.recorder] enabled`; `--saving` on the command line is recorded like a
//! command. SIGHUP re-reads the disk-guard settings (`min-free-mb`, `min-free-inodes`,
//! `delete-oldest`) from the config file.

pub mod disk;
pub mod segment;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use framebus::{Camera, Command, Event, ProcessReport, ProcessState};
use framebus_common::config::{ImageFormat, RecorderConfig};
use framebus_common::control::{FourccText, FrameFormat};
use framebus_common::stats::LatencyWindow;
use framebus_common::{clock, signals, CameraConfig, Deployment, FrameHeader, ProcessRole};
use framebus_vision::opencv::core::{Mat, Vector};
use framebus_vision::opencv::imgcodecs;
use framebus_vision::to_bgr;

use crate::disk::Space;
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
    /// Saving is off: frames are only counted.
    #[default]
    Off,
    /// Saving is on and frames are written.
    Recording,
    /// Saving is on but free space or free inodes are below the floor (plus the reserve):
    /// nothing is written until they are back.
    DiskLow,
    /// Saving is on but the last segment failed to write (an I/O error the free-space figures
    /// do not explain: EIO, a quota): nothing is written until the retry.
    WriteError,
}

impl RecorderState {
    /// Name used in status lines.
    pub fn name(self) -> &'static str {
        match self {
            RecorderState::Off => "off",
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
    /// Frames not saved while saving was on (queue overflow, disk low, errors).
    pub skipped: u64,
    /// Errors (disk low, failed writes, failed conversions).
    pub errors: u64,
    /// The last error.
    pub last_error: Option<String>,
    /// Segments completed (finalized) by this run.
    pub segments: u64,
    /// Bytes of the segments this run finished (completed or failed): video, sidecar, images.
    pub bytes_written: u64,
    /// Old segments this run deleted (disk floor).
    pub deletions: u64,
    /// Segments that failed to write by this run (kept as `.failed`, or deleted when empty).
    pub failed_segments: u64,
    /// Base name of the segment being written.
    pub segment: Option<String>,
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
    /// Capture → frame written latency, median over the last interval, microseconds.
    pub latency_p50_us: Option<u64>,
    /// Same, 99th percentile.
    pub latency_p99_us: Option<u64>,
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
}

/// Most pending skip ranges kept; later ones merge into the last (the count stays exact).
const MAX_PENDING: usize = 4096;

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
        let spec = SegmentSpec {
            camera: camera.name.clone(),
            directory,
            video: config.video,
            video_fps: config.effective_video_fps(camera.fps),
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
        let mut recorder = Recorder {
            camera: camera.name.clone(),
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
        Ok(recorder)
    }

    /// Turns saving on or off (what a control service calls for "record on/off"). Turning it
    /// off finalizes the current segment, so it plays.
    pub fn set_saving(&mut self, on: bool) {
        if on == self.saving {
            return;
        }
        tracing::info!(camera = self.camera, directory = %self.spec.directory.display(), "saving {}", if on { "on" } else { "off" });
        self.saving = on;
        if on {
            self.image_counter = 0;
            self.pending.clear();
            // A command to save is also a request to try again now.
            self.retry_at = None;
            self.check_disk();
        } else {
            self.finish_segment("saving-off");
            self.pending.clear();
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
    /// latency, and a one-line summary (`off`, `recording ...`, `disk-low: ...`,
    /// `write-error ...`).
    pub fn report(&self) -> ProcessReport {
        let s = &self.status;
        let failed = match s.failed_segments {
            0 => String::new(),
            n => format!(" ({n} segment(s) failed)"),
        };
        let mut message = match s.state {
            RecorderState::Off => format!("off: {} segment(s) completed{failed}", s.segments),
            RecorderState::Recording => format!(
                "recording {}: {} written, {} images, {} segment(s) completed{failed}",
                s.segment.as_deref().unwrap_or("(waiting for frames)"),
                s.written,
                s.images,
                s.segments
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
        if matches!(s.state, RecorderState::Off | RecorderState::Recording) {
            if let Some(error) = &s.last_error {
                message.push_str(&format!("; {} error(s), last: {error}", s.errors));
            }
        }
        ProcessReport {
            state: matches!(s.state, RecorderState::DiskLow | RecorderState::WriteError)
                .then_some(ProcessState::Degraded),
            message,
            saving: Some(self.saving),
            latency_us: self.saving.then_some((s.latency_p50_us, s.latency_p99_us)),
            bytes_written: s.bytes_written,
            segments: s.segments,
            deletions: s.deletions,
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

    fn update_state(&mut self) {
        self.status.state = match (self.saving, self.disk_low, self.retry_at.is_some()) {
            (false, _, _) => RecorderState::Off,
            (true, true, _) => RecorderState::DiskLow,
            (true, false, true) => RecorderState::WriteError,
            (true, false, false) => RecorderState::Recording,
        };
        let current = self.segment.as_ref().map(Segment::base);
        if self.status.segment.as_deref() != current {
            self.status.segment = current.map(str::to_string);
        }
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

    /// Lists frames not saved: in the open segment, or pending for the next one.
    fn skip(&mut self, first: u64, last: u64, reason: SkipReason) {
        self.status.skipped += last - first + 1;
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

    /// Accounts a received frame; returns whether it is to be saved (the caller then calls
    /// [`Recorder::convert`] while holding the sample and [`Recorder::save`] after releasing it).
    pub fn on_frame(&mut self, header: &FrameHeader) -> bool {
        self.status.frames += 1;
        self.format =
            Some(FrameFormat { width: header.width, height: header.height, fourcc: FourccText(header.pixel_format) });
        let id = header.frame_id;
        let previous = self.last_id.replace((header.run_id, id));
        if let Some((run, last)) = previous {
            if run != header.run_id {
                // Capture restarted (a new run, ids begin again at 1): the segment ends here.
                tracing::info!(camera = self.camera, "capture restarted (frame ids begin again at {id})");
                self.finish_segment("capture-restart");
                self.pending.clear();
                if id > 1 && self.saving {
                    self.skip(1, id - 1, SkipReason::Dropped);
                }
            } else if id > last + 1 && self.saving {
                self.skip(last + 1, id - 1, SkipReason::Dropped);
            }
        }
        if !self.saving {
            return false;
        }
        self.end_failed_segment();
        if self.disk_low {
            self.skip(id, id, SkipReason::DiskLow);
            return false;
        }
        let rotate = self.segment.as_ref().is_some_and(|s| {
            s.size != (header.width, header.height)
                || header.capture_mono_ns.saturating_sub(s.first_mono_ns) as f64 >= self.config.segment_secs * 1e9
        });
        if rotate {
            self.finish_segment("segment-length");
        }
        // After a failed segment (this one or an earlier one), wait for the retry.
        if self.segment.is_none() && self.retry_at.is_some_and(|at| Instant::now() < at) {
            self.skip(id, id, SkipReason::Error);
            return false;
        }
        // The disk guard before every frame (a statvfs, about a microsecond): below the floor
        // plus the reserve the segment is finished while there is still room to close it.
        self.frame_bytes = u64::from(header.width) * u64::from(header.height) * 3;
        self.check_disk();
        if self.disk_low {
            self.skip(id, id, SkipReason::DiskLow);
            return false;
        }
        if self.segment.is_none() {
            match Segment::open(&self.spec, header) {
                Ok(segment) => {
                    tracing::info!(camera = self.camera, segment = segment.base(), "segment started");
                    self.segment = Some(segment);
                    self.retry_at = None;
                    for skip in std::mem::take(&mut self.pending) {
                        self.status.skipped -= skip.last - skip.first + 1;
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
    /// A write error ends the segment (it is finished as `.failed`, see ARCHITECTURE.md).
    pub fn save(&mut self, header: &FrameHeader) {
        let image_due = self.config.images != ImageFormat::Off && self.image_due();
        let Some(segment) = &mut self.segment else { return };
        let params = image_due.then_some(&self.spec.image_params);
        match segment.write(header, &self.bgr, params) {
            Ok(wrote_image) => {
                self.status.written += 1;
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
    /// skipped ranges go to the next segment).
    fn finish_segment(&mut self, reason: &str) {
        if let Some(segment) = self.segment.take() {
            let base = segment.base().to_string();
            let (frames, skipped) = (segment.frames, segment.skipped);
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
                    if self.retry_at.is_none() {
                        self.retry_later();
                    }
                }
                Finished::Discarded { error, skips } => {
                    if let Some(error) = error {
                        self.status.failed_segments += 1;
                        self.error("finish", format!("segment `{base}` saved no frame and was deleted: {error}"));
                    }
                    for skip in skips {
                        self.push_pending(skip);
                    }
                }
            }
        }
        self.update_state();
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
        if self.saving && self.config.delete_oldest && self.shortage(space, self.disk_low).is_some() {
            space = self.delete_oldest(space);
        }
        self.status.free_bytes = space.bytes;
        self.status.free_inodes = space.inodes;
        self.status.reserve_bytes = self.reserve_bytes();
        let shortage = self.shortage(space, self.disk_low);
        match shortage {
            Some(why) if !self.disk_low && self.saving => {
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
                    )
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

    /// Periodic housekeeping: disk guard, sidecar flush (which notices a full disk within the
    /// period), rate-limited error lines.
    pub fn housekeeping(&mut self) {
        self.check_disk();
        if let Some(segment) = &mut self.segment {
            // A failed flush fails the segment; it is ended right below.
            let _ = segment.flush();
        }
        self.end_failed_segment();
        if self.saving && !self.disk_low && self.retry_at.is_some_and(|at| Instant::now() >= at) {
            // The retry is due: the next frame starts a segment.
            self.retry_at = None;
            self.update_state();
        }
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
        })
        .to_string()
    }

    /// Finalizes the current segment (stop): the file plays.
    pub fn finish(&mut self) {
        self.finish_segment("stop");
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        // Every exit path but SIGKILL leaves a playable, renamed segment.
        self.finish_segment("stop");
    }
}

fn reload_disk_guard(config_file: &Path, camera: &str, recorder: &mut Recorder) {
    match Deployment::load(config_file).map_err(anyhow::Error::from).and_then(|d| {
        let cam = d.camera(Some(camera))?;
        cam.recorder.clone().ok_or_else(|| anyhow!("camera `{camera}` has no [camera.recorder] table any more"))
    }) {
        Ok(cfg) => recorder.set_disk_guard(cfg.min_free_mb, cfg.min_free_inodes, cfg.delete_oldest),
        Err(e) => tracing::error!(camera, "SIGHUP: keeping the current disk-guard settings: {e:#}"),
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
    let mut recorder = Recorder::new(camera, config, directory)?;
    signals::install_hangup();

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
    recorder.set_saving(reader.flags().saving);
    reader.report(|r| *r = recorder.report());
    let house = reader.add_timer(HOUSEKEEPING);
    let stats = reader.add_timer(stats_interval);

    let outcome = (|| loop {
        match reader.next_event()? {
            Event::Frame(frame) => {
                let header = *frame.header();
                if header.is_current_layout() && recorder.on_frame(&header) {
                    let converted = recorder.convert(&header, frame.bytes());
                    // The sample is released before the slow part (encode, disk).
                    drop(frame);
                    if converted {
                        recorder.save(&header);
                    }
                }
            }
            Event::Command(Command::SetSaving(on)) => {
                recorder.set_saving(on);
                reader.report(|r| *r = recorder.report());
            }
            Event::Command(_) => {}
            Event::Timer(timer) if timer == house => {
                if signals::take_hangup() {
                    tracing::info!(
                        camera = cam,
                        "SIGHUP: re-reading the disk-guard settings from {}",
                        deployment.source_file.display()
                    );
                    reload_disk_guard(&deployment.source_file, cam, &mut recorder);
                }
                recorder.housekeeping();
                reader.report(|r| *r = recorder.report());
            }
            Event::Timer(timer) if timer == stats => {
                let line = recorder.report_line();
                if options.json {
                    println!("{line}");
                }
            }
            Event::Timer(_) => {}
            Event::Stop(_) => return Ok::<(), anyhow::Error>(()),
        }
    })();
    recorder.finish();
    let line = recorder.report_line();
    if options.json {
        println!("{line}");
    }
    outcome?;
    Ok(recorder.status())
}
