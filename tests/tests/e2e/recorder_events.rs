//! Event-triggered recording (issue 10): results that match a trigger make one clip from
//! pre-roll before to post-roll after them, `ctl record on` carries the pre-roll, a user
//! program's results trigger like algo's, `ctl events` lists the clips, and retention deletes
//! the oldest segments without touching the one being written.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use framebus_common::results::Detection;
use framebus_e2e::{ffprobe_frames, process_status, Proc, TestDeployment, DEADLINE};
use serde_json::Value;

use super::events::motion_clip;
use super::recorder::{check_segment, files, sidecar, u};

/// A 320×240 camera at 30 fps playing `clip` once (paced by the config), algo, and a recorder
/// writing to `<test dir>/rec` with `recorder` appended to its table.
fn motion_camera(clip: &Path, recorder: &str) -> String {
    format!(
        "[[camera]]\nname = \"cam0\"\nwidth = 320\nheight = 240\nfps = 30\n\n[camera.source]\nkind = \"file\"\npath = \"{}\"\npace = \"config\"\nloop = false\n\n[camera.algo]\n\n[camera.recorder]\ndirectory = \"rec\"\nstats-interval-secs = 0.25\nmin-free-mb = 1\n{recorder}",
        clip.display()
    )
}

/// A synthetic 320×240 camera at 30 fps with a recorder table (`recorder` appended).
fn synthetic_camera(recorder: &str) -> String {
    format!(
        "[[camera]]\nname = \"cam0\"\nwidth = 320\nheight = 240\nfps = 30\n\n[camera.source]\nkind = \"synthetic\"\n\n[camera.recorder]\ndirectory = \"rec\"\nstats-interval-secs = 0.25\nmin-free-mb = 1\n{recorder}"
    )
}

/// Completed sidecars in `rec` (not `.partial`, not `.failed`), oldest first.
fn completed(rec: &Path) -> Vec<PathBuf> {
    files(rec, "jsonl")
        .into_iter()
        .filter(|p| {
            let name = p.to_string_lossy();
            !name.contains(".partial.") && !name.contains(".failed.")
        })
        .collect()
}

/// The journal's records, in order.
fn journal(rec: &Path) -> Vec<Value> {
    std::fs::read_to_string(rec.join("events").join("cam0.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("journal line {l}: {e}")))
        .collect()
}

fn of_type<'a>(records: &'a [Value], kind: &str) -> Vec<&'a Value> {
    records.iter().filter(|r| r["type"] == kind).collect()
}

/// What one segment's sidecar accounts for (frame id → saved?), checked like
/// [`check_segment`] but for pictures without the synthetic stamp (a file source): it is
/// finalized, lists no id twice, and its video plays in ffprobe with exactly the frames listed.
fn check_unstamped_segment(index: &Path) -> BTreeMap<u64, bool> {
    let lines = sidecar(index);
    assert_eq!(lines[0]["type"], "segment", "{}", index.display());
    assert_eq!(lines.last().expect("lines")["type"], "end", "{}: not finalized", index.display());
    let mut accounted = BTreeMap::new();
    for line in &lines[1..lines.len() - 1] {
        match line["type"].as_str() {
            Some("frame") => assert!(accounted.insert(u(line, "frame_id"), true).is_none(), "{line}"),
            Some("skipped") => {
                for id in u(line, "first_frame_id")..=u(line, "last_frame_id") {
                    assert!(accounted.insert(id, false).is_none(), "frame {id} listed twice");
                }
            }
            other => panic!("{}: unexpected line type {other:?}", index.display()),
        }
    }
    let saved = accounted.values().filter(|s| **s).count() as u64;
    let video = index.parent().expect("dir").join(lines[0]["video"].as_str().expect("video"));
    assert_eq!(ffprobe_frames(&video), Some(saved), "{}", video.display());
    accounted
}

