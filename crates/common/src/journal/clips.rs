//! The journal folded into what a person asks about: one [`ClipView`] per clip (when and why
//! it started, how it ended, its files and which of them were deleted since) and the triggers
//! that found their frames gone. Shared by `ctl events` and the preview's events page.

use serde_json::{json, Value};

use super::{ClipSegment, JournalRecord, Trigger, TriggerSource};

/// A segment of a clip and whether it was deleted since.
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentView {
    /// The segment as the clip's completion listed it.
    pub files: ClipSegment,
    /// Why it was deleted (`max-age`, `max-total`, `disk-floor`), if it was.
    pub deleted: Option<String>,
}

/// How a clip ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Completed {
    /// When it ended (wall clock of the recorder), UTC.
    pub utc: String,
    /// Last frame id.
    pub last_frame_id: u64,
    /// Frames saved.
    pub frames: u64,
    /// Frames listed as not saved.
    pub skipped: u64,
    /// Capture time from the first to the last frame, seconds.
    pub duration_secs: f64,
    /// Triggers that started or extended it.
    pub triggers: u64,
    /// Why it ended.
    pub reason: String,
}

/// One clip as the journal tells it (fields are `None` when their record rotated out).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClipView {
    /// Clip id.
    pub clip: String,
    /// Camera name (from its start record).
    pub camera: Option<String>,
    /// When the recorder started it, UTC.
    pub started_utc: Option<String>,
    /// Capture time of its first frame, UTC.
    pub first_frame_utc: Option<String>,
    /// What started it.
    pub trigger: Option<Trigger>,
    /// First frame id.
    pub first_frame_id: Option<u64>,
    /// The pre-roll boundary.
    pub first_live_frame_id: Option<u64>,
    /// How it ended; `None` while it is recorded (or when the recorder stopped hard).
    pub completed: Option<Completed>,
    /// Its segments (known once it completed).
    pub segments: Vec<SegmentView>,
}

/// A row of the listing: a clip or a missed trigger.
#[derive(Debug, Clone, PartialEq)]
pub enum Entry {
    /// A clip.
    Clip(Box<ClipView>),
    /// A trigger whose frames were gone.
    Missed {
        /// When it was seen, UTC.
        utc: String,
        /// Why no clip was made.
        reason: String,
        /// The trigger.
        trigger: Box<Trigger>,
        /// Missed triggers not journaled since the last one.
        also_missed: u64,
    },
}

/// Folds the records into clips (in the order they started) and missed triggers.
pub fn aggregate(records: impl Iterator<Item = JournalRecord>) -> Vec<Entry> {
    let mut entries: Vec<Entry> = Vec::new();
    let find = |entries: &mut Vec<Entry>, clip: &str| -> usize {
        match entries.iter().rposition(|e| matches!(e, Entry::Clip(c) if c.clip == clip)) {
            Some(i) => i,
            None => {
                // A clip whose start rotated out of the journal.
                entries.push(Entry::Clip(Box::new(ClipView { clip: clip.to_string(), ..ClipView::default() })));
                entries.len() - 1
            }
        }
    };
    for record in records {
        match record {
            JournalRecord::ClipStarted {
                clip,
                camera,
                utc,
                first_frame_id,
                first_frame_utc,
                first_live_frame_id,
                trigger,
                ..
            } => {
                entries.push(Entry::Clip(Box::new(ClipView {
                    clip,
                    camera: Some(camera),
                    started_utc: Some(utc),
                    first_frame_utc: Some(first_frame_utc),
                    trigger: Some(trigger),
                    first_frame_id: Some(first_frame_id),
                    first_live_frame_id: Some(first_live_frame_id),
                    ..ClipView::default()
                })));
            }
            JournalRecord::ClipCompleted {
                clip,
                utc,
                first_frame_id,
                last_frame_id,
                frames,
                skipped,
                duration_secs,
                triggers,
                reason,
                segments,
            } => {
                let i = find(&mut entries, &clip);
                if let Entry::Clip(view) = &mut entries[i] {
                    view.first_frame_id.get_or_insert(first_frame_id);
                    view.segments = segments.into_iter().map(|files| SegmentView { files, deleted: None }).collect();
                    view.completed =
                        Some(Completed { utc, last_frame_id, frames, skipped, duration_secs, triggers, reason });
                }
            }
            JournalRecord::TriggerMissed { utc, reason, trigger, also_missed } => {
                entries.push(Entry::Missed { utc, reason, trigger: Box::new(trigger), also_missed });
            }
            JournalRecord::SegmentDeleted { segment, reason, .. } => {
                for entry in entries.iter_mut().rev() {
                    if let Entry::Clip(view) = entry {
                        if let Some(s) = view.segments.iter_mut().find(|s| s.files.segment == segment) {
                            s.deleted = Some(reason);
                            break;
                        }
                    }
                }
            }
        }
    }
    entries
}

