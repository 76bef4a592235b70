//! `ctl events <camera>`: recent triggers and the clips they produced, from the recorder's
//! events journal (`<recordings directory>/events/<camera>.jsonl`, format in
//! [`framebus_common::journal`]). No process needs to run: the journal is a file.
//!
//! Without `--follow`: one row (or, with `--json`, one JSON object per line) per clip, newest
//! last: when and why it started, its frames, length, status and files, and the triggers that
//! found their frames gone. With `--follow`: the journal's records themselves (the last
//! `--limit`, then each new one as the recorder appends it, across rotations) until Ctrl-C.
//!
//! A line that is not UTF-8 (a damaged or tampered journal) is skipped and reported on stderr
//! with its file and line number and a running count; the rest is shown. The journal is read
//! only when it is a regular file (a FIFO or symlink in its place is an error, never a hang).

use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use framebus_common::journal::{
    journal_path, rotated_journal_path, ClipSegment, JournalRecord, Trigger, TriggerSource,
};
use framebus_common::{secure_fs, Deployment};
use serde_json::{json, Value};

use crate::Outcome;

/// Arguments of `ctl events`.
#[derive(Debug, Clone, clap::Args)]
pub struct EventsArgs {
    /// Camera name.
    pub camera: String,
    /// Print the journal's records as the recorder appends them, until Ctrl-C.
    #[arg(long)]
    pub follow: bool,
    /// How many clips (with `--follow`: records) to show, newest last.
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
}

/// How often `--follow` looks for new records.
const FOLLOW_POLL: Duration = Duration::from_millis(200);

/// Runs `ctl events`.
pub fn run(deployment: &Deployment, json_output: bool, args: &EventsArgs) -> anyhow::Result<Outcome> {
    let cam = deployment.camera(Some(&args.camera))?;
    let directory = deployment.resolve_path(&cam.recorder.clone().unwrap_or_default().directory);
    let path = journal_path(&directory, &cam.name);
    let rotated = rotated_journal_path(&directory, &cam.name);
    if args.follow {
        return follow(&path, &rotated, json_output, args.limit);
    }
    let mut lines = read_lines(&rotated)?;
    lines.extend(read_lines(&path)?);
    if lines.is_empty() {
        eprintln!(
            "ctl: {}: no events yet: {} does not exist or is empty (the recorder writes it at its first clip)",
            cam.name,
            path.display()
        );
        return Ok(Outcome::Done);
    }
    let entries = aggregate(lines.iter().filter_map(|l| JournalRecord::parse(l)));
    let shown = &entries[entries.len().saturating_sub(args.limit)..];
    if json_output {
        for entry in shown {
            println!("{}", entry.to_json());
        }
    } else {
        print!("{}", table(shown));
    }
    Ok(Outcome::Done)
}

/// Opens a journal file for reading: `None` when it does not exist; a symlink, FIFO or device
/// is an error naming it (never followed, never a hang).
fn open_journal(path: &Path) -> anyhow::Result<Option<File>> {
    secure_fs::open_regular(path).with_context(|| format!("opening {}", path.display()))
}

/// Turns the raw lines of one journal file into text, skipping (and reporting on stderr, with
/// the line number and a running count) the lines that are not UTF-8.
struct LineDecoder {
    path: String,
    line: u64,
    skipped: u64,
}

impl LineDecoder {
    fn new(path: &Path) -> LineDecoder {
        LineDecoder { path: path.display().to_string(), line: 0, skipped: 0 }
    }

    fn decode(&mut self, raw: Vec<u8>) -> Option<String> {
        self.line += 1;
        match String::from_utf8(raw) {
            Ok(text) => Some(text),
            Err(e) => {
                self.skipped += 1;
                eprintln!(
                    "ctl: {}: line {} skipped: not valid UTF-8 ({}); {} line(s) skipped so far",
                    self.path,
                    self.line,
                    e.utf8_error(),
                    self.skipped
                );
                None
            }
        }
    }
}