/// Every id from the first to the last of `segments` (in order) is listed once: a saved frame
/// or inside a `skipped` range (frames a loaded machine made the recorder drop are listed, not
/// lost). Returns (first id, last id, frames saved).
fn contiguous(segments: &[PathBuf], check: impl Fn(&Path) -> BTreeMap<u64, bool>) -> (u64, u64, u64) {
    let mut all: BTreeMap<u64, bool> = BTreeMap::new();
    for index in segments {
        for (id, saved) in check(index) {
            assert!(all.insert(id, saved).is_none(), "frame {id} is in two segments");
        }
    }
    let (first, last) = (*all.keys().next().expect("frames"), *all.keys().last().expect("frames"));
    assert_eq!(all.len() as u64, last - first + 1, "a hole between frames {first} and {last}");
    let saved = all.values().filter(|s| **s).count() as u64;
    if saved < all.len() as u64 {
        eprintln!("{} of {} frames listed as skipped (a loaded machine)", all.len() as u64 - saved, all.len());
    }
    (first, last, saved)
}

/// Duration of a video in seconds, as ffprobe reads its container.
fn ffprobe_duration(path: &Path) -> f64 {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .expect("ffprobe is installed (scripts/bootstrap.sh)");
    assert!(out.status.success(), "ffprobe cannot read {}", path.display());
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or_else(|_| panic!("no duration for {}", path.display()))
}

/// Runs ctl and asserts it exits 0; returns stdout.
fn ctl_ok(d: &TestDeployment, args: &[&str]) -> String {
    let (code, out, err) = d.ctl(args);
    assert_eq!(code, Some(0), "ctl {args:?}\nstdout:\n{out}\nstderr:\n{err}");
    out
}

