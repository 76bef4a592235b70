//! The streamer and the media server: a deployment under `ctl up` with `[camera.streamer]` and
//! `[media-server]`; ffprobe/ffmpeg read the RTSP stream (codec, size, decoded integrity stamps
//! rising), headless Chromium plays the WebRTC stream through WHEP (stamps read from the
//! decoded video rising), a killed media server comes back and serves again while capture and
//! the streamer run on untouched. Attacks (issue 17): an RTSP ANNOUNCE/RECORD to the server is
//! refused and viewers keep seeing the camera; a port squatted before start receives nothing
//! (the streamer opens no connection at all).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::Duration;

use framebus_common::pattern::read_bgr_stamps;
use framebus_e2e::browser::{chromium_result, serve_page};
use framebus_e2e::{http_get, pid_alive, process_status, TestDeployment, DEADLINE};

/// The viewer of the auth test's users file: `viewer`, password `s3cret-pass`.
const USERS_FILE: &str = "viewer:framebus:0a802798b50121af1f43c3da67e0b568\n";
/// Basic credentials of that viewer (`viewer:s3cret-pass`).
const AUTHORIZATION: &str = "Basic dmlld2VyOnMzY3JldC1wYXNz";
/// The same user with a wrong password (`viewer:wrong`).
const WRONG_PASSWORD: &str = "Basic dmlld2VyOndyb25n";

const WIDTH: u32 = 640;
const HEIGHT: u32 = 480;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

fn deployment(rtsp: u16, http: u16) -> TestDeployment {
    deployment_with(rtsp, http, "")
}

/// A deployment whose `[media-server]` table also has `server_keys`.
fn deployment_with(rtsp: u16, http: u16, server_keys: &str) -> TestDeployment {
    TestDeployment::new(&format!(
        "[media-server]\nrtsp = \"127.0.0.1:{rtsp}\"\nhttp = \"127.0.0.1:{http}\"\n{server_keys}\n\
         [[camera]]\nname = \"cam0\"\nwidth = {WIDTH}\nheight = {HEIGHT}\nfps = 30\n\n\
         [camera.source]\nkind = \"synthetic\"\n\n\
         [camera.preview]\nlisten = \"127.0.0.1:0\"\nfps = 2\n\n\
         [camera.streamer]\nbitrate-kbps = 3000\ngop = 15\nstats-interval-secs = 0.5\n"
    ))
}

fn streamer_message(status: &serde_json::Value) -> String {
    process_status(status, "cam0", "streamer")["message"].as_str().unwrap_or_default().to_string()
}

fn streaming(status: &serde_json::Value) -> bool {
    streamer_message(status).starts_with("streaming")
}

/// Number after `<label>` in a message like `..., 12 skipped, 3 restarts`.
fn count_before(message: &str, label: &str) -> u64 {
    let at = message.find(label).unwrap_or(0);
    message[..at].split_whitespace().last().and_then(|n| n.trim_matches(',').parse().ok()).unwrap_or(0)
}

/// The media server's `/status.json` entry of cam0 (asked with [`AUTHORIZATION`], which a
/// server without `[auth]` ignores).
fn server_camera(http: u16) -> serde_json::Value {
    let (code, answer) =
        super::network::request(http, "GET", "/status.json", &format!("Authorization: {AUTHORIZATION}\r\n"), "");
    assert_eq!(code, 200, "{answer}");
    let body = answer.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or_default();
    let status: serde_json::Value = serde_json::from_str(body).expect("status json");
    status["cameras"][0].clone()
}

