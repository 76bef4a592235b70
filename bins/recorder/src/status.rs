//! What the recorder reports: its state, its counters ([`RecorderStatus`]), the rates and
//! latency of the last statistics interval ([`Rates`], on `common::stats::StatusWindow`), the
//! one-line summary of `ctl status` and the JSON status line of `--json`.

use std::time::Duration;

use framebus::{ProcessReport, ProcessState};
use framebus_common::figures::{DiskGuard, Figures, LastEvent, RecorderEvents};
use framebus_common::journal::{Trigger, TriggerSource};
use framebus_common::stats::StatusWindow;

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

/// Frame rates and write latency over the statistics interval: one window of frames
/// received, one of frames written (with their capture → written latency).
#[derive(Debug, Clone)]
pub struct Rates {
    received: StatusWindow,
    written: StatusWindow,
}

impl Default for Rates {
    fn default() -> Rates {
        Rates::new()
    }
}

impl Rates {
    /// Windows closed whenever the statistics timer asks ([`Rates::close`]).
    pub fn new() -> Rates {
        Rates { received: StatusWindow::new(Duration::ZERO), written: StatusWindow::new(Duration::ZERO) }
    }

    /// Records the capture → written latency of a frame written.
    pub fn record_written_ns(&mut self, latency_ns: u64) {
        self.written.record_ns(latency_ns);
    }

    /// Closes the interval: the rates and latency percentiles since the last close go into
    /// `status`.
    pub fn close(&mut self, status: &mut RecorderStatus) {
        self.received.roll(status.frames);
        self.written.roll(status.written);
        status.fps = self.received.fps;
        status.write_fps = self.written.fps;
        status.latency_p50_us = self.written.p50_us;
        status.latency_p99_us = self.written.p99_us;
    }
}

/// What the one-line summary says beyond the counters.
#[derive(Debug, Clone, Copy)]
pub struct Summary<'a> {
    /// Saving on.
    pub saving: bool,
    /// Triggers configured.
    pub triggers: usize,
    /// Why the disk guard stopped writing.
    pub low_reason: Option<&'a str>,
    /// Time left before a failed segment's retry.
    pub retry_in: Option<Duration>,
    /// The floor of the disk guard (`min-free-mb`), bytes.
    pub min_free_bytes: u64,
}