/// A block that appears at frame 151 (file frame 150) and moves for one second: algo's motion
/// results trigger exactly one clip, from 2 s (pre-roll) before the trigger to 2 s (post-roll)
/// after the last motion; its ids are contiguous, its video plays for as long as it has
/// frames, its sidecar names the trigger and the pre-roll boundary, and `ctl events` lists it.
#[test]
fn motion_at_a_known_frame_makes_one_clip_with_its_pre_and_post_roll() {
    let dir = tempfile::tempdir().expect("temp dir");
    // 15 s: still until file frame 150, a moving block for 30 frames, still after.
    let clip = motion_clip(dir.path(), 450, (150, 180));
    let d = TestDeployment::new(&motion_camera(
        &clip,
        "pre-roll-secs = 2\npost-roll-secs = 2\n[[camera.recorder.trigger]]\nproducer = \"algo\"\nmin-score = 0.001\n",
    ));
    let rec = d.dir.path().join("rec");
    let mut recorder = d.spawn("recorder", &["--json"]);
    recorder.wait_stderr(DEADLINE, "reading frames");
    let mut algo = d.spawn("algo", &[]);
    algo.wait_stderr(DEADLINE, "reading frames");
    let mut capture = d.spawn("capture", &[]);
    let armed = recorder.wait_json(DEADLINE, |v| v["state"] == "armed" && v["held_secs"].as_f64() >= Some(2.5));
    // 2.5 s at 30 fps is 75 frames; a loaded machine (JPEG-encoding every frame in a debug
    // build) skips some, so the count is held to most of them and the span to the full time.
    assert!(u(&armed, "held_frames") >= 45, "2.5 s of frames held (2 s pre-roll + late results): {armed}");
    let status = d.wait_status(|s| process_status(s, "cam0", "recorder")["activity"] == "armed");
    let row = process_status(&status, "cam0", "recorder");
    assert!(row["message"].as_str().is_some_and(|m| m.starts_with("armed: 1 trigger(s), pre-roll")), "{row}");
    // The clip completes 2 s after the motion ends; frames go on for 7 s more without another.
    recorder.wait_json(DEADLINE, |v| v["clips"].as_u64() >= Some(1));
    let after = recorder.wait_json(DEADLINE, |v| v["last_frame_id"].as_u64() >= Some(360));
    assert_eq!((u(&after, "clips"), u(&after, "missed_triggers")), (1, 0), "{after}");
    assert_eq!(after["state"], "armed", "{after}");
    assert!(recorder.stderr_text().contains("pre-roll full:"), "the measured pre-roll is logged");
    assert_eq!(recorder.terminate(), Some(0), "{}", recorder.stderr_text());
    for p in [&mut algo, &mut capture] {
        p.terminate();
    }

    let segments = completed(&rec);
    assert_eq!(segments.len(), 1, "exactly one clip in one segment: {:?}", files(&rec, "jsonl"));
    let (first, last, saved) = contiguous(&segments, check_unstamped_segment);
    let lines = sidecar(&segments[0]);
    let head = &lines[0];
    let trigger = &head["trigger"];
    assert_eq!(trigger["source"], "result", "{head}");
    assert_eq!(trigger["results"][0]["producer"], "algo", "{head}");
    assert!(trigger["results"][0]["score"].as_f64().is_some_and(|s| s > 0.001), "{head}");
    assert!(!trigger["results"][0]["boxes"].as_array().is_some_and(|b| b.is_empty()), "the motion boxes: {head}");
    let n = u(trigger, "frame_id");
    assert!((151..=156).contains(&n), "the first motion result is about the block appearing (frame 151): {n}");
    // 2 s at 30 fps before the trigger frame, 2 s after the last motion (frame 181 shows the
    // block gone); a frame or two of pacing jitter either way, a few for algo's skipped frames.
    // The window is in capture time: when a loaded machine makes capture late, its frames
    // space out and fewer fall in the same 2 s.
    assert!(first.abs_diff(n - 60) <= 8, "first frame {first}, trigger frame {n}: expected about {}", n - 60);
    assert!(
        (230..=250).contains(&last),
        "last frame {last}: expected about 181 + 60; journal {:#?}\nalgo:\n{}",
        journal(&rec),
        algo.stderr_text()
    );
    assert_eq!(u(head, "clip_first_frame_id"), first, "{head}");
    // The first frame received after the result (the recorder may be a few frames ahead of
    // algo, or behind it on a loaded machine).
    let live = u(head, "first_live_frame_id");
    assert!(live.abs_diff(n) <= 15, "the pre-roll boundary is close to the trigger frame {n}: {live}");
    assert_eq!(lines.last().expect("end")["reason"], "post-roll");
    let video = rec.join(head["video"].as_str().expect("video"));
    let duration = ffprobe_duration(&video);
    let expected = saved as f64 / 30.0;
    assert!((duration - expected).abs() < 0.1, "{duration} s in ffprobe, {saved} frames at 30 fps");
    assert!(duration >= 4.0, "about 2 s + 1 s of motion + 2 s: {duration} s");

    let records = journal(&rec);
    let started = of_type(&records, "clip-started");
    let done = of_type(&records, "clip-completed");
    assert_eq!((started.len(), done.len()), (1, 1), "{records:#?}");
    assert_eq!(u(started[0], "first_frame_id"), first);
    assert_eq!(u(done[0], "last_frame_id"), last);
    assert_eq!(done[0]["segments"][0]["video"], head["video"]);
    assert!(u(done[0], "triggers") >= 5, "every motion result extended the clip: {}", done[0]);

    let text = ctl_ok(&d, &["events", "cam0"]);
    assert!(text.contains("algo frame") && text.contains(&format!("{first}..{last}")), "{text}");
    assert!(text.contains("completed (post-roll)"), "{text}");
    let json = ctl_ok(&d, &["events", "cam0", "--json"]);
    let clips: Vec<Value> = json.lines().map(|l| serde_json::from_str(l).expect("json")).collect();
    assert_eq!(clips.len(), 1, "{json}");
    assert_eq!((u(&clips[0], "first_frame_id"), u(&clips[0], "last_frame_id")), (first, last));
    assert_eq!(u(&clips[0], "frames"), saved);
    d.assert_no_leftovers();
}