/// Waits (bounded) until the media server at `http` receives cam0's stream.
fn wait_server_receiving(http: u16) {
    let until = std::time::Instant::now() + DEADLINE;
    loop {
        let ok = std::panic::catch_unwind(|| server_camera(http)).is_ok_and(|c| c["publishing"] == true);
        if ok {
            return;
        }
        assert!(std::time::Instant::now() < until, "the media server never received cam0's stream");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// One RTSP request (CSeq 1, `Content-Type: application/sdp` when `body` is not empty): the
/// status code of the reply (0 when the connection gave none).
fn rtsp_request(port: u16, method: &str, path: &str, extra: &str, body: &str) -> u16 {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let content = if body.is_empty() {
        String::new()
    } else {
        format!("Content-Type: application/sdp\r\nContent-Length: {}\r\n", body.len())
    };
    let head = format!("{method} rtsp://127.0.0.1:{port}{path} RTSP/1.0\r\nCSeq: 1\r\n{extra}{content}\r\n{body}");
    stream.write_all(head.as_bytes()).expect("send");
    let mut line = String::new();
    let _ = BufReader::new(&stream).read_line(&mut line);
    line.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0)
}

/// ffprobe run on `url`: whether it succeeded, and its stderr.
fn probe_result(url: &str) -> (bool, String) {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-rtsp_transport", "tcp", "-show_entries", "stream=codec_name", "-of", "json", url])
        .stdin(Stdio::null())
        .output()
        .expect("ffprobe is installed (scripts/bootstrap.sh)");
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// ffprobe's view of the stream: (codec, width, height).
fn probe(url: &str) -> (String, u64, u64) {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-rtsp_transport", "tcp", "-select_streams", "v:0"])
        .args(["-show_entries", "stream=codec_name,width,height", "-of", "json", url])
        .output()
        .expect("ffprobe is installed (scripts/bootstrap.sh)");
    assert!(out.status.success(), "ffprobe {url}: {}", String::from_utf8_lossy(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("ffprobe json");
    let stream = &json["streams"][0];
    (
        stream["codec_name"].as_str().unwrap_or_default().to_string(),
        stream["width"].as_u64().unwrap_or(0),
        stream["height"].as_u64().unwrap_or(0),
    )
}

/// Decodes `n` frames of the RTSP stream with ffmpeg and reads both integrity stamps of each.
fn decoded_stamps(url: &str, n: usize) -> Vec<(u64, u64)> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-rtsp_transport", "tcp", "-i", url, "-frames:v", &n.to_string()])
        .args(["-f", "rawvideo", "-pix_fmt", "bgr24", "-"])
        .stdin(Stdio::null())
        .output()
        .expect("ffmpeg is installed (scripts/bootstrap.sh)");
    assert!(out.status.success(), "ffmpeg {url}: {}", String::from_utf8_lossy(&out.stderr));
    let frame = (WIDTH * HEIGHT * 3) as usize;
    assert_eq!(out.stdout.len(), frame * n, "ffmpeg decoded {} bytes", out.stdout.len());
    out.stdout.chunks_exact(frame).map(|f| read_bgr_stamps(WIDTH as usize, HEIGHT as usize, f)).collect()
}

fn assert_rising_stamps(stamps: &[(u64, u64)]) {
    for (top, bottom) in stamps {
        assert_eq!(top, bottom, "top and bottom stamps differ (torn or undecodable): {stamps:?}");
    }
    let ids: Vec<u64> = stamps.iter().map(|s| s.0).collect();
    assert!(ids[0] > 0, "no stamp: {ids:?}");
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "decoded frame ids do not rise: {ids:?}");
}

/// One HTTP request to the media server: (status, body).
fn request(port: u16, method: &str, path: &str, content_type: &str, body: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream.set_read_timeout(Some(DEADLINE)).expect("timeout");
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).expect("send head");
    // The server may answer (413) before it has read a large body.
    let _ = stream.write_all(body.as_bytes());
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer).into_owned();
    let code = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (code, text)
}

/// The pid of the running child of `parent` named `name`.
fn child_named(parent: u32, name: &str) -> Option<u32> {
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|entry| {
        let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
        let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
        let comm = &stat[stat.find('(')? + 1..stat.rfind(')')?];
        let ppid: u32 = stat[stat.rfind(')')? + 2..].split_whitespace().nth(1)?.parse().ok()?;
        (ppid == parent && comm == name && !stat[stat.rfind(')')? + 2..].starts_with('Z')).then_some(pid)
    })
}

