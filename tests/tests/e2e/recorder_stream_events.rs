//! Events from the stream (issue 20 item 1): with a streamer, triggers record its H.264 by
//! default, holding the pre-roll as access units in whole GOPs. A file source with motion makes
//! one clip that starts at the key frame at or before (trigger − pre-roll) and ends at the
//! post-roll, whose MP4 plays in ffprobe and in headless Chromium for as long as its sidecar
//! says; `ctl record on` carries the pre-roll (decoded stamps match the sidecar) and SIGTERM
//! mid-clip leaves a playable MP4.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

use framebus_e2e::{ffprobe_frames, Proc, TestDeployment, DEADLINE};
use serde_json::Value;

use super::events::motion_clip;
use super::recorder::{check_segment, files, sidecar, u};

/// GOP of the streamer in these tests (frames).
const GOP: u64 = 15;

/// Finished sidecars (not `.partial`, not `.failed`) in `rec`, oldest first.
fn finished(rec: &Path) -> Vec<PathBuf> {
    files(rec, "jsonl")
        .into_iter()
        .filter(|p| {
            let name = p.to_string_lossy();
            !name.contains(".partial.") && !name.contains(".failed.")
        })
        .collect()
}

/// (frame id → saved?) of a stream segment whose MP4 ffprobe reads with exactly the frames
/// saved, and which starts with a frame (no unit skipped for want of a key frame).
fn check_stream_clip(index: &Path) -> BTreeMap<u64, bool> {
    let lines = sidecar(index);
    assert_eq!(lines[0]["codec"], "h264 (streamer)", "{}", index.display());
    assert_eq!(lines.last().expect("lines")["type"], "end", "{}: not finalized", index.display());
    assert_eq!(lines[1]["type"], "frame", "{}: the clip starts at a key frame: {}", index.display(), lines[1]);
    let mut accounted = BTreeMap::new();
    for line in &lines[1..lines.len() - 1] {
        match line["type"].as_str() {
            Some("frame") => assert!(accounted.insert(u(line, "frame_id"), true).is_none(), "{line}"),
            Some("skipped") => {
                assert_ne!(line["reason"], "wait-key-frame", "{}: {line}", index.display());
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

/// Serves a page with a `<video>` of `clip` (with HTTP range requests) on `listener`; returns
/// the query of the page's first `/result` request (`t=<currentTime>` once past 1 s, or
/// `error=<code>`).
fn serve_clip(listener: TcpListener, clip: Vec<u8>) -> mpsc::Receiver<String> {
    let page = r#"<!doctype html><html><body><video id="v" src="/clip.mp4" autoplay muted playsinline></video>
<script>
const v = document.getElementById("v");
v.addEventListener("error", () => fetch("/result?error=" + (v.error ? v.error.code : 0)));
const check = () => { if (v.currentTime > 1) fetch("/result?t=" + v.currentTime); else setTimeout(check, 100); };
check();
</script></body></html>"#;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut stream: TcpStream = stream;
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let mut reader = BufReader::new(&stream);
            let mut line = String::new();
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            let mut range = None;
            let mut header = String::new();
            while reader.read_line(&mut header).is_ok_and(|n| n > 2) {
                if let Some(value) = header.to_ascii_lowercase().strip_prefix("range: bytes=") {
                    let (a, b) = value.trim().split_once('-').unwrap_or(("0", ""));
                    range = Some((a.parse::<usize>().unwrap_or(0), b.parse::<usize>().ok()));
                }
                header.clear();
            }
            let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
            let (status, kind, body, extra) = if path.starts_with("/result") {
                let _ = tx.send(path.split_once('?').map(|(_, q)| q.to_string()).unwrap_or_default());
                ("200 OK", "text/plain", Vec::new(), String::new())
            } else if path == "/clip.mp4" {
                let len = clip.len();
                match range {
                    Some((a, b)) if a < len => {
                        let end = b.unwrap_or(len - 1).min(len - 1);
                        let part = clip[a..=end].to_vec();
                        ("206 Partial Content", "video/mp4", part, format!("Content-Range: bytes {a}-{end}/{len}\r\n"))
                    }
                    _ => ("200 OK", "video/mp4", clip.clone(), "Accept-Ranges: bytes\r\n".to_string()),
                }
            } else {
                ("200 OK", "text/html", page.as_bytes().to_vec(), String::new())
            };
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes()).and_then(|()| stream.write_all(&body));
        }
    });
    rx
}