/// `ctl record on` with a pre-roll: the clip it starts holds frames captured before the
/// command (about the 2 s pre-roll), its ids run on without a hole into the live frames, and
/// `record off` ends it. No trigger is configured: only the explicit pre-roll.
#[test]
fn ctl_record_on_carries_frames_from_before_the_command() {
    let d = TestDeployment::new(&synthetic_camera("pre-roll-secs = 2\n"));
    let rec = d.dir.path().join("rec");
    let mut capture = d.spawn("capture", &[]);
    let mut recorder = d.spawn("recorder", &["--json"]);
    recorder.wait_json(DEADLINE, |v| v["state"] == "armed" && v["held_secs"].as_f64() >= Some(2.5));
    assert!(files(&rec, "jsonl").is_empty(), "nothing written while armed");
    let before = framebus_common::clock::realtime_ns();
    ctl_ok(&d, &["record", "on", "cam0", "--timeout", "10"]);
    recorder.wait_json(DEADLINE, |v| v["state"] == "recording" && v["written"].as_u64() >= Some(120));
    ctl_ok(&d, &["record", "off", "cam0", "--timeout", "10"]);
    let off = recorder.wait_json(DEADLINE, |v| v["clips"].as_u64() >= Some(1));
    assert_eq!(off["state"], "armed", "{off}");
    assert_eq!(recorder.terminate(), Some(0), "{}", recorder.stderr_text());
    assert_eq!(capture.terminate(), Some(0));

    let segments = completed(&rec);
    assert_eq!(segments.len(), 1, "{segments:?}");
    // The synthetic stamps in the decoded pictures match the sidecar: the pre-roll frames
    // (kept as JPEG, decoded for the video) are the frames their ids say.
    contiguous(&segments, check_segment);
    let lines = sidecar(&segments[0]);
    let head = &lines[0];
    assert_eq!(head["trigger"]["source"], "manual", "{head}");
    let live = u(head, "first_live_frame_id");
    let frames: Vec<&Value> = lines.iter().filter(|l| l["type"] == "frame").collect();
    let older: Vec<&&Value> = frames.iter().filter(|f| u(f, "capture_realtime_ns") < before).collect();
    assert!((45..=70).contains(&older.len()), "about 2 s (60 frames) captured before the command, got {}", older.len());
    assert!(older.iter().all(|f| u(f, "frame_id") < live), "frames older than the command are before the boundary");
    assert_eq!(lines.last().expect("end")["reason"], "saving-off");
    let records = journal(&rec);
    assert_eq!(of_type(&records, "clip-started")[0]["trigger"]["source"], "manual");
    d.assert_no_leftovers();
}

