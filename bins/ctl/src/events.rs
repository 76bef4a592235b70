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
use std::path::Path;
use std::time::Duration;

use framebus_common::journal::clips::{aggregate_lines, Entry};
use framebus_common::journal::read::{read_journal, Follower, SkippedLine};
use framebus_common::journal::{journal_path, origin_directory, JournalRecord, Trigger, TriggerSource};
use framebus_common::Deployment;

use crate::Outcome;

/// Arguments of `ctl events`.
#[derive(Debug, Clone, clap::Args)]
pub struct EventsArgs {
    /// Camera name.
    pub camera: String,
    /// Print the journal's records as the recorder appends them, until Ctrl-C.
    #[arg(long)]
    pub follow: bool,
    /// For a `[[remote-camera]]`: the clips of its origin's recorder (on the other host), as
    /// this host's bridge received them, instead of those of this host's recorder.
    #[arg(long)]
    pub origin: bool,
    /// How many clips (with `--follow`: records) to show, newest last.
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
}

/// How often `--follow` looks for new records.
const FOLLOW_POLL: Duration = Duration::from_millis(200);

/// Runs `ctl events`.
pub fn run(deployment: &Deployment, json_output: bool, args: &EventsArgs) -> anyhow::Result<Outcome> {
    let cam = deployment.camera(Some(&args.camera))?;
    let mut directory = deployment.recordings_directory(cam);
    if args.origin {
        if !matches!(cam.source, framebus_common::config::SourceConfig::Remote(_)) {
            anyhow::bail!(
                "camera `{}` is not a [[remote-camera]] of {}: --origin is for cameras imported from another host",
                cam.name,
                deployment.source_file.display()
            );
        }
        directory = origin_directory(&directory);
    }
    let path = journal_path(&directory, &cam.name);
    if args.follow {
        return follow(&directory, &cam.name, json_output, args.limit);
    }
    let lines = read_journal(&directory, &cam.name, &mut report_skipped)?;
    if lines.is_empty() {
        let writer = if args.origin {
            "the bridge writes it at the origin's first clip"
        } else {
            "the recorder writes it at its first clip"
        };
        eprintln!("ctl: {}: no events yet: {} does not exist or is empty ({writer})", cam.name, path.display());
        return Ok(Outcome::Done);
    }
    let entries = aggregate_lines(&lines);
    let shown = &entries[entries.len().saturating_sub(args.limit)..];
    if json_output {
        for entry in shown {
            println!("{}", entry.to_json());
        }
    } else {
        print!("{}", printable(&table(shown)));
    }
    Ok(Outcome::Done)
}

/// `text` with every control character but the line break replaced by `�`: a journal's strings
/// (a remote camera's origin journal came over the network) never reach the terminal as escape
/// sequences.
fn printable(text: &str) -> String {
    text.chars().map(|c| if c.is_control() && c != '\n' { '\u{fffd}' } else { c }).collect()
}

/// Reports a journal line that is not UTF-8 on stderr (the rest is shown).
fn report_skipped(skipped: &SkippedLine) {
    eprintln!("ctl: {skipped}");
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
            println!("{}", printable(&describe_record(&record)));
        }
    }
}

fn follow(directory: &Path, camera: &str, json_output: bool, limit: usize) -> anyhow::Result<Outcome> {
    framebus_common::signals::install();
    let (mut follower, history) = Follower::with_history(directory, camera, &mut report_skipped)?;
    if !follower.is_open() {
        eprintln!("ctl: waiting for {} (the recorder writes it at its first clip)", follower.path().display());
    }
    let history: Vec<&String> = history.iter().filter(|l| JournalRecord::parse(l).is_some()).collect();
    for line in &history[history.len().saturating_sub(limit)..] {
        print_record(line, json_output);
    }
    while !framebus_common::signals::termination_requested() {
        std::thread::sleep(FOLLOW_POLL);
        for line in follower.poll(&mut report_skipped)? {
            print_record(&line, json_output);
        }
    }
    Ok(Outcome::Done)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Escape sequences in a journal's strings are shown as `�`, line breaks kept.
    #[test]
    fn control_characters_never_reach_the_terminal() {
        assert_eq!(
            printable("EVIL\u{1b}[2J\u{1b}]0;pwned\u{7}\nnext"),
            "EVIL\u{fffd}[2J\u{fffd}]0;pwned\u{fffd}\nnext"
        );
    }
    use framebus_common::journal::clips::aggregate;
    use framebus_common::journal::{ClipSegment, TriggerResult};
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