/// Lines of a journal file (none when it does not exist); undecodable ones are skipped and
/// reported.
fn read_lines(path: &Path) -> anyhow::Result<Vec<String>> {
    let Some(file) = open_journal(path)? else { return Ok(Vec::new()) };
    let mut decoder = LineDecoder::new(path);
    let mut lines = Vec::new();
    for raw in BufReader::new(file).split(b'\n') {
        let mut raw = raw.with_context(|| format!("reading {}", path.display()))?;
        if raw.last() == Some(&b'\r') {
            raw.pop();
        }
        lines.extend(decoder.decode(raw));
    }
    Ok(lines)
}

/// A segment of a clip and whether it was deleted since.
#[derive(Debug, Clone)]
struct SegmentView {
    files: ClipSegment,
    deleted: Option<String>,
}

/// One clip as the journal tells it.
#[derive(Debug, Clone, Default)]
struct ClipView {
    clip: String,
    started_utc: Option<String>,
    first_frame_utc: Option<String>,
    trigger: Option<Trigger>,
    first_frame_id: Option<u64>,
    first_live_frame_id: Option<u64>,
    completed: Option<Completed>,
    segments: Vec<SegmentView>,
}

#[derive(Debug, Clone)]
struct Completed {
    utc: String,
    last_frame_id: u64,
    frames: u64,
    skipped: u64,
    duration_secs: f64,
    triggers: u64,
    reason: String,
}

/// A row of the listing.
#[derive(Debug, Clone)]
enum Entry {
    Clip(Box<ClipView>),
    Missed { utc: String, reason: String, trigger: Box<Trigger>, also_missed: u64 },
}