/// The test's page for Chromium: plays the camera with the media server's own player script
/// (`/whep.js`, cross-origin WHEP, with `authorization` as its `Authorization` header when
/// given), reads the stamp of each decoded video frame from a canvas and reports the first
/// rising ids back to the test's server.
fn player_page(http: u16, authorization: Option<&str>) -> String {
    let options = match authorization {
        Some(value) => format!("{{ authorization: {value:?} }}"),
        None => "{}".to_string(),
    };
    format!(
        r#"<!doctype html><html><body><video id="v" autoplay muted playsinline></video><canvas id="c"></canvas>
<script src="http://127.0.0.1:{http}/whep.js"></script>
<script>
const video = document.getElementById("v"), canvas = document.getElementById("c");
const cell = Math.max(2, Math.min(16, Math.floor({WIDTH} / 64)) & ~1);
const ids = [];
framebusWhep(video, "http://127.0.0.1:{http}/cam0/whep", s => console.log("state " + s), {options});
function stamp() {{
  canvas.width = video.videoWidth; canvas.height = video.videoHeight;
  const ctx = canvas.getContext("2d", {{ willReadFrequently: true }});
  ctx.drawImage(video, 0, 0);
  const row = ctx.getImageData(0, Math.floor(cell / 2), canvas.width, 1).data;
  let value = 0n;
  for (let bit = 0; bit < 64; bit++) {{
    const x = bit * cell + Math.floor(cell / 2);
    value = (value << 1n) | (row[x * 4 + 1] >= 128 ? 1n : 0n);
  }}
  return value;
}}
function frame(now, meta) {{
  if (video.videoWidth > 0) {{
    const id = stamp();
    if (ids.length === 0 || id > ids[ids.length - 1]) ids.push(id);
  }}
  if (ids.length >= 10) {{
    fetch("/result?size=" + video.videoWidth + "x" + video.videoHeight + "&ids=" + ids.join(","));
    return;
  }}
  video.requestVideoFrameCallback(frame);
}}
video.requestVideoFrameCallback(frame);
</script></body></html>"#
    )
}

/// Plays the camera in headless Chromium over WebRTC from the test's page served on `page`
/// (another origin than the media server's, allowed by the config; WHEP requests carry
/// `authorization` when given); returns the ids it decoded.
fn chromium_plays(d: &TestDeployment, http: u16, page: TcpListener, authorization: Option<&str>) -> (String, Vec<u64>) {
    let port = page.local_addr().expect("addr").port();
    let results = serve_page(page, player_page(http, authorization), None);
    let flags = [
        "--disable-quic",
        "--allow-loopback-in-peer-connection",
        "--disable-features=WebRtcHideLocalIpsWithMdns",
        "--remote-debugging-port=0",
    ];
    let query = chromium_result(
        d,
        ("chromium", &flags),
        &format!("http://127.0.0.1:{port}/"),
        &results,
        "Chromium decoded no rising frame ids over WebRTC within 60 s",
    );
    let mut size = String::new();
    let mut ids = Vec::new();
    for (key, value) in query.split('&').filter_map(|kv| kv.split_once('=')) {
        match key {
            "size" => size = value.to_string(),
            "ids" => ids = value.split(',').filter_map(|v| v.parse().ok()).collect(),
            _ => {}
        }
    }
    (size, ids)
}