/// Folds journal lines (unparsable ones are skipped) into entries; see [`aggregate`].
pub fn aggregate_lines<S: AsRef<str>>(lines: &[S]) -> Vec<Entry> {
    aggregate(lines.iter().filter_map(|l| JournalRecord::parse(l.as_ref())))
}

/// The label of a trigger, for lists and filters: the first box's label of the first result
/// (else `result`), `manual` for `ctl record on`, `continued` for a clip that continues one.
pub fn trigger_label(trigger: &Trigger) -> String {
    match trigger.source {
        TriggerSource::Manual => "manual".into(),
        TriggerSource::Continued => "continued".into(),
        TriggerSource::Result => trigger
            .results
            .iter()
            .flat_map(|r| r.boxes.iter())
            .next()
            .map_or_else(|| "result".to_string(), |b| b.label.clone()),
    }
}

/// The score of a trigger: the first result's score, else its best box's; `None` for a command.
pub fn trigger_score(trigger: &Trigger) -> Option<f64> {
    let first = trigger.results.first()?;
    first.score.or_else(|| first.boxes.iter().map(|b| f64::from(b.score)).reduce(f64::max))
}

impl ClipView {
    /// `completed (<reason>)` or `recording (or the recorder stopped)`, with the failed and
    /// deleted segments counted.
    pub fn status(&self) -> String {
        use std::fmt::Write as _;
        let failed = self.segments.iter().filter(|s| s.files.status != "completed").count();
        let deleted = self.segments.iter().filter(|s| s.deleted.is_some()).count();
        let mut status = match &self.completed {
            Some(c) => format!("completed ({})", c.reason),
            None => "recording (or the recorder stopped)".to_string(),
        };
        if failed > 0 {
            let _ = write!(status, ", {failed} failed");
        }
        if deleted > 0 {
            let _ = write!(status, ", {deleted} deleted");
        }
        status
    }

    /// The segment holding `frame_id` (else the first one) that can still be played: completed
    /// and not deleted.
    pub fn playable_segment(&self, frame_id: u64) -> Option<&ClipSegment> {
        let playable = || self.segments.iter().filter(|s| s.deleted.is_none() && s.files.status == "completed");
        playable()
            .find(|s| (s.files.first_frame_id..=s.files.last_frame_id).contains(&frame_id))
            .or_else(|| playable().next())
            .map(|s| &s.files)
    }
}

impl Entry {
    /// The entry as `ctl events --json` prints it (one object per clip or missed trigger).
    pub fn to_json(&self) -> Value {
        match self {
            Entry::Clip(view) => {
                let c = view.completed.as_ref();
                json!({
                    "clip": view.clip,
                    "started_utc": view.started_utc,
                    "first_frame_utc": view.first_frame_utc,
                    "trigger": view.trigger,
                    "first_frame_id": view.first_frame_id,
                    "first_live_frame_id": view.first_live_frame_id,
                    "last_frame_id": c.map(|c| c.last_frame_id),
                    "frames": c.map(|c| c.frames),
                    "skipped": c.map(|c| c.skipped),
                    "duration_secs": c.map(|c| c.duration_secs),
                    "triggers": c.map(|c| c.triggers),
                    "completed_utc": c.map(|c| c.utc.clone()),
                    "status": if c.is_some() { "completed" } else { "open" },
                    "reason": c.map(|c| c.reason.clone()),
                    "segments": view.segments.iter().map(|s| {
                        let mut v = serde_json::to_value(&s.files).unwrap_or(Value::Null);
                        v["deleted"] = json!(s.deleted);
                        v
                    }).collect::<Vec<_>>(),
                })
            }
            Entry::Missed { utc, reason, trigger, also_missed } => json!({
                "missed": true,
                "utc": utc,
                "reason": reason,
                "trigger": trigger,
                "also_missed": also_missed,
            }),
        }
    }
}