/// Folds the records into clips (in the order they started) and missed triggers.
fn aggregate(records: impl Iterator<Item = JournalRecord>) -> Vec<Entry> {
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
                utc,
                first_frame_id,
                first_frame_utc,
                first_live_frame_id,
                trigger,
                ..
            } => {
                entries.push(Entry::Clip(Box::new(ClipView {
                    clip,
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

/// One line about a trigger: `algo frame 151 score 0.021 [motion]`, `record on (frame 40)`.
fn describe_trigger(trigger: &Trigger) -> String {
    match trigger.source {
        TriggerSource::Manual => format!("record on (frame {})", trigger.frame_id),
        TriggerSource::Continued => {
            format!("continues {}", trigger.continues.as_deref().unwrap_or("the previous clip"))
        }
        TriggerSource::Result => {
            let Some(first) = trigger.results.first() else { return format!("result (frame {})", trigger.frame_id) };
            let mut text = format!("{} frame {}", first.producer, first.frame_id);
            if let Some(score) = first.score {
                let _ = write!(text, " score {score:.3}");
            }
            let mut labels: Vec<String> =
                first.boxes.iter().map(|b| format!("{} {:.2}", b.label, b.score)).take(3).collect();
            if first.boxes.len() > 3 {
                labels.push(format!("+{}", first.boxes.len() - 3));
            }
            if !labels.is_empty() {
                let _ = write!(text, " [{}]", labels.join(", "));
            }
            text
        }
    }
}

impl ClipView {
    fn status(&self) -> String {
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
}

impl Entry {
    fn to_json(&self) -> Value {
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

fn table(entries: &[Entry]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<24} {:<44} {:>21} {:>7} {:>7}  {:<28} FILES",
        "STARTED (UTC)", "TRIGGER", "FRAMES (IDS)", "COUNT", "SECS", "STATUS"
    );
    for entry in entries {
        match entry {
            Entry::Clip(view) => {
                let started = view.first_frame_utc.as_deref().or(view.started_utc.as_deref()).unwrap_or("?");
                let trigger = view.trigger.as_ref().map_or_else(|| "?".to_string(), describe_trigger);
                let c = view.completed.as_ref();
                let ids = match (view.first_frame_id, c.map(|c| c.last_frame_id)) {
                    (Some(a), Some(b)) => format!("{a}..{b}"),
                    (Some(a), None) => format!("{a}.."),
                    _ => "?".into(),
                };
                let files: Vec<String> = view
                    .segments
                    .iter()
                    .map(|s| {
                        let name = s.files.video.clone().unwrap_or_else(|| s.files.sidecar.clone());
                        match &s.deleted {
                            Some(why) => format!("{name} (deleted: {why})"),
                            None => name,
                        }
                    })
                    .collect();
                let _ = writeln!(
                    out,
                    "{:<24} {:<44} {:>21} {:>7} {:>7}  {:<28} {}",
                    started,
                    trigger,
                    ids,
                    c.map_or("-".into(), |c| c.frames.to_string()),
                    c.map_or("-".into(), |c| format!("{:.1}", c.duration_secs)),
                    view.status(),
                    if files.is_empty() { view.clip.clone() } else { files.join(", ") }
                );
            }
            Entry::Missed { utc, reason, trigger, also_missed } => {
                let more = if *also_missed > 0 { format!(" (+{also_missed} more)") } else { String::new() };
                let _ = writeln!(
                    out,
                    "{:<24} {:<44} {:>21} {:>7} {:>7}  {:<28} {reason}",
                    utc,
                    describe_trigger(trigger),
                    "-",
                    "-",
                    "-",
                    format!("missed{more}")
                );
            }
        }
    }
    out
}

/// One line about one record (for `--follow` without `--json`).
fn describe_record(record: &JournalRecord) -> String {
    match record {
        JournalRecord::ClipStarted { clip, utc, first_frame_id, first_live_frame_id, trigger, .. } => format!(
            "{utc} clip started {clip}: {}; first frame {first_frame_id}, pre-roll up to frame {}",
            describe_trigger(trigger),
            first_live_frame_id.saturating_sub(1)
        ),
        JournalRecord::ClipCompleted {
            clip, utc, first_frame_id, last_frame_id, frames, duration_secs, reason, segments, ..
        } => format!(
            "{utc} clip completed {clip}: frames {first_frame_id}..{last_frame_id} ({frames} saved, {duration_secs:.1} s), {reason}; {}",
            segments
                .iter()
                .map(|s| format!("{} ({})", s.video.as_deref().unwrap_or(&s.sidecar), s.status))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        JournalRecord::TriggerMissed { utc, reason, trigger, .. } => {
            format!("{utc} trigger missed: {}: {reason}", describe_trigger(trigger))
        }
        JournalRecord::SegmentDeleted { utc, segment, reason, bytes } => {
            format!("{utc} segment deleted ({reason}): {segment}, {bytes} bytes")
        }
    }
}

fn print_record(line: &str, json_output: bool) {
    if let Some(record) = JournalRecord::parse(line) {
        if json_output {
            println!("{}", line.trim());
        } else {
            println!("{}", describe_record(&record));
        }
    }
}

/// The journal being followed: the open file (which follows its inode across a rotation), how
/// far it was read, and the part of a line not finished yet.
struct Tail {
    file: File,
    inode: (u64, u64),
    offset: u64,
    partial: Vec<u8>,
    decoder: LineDecoder,
}

impl Tail {
    /// The journal at `path`, `None` when it does not exist (yet); an error when it is not a
    /// regular file.
    fn open(path: &Path) -> anyhow::Result<Option<Tail>> {
        let Some(file) = open_journal(path)? else { return Ok(None) };
        let meta = file.metadata().with_context(|| format!("reading {}", path.display()))?;
        let decoder = LineDecoder::new(path);
        Ok(Some(Tail { file, inode: (meta.dev(), meta.ino()), offset: 0, partial: Vec::new(), decoder }))
    }

    /// Complete lines appended since the last call.
    fn read_new(&mut self) -> anyhow::Result<Vec<String>> {
        if self.file.metadata()?.len() < self.offset {
            // Truncated in place (not by the recorder): read it again from the start.
            self.offset = 0;
            self.partial.clear();
            self.decoder.line = 0;
        }
        self.file.seek(SeekFrom::Start(self.offset))?;
        let read = std::io::Read::read_to_end(&mut self.file, &mut self.partial)?;
        self.offset += read as u64;
        let mut lines = Vec::new();
        while let Some(end) = self.partial.iter().position(|&b| b == b'\n') {
            let mut raw: Vec<u8> = self.partial.drain(..=end).collect();
            raw.pop();
            if raw.last() == Some(&b'\r') {
                raw.pop();
            }
            lines.extend(self.decoder.decode(raw));
        }
        Ok(lines)
    }
}

fn follow(path: &Path, rotated: &Path, json_output: bool, limit: usize) -> anyhow::Result<Outcome> {
    framebus_common::signals::install();
    let mut history = read_lines(rotated)?;
    let mut tail = Tail::open(path)?;
    if let Some(t) = tail.as_mut() {
        history.extend(t.read_new()?);
    } else {
        eprintln!("ctl: waiting for {} (the recorder writes it at its first clip)", path.display());
    }
    let history: Vec<&String> = history.iter().filter(|l| JournalRecord::parse(l).is_some()).collect();
    for line in &history[history.len().saturating_sub(limit)..] {
        print_record(line, json_output);
    }
    while !framebus_common::signals::termination_requested() {
        std::thread::sleep(FOLLOW_POLL);
        if let Some(t) = tail.as_mut() {
            for line in t.read_new()? {
                print_record(&line, json_output);
            }
        }
        // Rotated (or created): finish the old file above, then read the new one from its start.
        let current = std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()));
        if current.is_some() && current != tail.as_ref().map(|t| t.inode) {
            tail = Tail::open(path)?;
            if let Some(t) = tail.as_mut() {
                for line in t.read_new()? {
                    print_record(&line, json_output);
                }
            }
        }
    }
    Ok(Outcome::Done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use framebus_common::journal::TriggerResult;
    use framebus_common::results::Detection;

    fn trigger() -> Trigger {
        Trigger {
            source: TriggerSource::Result,
            rule: Some(0),
            frame_id: 151,
            utc: "2026-01-01T00:00:05.000Z".into(),
            realtime_ns: 1,
            results: vec![TriggerResult {
                producer: "algo".into(),
                frame_id: 151,
                run_id: 1,
                score: Some(0.0213),
                boxes: vec![Detection { x: 0.0, y: 0.0, w: 1.0, h: 1.0, label: "motion".into(), score: 0.5 }],
            }],
            continues: None,
        }
    }

    /// Started, completed and deleted records fold into one clip with its files; a missed
    /// trigger is a row of its own; the table and the JSON say so.
    #[test]
    fn records_fold_into_clips_with_their_files() {
        let segment = ClipSegment {
            segment: "cam0_20260101T000003.000Z_0000000091".into(),
            video: Some("cam0_20260101T000003.000Z_0000000091.avi".into()),
            sidecar: "cam0_20260101T000003.000Z_0000000091.jsonl".into(),
            frames: 151,
            first_frame_id: 91,
            last_frame_id: 241,
            status: "completed".into(),
        };
        let records = vec![
            JournalRecord::ClipStarted {
                clip: segment.segment.clone(),
                camera: "cam0".into(),
                utc: "2026-01-01T00:00:05.100Z".into(),
                first_frame_id: 91,
                first_frame_utc: "2026-01-01T00:00:03.000Z".into(),
                first_live_frame_id: 153,
                run_id: 1,
                trigger: trigger(),
            },
            JournalRecord::ClipCompleted {
                clip: segment.segment.clone(),
                utc: "2026-01-01T00:00:09.000Z".into(),
                first_frame_id: 91,
                last_frame_id: 241,
                frames: 151,
                skipped: 0,
                duration_secs: 5.033,
                triggers: 30,
                reason: "post-roll".into(),
                segments: vec![segment.clone()],
            },
            JournalRecord::TriggerMissed {
                utc: "2026-01-01T00:01:00.000Z".into(),
                reason: "too late".into(),
                trigger: trigger(),
                also_missed: 2,
            },
            JournalRecord::SegmentDeleted {
                utc: "2026-01-02T00:00:00.000Z".into(),
                segment: segment.segment.clone(),
                reason: "max-age".into(),
                bytes: 10,
            },
        ];
        let entries = aggregate(records.into_iter());
        assert_eq!(entries.len(), 2);
        let json = entries[0].to_json();
        assert_eq!(json["first_frame_id"], 91);
        assert_eq!(json["last_frame_id"], 241);
        assert_eq!(json["status"], "completed");
        assert_eq!(json["segments"][0]["deleted"], "max-age");
        assert_eq!(entries[1].to_json()["missed"], true);
        let text = table(&entries);
        assert!(text.contains("algo frame 151 score 0.021 [motion 0.50]"), "{text}");
        assert!(text.contains("91..241") && text.contains("completed (post-roll), 1 deleted"), "{text}");
        assert!(text.contains("missed (+2 more)"), "{text}");
    }
}