/// A deployment with a streamer under `ctl up`: the RTSP stream is H.264 of the configured size
/// whose decoded frames carry rising integrity stamps; Chromium plays it over WebRTC with rising
/// ids; the preview page links to both; a killed media server is restarted by the supervisor and
/// serves again from shared memory, while capture and the streamer run on undisturbed.
#[test]
fn rtsp_and_webrtc_play_the_camera_and_a_media_server_restart_touches_nobody() {
    let (rtsp, http) = (free_port(), free_port());
    // The test's player page is served from another origin, which the config allows.
    let page = TcpListener::bind("127.0.0.1:0").expect("bind");
    let page_port = page.local_addr().expect("addr").port();
    let d = deployment_with(rtsp, http, &format!("allowed-origins = [\"http://127.0.0.1:{page_port}\"]\n"));
    let mut up = d.spawn("ctl", &["up"]);
    let status = d.wait_status(streaming);
    let capture_pid = process_status(&status, "cam0", "capture")["pid"].as_u64().expect("capture pid");
    let url = format!("rtsp://127.0.0.1:{rtsp}/cam0");

    assert_eq!(probe(&url), ("h264".to_string(), u64::from(WIDTH), u64::from(HEIGHT)));
    assert_rising_stamps(&decoded_stamps(&url, 8));

    let (size, ids) = chromium_plays(&d, http, page, None);
    assert_eq!(size, format!("{WIDTH}x{HEIGHT}"));
    assert!(ids.len() >= 10 && ids.windows(2).all(|w| w[0] < w[1]), "WebRTC ids: {ids:?}");

    // Bad WHEP requests get clear statuses and the server keeps serving.
    let whep = |path: &str, content_type: &str, body: &str| request(http, "POST", path, content_type, body);
    assert_eq!(whep("/cam0/whep", "text/plain", "v=0").0, 415);
    let (code, text) =
        whep("/cam0/whep", "application/sdp", "v=0\r\nm=video 9 RTP/SAVPF 96\r\na=rtpmap:96 VP8/90000\r\n");
    assert_eq!(code, 400, "{text}");
    assert!(text.contains("no H.264"), "{text}");
    assert_eq!(whep("/nope/whep", "application/sdp", "v=0").0, 404);
    assert_eq!(whep("/cam0/whep", "application/sdp", &"a".repeat(200_000)).0, 413);
    assert_eq!(request(http, "DELETE", "/cam0/whep/999", "text/plain", "").0, 404);
    assert_eq!(server_camera(http)["publishing"], true);

    // The player page of the server and the preview's link to it.
    let (code, _, page) = http_get(&format!("http://127.0.0.1:{http}/"), "/cam0");
    assert_eq!(code, 200);
    assert!(String::from_utf8_lossy(&page).contains("/whep.js"));
    let preview_line = up.wait_stderr(DEADLINE, "preview served at http://");
    let preview =
        preview_line[preview_line.find("http://").expect("url")..].split_whitespace().next().expect("url").to_string();
    let (_, _, page) = http_get(&preview, "/");
    let page = String::from_utf8_lossy(&page);
    assert!(page.contains(&format!("http://127.0.0.1:{http}/cam0")), "preview page has no WebRTC link");
    assert!(page.contains(&url), "preview page has no RTSP link");

    // Kill the media server: the supervisor restarts it; it reads the stream from shared memory
    // again. Capture and the streamer never notice (same pids, frames and access units go on).
    let server = child_named(up.child.id(), "mediaserver").expect("mediaserver is a child of ctl up");
    let before = d.wait_status(|_| true);
    let frames_before = process_status(&before, "cam0", "capture")["frames"].as_u64().unwrap_or(0);
    let streamer_pid = process_status(&before, "cam0", "streamer")["pid"].as_u64().expect("streamer pid");
    let sent_before = count_before(&streamer_message(&before), "sent");
    // SAFETY: kill has no memory-safety preconditions; the pid is the server we found.
    unsafe { libc::kill(server as i32, libc::SIGKILL) };
    let until = std::time::Instant::now() + DEADLINE;
    let new_server = loop {
        match child_named(up.child.id(), "mediaserver") {
            Some(pid) if pid != server => break pid,
            _ => assert!(std::time::Instant::now() < until, "the media server was not restarted"),
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    wait_server_receiving(http);
    assert_rising_stamps(&decoded_stamps(&url, 4));
    let status = d.wait_status(|s| count_before(&streamer_message(s), "sent") > sent_before + 30);
    let capture = process_status(&status, "cam0", "capture");
    assert_eq!(capture["pid"].as_u64(), Some(capture_pid), "capture was restarted");
    assert!(capture["frames"].as_u64().unwrap_or(0) > frames_before, "capture stopped publishing");
    assert_eq!(capture["state"], "running", "{capture}");
    let streamer = process_status(&status, "cam0", "streamer");
    assert_eq!(streamer["pid"].as_u64(), Some(streamer_pid), "the streamer was restarted");
    assert_eq!(count_before(&streamer_message(&status), "restarts"), 0, "{status}");

    // Stopping the camera ends its readers and then the media server: `ctl up` exits by itself.
    let (code, _, err) = d.ctl(&["stop", "cam0"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(up.wait_exit(DEADLINE), Some(0), "{}", up.stderr_text());
    assert!(up.stderr_text().contains("stopping the media server"), "{}", up.stderr_text());
    assert!(!pid_alive(new_server), "the media server outlived ctl up");
    d.assert_no_leftovers();
}

/// Issue 17, attack 1: an RTSP client announcing and recording its own stream (as `ffmpeg -f
/// rtsp` would) to the camera's old publish path or to its play path gets no success reply,
/// and viewers keep decoding the camera's own frames (both integrity stamps present and
/// rising).
#[test]
fn an_rtsp_announce_is_refused_and_viewers_keep_the_camera() {
    let (rtsp, http) = (free_port(), free_port());
    let d = deployment(rtsp, http);
    let mut up = d.spawn("ctl", &["up"]);
    d.wait_status(streaming);
    wait_server_receiving(http);
    let url = format!("rtsp://127.0.0.1:{rtsp}/cam0");
    assert_rising_stamps(&decoded_stamps(&url, 4));

    let sdp = "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=intruder\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
               m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=1\r\na=control:stream=0\r\n";
    for path in ["/cam0/publish", "/cam0", "/cam0/", "/intruder"] {
        let code = rtsp_request(rtsp, "ANNOUNCE", path, "", sdp);
        assert!(!(200..300).contains(&code), "ANNOUNCE {path} was accepted ({code})");
        assert!(code >= 400, "ANNOUNCE {path}: no error status ({code})");
        let code = rtsp_request(
            rtsp,
            "SETUP",
            &format!("{path}/stream=0"),
            "Transport: RTP/AVP/TCP;unicast;interleaved=0-1;mode=record\r\n",
            "",
        );
        assert!(!(200..300).contains(&code), "SETUP mode=record {path} was accepted ({code})");
        let code = rtsp_request(rtsp, "RECORD", path, "Session: 1\r\n", "");
        assert!(!(200..300).contains(&code), "RECORD {path} was accepted ({code})");
    }
    // A real publisher: ffmpeg pushing red frames with ANNOUNCE/RECORD over TCP. It must fail.
    for path in ["/cam0/publish", "/cam0"] {
        let out = Command::new("ffmpeg")
            .args(["-v", "error", "-f", "lavfi", "-i", "color=red:s=320x240:r=30", "-t", "2"])
            .args(["-c:v", "mpeg4", "-f", "rtsp", "-rtsp_transport", "tcp"])
            .arg(format!("rtsp://127.0.0.1:{rtsp}{path}"))
            .stdin(Stdio::null())
            .output()
            .expect("ffmpeg is installed (scripts/bootstrap.sh)");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "ffmpeg published to {path}: {stderr}");
        assert!(!stderr.contains("Unknown encoder"), "ffmpeg could not even encode: {stderr}");
    }
    // Viewers still see the camera: stamps present on both rows (a red or foreign frame has
    // none) and rising.
    assert_rising_stamps(&decoded_stamps(&url, 8));
    let server = server_camera(http);
    assert_eq!(server["publishes"], 1, "the stream was replaced: {server}");

    let (code, _, err) = d.ctl(&["stop", "cam0"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(up.wait_exit(DEADLINE), Some(0), "{}", up.stderr_text());
    d.assert_no_leftovers();
}

/// Issue 17, attack 2: another user listens on the media server's RTSP port before the
/// deployment starts. The media server then fails loudly (its port is required), the streamer
/// streams all the same (to shared memory) and the squatter receives nothing: no connection
/// is ever made to it.
#[test]
fn a_squatted_rtsp_port_receives_no_video() {
    let squatter = TcpListener::bind("127.0.0.1:0").expect("bind");
    squatter.set_nonblocking(true).expect("nonblocking");
    let rtsp = squatter.local_addr().expect("addr").port();
    let http = free_port();
    let d = deployment(rtsp, http);
    let mut capture = d.spawn("capture", &[]);
    capture.wait_stderr(DEADLINE, "publishing");
    let mut streamer = d.spawn("streamer", &["--json"]);
    let mut server = d.spawn("mediaserver", &[]);
    assert_eq!(server.wait_exit(DEADLINE), Some(2), "{}", server.stderr_text());
    assert!(server.stderr_text().contains(&format!("127.0.0.1:{rtsp}")), "{}", server.stderr_text());
    let report = streamer.wait_json(DEADLINE, |r| r["units_published"].as_u64() >= Some(60));
    assert_eq!(report["state"], "streaming", "{report}");
    assert!(report.get("url").is_none(), "the streamer still has a URL: {report}");
    match squatter.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        Ok((_, from)) => panic!("the squatter got a connection from {from}"),
        Err(e) => panic!("accept: {e}"),
    }
    // And the streamer has no TCP socket at all.
    let fds = std::fs::read_dir(format!("/proc/{}/fd", streamer.child.id())).expect("fds");
    let sockets: Vec<String> = fds
        .flatten()
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .map(|p| p.to_string_lossy().into_owned())
        .filter(|p| p.starts_with("socket:"))
        .collect();
    let inodes: Vec<&str> = sockets.iter().map(|s| s.trim_start_matches("socket:[").trim_end_matches(']')).collect();
    let tcp = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default()
        + &std::fs::read_to_string("/proc/net/tcp6").unwrap_or_default();
    let streamer_tcp: Vec<&str> =
        tcp.lines().filter(|l| l.split_whitespace().nth(9).is_some_and(|inode| inodes.contains(&inode))).collect();
    assert!(streamer_tcp.is_empty(), "the streamer holds TCP sockets: {streamer_tcp:?}");

    assert_eq!(streamer.terminate(), Some(0), "{}", streamer.stderr_text());
    assert_eq!(capture.terminate(), Some(0));
    d.assert_no_leftovers();
}

/// Issue 17 item 2: with `[auth] users-file`, every server asks viewers for credentials. RTSP
/// (digest): ffprobe without credentials or with a wrong password is refused (401), with them it
/// reads H.264 and ffmpeg decodes rising stamps. WHEP: an offer without credentials or with a
/// wrong password gets 401 and a basic challenge, with them 201, and its `DELETE` needs them too;
/// the player script and CORS preflights are served without. Headless Chromium plays the camera
/// over WebRTC from a page of another origin, with the credentials in the player's WHEP
/// requests. Preview and metrics: 401 without, 200 with.
#[test]
fn viewers_authenticate_on_rtsp_whep_preview_and_metrics() {
    use super::network::{header, request, OFFER};
    use std::os::unix::fs::PermissionsExt;

    let (rtsp, http, metrics) = (free_port(), free_port(), free_port());
    let page = TcpListener::bind("127.0.0.1:0").expect("bind");
    let page_port = page.local_addr().expect("addr").port();
    let d = TestDeployment::new(&format!(
        "metrics = \"127.0.0.1:{metrics}\"\n\n[auth]\nusers-file = \"viewers.htdigest\"\n\n\
         [media-server]\nrtsp = \"127.0.0.1:{rtsp}\"\nhttp = \"127.0.0.1:{http}\"\n\
         allowed-origins = [\"http://127.0.0.1:{page_port}\"]\n\n\
         [[camera]]\nname = \"cam0\"\nwidth = {WIDTH}\nheight = {HEIGHT}\nfps = 30\n\n\
         [camera.source]\nkind = \"synthetic\"\n\n\
         [camera.preview]\nlisten = \"127.0.0.1:0\"\nfps = 2\n\n\
         [camera.streamer]\nbitrate-kbps = 3000\ngop = 15\nstats-interval-secs = 0.5\n"
    ));
    let users = d.dir.path().join("viewers.htdigest");
    std::fs::write(&users, USERS_FILE).expect("write the users file");
    std::fs::set_permissions(&users, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let mut up = d.spawn("ctl", &["up"]);
    d.wait_status(streaming);
    wait_server_receiving(http);
    let with = format!("Authorization: {AUTHORIZATION}\r\n");
    let wrong = format!("Authorization: {WRONG_PASSWORD}\r\n");

    // RTSP: digest authentication.
    assert_eq!(rtsp_request(rtsp, "DESCRIBE", "/cam0", "Accept: application/sdp\r\n", ""), 401);
    let (ok, err) = probe_result(&format!("rtsp://127.0.0.1:{rtsp}/cam0"));
    assert!(!ok && err.contains("401"), "ffprobe without credentials: {err}");
    let (ok, err) = probe_result(&format!("rtsp://viewer:wrong@127.0.0.1:{rtsp}/cam0"));
    assert!(!ok && err.contains("401"), "ffprobe with a wrong password: {err}");
    let url = format!("rtsp://viewer:s3cret-pass@127.0.0.1:{rtsp}/cam0");
    assert_eq!(probe(&url), ("h264".to_string(), u64::from(WIDTH), u64::from(HEIGHT)));
    assert_rising_stamps(&decoded_stamps(&url, 4));

    // WHEP and the media server's pages: basic authentication.
    let sdp = "Content-Type: application/sdp\r\n";
    for credentials in ["", wrong.as_str()] {
        let (code, answer) = request(http, "POST", "/cam0/whep", &format!("{sdp}{credentials}"), OFFER);
        assert_eq!(code, 401, "{answer}");
        assert_eq!(header(&answer, "www-authenticate"), Some("Basic realm=\"framebus\", charset=\"UTF-8\""));
    }
    assert_eq!(request(http, "GET", "/status.json", "", "").0, 401);
    assert_eq!(request(http, "GET", "/cam0", "", "").0, 401);
    assert_eq!(request(http, "GET", "/cam0", &with, "").0, 200);
    assert_eq!(request(http, "GET", "/whep.js", "", "").0, 200, "the player script is public");
    let origin = format!("Origin: http://127.0.0.1:{page_port}\r\n");
    let (code, preflight) = request(
        http,
        "OPTIONS",
        "/cam0/whep",
        &format!("{origin}Access-Control-Request-Method: POST\r\nAccess-Control-Request-Headers: authorization, content-type\r\n"),
        "",
    );
    assert_eq!(code, 204, "{preflight}");
    assert!(
        header(&preflight, "access-control-allow-headers").is_some_and(|h| h.contains("authorization")),
        "{preflight}"
    );
    let (code, answer) = request(http, "POST", "/cam0/whep", &format!("{sdp}{with}"), OFFER);
    assert_eq!(code, 201, "{answer}");
    let location = header(&answer, "location").expect("a Location").to_string();
    assert_eq!(request(http, "DELETE", &location, "", "").0, 401, "ending a session needs credentials");
    assert_eq!(request(http, "DELETE", &location, &with, "").0, 200);

    // Chromium plays over WebRTC with the credentials in the player's WHEP requests.
    let (size, ids) = chromium_plays(&d, http, page, Some(AUTHORIZATION));
    assert_eq!(size, format!("{WIDTH}x{HEIGHT}"));
    assert!(ids.len() >= 10 && ids.windows(2).all(|w| w[0] < w[1]), "WebRTC ids: {ids:?}");

    // The preview and the metrics endpoint: the same users, basic authentication.
    let preview_line = up.wait_stderr(DEADLINE, "preview served at http://");
    let preview = preview_line[preview_line.find("http://").expect("url")..].split_whitespace().next().expect("url");
    let preview_port: u16 =
        preview.trim_end_matches('/').rsplit(':').next().and_then(|p| p.parse().ok()).expect("port");
    up.wait_stderr(DEADLINE, "metrics at http://");
    for (port, path) in [(preview_port, "/"), (preview_port, "/snapshot.jpg"), (metrics, "/metrics")] {
        assert_eq!(request(port, "GET", path, "", "").0, 401, "{path} on {port} without credentials");
        assert_eq!(request(port, "GET", path, &wrong, "").0, 401, "{path} on {port} with a wrong password");
        let (code, answer) = request(port, "GET", path, &with, "");
        assert_eq!(code, 200, "{path} on {port}: {answer}");
    }
    let (_, scrape) = request(metrics, "GET", "/metrics", &with, "");
    assert!(scrape.contains("framebus_"), "{scrape}");

    let (code, _, err) = d.ctl(&["stop", "cam0"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(up.wait_exit(DEADLINE), Some(0), "{}", up.stderr_text());
    d.assert_no_leftovers();
}

/// `curl --insecure` (the test's certificate is self-signed): the status code of `url`, with
/// `user` (`name:password`) when given; 0 when no HTTP answer came.
fn curl_status(url: &str, user: Option<&str>) -> u16 {
    let mut command = Command::new("curl");
    command.args(["-sk", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10"]);
    if let Some(user) = user {
        command.args(["-u", user]);
    }
    let out = command.arg(url).stdin(Stdio::null()).output().expect("curl is installed");
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(0)
}

/// `[tls]`: the media server speaks RTSPS (ffprobe reads H.264 over `rtsps://` with the
/// viewer's credentials; plain `rtsp://` gets nothing), and it, the preview and the metrics
/// endpoint speak HTTPS (`curl`: 401 without credentials, 200 with; a plain-HTTP request gets
/// no HTTP answer).
#[test]
fn tls_serves_rtsps_and_https() {
    use std::os::unix::fs::PermissionsExt;

    let (rtsp, http, metrics) = (free_port(), free_port(), free_port());
    let d = TestDeployment::new(&format!(
        "metrics = \"127.0.0.1:{metrics}\"\n\n[auth]\nusers-file = \"viewers.htdigest\"\n\n\
         [tls]\ncertificate = \"cert.pem\"\nkey = \"key.pem\"\n\n\
         [media-server]\nrtsp = \"127.0.0.1:{rtsp}\"\nhttp = \"127.0.0.1:{http}\"\n\n\
         [[camera]]\nname = \"cam0\"\nwidth = {WIDTH}\nheight = {HEIGHT}\nfps = 30\n\n\
         [camera.source]\nkind = \"synthetic\"\n\n\
         [camera.preview]\nlisten = \"127.0.0.1:0\"\nfps = 2\n\n\
         [camera.streamer]\nbitrate-kbps = 3000\ngop = 15\nstats-interval-secs = 0.5\n"
    ));
    let dir = d.dir.path();
    let users = dir.join("viewers.htdigest");
    std::fs::write(&users, USERS_FILE).expect("write the users file");
    std::fs::set_permissions(&users, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let made = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"])
        .args(["-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"])
        .arg("-keyout")
        .arg(dir.join("key.pem"))
        .arg("-out")
        .arg(dir.join("cert.pem"))
        .stdin(Stdio::null())
        .output()
        .expect("openssl is installed");
    assert!(made.status.success(), "openssl: {}", String::from_utf8_lossy(&made.stderr));
    std::fs::set_permissions(dir.join("key.pem"), std::fs::Permissions::from_mode(0o600)).expect("chmod");

    let mut up = d.spawn("ctl", &["up"]);
    d.wait_status(streaming);
    let status = format!("https://127.0.0.1:{http}/status.json");
    let until = std::time::Instant::now() + DEADLINE;
    while curl_status(&status, Some("viewer:s3cret-pass")) != 200 {
        assert!(std::time::Instant::now() < until, "the media server never answered over HTTPS");
        std::thread::sleep(Duration::from_millis(200));
    }
    wait_until_publishing_tls(&status);

    // RTSPS with the viewer's credentials; plain RTSP gets no stream.
    let url = format!("rtsps://viewer:s3cret-pass@127.0.0.1:{rtsp}/cam0");
    assert_eq!(probe(&url), ("h264".to_string(), u64::from(WIDTH), u64::from(HEIGHT)));
    let (ok, err) = probe_result(&format!("rtsp://viewer:s3cret-pass@127.0.0.1:{rtsp}/cam0"));
    assert!(!ok, "plain RTSP on the RTSPS port played: {err}");

    // HTTPS everywhere: 401 without credentials, 200 with; plain HTTP gets no answer.
    let preview_line = up.wait_stderr(DEADLINE, "preview served at https://");
    let preview = preview_line[preview_line.find("https://").expect("url")..].split_whitespace().next().expect("url");
    up.wait_stderr(DEADLINE, "metrics at https://");
    let metrics_url = format!("https://127.0.0.1:{metrics}/metrics");
    let player = format!("https://127.0.0.1:{http}/cam0");
    for url in [status.as_str(), player.as_str(), preview, metrics_url.as_str()] {
        assert_eq!(curl_status(url, None), 401, "{url} without credentials");
        assert_eq!(curl_status(url, Some("viewer:s3cret-pass")), 200, "{url} with credentials");
        let plain = url.replacen("https://", "http://", 1);
        assert_ne!(curl_status(&plain, Some("viewer:s3cret-pass")), 200, "{plain} answered over plain HTTP");
    }

    let (code, _, err) = d.ctl(&["stop", "cam0"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(up.wait_exit(DEADLINE), Some(0), "{}", up.stderr_text());
    d.assert_no_leftovers();
}

/// Waits (bounded) until the media server's HTTPS `/status.json` says cam0 publishes.
fn wait_until_publishing_tls(status_url: &str) {
    let until = std::time::Instant::now() + DEADLINE;
    loop {
        let out = Command::new("curl")
            .args(["-sk", "--max-time", "5", "-u", "viewer:s3cret-pass", status_url])
            .stdin(Stdio::null())
            .output()
            .expect("curl is installed");
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        if json["cameras"][0]["publishing"] == true {
            return;
        }
        assert!(std::time::Instant::now() < until, "the media server never received cam0's stream");
        std::thread::sleep(Duration::from_millis(100));
    }
}
