//! The events page and webhooks (issue 20): a deployment under `ctl up` with a streamer and a
//! recorder writing the stream (`video = "stream"`). `ctl record on`/`off` makes a clip; the
//! preview's `/api/events` lists it with its thumbnail (a JPEG of the trigger's frame) and its
//! MP4, served with HTTP range requests; requests that try to leave the recordings folder
//! (`..`, encoded slashes, a symlink in the clip's place, huge ranges) get nothing; headless
//! Chromium renders `/events` with the clip's `<video>` and thumbnail, and plays that video
//! past 1 s. A webhook receiver on 127.0.0.1 gets `start` and `end` of the clip; while it is
//! down the recorder keeps recording and the retries are counted (metrics); once it is up
//! again it gets the next clip's events. A second camera's motion (algo results matching a
//! trigger) makes MJPEG AVI clips, listed with their thumbnail (boxes drawn) as downloads.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use framebus_e2e::webhook::{Delivered, WebhookReceiver};
use framebus_e2e::{http_get, process_status, Proc, TestDeployment, DEADLINE};
use framebus_vision::opencv::core::Vector;
use framebus_vision::opencv::imgcodecs;
use framebus_vision::opencv::prelude::*;
use serde_json::Value;

const WIDTH: u32 = 640;
const HEIGHT: u32 = 480;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

fn recorder_message(status: &Value) -> String {
    process_status(status, "cam0", "recorder")["message"].as_str().unwrap_or_default().to_string()
}

/// Frames written by the recorder in its current clip (`recording …: N written, …`).
fn written(status: &Value) -> u64 {
    let message = recorder_message(status);
    let Some(at) = message.find(" written") else { return 0 };
    message[..at].split_whitespace().last().and_then(|n| n.parse().ok()).unwrap_or(0)
}

/// The next webhook body of `event` about `camera` (others are skipped), within the deadline.
fn next_event(bodies: &mpsc::Receiver<Delivered>, camera: &str, event: &str) -> Value {
    let until = Instant::now() + DEADLINE;
    loop {
        let left = until.saturating_duration_since(Instant::now());
        let delivered = bodies
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("no webhook `{event}` of `{camera}` within {DEADLINE:?}"));
        assert!(delivered.request_line.starts_with("POST /hook "), "{}", delivered.request_line);
        let body = delivered.body;
        if body["event"] == event && body["camera"] == camera {
            return body;
        }
    }
}

/// One raw request to the preview: (status, head, body).
fn raw_request(port: u16, request: &str) -> (u16, String, Vec<u8>) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to the preview");
    stream.set_read_timeout(Some(DEADLINE)).expect("timeout");
    stream.write_all(request.as_bytes()).expect("send");
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or(raw.len());
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, head, raw.get(split + 4..).unwrap_or_default().to_vec())
}

fn get_with(port: u16, path: &str, extra: &str) -> (u16, String, Vec<u8>) {
    raw_request(port, &format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra}Connection: close\r\n\r\n"))
}

/// The value of the Prometheus sample `name{url="…"}` (0 when absent).
fn metric(port: u16, name: &str) -> f64 {
    let (_, _, body) = http_get(&format!("http://127.0.0.1:{port}/"), "/metrics");
    String::from_utf8_lossy(&body)
        .lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with('{'))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// Headless Chromium with a profile and TMPDIR in the test's folder, in a process group of its
/// own (killed whole).
fn chromium(d: &TestDeployment, name: &str, args: &[String]) -> Command {
    let mut command = Command::new("chromium");
    command
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--mute-audio"])
        .args(["--disable-background-networking", "--disable-component-update", "--disable-sync"])
        .arg("--autoplay-policy=no-user-gesture-required")
        .arg(format!("--user-data-dir={}", d.dir.path().join(name).display()))
        .args(args)
        .env("TMPDIR", d.dir.path())
        .process_group(0);
    command
}