/// A results producer other than algo (a user program publishing through the Rust API, here
/// the test itself as reader `detector`) triggers a clip when a box matches the trigger's
/// label and score, and never on the results that do not match; `ctl events --follow --json`
/// streams the clip's records as they are written.
#[test]
fn a_user_programs_results_trigger_a_clip() {
    let d = TestDeployment::new(&synthetic_camera(
        "pre-roll-secs = 1\npost-roll-secs = 1\n[[camera.recorder.trigger]]\nproducer = \"detector\"\nlabel = \"person\"\nmin-box-score = 0.5\n",
    ));
    let rec = d.dir.path().join("rec");
    let mut capture = d.spawn("capture", &[]);
    let mut recorder = d.spawn("recorder", &["--json"]);
    recorder.wait_json(DEADLINE, |v| v["state"] == "armed" && v["held_secs"].as_f64() >= Some(1.5));
    let mut follow = d.spawn("ctl", &["events", "cam0", "--follow", "--json"]);
    follow.wait_stderr(DEADLINE, "waiting for");

    let camera = framebus::Camera::builder(&d.config, "cam0")
        .and_then(|b| b.role("detector"))
        .and_then(|b| b.open())
        .expect("open the camera as `detector`");
    let detection =
        |label: &str, score: f32| Detection { x: 10.0, y: 20.0, w: 30.0, h: 40.0, label: label.into(), score };
    let until = Instant::now() + DEADLINE;
    let (mut seen, mut person) = (0u64, None);
    // 90 frames of results that must not trigger, one that must, 60 more that must not.
    while seen < 151 {
        assert!(Instant::now() < until, "the camera stopped delivering frames");
        let frame = match camera.frames().next() {
            Some(frame) => frame.expect("frame"),
            None => panic!("the detector was stopped"),
        };
        let header = *frame.header();
        drop(frame);
        seen += 1;
        let boxes = match seen {
            91 => {
                person = Some(header.frame_id);
                vec![detection("person", 0.8), detection("cat", 0.9)]
            }
            n if n % 2 == 0 => vec![detection("person", 0.3)],
            _ => vec![detection("cat", 0.95)],
        };
        camera.publish_result(&header, Some(0.9), &boxes, None).expect("publish");
    }
    drop(camera);
    let person = person.expect("the person frame");
    let done = follow.wait_json(DEADLINE, |v| v["type"] == "clip-completed");
    assert_eq!(follow.terminate(), Some(0), "{}", follow.stderr_text());
    let status = recorder.wait_json(DEADLINE, |v| v["clips"].as_u64() >= Some(1));
    assert_eq!(recorder.terminate(), Some(0), "{}", recorder.stderr_text());
    assert_eq!(capture.terminate(), Some(0));
    assert_eq!(u(&status, "clips"), 1, "only the person at 0.8 matches: {status}");

    let segments = completed(&rec);
    assert_eq!(segments.len(), 1, "{segments:?}");
    let (first, last, _) = contiguous(&segments, check_segment);
    let head = &sidecar(&segments[0])[0];
    let trigger = &head["trigger"]["results"][0];
    assert_eq!((trigger["producer"].as_str(), u(trigger, "frame_id")), (Some("detector"), person), "{head}");
    assert_eq!(trigger["boxes"][0]["label"], "person", "{head}");
    // 1 s each side in capture time: 30 frames, fewer when a loaded machine makes capture late.
    assert!(first.abs_diff(person - 30) <= 8, "1 s before frame {person}: {first}");
    assert!(last.abs_diff(person + 30) <= 8, "1 s after frame {person}: {last}");
    assert_eq!((u(&done, "first_frame_id"), u(&done, "last_frame_id")), (first, last), "{done}");
    d.assert_no_leftovers();
}

/// Retention with a tiny `max-total-mb` while recording 0.5 s segments: the oldest segments
/// are deleted first (logged, counted in status `deletions`, journaled), what remains never
/// exceeds the limit by more than the segment being written, every remaining segment plays
/// with exactly its sidecar's frames and they run on without a hole to the last one, which was
/// being written at the stop and completed: the current segment is never touched.
#[test]
fn retention_by_size_deletes_the_oldest_and_never_the_segment_being_written() {
    let d = TestDeployment::new(&synthetic_camera("enabled = true\nsegment-secs = 0.5\nmax-total-mb = 1\n"));
    let rec = d.dir.path().join("rec");
    let mut capture = d.spawn("capture", &[]);
    let mut recorder = d.spawn("recorder", &["--json"]);
    let deleting = recorder.wait_json(DEADLINE, |v| v["deletions"].as_u64() >= Some(6));
    let status = d.wait_status(|s| process_status(s, "cam0", "recorder")["deletions"].as_u64() >= Some(6));
    assert_eq!(process_status(&status, "cam0", "recorder")["activity"], "recording", "{status}");
    assert_eq!(recorder.terminate(), Some(0), "{}", recorder.stderr_text());
    let last = recorder.stderr_text();
    assert_eq!(capture.terminate(), Some(0));
    assert!(last.contains("retention (max-total): deleted segment"), "deletions are logged");
    assert!(!last.contains(" ERROR "), "{last}");
    assert_eq!(u(&deleting, "failed_segments"), 0, "{deleting}");

    let all = files(&rec, "jsonl");
    assert!(all.iter().all(|p| !p.to_string_lossy().contains(".partial.")), "{all:?}");
    let kept = completed(&rec);
    assert_eq!(kept.len(), all.len(), "no failed segment: {all:?}");
    assert!(kept.len() >= 2, "{kept:?}");
    let (first, _, _) = contiguous(&kept, check_segment);
    assert!(first > 1, "the oldest frames were deleted");
    let last_lines = sidecar(kept.last().expect("kept"));
    assert_eq!(last_lines.last().expect("end")["reason"], "stop", "the segment being written completed at the stop");
    let size = |p: &PathBuf| {
        let stem = p.to_string_lossy().trim_end_matches(".jsonl").to_string();
        ["jsonl", "avi"].iter().map(|e| std::fs::metadata(format!("{stem}.{e}")).map_or(0, |m| m.len())).sum::<u64>()
    };
    let total: u64 = kept.iter().map(size).sum();
    let newest = kept.last().map(size).unwrap_or(0);
    assert!(total <= 1024 * 1024 + newest, "{total} bytes kept, limit 1 MiB + the newest {newest}");

    let records = journal(&rec);
    let deleted = of_type(&records, "segment-deleted");
    assert!(deleted.len() >= 6, "{records:#?}");
    assert!(deleted.iter().all(|r| r["reason"] == "max-total"), "{deleted:#?}");
    let oldest_kept = kept[0].file_stem().map(|s| s.to_string_lossy().into_owned()).expect("name");
    assert!(
        deleted.iter().all(|r| r["segment"].as_str().is_some_and(|s| s < oldest_kept.as_str())),
        "only segments older than every kept one were deleted"
    );
    d.assert_no_leftovers();
}