/// Plays `video` in headless Chromium from a page of the test's own server; returns the
/// page's result (`t=...` once playback passed 1 s).
fn chromium_plays_clip(d: &TestDeployment, video: &Path) -> String {
    let page = TcpListener::bind("127.0.0.1:0").expect("a port for the page");
    let port = page.local_addr().expect("addr").port();
    let results = serve_clip(page, std::fs::read(video).expect("the clip"));
    let profile = d.dir.path().join("chromium");
    let mut command = Command::new("chromium");
    command
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"])
        .args(["--disable-background-networking", "--disable-component-update", "--disable-sync"])
        .args(["--autoplay-policy=no-user-gesture-required", "--remote-debugging-port=0"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("http://127.0.0.1:{port}/"))
        // Its singleton socket folder goes into the test's folder, not /tmp.
        .env("TMPDIR", d.dir.path())
        // Its own process group: the browser's helper processes are killed with it.
        .process_group(0);
    let mut chromium = Proc::spawn_command("chromium", &mut command);
    let result = results.recv_timeout(Duration::from_secs(60));
    // SAFETY: kill has no memory-safety preconditions; the group is the browser's own.
    unsafe { libc::kill(-(chromium.child.id() as i32), libc::SIGKILL) };
    chromium.kill9();
    result
        .unwrap_or_else(|_| panic!("Chromium did not play the clip within 60 s; its log:\n{}", chromium.stderr_text()))
}

/// A block appears at frame 151 (file frame 150) and moves for one second; algo's motion
/// triggers one clip recorded from the streamer (the default for events on a camera with a
/// streamer: no `video` key). It starts at a key frame within one GOP before trigger − 2 s,
/// ends about 2 s after the motion, plays as long as its frames say, and in Chromium.
#[test]
fn motion_makes_one_clip_from_the_stream_with_its_pre_and_post_roll() {
    let dir = tempfile::tempdir().expect("temp dir");
    let clip = motion_clip(dir.path(), 450, (150, 180));
    let d = TestDeployment::new(&format!(
        "[[camera]]\nname = \"cam0\"\nwidth = 320\nheight = 240\nfps = 30\n\n[camera.source]\nkind = \"file\"\npath = \"{}\"\npace = \"config\"\nloop = false\n\n[camera.algo]\n\n\
         [camera.streamer]\ngop = {GOP}\nbitrate-kbps = 1000\nstats-interval-secs = 0.5\n\n\
         [camera.recorder]\ndirectory = \"rec\"\nstats-interval-secs = 0.25\nmin-free-mb = 1\npre-roll-secs = 2\npost-roll-secs = 2\n\
         [[camera.recorder.trigger]]\nproducer = \"algo\"\nmin-score = 0.001\n",
        clip.display()
    ));
    let rec = d.dir.path().join("rec");
    let mut streamer = d.spawn("streamer", &[]);
    streamer.wait_stderr(DEADLINE, "reading frames");
    let mut recorder = d.spawn("recorder", &["--json"]);
    recorder.wait_stderr(DEADLINE, "video = \"stream\"");
    let mut algo = d.spawn("algo", &[]);
    algo.wait_stderr(DEADLINE, "reading frames");
    let mut capture = d.spawn("capture", &[]);
    let armed = recorder.wait_json(DEADLINE, |v| v["state"] == "armed" && v["held_secs"].as_f64() >= Some(2.5));
    assert!(u(&armed, "held_bytes") > 0, "{armed}");
    recorder.wait_json(DEADLINE, |v| v["clips"].as_u64() >= Some(1));
    let after = recorder.wait_json(DEADLINE, |v| v["last_frame_id"].as_u64() >= Some(360));
    assert_eq!((u(&after, "clips"), u(&after, "missed_triggers")), (1, 0), "{after}");
    // Held in whole GOPs: at most 3 s (2 s + 1 s for late results) and one GOP, and a few
    // frames the writer has not taken yet.
    assert!(after["held_secs"].as_f64().is_some_and(|s| s <= 3.0 + GOP as f64 / 30.0 + 0.2), "{after}");
    assert_eq!(recorder.terminate(), Some(0), "{}", recorder.stderr_text());
    for p in [&mut algo, &mut capture, &mut streamer] {
        p.terminate();
    }

    let segments = finished(&rec);
    assert_eq!(segments.len(), 1, "exactly one clip in one segment: {:?}", files(&rec, "jsonl"));
    let accounted = check_stream_clip(&segments[0]);
    let (first, last) = (*accounted.keys().next().expect("ids"), *accounted.keys().last().expect("ids"));
    assert_eq!(accounted.len() as u64, last - first + 1, "a hole between frames {first} and {last}");
    let saved = accounted.values().filter(|s| **s).count() as u64;
    let lines = sidecar(&segments[0]);
    let head = &lines[0];
    assert_eq!(head["trigger"]["source"], "result", "{head}");
    let n = u(&head["trigger"], "frame_id");
    assert!((151..=156).contains(&n), "the first motion result is about the block appearing (frame 151): {n}");
    // Pre-roll: from the key frame at or before n − 60, so up to one GOP earlier (and a few
    // frames of pacing jitter either way).
    assert!(
        first + 8 >= n - 60 - GOP && first <= n - 60 + 8,
        "first frame {first}, trigger frame {n}: expected within one GOP ({GOP}) before {}",
        n - 60
    );
    assert!((230..=250).contains(&last), "last frame {last}: expected about 181 + 60");
    assert_eq!(u(head, "clip_first_frame_id"), first, "{head}");
    assert!(u(head, "first_live_frame_id").abs_diff(n) <= 15, "{head}");
    assert_eq!(lines.last().expect("end")["reason"], "post-roll");
    let video = rec.join(head["video"].as_str().expect("video"));
    let duration = ffprobe_duration(&video);
    let expected = (last - first + 1) as f64 / 30.0;
    assert!(
        (duration - expected).abs() < 0.2,
        "{duration} s in ffprobe, frames {first}..={last} ({saved} saved) at 30 fps"
    );
    let played = chromium_plays_clip(&d, &video);
    assert!(played.starts_with("t="), "Chromium: {played}");
    d.assert_no_leftovers();
}

/// `ctl record on` with `video = "stream"` and a 2 s pre-roll: the clip holds frames captured
/// before the command, from a key frame (its decoded stamps are its sidecar's ids); SIGTERM of
/// the recorder mid-clip finishes it as a playable MP4.
#[test]
fn record_on_carries_the_stream_pre_roll_and_sigterm_leaves_a_playable_clip() {
    let d = TestDeployment::new(
        "[[camera]]\nname = \"cam0\"\nwidth = 640\nheight = 480\nfps = 30\n\n[camera.source]\nkind = \"synthetic\"\n\n\
         [camera.streamer]\ngop = 15\nstats-interval-secs = 0.5\n\n\
         [camera.recorder]\ndirectory = \"rec\"\nvideo = \"stream\"\npre-roll-secs = 2\nstats-interval-secs = 0.25\nmin-free-mb = 1\n",
    );
    let rec = d.dir.path().join("rec");
    let mut capture = d.spawn("capture", &[]);
    capture.wait_stderr(DEADLINE, "publishing");
    let mut streamer = d.spawn("streamer", &[]);
    let mut recorder = d.spawn("recorder", &["--json"]);
    recorder.wait_json(DEADLINE, |v| v["state"] == "armed" && v["held_secs"].as_f64() >= Some(2.5));
    assert!(files(&rec, "jsonl").is_empty(), "nothing written while armed");
    let before = framebus_common::clock::realtime_ns();
    let (code, _, err) = d.ctl(&["record", "on", "cam0", "--timeout", "10"]);
    assert_eq!(code, Some(0), "{err}");
    recorder.wait_json(DEADLINE, |v| v["state"] == "recording" && v["written"].as_u64() >= Some(120));
    // SIGTERM mid-clip.
    assert_eq!(recorder.terminate(), Some(0), "{}", recorder.stderr_text());
    assert_eq!(streamer.terminate(), Some(0));
    assert_eq!(capture.terminate(), Some(0));

    let segments = finished(&rec);
    assert_eq!(segments.len(), 1, "{segments:?}");
    check_stream_clip(&segments[0]);
    // The decoded pictures carry the sidecar's ids (every one decodes: it starts at a key frame).
    check_segment(&segments[0]);
    let lines = sidecar(&segments[0]);
    let head = &lines[0];
    assert_eq!(head["trigger"]["source"], "manual", "{head}");
    let frames: Vec<&Value> = lines.iter().filter(|l| l["type"] == "frame").collect();
    let older = frames.iter().filter(|f| u(f, "capture_realtime_ns") < before).count() as u64;
    assert!(
        (45..=70 + GOP).contains(&older),
        "about 2 s (60 frames, up to a GOP more) before the command, got {older}"
    );
    assert_eq!(lines.last().expect("end")["reason"], "stop");
    d.assert_no_leftovers();
}