/// Runs Chromium to completion (bounded: killed after 60 s), returns its stdout.
fn chromium_output(d: &TestDeployment, name: &str, args: &[String]) -> String {
    let mut child = chromium(d, name, args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("chromium is installed (scripts/bootstrap.sh)");
    let mut stdout = child.stdout.take().expect("piped stdout");
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        let _ = stdout.read_to_string(&mut out);
        out
    });
    let until = Instant::now() + Duration::from_secs(60);
    let mut finished = false;
    while Instant::now() < until {
        if child.try_wait().ok().flatten().is_some() {
            finished = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // SAFETY: kill has no memory-safety preconditions; the group is the browser's own.
    unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
    let _ = child.wait();
    assert!(finished, "chromium did not finish within 60 s");
    reader.join().unwrap_or_default()
}

/// Serves the test's player page on `listener` and returns the query of its `/result`.
fn serve_player(listener: TcpListener, page: String) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut stream: TcpStream = stream;
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let mut line = String::new();
            if BufReader::new(&stream).read_line(&mut line).is_err() {
                continue;
            }
            let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
            let body = if path.starts_with("/result") {
                let _ = tx.send(path.split_once('?').map(|(_, q)| q.to_string()).unwrap_or_default());
                String::new()
            } else {
                page.clone()
            };
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    rx
}

/// `ctl record on`, until the recorder wrote `frames`, `ctl record off`, until it is off.
fn record(d: &TestDeployment, frames: u64) {
    let (code, _, err) = d.ctl(&["record", "on", "cam0"]);
    assert_eq!(code, Some(0), "{err}");
    d.wait_status(|s| written(s) >= frames);
    let (code, _, err) = d.ctl(&["record", "off", "cam0"]);
    assert_eq!(code, Some(0), "{err}");
    d.wait_status(|s| recorder_message(s).starts_with("off"));
}

