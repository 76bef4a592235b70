//! The recorder with `video = "stream"`: it writes the H.264 the camera's streamer encodes into
//! MP4 segments (no second encoder). Under `ctl up` with a streamer and the media server:
//! `ctl record on`/`off` makes segments that ffprobe reads as H.264 of the configured size with
//! as many frames as the sidecar lists, whose decoded integrity stamps are the sidecar's frame
//! ids, and whose sidecars account for every frame id; a killed and restarted streamer ends
//! the segment and the next starts at its first key frame; SIGTERM of the recorder while it
//! records leaves the segment finalized and playable.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use framebus_e2e::{process_status, TestDeployment, DEADLINE};

use super::recorder::{check_segment, files, sidecar};

const WIDTH: u32 = 640;
const HEIGHT: u32 = 480;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

/// ffprobe's (codec, width, height) of a file's first video stream.
fn probe(path: &Path) -> (String, u64, u64) {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-show_entries", "stream=codec_name,width,height"])
        .args(["-of", "json"])
        .arg(path)
        .output()
        .expect("ffprobe is installed (scripts/bootstrap.sh)");
    assert!(out.status.success(), "ffprobe {}: {}", path.display(), String::from_utf8_lossy(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("ffprobe json");
    let stream = &json["streams"][0];
    (
        stream["codec_name"].as_str().unwrap_or_default().to_string(),
        stream["width"].as_u64().unwrap_or(0),
        stream["height"].as_u64().unwrap_or(0),
    )
}

fn recorder_message(status: &serde_json::Value) -> String {
    process_status(status, "cam0", "recorder")["message"].as_str().unwrap_or_default().to_string()
}

/// Segments completed, from the recorder's status message (`..., N segment(s) completed`).
fn completed(status: &serde_json::Value) -> u64 {
    let message = recorder_message(status);
    let at = message.find(" segment(s) completed").unwrap_or(0);
    message[..at].split_whitespace().last().and_then(|n| n.parse().ok()).unwrap_or(0)
}

/// Finished sidecars (not `.partial`) in `dir`.
fn finished(dir: &Path) -> Vec<PathBuf> {
    files(dir, "jsonl").into_iter().filter(|p| !p.to_string_lossy().contains(".partial")).collect()
}

/// Checks one finished stream segment: plays as H.264 of the configured size, frame count and
/// decoded stamps match the sidecar (see `check_segment`: every listed frame decodes, so the
/// segment starts at a key frame), the ids it accounts for are contiguous. Returns its saved
/// frame ids.
fn check_stream_segment(index: &Path) -> Vec<u64> {
    let lines = sidecar(index);
    assert_eq!(lines[0]["codec"], "h264 (streamer)", "{}", index.display());
    let video = index.parent().expect("dir").join(lines[0]["video"].as_str().expect("video"));
    assert_eq!(probe(&video), ("h264".to_string(), u64::from(WIDTH), u64::from(HEIGHT)), "{}", video.display());
    let accounted: BTreeMap<u64, bool> = check_segment(index);
    let (first, last) = (*accounted.keys().next().expect("ids"), *accounted.keys().last().expect("ids"));
    assert_eq!(accounted.len() as u64, last - first + 1, "{}: frame ids are not contiguous", index.display());
    let saved: Vec<u64> = accounted.iter().filter(|(_, s)| **s).map(|(id, _)| *id).collect();
    assert!(!saved.is_empty(), "{}: no frame", index.display());
    // Before its first saved frame a segment lists only skipped ranges (frames the streamer
    // did not encode, or before its key frame).
    let first = lines.iter().position(|l| l["type"] == "frame").expect("a frame line");
    assert!(lines[1..first].iter().all(|l| l["type"] == "skipped"), "{}: {lines:?}", index.display());
    saved
}

/// `ctl record on`/`off` with `video = "stream"`, a streamer killed mid-segment, then SIGTERM
/// of the recorder mid-segment.
#[test]
fn stream_segments_play_match_their_sidecars_across_restarts_and_sigterm() {
    let (rtsp, http) = (free_port(), free_port());
    let d = TestDeployment::new(&format!(
        "[media-server]\nrtsp = \"127.0.0.1:{rtsp}\"\nhttp = \"127.0.0.1:{http}\"\n\n\
         [[camera]]\nname = \"cam0\"\nwidth = {WIDTH}\nheight = {HEIGHT}\nfps = 30\n\n\
         [camera.source]\nkind = \"synthetic\"\n\n\
         [camera.streamer]\nbitrate-kbps = 3000\ngop = 15\nstats-interval-secs = 0.5\n\n\
         [camera.recorder]\ndirectory = \"rec\"\nvideo = \"stream\"\nsegment-secs = 1.0\nmin-free-mb = 1\nstats-interval-secs = 0.5\n"
    ));
    let mut up = d.spawn("ctl", &["up"]);
    d.wait_status(|s| {
        process_status(s, "cam0", "streamer")["message"].as_str().is_some_and(|m| m.starts_with("streaming"))
            && recorder_message(s).starts_with("off")
    });
    let rec = d.dir.path().join("rec");
    assert!(files(&rec, "mp4").is_empty(), "the recorder wrote while saving was off");

    let (code, _, err) = d.ctl(&["record", "on", "cam0"]);
    assert_eq!(code, Some(0), "{err}");
    d.wait_status(|s| completed(s) >= 2);
    let (code, _, err) = d.ctl(&["record", "off", "cam0"]);
    assert_eq!(code, Some(0), "{err}");
    d.wait_status(|s| recorder_message(s).starts_with("off"));
    let indexes = finished(&rec);
    assert!(indexes.len() >= 3, "{indexes:?}");
    assert!(files(&rec, "mp4").iter().all(|p| !p.to_string_lossy().contains(".partial")), "a segment is partial");
    let mut saved = 0;
    for index in &indexes {
        saved += check_stream_segment(index).len();
    }
    assert!(saved >= 45, "only {saved} frames recorded in {} segments", indexes.len());
    let last = sidecar(indexes.last().expect("segments"));
    assert_eq!(last.last().expect("end")["reason"], "saving-off", "{last:?}");

    // The streamer dies and the supervisor restarts it: the segment ends ("stream-restart")
    // and the next starts at the new encoder's first key frame; both play.
    let (code, _, err) = d.ctl(&["record", "on", "cam0"]);
    assert_eq!(code, Some(0), "{err}");
    let status = d.wait_status(|s| {
        let message = recorder_message(s);
        message.starts_with("recording cam0_") && !message.contains(" 0 written")
    });
    let streamer = process_status(&status, "cam0", "streamer")["pid"].as_u64().expect("streamer pid");
    // SAFETY: kill has no memory-safety preconditions; the pid is the streamer's.
    unsafe { libc::kill(streamer as i32, libc::SIGKILL) };
    let restarted = |dir: &Path| {
        finished(dir).iter().any(|i| sidecar(i).last().is_some_and(|end| end["reason"] == "stream-restart"))
    };
    let status = d.wait_status(|s| {
        let pid = process_status(s, "cam0", "streamer")["pid"].as_u64();
        pid.is_some_and(|p| p != streamer) && restarted(&rec) && recorder_message(s).starts_with("recording cam0_")
    });
    let after = completed(&status);
    d.wait_status(|s| completed(s) > after);
    let (code, _, err) = d.ctl(&["record", "off", "cam0"]);
    assert_eq!(code, Some(0), "{err}");
    d.wait_status(|s| recorder_message(s).starts_with("off"));
    for index in finished(&rec) {
        check_stream_segment(&index);
    }

    // SIGTERM while recording: the segment being written is finalized and plays.
    let (code, _, err) = d.ctl(&["record", "on", "cam0"]);
    assert_eq!(code, Some(0), "{err}");
    let status = d.wait_status(|s| {
        let message = recorder_message(s);
        message.starts_with("recording cam0_") && !message.contains(" 0 written")
    });
    let message = recorder_message(&status);
    let base = message["recording ".len()..].split(':').next().expect("segment name").to_string();
    let pid = process_status(&status, "cam0", "recorder")["pid"].as_u64().expect("recorder pid");
    // SAFETY: kill has no memory-safety preconditions; the pid is the recorder's.
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    let index = rec.join(format!("{base}.jsonl"));
    let deadline = std::time::Instant::now() + DEADLINE;
    while !index.exists() {
        assert!(std::time::Instant::now() < deadline, "segment {base} was not finalized after SIGTERM");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let lines = sidecar(&index);
    assert_eq!(lines.last().expect("end")["reason"], "stop", "{lines:?}");
    check_stream_segment(&index);

    let (code, _, err) = d.ctl(&["stop", "cam0"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(up.wait_exit(DEADLINE), Some(0), "{}", up.stderr_text());
    for index in finished(&rec) {
        check_stream_segment(&index);
    }
    assert!(files(&rec, "mp4").iter().all(|p| !p.to_string_lossy().contains(".partial")), "a segment is partial");
    d.assert_no_leftovers();
}

/// No media server at all: the streamer publishes on shared memory all the same, the recorder
/// is its only reader, and the segments still play and match their sidecars, also after the
/// recorder was paused (SIGSTOP) while the streamer went on.
#[test]
fn stream_recording_does_not_need_the_media_server() {
    let d = TestDeployment::new(&format!(
        "[[camera]]\nname = \"cam0\"\nwidth = {WIDTH}\nheight = {HEIGHT}\nfps = 30\n\n\
         [camera.source]\nkind = \"synthetic\"\n\n\
         [camera.streamer]\ngop = 15\nstats-interval-secs = 0.5\n\n\
         [camera.recorder]\ndirectory = \"rec\"\nenabled = true\nvideo = \"stream\"\nsegment-secs = 1.0\nmin-free-mb = 1\nstats-interval-secs = 0.25\n"
    ));
    let mut capture = d.spawn("capture", &[]);
    capture.wait_stderr(DEADLINE, "publishing");
    let mut streamer = d.spawn("streamer", &["--json"]);
    let mut recorder = d.spawn("recorder", &["--json"]);
    recorder.wait_json(DEADLINE, |v| v["segments"].as_u64() >= Some(2));
    let report = streamer.wait_json(DEADLINE, |r| r["units_published"].as_u64() >= Some(30));
    assert!(report["sent"].as_u64() >= Some(30), "the encoder runs without a media server: {report}");

    // A paused recorder never holds the streamer up: it publishes on (more than the recorder's
    // one-second queue), and the recorder, continued, lists what it lost and goes on at the
    // next key frame.
    let published = report["units_published"].as_u64().unwrap_or(0);
    recorder.signal(libc::SIGSTOP);
    // A report made after the stop: its count is at least the count at the stop.
    let at_stop = streamer.wait_json(DEADLINE, |r| r["units_published"].as_u64() > Some(published))["units_published"]
        .as_u64()
        .unwrap_or(0);
    // (The reports read here may be older than the stop: 120 more is well over the recorder's
    // one-second queue of 30.)
    streamer.wait_json(DEADLINE, |r| r["units_published"].as_u64() > Some(at_stop + 120));
    recorder.signal(libc::SIGCONT);
    let segments = recorder.wait_json(DEADLINE, |v| v["segments"].as_u64().is_some())["segments"].as_u64().unwrap_or(0);
    recorder.wait_json(DEADLINE, |v| v["segments"].as_u64() >= Some(segments + 2));
    // The recorder ends last: it must leave nothing of the deployment behind either.
    assert_eq!(streamer.terminate(), Some(0), "{}", streamer.stderr_text());
    assert_eq!(capture.terminate(), Some(0));
    assert_eq!(recorder.terminate(), Some(0), "{}", recorder.stderr_text());
    let rec = d.dir.path().join("rec");
    let indexes = finished(&rec);
    assert!(indexes.len() >= 5, "{indexes:?}");
    let mut lost = 0;
    let mut ranges = Vec::new();
    for index in &indexes {
        ranges.extend(sidecar(index).into_iter().filter(|l| l["type"] == "skipped"));
        check_stream_segment(index);
        lost += sidecar(index)
            .iter()
            .filter(|l| l["type"] == "skipped")
            .map(|l| l["count"].as_u64().unwrap_or(0))
            .sum::<u64>();
    }
    assert!(
        lost >= 1 && ranges.iter().any(|r| r["reason"] == "dropped"),
        "the pause lost access units, yet the sidecars list no dropped frames: {ranges:?}"
    );
    d.assert_no_leftovers();
}