/// The event of a trigger, as the recorder's figures report it: its time and a label (the
/// first box label of the result that caused it, else its producer; `manual`, `continued`).
pub fn last_event(trigger: &Trigger) -> LastEvent {
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

/// The recorder's events as `ctl status` and the metrics carry them.
fn figures(s: &RecorderStatus, summary: Summary<'_>) -> Figures {
    Figures::Recorder(RecorderEvents {
        clips: s.clips,
        triggers: s.triggers,
        missed_triggers: s.missed_triggers,
        preroll_frames: s.held_frames,
        preroll_bytes: s.held_bytes,
        last_event: s.last_event.clone(),
        disk_guard: DiskGuard {
            state: if summary.low_reason.is_some() { "low" } else { "ok" }.to_string(),
            free_bytes: s.free_bytes,
            min_free_bytes: summary.min_free_bytes,
        },
    })
}

pub(crate) fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// The one-line summary (`off`, `armed …`, `recording ...`, `disk-low: ...`, `write-error ...`).
fn message(s: &RecorderStatus, summary: Summary<'_>) -> String {
    let failed = match s.failed_segments {
        0 => String::new(),
        n => format!(" ({n} segment(s) failed)"),
    };
    let mut message = match s.state {
        RecorderState::Off => format!("off: {} segment(s) completed{failed}", s.segments),
        RecorderState::Armed => format!(
            "armed: {}, pre-roll {:.1} s held ({} frames, {:.1} MiB); {} clip(s), {} segment(s) completed{failed}",
            match summary.triggers {
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
            format!("disk-low{failed}: {}", summary.low_reason.unwrap_or("free space below the floor"))
        }
        RecorderState::WriteError => format!(
            "write-error (retry in {:.0} s){failed}: {}",
            summary.retry_in.map_or(0.0, |d| d.as_secs_f64()),
            s.last_error.as_deref().unwrap_or("a segment failed to write")
        ),
    };
    if matches!(s.state, RecorderState::Off | RecorderState::Armed | RecorderState::Recording) {
        if let Some(error) = &s.last_error {
            message.push_str(&format!("; {} error(s), last: {error}", s.errors));
        }
    }
    message
}

/// What the control reply adds to the reader figures: the saving flag as acted on, state
/// `degraded` while the disk is below the floor or after a write error, frame-written
/// latency, and the one-line summary.
pub fn process_report(s: &RecorderStatus, summary: Summary<'_>) -> ProcessReport {
    ProcessReport {
        state: matches!(s.state, RecorderState::DiskLow | RecorderState::WriteError).then_some(ProcessState::Degraded),
        message: message(s, summary),
        saving: Some(summary.saving),
        latency_us: (s.state == RecorderState::Recording || summary.saving)
            .then_some((s.latency_p50_us, s.latency_p99_us)),
        bytes_written: s.bytes_written,
        segments: s.segments,
        deletions: s.deletions,
        figures: Some(figures(s, summary)),
        ..ProcessReport::default()
    }
}

/// The status line's fields that are not counters.
#[derive(Debug, Clone)]
pub struct LineContext<'a> {
    /// Camera name.
    pub camera: &'a str,
    /// Saving on.
    pub saving: bool,
    /// Estimated bytes of the full pre-roll.
    pub pre_roll_estimate_bytes: u64,
    /// Id of the newest frame received.
    pub last_frame_id: u64,
    /// `min-free-mb`.
    pub min_free_mb: u64,
    /// `min-free-inodes`.
    pub min_free_inodes: u64,
    /// Folder of the recordings.
    pub directory: &'a std::path::Path,
    /// The events journal.
    pub journal: &'a std::path::Path,
}

/// The status as one JSON line (`--json`).
pub fn status_line(s: &RecorderStatus, c: &LineContext<'_>) -> String {
    serde_json::json!({
        "camera": c.camera,
        "state": s.state.name(),
        "saving": c.saving,
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
        "pre_roll_estimate_bytes": c.pre_roll_estimate_bytes,
        "last_frame_id": c.last_frame_id,
        "free_mb": s.free_bytes / (1024 * 1024),
        "free_inodes": s.free_inodes,
        "reserve_mb": (s.reserve_bytes as f64 / (1024.0 * 1024.0) * 10.0).ceil() / 10.0,
        "min_free_mb": c.min_free_mb,
        "min_free_inodes": c.min_free_inodes,
        "fps": (s.fps * 10.0).round() / 10.0,
        "write_fps": (s.write_fps * 10.0).round() / 10.0,
        "latency_p50_us": s.latency_p50_us,
        "latency_p99_us": s.latency_p99_us,
        "directory": c.directory.display().to_string(),
        "journal": c.journal.display().to_string(),
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary() -> Summary<'static> {
        Summary { saving: false, triggers: 2, low_reason: None, retry_in: None, min_free_bytes: 0 }
    }

    /// Each state has its summary; disk-low and write-error report the process degraded.
    #[test]
    fn each_state_has_its_summary_and_trouble_is_degraded() {
        let mut s =
            RecorderStatus { state: RecorderState::Armed, held_frames: 150, held_secs: 5.0, ..Default::default() };
        let armed = process_report(&s, summary());
        assert!(armed.message.starts_with("armed: 2 trigger(s), pre-roll 5.0 s held (150 frames"), "{}", armed.message);
        assert_eq!(armed.state, None);
        s.state = RecorderState::DiskLow;
        let low = process_report(&s, Summary { low_reason: Some("free space is 1 MiB"), ..summary() });
        assert_eq!((low.state, low.message.as_str()), (Some(ProcessState::Degraded), "disk-low: free space is 1 MiB"));
        s.state = RecorderState::Recording;
        s.segment = Some("cam_x".into());
        s.last_error = Some("boom".into());
        s.errors = 3;
        let rec = process_report(&s, Summary { saving: true, ..summary() });
        assert!(
            rec.message.starts_with("recording cam_x: 0 written") && rec.message.ends_with("3 error(s), last: boom")
        );
        assert!(rec.latency_us.is_some() && rec.saving == Some(true));
    }

    /// The rates of an interval count the frames since the last close.
    #[test]
    fn rates_count_the_frames_of_the_interval() {
        let mut rates = Rates::new();
        let mut s = RecorderStatus { frames: 10, written: 4, ..Default::default() };
        rates.record_written_ns(2_000_000);
        rates.close(&mut s);
        assert!(s.fps > 0.0 && s.write_fps > 0.0, "{s:?}");
        assert_eq!(s.latency_p50_us, Some(2000));
        rates.close(&mut s);
        assert_eq!((s.latency_p50_us, s.write_fps), (None, 0.0), "nothing new");
    }
}