#[test]
fn the_events_page_lists_and_plays_clips_and_webhooks_get_their_events() {
    let (rtsp, http, preview, metrics, hook) = (free_port(), free_port(), free_port(), free_port(), free_port());
    // A second camera, `door`: a file looping a still picture with 1 s of motion every 10 s;
    // algo's motion results trigger MJPEG AVI clips (the JPEG path) with boxes.
    let dir = tempfile::tempdir().expect("temp dir");
    let motion = super::events::motion_clip(dir.path(), 300, (150, 180));
    // The body continues the `[deployment]` table the test kit writes.
    let d = TestDeployment::new(&format!(
        "metrics = \"127.0.0.1:{metrics}\"\n\n\
         [[deployment.webhook]]\nurl = \"http://127.0.0.1:{hook}/hook\"\nevents = [\"start\", \"end\"]\ntimeout-secs = 2\n\n\
         [media-server]\nrtsp = \"127.0.0.1:{rtsp}\"\nhttp = \"127.0.0.1:{http}\"\n\n\
         [[camera]]\nname = \"cam0\"\nwidth = {WIDTH}\nheight = {HEIGHT}\nfps = 30\n\n\
         [camera.source]\nkind = \"synthetic\"\n\n\
         [camera.preview]\nlisten = \"127.0.0.1:{preview}\"\nfps = 2\n\n\
         [camera.streamer]\nbitrate-kbps = 2000\ngop = 15\nstats-interval-secs = 0.5\n\n\
         [camera.recorder]\ndirectory = \"rec\"\nvideo = \"stream\"\nmin-free-mb = 1\nstats-interval-secs = 0.5\n\n\
         [[camera]]\nname = \"door\"\nwidth = 320\nheight = 240\nfps = 30\n\n\
         [camera.source]\nkind = \"file\"\npath = \"{}\"\npace = \"config\"\n\n[camera.algo]\n\n\
         [camera.recorder]\ndirectory = \"rec\"\nmin-free-mb = 1\npre-roll-secs = 1\npost-roll-secs = 1\n\
         [[camera.recorder.trigger]]\nproducer = \"algo\"\nmin-score = 0.001\n",
        motion.display()
    ));
    let (bodies_tx, bodies) = mpsc::channel();
    let receiver = WebhookReceiver::start(hook, None, bodies_tx.clone());
    let mut up = d.spawn("ctl", &["up"]);
    d.wait_status(|s| {
        process_status(s, "cam0", "streamer")["message"].as_str().is_some_and(|m| m.starts_with("streaming"))
            && recorder_message(s).starts_with("off")
    });

    // A clip of about 3 s; the receiver gets its start and its end.
    record(&d, 90);
    let start = next_event(&bodies, "cam0", "start");
    let end = next_event(&bodies, "cam0", "end");
    assert_eq!(start["camera"], "cam0", "{start}");
    assert_eq!(start["label"], "manual", "{start}");
    assert_eq!(end["clip"], start["clip"], "{end}");
    let clip = end["clip"].as_str().expect("clip id").to_string();
    assert!(end["duration_secs"].as_f64().unwrap_or(0.0) > 2.0, "{end}");
    let clip_path = end["clip_path"].as_str().expect("clip_path");
    assert!(clip_path.ends_with(".mp4") && std::path::Path::new(clip_path).is_file(), "{end}");
    let base = format!("http://127.0.0.1:{preview}");
    assert_eq!(end["page_url"], format!("{base}/events?camera=cam0#{clip}"), "{end}");
    let clip_url = end["clip_url"].as_str().expect("clip_url");
    assert!(clip_url.starts_with(&format!("{base}/events/clip/cam0/")), "{end}");

    // /api/events lists it with its thumbnail and video.
    let (status, _, body) = http_get(&base, "/api/events?camera=cam0");
    assert_eq!(status, 200);
    let list: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(list["total"], 1, "{list}");
    let event = &list["events"][0];
    assert_eq!(event["clip"], clip.as_str(), "{event}");
    assert_eq!(event["label"], "manual", "{event}");
    assert_eq!(event["video"]["type"], "video/mp4", "{event}");
    assert_eq!(event["video"]["plays_in_browser"], true, "{event}");
    let video_url = event["video"]["url"].as_str().expect("video url").to_string();
    let thumb_url = event["thumbnail"].as_str().expect("thumbnail url").to_string();
    assert!(clip_url.ends_with(&video_url), "{clip_url} vs {video_url}");
    let (_, _, body) = http_get(&base, "/api/events?label=person");
    assert_eq!(serde_json::from_slice::<Value>(&body).expect("json")["total"], 0, "label filter");

    // The door's motion clip (webhooks too): labelled `motion` with algo's score, an AVI that
    // browsers cannot play, offered with its thumbnail (boxes drawn) as a download.
    let door_end = next_event(&bodies, "door", "end");
    assert_eq!(door_end["label"], "motion", "{door_end}");
    assert!(door_end["score"].as_f64().unwrap_or(0.0) > 0.0, "{door_end}");
    let (_, _, body) = http_get(&base, "/api/events?label=motion");
    let list: Value = serde_json::from_slice(&body).expect("json");
    let door = &list["events"][0];
    assert_eq!(
        (&door["camera"], &door["video"]["plays_in_browser"]),
        (&Value::from("door"), &Value::from(false)),
        "{list}"
    );
    let (status, head, jpeg) = http_get(&base, door["thumbnail"].as_str().expect("door thumbnail"));
    assert_eq!(status, 200, "{head}");
    let image = imgcodecs::imdecode(&Vector::<u8>::from_slice(&jpeg), imgcodecs::IMREAD_COLOR).expect("decode");
    assert_eq!((image.cols(), image.rows()), (320, 240), "a small frame is not upscaled");

    // The thumbnail is a JPEG of the clip's frame, downscaled to fit 480x360.
    let (status, head, jpeg) = http_get(&base, &thumb_url);
    assert_eq!(status, 200, "{head}");
    assert!(head.to_ascii_lowercase().contains("content-type: image/jpeg"), "{head}");
    let image = imgcodecs::imdecode(&Vector::<u8>::from_slice(&jpeg), imgcodecs::IMREAD_COLOR).expect("decode");
    assert_eq!((image.cols(), image.rows()), (480, 360), "thumbnail size");

    // The clip, whole and in ranges (what a <video> element asks for).
    let (status, head, whole) = get_with(preview, &video_url, "");
    assert_eq!(status, 200, "{head}");
    assert_eq!(whole, std::fs::read(clip_path).expect("clip file"), "served bytes differ from the file");
    let size = whole.len();
    let (status, head, part) = get_with(preview, &video_url, "Range: bytes=100-199\r\n");
    assert_eq!(status, 206, "{head}");
    assert!(head.contains(&format!("bytes 100-199/{size}")), "{head}");
    assert_eq!(part, whole[100..200]);
    // Huge ranges: cut at the end, or refused; several ranges: the whole file.
    let (status, head, part) = get_with(preview, &video_url, "Range: bytes=10-99999999999999999\r\n");
    assert_eq!((status, part.len()), (206, size - 10), "{head}");
    let (status, head, _) = get_with(preview, &video_url, "Range: bytes=99999999999-\r\n");
    assert_eq!(status, 416, "{head}");
    assert!(head.contains(&format!("bytes */{size}")), "{head}");
    let (status, _, part) = get_with(preview, &video_url, "Range: bytes=0-1, 5-6\r\n");
    assert_eq!((status, part.len()), (200, size));
    let (status, head, _) = get_with(preview, &video_url, "Range: bytes=-99999999999999999999999\r\n");
    assert!(status == 416 || status == 206, "{head}");

    // Requests that try to leave the recordings folder, or name what the journal does not list.
    let config_name = d.config.file_name().expect("name").to_string_lossy().to_string();
    for path in [
        "/events/clip/cam0/../deployment.toml".to_string(),
        "/events/clip/cam0/..%2Fdeployment.toml".to_string(),
        "/events/clip/cam0/%2e%2e%2fdeployment.toml".to_string(),
        "/events/clip/cam0/..".to_string(),
        "/events/clip/../cam0/x.mp4".to_string(),
        "/events/clip/cam0%2F..%2F..%2Fdeployment.toml".to_string(),
        format!("/events/clip/cam0/{config_name}"),
        "/events/clip/cam0/events".to_string(),
        "/events/clip/cam1/x.mp4".to_string(),
        "/events/thumb/cam0/..%2F..%2Fdeployment.toml.jpg".to_string(),
        "/events/thumb/cam0/nope.jpg".to_string(),
    ] {
        let (status, head, body) = get_with(preview, &path, "");
        assert_eq!(status, 404, "{path}: {head}");
        assert!(!String::from_utf8_lossy(&body).contains("[deployment]"), "{path} leaked the config");
    }

    // Chromium renders /events: the clip's card with its <video> (thumbnail as its poster).
    let dom = chromium_output(
        &d,
        "chromium-dom",
        &["--virtual-time-budget=10000".to_string(), "--dump-dom".to_string(), format!("{base}/events")],
    );
    assert!(dom.contains(&format!("id=\"{clip}\"")), "the page has no card for {clip}:\n{dom}");
    assert!(dom.contains(&format!("src=\"{video_url}\"")), "no <video> of the clip:\n{dom}");
    assert!(dom.contains(&format!("poster=\"{thumb_url}\"")), "no thumbnail:\n{dom}");
    assert!(dom.contains("manual") && dom.contains(">motion<"), "{dom}");
    assert!(dom.contains("MJPEG AVI: browsers do not play it") && dom.contains("download"), "{dom}");
    // A screenshot for people to look at (kept in the test's folder unless asked for).
    let shot = std::env::var_os("FRAMEBUS_EVENTS_SCREENSHOT")
        .map_or_else(|| d.dir.path().join("events.png"), std::path::PathBuf::from);
    chromium_output(
        &d,
        "chromium-shot",
        &[
            "--window-size=1280,720".to_string(),
            "--hide-scrollbars".to_string(),
            "--virtual-time-budget=10000".to_string(),
            format!("--screenshot={}", shot.display()),
            format!("{base}/events"),
        ],
    );
    assert!(std::fs::metadata(&shot).map(|m| m.len()).unwrap_or(0) > 1000, "no screenshot");

    // Chromium plays the clip's video (the page's URL, with range requests) past 1 s.
    let page = TcpListener::bind("127.0.0.1:0").expect("page port");
    let page_port = page.local_addr().expect("addr").port();
    let results = serve_player(
        page,
        format!(
            r#"<!doctype html><html><body>
<img id="t" src="{base}{thumb_url}"><video id="v" src="{base}{video_url}" muted autoplay playsinline></video>
<script>
const v = document.getElementById("v"), t = document.getElementById("t");
v.addEventListener("error", () => fetch("/result?error=" + (v.error && v.error.code)));
const done = setInterval(() => {{
  if (v.currentTime > 1.0 && t.complete) {{
    clearInterval(done);
    fetch("/result?time=" + v.currentTime + "&size=" + v.videoWidth + "x" + v.videoHeight + "&thumb=" + t.naturalWidth + "x" + t.naturalHeight);
  }}
}}, 100);
</script></body></html>"#
        ),
    );
    let mut command = chromium(&d, "chromium-play", &[format!("http://127.0.0.1:{page_port}/")]);
    let mut player = Proc::spawn_command("chromium", &mut command);
    let result = results.recv_timeout(Duration::from_secs(60));
    // SAFETY: kill has no memory-safety preconditions; the group is the browser's own.
    unsafe { libc::kill(-(player.child.id() as i32), libc::SIGKILL) };
    player.kill9();
    let query = result.unwrap_or_else(|_| panic!("Chromium did not play the clip past 1 s: {}", player.stderr_text()));
    assert!(query.contains(&format!("size={WIDTH}x{HEIGHT}")) && query.contains("thumb=480x360"), "{query}");

    // The receiver goes down: the next clip is recorded all the same, its events are retried
    // (counted), and delivered once the receiver is back.
    drop(receiver);
    let (code, _, err) = d.ctl(&["record", "on", "cam0"]);
    assert_eq!(code, Some(0), "{err}");
    let until = Instant::now() + DEADLINE;
    while metric(metrics, "framebus_webhook_retries_total") < 2.0 {
        assert!(Instant::now() < until, "no webhook retries counted within {DEADLINE:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let recording = d.wait_status(|s| written(s) >= 30);
    assert!(recorder_message(&recording).starts_with("recording"), "{recording}");
    let _receiver = WebhookReceiver::start(hook, None, bodies_tx);
    let second = next_event(&bodies, "cam0", "start");
    assert_ne!(second["clip"], clip.as_str(), "{second}");
    let (code, _, err) = d.ctl(&["record", "off", "cam0"]);
    assert_eq!(code, Some(0), "{err}");
    let second_end = next_event(&bodies, "cam0", "end");
    assert_eq!(second_end["clip"], second["clip"], "{second_end}");
    assert!(metric(metrics, "framebus_webhook_sent_total") >= 4.0);
    assert_eq!(metric(metrics, "framebus_webhook_dropped_total"), 0.0);

    // A symlink in place of a listed clip is refused (not followed), whatever it points to.
    let clip_file = std::path::PathBuf::from(clip_path);
    std::fs::rename(&clip_file, clip_file.with_extension("moved")).expect("move clip");
    std::os::unix::fs::symlink(&d.config, &clip_file).expect("plant symlink");
    let (status, head, body) = get_with(preview, &video_url, "");
    assert_eq!(status, 404, "{head}");
    assert!(!String::from_utf8_lossy(&body).contains("[deployment]"), "the symlink was followed");

    up.signal(libc::SIGTERM);
    assert_eq!(up.wait_exit(DEADLINE), Some(0), "ctl up: {}", up.stderr_text());
    d.assert_no_leftovers();
}