/// Retention by age (`max-age-days` of about 2.6 s): segments older than that are deleted,
/// journaled with reason `max-age`, the newer ones stay.
#[test]
fn retention_by_age_deletes_segments_older_than_the_limit() {
    let d = TestDeployment::new(&synthetic_camera("enabled = true\nsegment-secs = 0.5\nmax-age-days = 0.00003\n"));
    let rec = d.dir.path().join("rec");
    let mut capture = d.spawn("capture", &[]);
    let mut recorder = d.spawn("recorder", &["--json"]);
    recorder.wait_json(DEADLINE, |v| v["deletions"].as_u64() >= Some(3));
    let kept_while_running = completed(&rec).len();
    assert_eq!(recorder.terminate(), Some(0), "{}", recorder.stderr_text());
    assert_eq!(capture.terminate(), Some(0));
    // About 2.6 s of 0.5 s segments (+ the one written meanwhile) stay.
    assert!((2..=12).contains(&kept_while_running), "{kept_while_running} segments kept");
    let records = journal(&rec);
    let deleted = of_type(&records, "segment-deleted");
    assert!(deleted.len() >= 3 && deleted.iter().all(|r| r["reason"] == "max-age"), "{deleted:#?}");
    contiguous(&completed(&rec), check_segment);
    d.assert_no_leftovers();
}

/// A pre-roll whose memory estimate exceeds `pre-roll-max-mb` is refused at start: exit 2,
/// naming the file, the key and the figures.
#[test]
fn a_pre_roll_over_the_memory_limit_is_refused() {
    let d = TestDeployment::new(
        &synthetic_camera("pre-roll-secs = 10\npre-roll-max-mb = 64\n")
            .replace("width = 320\nheight = 240", "width = 1920\nheight = 1080"),
    );
    let (code, _, err) = Proc::output("recorder", &["--config", d.config.to_str().expect("utf-8")]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains(&d.config.display().to_string()), "names the file: {err}");
    assert!(err.contains("`camera[0].recorder.pre-roll-secs`"), "names the key: {err}");
    assert!(err.contains("330 JPEG frames") && err.contains("more than pre-roll-max-mb = 64"), "{err}");
    let (code, _, err) = d.ctl(&["up"]);
    assert_eq!(code, Some(2), "ctl up refuses it before starting anything: {err}");
    d.assert_no_leftovers();
}
