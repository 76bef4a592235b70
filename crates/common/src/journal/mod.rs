//! The recorder's events journal: one JSON line per event in
//! `<recordings directory>/events/<camera>.jsonl` (a folder of its own, so `*.jsonl` in the
//! recordings folder are sidecars only), written by the recorder (clip started, clip
//! completed with its files, trigger missed, segment deleted) and read by `ctl events`.
//!
//! The records are an interface between processes (and for users' scripts): add fields, do not
//! rename or remove them. Readers skip lines they cannot parse (a line being written, a newer
//! record type). The file is rotated at [`JOURNAL_MAX_BYTES`]: the current file is renamed to
//! `events/<camera>.1.jsonl` (replacing the previous one), so at most twice that is kept.
//! This module defines the format; [`write`](mod@write) is the one writer (the recorder; the bridge for a
//! remote camera's origin records); [`read`] is the one reader
//! (`ctl events`, the preview's events page, the supervisor's webhooks) and [`clips`] folds
//! the records into clips.

pub mod clips;
pub mod read;
pub mod write;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::results::Detection;

/// Size at which the journal is rotated.
pub const JOURNAL_MAX_BYTES: u64 = 1024 * 1024;

/// The current journal of `camera` in its recordings `directory`.
pub fn journal_path(directory: &Path, camera: &str) -> PathBuf {
    directory.join("events").join(format!("{camera}.jsonl"))
}

/// Where the bridge keeps the copy of a remote camera's origin journal (the site's recorder's
/// records, received over Zenoh): `<recordings directory>/origin`, so its journal is
/// `<recordings directory>/origin/events/<camera>.jsonl` (`ctl events <camera> --origin`),
/// apart from the journal of the camera's own recorder on this host.
pub fn origin_directory(recordings: &Path) -> PathBuf {
    recordings.join("origin")
}

/// The previous (rotated) journal of `camera`.
pub fn rotated_journal_path(directory: &Path, camera: &str) -> PathBuf {
    directory.join("events").join(format!("{camera}.1.jsonl"))
}

/// What started a clip.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TriggerSource {
    /// A result matched a `[[camera.recorder.trigger]]`.
    Result,
    /// `ctl record on` (or `recorder --saving true`, or `enabled = true`).
    Manual,
    /// The previous clip reached `max-clip-secs` while still triggered: this one continues it.
    Continued,
}

/// A result that caused a trigger, as the journal and the sidecar record it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TriggerResult {
    /// Producer name.
    pub producer: String,
    /// Frame the result is about.
    pub frame_id: u64,
    /// Capture run of that frame.
    pub run_id: u64,
    /// Overall score, if any.
    pub score: Option<f64>,
    /// Labelled boxes.
    pub boxes: Vec<Detection>,
}

/// A trigger: what it was, when, and which results caused it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trigger {
    /// Result, manual or continued.
    pub source: TriggerSource,
    /// Index of the `[[camera.recorder.trigger]]` that matched (results only).
    pub rule: Option<usize>,
    /// The trigger frame: the frame the result is about, or the newest frame at a command.
    pub frame_id: u64,
    /// Capture time of the trigger frame (or the command), UTC.
    pub utc: String,
    /// Same, CLOCK_REALTIME ns.
    pub realtime_ns: u64,
    /// The results that caused it (at most a few; empty for a command).
    pub results: Vec<TriggerResult>,
    /// The clip this one continues (`source` = continued).
    pub continues: Option<String>,
}

/// One file set of a clip (a segment), as listed when the clip completes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClipSegment {
    /// Segment base name (`<camera>_<UTC start>_<first frame id>`).
    pub segment: String,
    /// Video file name, if video is on.
    pub video: Option<String>,
    /// Sidecar file name.
    pub sidecar: String,
    /// Frames it holds.
    pub frames: u64,
    /// First and last frame id it lists (saved or skipped).
    pub first_frame_id: u64,
    /// Last frame id it lists.
    pub last_frame_id: u64,
    /// `completed` (plays, holds exactly its sidecar's frames) or `failed` (kept as `.failed`).
    pub status: String,
}

/// One line of the journal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum JournalRecord {
    /// A clip began: its first frame was taken (from the pre-roll or live).
    ClipStarted {
        /// Clip id: `<camera>_<UTC of its first frame>_<first frame id>` (its first segment's
        /// base name when that segment could be written).
        clip: String,
        /// Camera name.
        camera: String,
        /// When the clip was started (wall clock of the recorder), UTC.
        utc: String,
        /// First frame id of the clip.
        first_frame_id: u64,
        /// Capture time of the first frame, UTC.
        first_frame_utc: String,
        /// The pre-roll boundary: the first frame received after the trigger; frames before
        /// it came from the pre-roll.
        first_live_frame_id: u64,
        /// Capture run of the clip's frames.
        run_id: u64,
        /// What started it.
        trigger: Trigger,
    },
    /// A clip ended; its files.
    ClipCompleted {
        /// Clip id.
        clip: String,
        /// When it ended (wall clock of the recorder), UTC.
        utc: String,
        /// First frame id.
        first_frame_id: u64,
        /// Last frame id (saved or listed as skipped).
        last_frame_id: u64,
        /// Frames saved.
        frames: u64,
        /// Frames listed as not saved (dropped, disk low, errors).
        skipped: u64,
        /// Capture time from the first to the last frame, seconds (plus one frame).
        duration_secs: f64,
        /// Triggers that started or extended it.
        triggers: u64,
        /// Why it ended: `post-roll`, `max-clip`, `saving-off`, `stop`.
        reason: String,
        /// Its segments, oldest first.
        segments: Vec<ClipSegment>,
    },
    /// A trigger whose frames were already gone (its result arrived after the pre-roll had
    /// let them go).
    TriggerMissed {
        /// When it was seen, UTC.
        utc: String,
        /// Why no clip was made.
        reason: String,
        /// The trigger.
        trigger: Trigger,
        /// Missed triggers not journaled since the last one (rate limit).
        also_missed: u64,
    },
    /// A finished segment was deleted.
    SegmentDeleted {
        /// When, UTC.
        utc: String,
        /// Segment base name.
        segment: String,
        /// `max-age`, `max-total` or `disk-floor`.
        reason: String,
        /// Bytes freed.
        bytes: u64,
    },
}

impl JournalRecord {
    /// Parses one journal line; `None` for an incomplete or unknown line.
    pub fn parse(line: &str) -> Option<JournalRecord> {
        serde_json::from_str(line.trim()).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records round-trip through their JSON line; unknown or torn lines parse as `None`.
    #[test]
    fn records_round_trip_and_bad_lines_are_skipped() {
        let trigger = Trigger {
            source: TriggerSource::Result,
            rule: Some(0),
            frame_id: 151,
            utc: "2026-01-01T00:00:05.000Z".into(),
            realtime_ns: 5,
            results: vec![TriggerResult {
                producer: "algo".into(),
                frame_id: 151,
                run_id: 9,
                score: Some(0.02),
                boxes: vec![Detection { x: 1.0, y: 2.0, w: 3.0, h: 4.0, label: "motion".into(), score: 0.5 }],
            }],
            continues: None,
        };
        let record = JournalRecord::ClipStarted {
            clip: "cam0_20260101T000003.000Z_0000000091".into(),
            camera: "cam0".into(),
            utc: "2026-01-01T00:00:05.100Z".into(),
            first_frame_id: 91,
            first_frame_utc: "2026-01-01T00:00:03.000Z".into(),
            first_live_frame_id: 153,
            run_id: 9,
            trigger,
        };
        let line = serde_json::to_string(&record).expect("json");
        assert!(line.starts_with(r#"{"type":"clip-started""#), "{line}");
        assert!(line.contains(r#""source":"result""#), "{line}");
        assert_eq!(JournalRecord::parse(&line), Some(record));
        assert_eq!(JournalRecord::parse(&line[..line.len() / 2]), None);
        assert_eq!(JournalRecord::parse(r#"{"type":"from-the-future"}"#), None);
    }
}
