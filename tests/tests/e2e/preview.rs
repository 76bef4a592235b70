//! Preview (issue 4): snapshot, MJPEG stream (ffmpeg as the client, two viewers at once), the
//! page rendered by headless Chromium, downscaling with overlay, and no work while off.

use std::path::Path;
use std::process::Command;

use framebus_common::pattern::read_bgr_stamps;
use framebus_e2e::browser::chromium_output;
use framebus_e2e::{cpu_time, http_get, Proc, TestDeployment, DEADLINE};
use framebus_vision::opencv::core::{Mat, Vector};
use framebus_vision::opencv::imgcodecs;
use framebus_vision::opencv::prelude::*;

/// A synthetic camera with a preview table (`extra` goes into `[camera.preview]`), port 0.
fn camera(width: u32, height: u32, fps: u32, extra: &str) -> String {
    format!(
        "[[camera]]\nname = \"cam0\"\nwidth = {width}\nheight = {height}\nfps = {fps}\n\n[camera.source]\nkind = \"synthetic\"\n\n[camera.preview]\nlisten = \"127.0.0.1:0\"\nstats-interval-secs = 0.25\n{extra}"
    )
}

/// Starts the preview and returns it with the URL it reports.
fn start_preview(d: &TestDeployment, args: &[&str]) -> (Proc, String) {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let mut preview = d.spawn("preview", &all);
    let listening = preview.wait_json(DEADLINE, |v| v["event"] == "listening");
    let url = listening["url"].as_str().expect("url").to_string();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    (preview, url)
}

fn decode(bytes: &[u8]) -> Mat {
    let buf = Vector::<u8>::from_slice(bytes);
    let image = imgcodecs::imdecode(&buf, imgcodecs::IMREAD_COLOR).expect("imdecode");
    assert!(!image.empty(), "not a decodable image ({} bytes)", bytes.len());
    image
}

fn read(path: &Path) -> Mat {
    let image = imgcodecs::imread(path.to_str().expect("utf-8"), imgcodecs::IMREAD_COLOR).expect("imread");
    assert!(!image.empty(), "{} does not decode", path.display());
    image
}

/// The frame id stamped in a full-size preview (top and bottom stamps agree).
fn stamp(image: &Mat) -> u64 {
    let (w, h) = (image.cols() as usize, image.rows() as usize);
    let (top, bottom) = read_bgr_stamps(w, h, image.data_bytes().expect("continuous"));
    assert_eq!(top, bottom, "torn or unreadable stamp");
    assert!(top > 0, "no frame id stamped");
    top
}

/// Share of near-black pixels in rows `y0..y1`, columns `x0..x1`: the overlay backdrop is
/// black, the test pattern there is bright colour bars.
fn dark_share(image: &Mat, (x0, y0, x1, y1): (usize, usize, usize, usize)) -> f64 {
    let data = image.data_bytes().expect("continuous");
    let w = image.cols() as usize;
    let mut dark = 0;
    for y in y0..y1 {
        for x in x0..x1 {
            let px = &data[(y * w + x) * 3..(y * w + x) * 3 + 3];
            if px.iter().all(|&c| c < 40) {
                dark += 1;
            }
        }
    }
    dark as f64 / ((x1 - x0) * (y1 - y0)) as f64
}

/// `/snapshot.jpg` is a real, whole frame (both stamps agree) with the overlay; `/stream.mjpg`
/// plays in ffmpeg for two viewers at once, each getting rising frame ids; `/` renders in
/// headless Chromium and shows the live image.
#[test]
fn snapshot_stream_and_page_show_live_frames() {
    let d = TestDeployment::new(&camera(640, 480, 30, "fps = 10\n"));
    let mut capture = d.spawn("capture", &[]);
    let (mut preview, url) = start_preview(&d, &[]);
    preview.wait_json(DEADLINE, |v| v["previews"].as_u64() >= Some(1));

    let (status, head, body) = http_get(&url, "/snapshot.jpg");
    assert_eq!(status, 200, "{head}");
    assert!(head.contains("Content-Type: image/jpeg"), "{head}");
    let snapshot = decode(&body);
    assert_eq!((snapshot.cols(), snapshot.rows()), (640, 480));
    stamp(&snapshot);
    assert!(dark_share(&snapshot, (0, 22, 120, 60)) > 0.5, "no overlay backdrop at the top left");

    // Two ffmpeg viewers at once, 5 frames each.
    let viewers: Vec<_> = (0..2)
        .map(|i| {
            let dir = d.dir.path().join(format!("viewer{i}"));
            std::fs::create_dir_all(&dir).expect("viewer dir");
            let child = Command::new("ffmpeg")
                .args(["-v", "error", "-nostdin", "-rw_timeout", "20000000", "-i"])
                .arg(format!("{url}stream.mjpg"))
                .args(["-frames:v", "5", "-f", "image2"])
                .arg(dir.join("f%02d.jpg"))
                .spawn()
                .expect("ffmpeg is installed (scripts/bootstrap.sh)");
            (dir, child)
        })
        .collect();
    for (dir, mut child) in viewers {
        let status = child.wait().expect("ffmpeg");
        assert!(status.success(), "ffmpeg could not read the stream: {status}");
        let ids: Vec<u64> = (1..=5).map(|n| stamp(&read(&dir.join(format!("f{n:02}.jpg"))))).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "stream frame ids do not rise: {ids:?}");
    }

    let (status, _, page) = http_get(&url, "/");
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&page).contains("/stream.mjpg"));
    let shot = d.dir.path().join("page.png");
    chromium_output(
        &d,
        "chromium",
        &["--window-size=800,700".to_string(), format!("--screenshot={}", shot.display()), url.clone()],
    );
    assert!(shot.is_file(), "no screenshot of {url}");
    let png = read(&shot);
    // The page is dark grey; the test pattern's saturated colour bars only appear in the image.
    let data = png.data_bytes().expect("continuous");
    let colourful =
        data.chunks_exact(3).filter(|px| px.iter().max().unwrap_or(&0) - px.iter().min().unwrap_or(&0) > 120).count();
    assert!(colourful > 20_000, "the page shows no live image ({colourful} colourful pixels)");

    assert_eq!(preview.terminate(), Some(0), "{}", preview.stderr_text());
    assert_eq!(capture.terminate(), Some(0));
    d.assert_no_leftovers();
}

/// A large frame is downscaled to fit max-width × max-height (aspect kept) at the configured
/// preview rate, with the overlay drawn; every pixel format converts.
#[test]
fn previews_are_downscaled_with_an_overlay_in_every_format() {
    for format in ["BGR3", "YUYV", "NV12", "GREY", "RGB3"] {
        let body = camera(1280, 720, 60, "max-width = 320\nmax-height = 240\nfps = 5\n")
            .replace("fps = 60\n", &format!("fps = 60\npixel-format = \"{format}\"\n"));
        let d = TestDeployment::new(&body);
        let mut capture = d.spawn("capture", &[]);
        let (mut preview, url) = start_preview(&d, &[]);
        let report = preview.wait_json(DEADLINE, |v| v["previews"].as_u64() >= Some(3));
        assert_eq!(report["errors"], 0, "{format}: {report}");
        let (status, _, body) = http_get(&url, "/snapshot.jpg");
        assert_eq!(status, 200);
        let snapshot = decode(&body);
        assert_eq!((snapshot.cols(), snapshot.rows()), (320, 180), "{format}");
        assert!(dark_share(&snapshot, (0, 22, 60, 40)) > 0.4, "{format}: no overlay backdrop");
        let (status, _, body) = http_get(&url, "/status.json");
        assert_eq!(status, 200);
        let status: serde_json::Value = serde_json::from_slice(&body).expect("status JSON");
        assert_eq!(status["format"], format, "{status}");
        assert_eq!(preview.terminate(), Some(0));
        assert_eq!(capture.terminate(), Some(0));
        d.assert_no_leftovers();
    }
}

/// Preview off (`--enabled false`): frames keep arriving and are counted, but nothing is
/// decoded, scaled or encoded — the process's CPU time stays near zero — and `/snapshot.jpg`
/// says so.
#[test]
fn preview_off_does_no_work_while_frames_flow() {
    let d = TestDeployment::new(&camera(1280, 720, 60, ""));
    let mut capture = d.spawn("capture", &[]);
    let (mut preview, url) = start_preview(&d, &["--enabled", "false"]);
    let first = preview.wait_json(DEADLINE, |v| v["frames"].as_u64() >= Some(30));
    let pid = preview.child.id();
    let (cpu0, t0, frames0) = (cpu_time(pid), std::time::Instant::now(), first["frames"].as_u64().expect("frames"));
    let last = preview.wait_json(DEADLINE, |v| v["frames"].as_u64() >= Some(frames0 + 180));
    let (cpu, wall) = (cpu_time(pid) - cpu0, t0.elapsed());
    assert_eq!(last["previews"], 0, "{last}");
    assert_eq!(last["state"], "off", "{last}");
    let share = cpu.as_secs_f64() / wall.as_secs_f64();
    eprintln!("preview off: {cpu:?} CPU in {wall:?} ({:.2}% of a core)", share * 100.0);
    assert!(share < 0.05, "preview off used {cpu:?} CPU in {wall:?} ({:.1}% of a core)", share * 100.0);
    let (status, _, body) = http_get(&url, "/snapshot.jpg");
    assert_eq!(status, 503, "{}", String::from_utf8_lossy(&body));
    assert_eq!(preview.terminate(), Some(0));
    assert_eq!(capture.terminate(), Some(0));
    d.assert_no_leftovers();
}

// ---------------------------------------------------------------------------------------------
// Hostile and crowded HTTP clients (issue 11, item 4): slow requests, stalled viewers, odd
// requests, 200 viewers.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `host:port` of a preview URL.
fn host_of(url: &str) -> String {
    url.trim_start_matches("http://").trim_end_matches('/').to_string()
}

/// A `/stream.mjpg` viewer that parses the multipart stream part by part.
struct Viewer {
    reader: BufReader<TcpStream>,
}

impl Viewer {
    /// Connects and reads the response head; panics unless it is `200` multipart.
    fn open(host: &str) -> Viewer {
        let mut stream = TcpStream::connect(host).unwrap_or_else(|e| panic!("connecting to {host}: {e}"));
        stream.set_read_timeout(Some(DEADLINE)).expect("read timeout");
        write!(stream, "GET /stream.mjpg HTTP/1.1\r\nHost: {host}\r\n\r\n").expect("send request");
        let mut reader = BufReader::with_capacity(256 * 1024, stream);
        let head = read_head(&mut reader).expect("stream response head");
        // HTTP/1.0 or 1.1: either way the body ends when the connection closes.
        assert!(head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"), "stream refused: {head}");
        assert!(head.to_ascii_lowercase().contains("multipart/x-mixed-replace"), "{head}");
        Viewer { reader }
    }

    /// The next image: (frame id, JPEG bytes).
    fn next(&mut self) -> io::Result<(u64, Vec<u8>)> {
        let head = read_head(&mut self.reader)?;
        let field = |name: &str| {
            head.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_string())
            })
        };
        let len: usize = field("content-length").and_then(|v| v.parse().ok()).ok_or_else(|| bad(&head))?;
        let id: u64 = field("x-frame-id").and_then(|v| v.parse().ok()).ok_or_else(|| bad(&head))?;
        let mut jpeg = vec![0; len];
        self.reader.read_exact(&mut jpeg)?;
        Ok((id, jpeg))
    }

    /// Reads `n` images; returns their frame ids (panics if they do not rise).
    fn ids(&mut self, n: usize) -> Vec<u64> {
        let ids: Vec<u64> = (0..n).map(|_| self.next().expect("next stream image").0).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "stream frame ids do not rise: {ids:?}");
        ids
    }
}

use std::io;

fn bad(head: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("bad part head: {head:?}"))
}

/// Reads up to an empty line (skipping leading blank lines between parts); returns the head.
fn read_head(reader: &mut impl BufRead) -> io::Result<String> {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, format!("closed after {head:?}")));
        }
        if line.trim_end().is_empty() {
            if head.is_empty() {
                continue;
            }
            return Ok(head);
        }
        head.push_str(&line);
    }
}

/// Sends `request` raw and returns whatever the server answers until it closes (bounded; a
/// well-formed request should say `Connection: close`).
fn raw_exchange(host: &str, request: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(host).unwrap_or_else(|e| panic!("connecting to {host}: {e}"));
    stream.set_read_timeout(Some(DEADLINE)).expect("read timeout");
    // The server may answer and close before taking the whole request: a failed write is fine.
    let _ = stream.write_all(request);
    let mut answer = Vec::new();
    let mut buf = [0u8; 16384];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            // A reset after an early answer still leaves what was read.
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => break,
            Err(e) => {
                panic!("reading the answer to {:?}: {e}", String::from_utf8_lossy(&request[..request.len().min(60)]))
            }
        }
    }
    answer
}

/// Status code of a raw answer (0 when the server closed without answering).
fn status_of(answer: &[u8]) -> u16 {
    let text = String::from_utf8_lossy(&answer[..answer.len().min(64)]).into_owned();
    text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
}

/// Slowloris: `n` connections that each send one more byte of an endless request head every
/// `every`, until dropped.
struct SlowClients {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<Vec<TcpStream>>>,
}

impl SlowClients {
    fn start(host: &str, n: usize, every: Duration) -> SlowClients {
        let mut conns: Vec<TcpStream> =
            (0..n).map(|_| TcpStream::connect(host).unwrap_or_else(|e| panic!("connecting to {host}: {e}"))).collect();
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let (stop2, sent2) = (Arc::clone(&stop), Arc::clone(&sent));
        let thread = std::thread::spawn(move || {
            let head = b"GET /stream.mjpg HTTP/1.1\r\nHost: x\r\nX-Slow: ".iter().copied();
            let mut bytes = head.chain(std::iter::repeat(b'a'));
            while !stop2.load(Ordering::Relaxed) {
                let byte = bytes.next().unwrap_or(b'a');
                for c in &mut conns {
                    // A connection the server closed just stops counting.
                    if c.write_all(&[byte]).is_ok() {
                        sent2.fetch_add(1, Ordering::Relaxed);
                    }
                }
                let until = Instant::now() + every;
                while Instant::now() < until && !stop2.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
            conns
        });
        SlowClients { stop, sent, thread: Some(thread) }
    }

    /// Stops sending and returns the connections (still open on the client side).
    fn stop(mut self) -> Vec<TcpStream> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().map(|t| t.join().expect("slow client thread")).unwrap_or_default()
    }
}

impl Drop for SlowClients {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Issue 11 item 4: 32 connections dribbling a request head (one byte every 4 s, twice the
/// default viewer limit) take no viewer slot: `/snapshot.jpg` and `/status.json` still answer
/// 200 and a real stream viewer gets rising frames, while the slow connections stay.
#[test]
fn slow_request_heads_take_no_viewer_slot() {
    let d = TestDeployment::new(&camera(640, 480, 30, "fps = 10\n"));
    let mut capture = d.spawn("capture", &[]);
    let (mut preview, url) = start_preview(&d, &[]);
    preview.wait_json(DEADLINE, |v| v["previews"].as_u64() >= Some(1));
    let host = host_of(&url);

    let slow = SlowClients::start(&host, 32, Duration::from_secs(4));
    // Wait until every slow connection has sent its first byte (so the server has them).
    let until = Instant::now() + DEADLINE;
    while slow.sent.load(Ordering::Relaxed) < 32 {
        assert!(Instant::now() < until, "slow clients could not send");
        std::thread::sleep(Duration::from_millis(10));
    }
    for path in ["/snapshot.jpg", "/status.json", "/"] {
        let (status, head, body) = http_get(&url, path);
        assert_eq!(status, 200, "{path} under 32 slow requests: {head}\n{}", String::from_utf8_lossy(&body));
    }
    let (_, _, body) = http_get(&url, "/snapshot.jpg");
    stamp(&decode(&body));
    let mut viewer = Viewer::open(&host);
    viewer.ids(5);
    drop(viewer);
    let conns = slow.stop();
    drop(conns);

    assert_eq!(preview.terminate(), Some(0), "{}", preview.stderr_text());
    assert_eq!(capture.terminate(), Some(0));
    d.assert_no_leftovers();
}

/// Issue 11 item 4: the request head must arrive whole within `request-timeout-secs` (default
/// 5 s), however often bytes come: a connection sending one byte every 200 ms (and one sending
/// nothing) is closed by the server, without ever being counted as a viewer.
#[test]
fn a_request_head_must_arrive_within_the_request_deadline() {
    let d = TestDeployment::new(&camera(320, 240, 30, ""));
    let mut capture = d.spawn("capture", &[]);
    let (mut preview, url) = start_preview(&d, &[]);
    let host = host_of(&url);

    let silent = TcpStream::connect(&host).expect("connect");
    let slow = SlowClients::start(&host, 1, Duration::from_millis(200));
    let until = Instant::now() + DEADLINE;
    while slow.sent.load(Ordering::Relaxed) < 20 {
        assert!(Instant::now() < until, "the slow client could not send");
        std::thread::sleep(Duration::from_millis(10));
    }
    // The server closes the dribbling connection: its writes start failing.
    let sent_before = slow.sent.load(Ordering::Relaxed);
    let mut conns = {
        let until = Instant::now() + DEADLINE;
        loop {
            let sent = slow.sent.load(Ordering::Relaxed);
            std::thread::sleep(Duration::from_millis(500));
            if slow.sent.load(Ordering::Relaxed) == sent {
                break slow.stop();
            }
            assert!(
                Instant::now() < until,
                "a request head dribbled one byte every 200 ms was still read after {DEADLINE:?} ({} bytes)",
                sent - sent_before
            );
        }
    };
    let mut silent = silent;
    for (what, conn) in [("the dribbling connection", &mut conns[0]), ("the silent connection", &mut silent)] {
        conn.set_read_timeout(Some(DEADLINE)).expect("read timeout");
        let mut rest = Vec::new();
        match conn.read_to_end(&mut rest) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {}
            Err(e) => panic!("{what} was not closed by the server: {e}"),
        }
        assert!(rest.is_empty() || status_of(&rest) == 408, "{what}: {}", String::from_utf8_lossy(&rest));
    }
    let (status, _, body) = http_get(&url, "/status.json");
    assert_eq!(status, 200);
    let status: serde_json::Value = serde_json::from_slice(&body).expect("status JSON");
    assert!(status["viewers"].as_u64() <= Some(1), "{status}");
    assert_eq!(preview.terminate(), Some(0), "{}", preview.stderr_text());
    assert_eq!(capture.terminate(), Some(0));
    d.assert_no_leftovers();
}

/// More slow connections than `max-connections` only delay other requests: the extra
/// connections wait in the accept queue, the slow ones are closed at their request deadline,
/// and `/snapshot.jpg` is then answered; stream viewers are not connections and keep playing.
#[test]
fn slow_connections_beyond_the_connection_limit_only_delay_requests() {
    let d = TestDeployment::new(&camera(320, 240, 30, "max-connections = 4\nrequest-timeout-secs = 1\n"));
    let mut capture = d.spawn("capture", &[]);
    let (mut preview, url) = start_preview(&d, &[]);
    preview.wait_json(DEADLINE, |v| v["previews"].as_u64() >= Some(1));
    let host = host_of(&url);
    // Viewers first: 6 streams, more than max-connections, all served.
    let mut viewers: Vec<Viewer> = (0..6).map(|_| Viewer::open(&host)).collect();
    let slow = SlowClients::start(&host, 16, Duration::from_millis(300));
    for path in ["/snapshot.jpg", "/status.json"] {
        let (status, head, _) = http_get(&url, path);
        assert_eq!(status, 200, "{path} behind 16 slow connections: {head}");
    }
    for viewer in &mut viewers {
        viewer.ids(3);
    }
    drop(slow);
    assert_eq!(preview.terminate(), Some(0), "{}", preview.stderr_text());
    assert_eq!(capture.terminate(), Some(0));
    d.assert_no_leftovers();
}

/// Odd requests get clean errors and change nothing: path traversal (plain and
/// percent-encoded), methods other than GET/HEAD, a 1 MB request line, a 1 MB header and binary
/// junk; the server keeps serving afterwards.
#[test]
fn odd_requests_get_clean_errors_and_the_server_keeps_serving() {
    let d = TestDeployment::new(&camera(320, 240, 30, ""));
    let mut capture = d.spawn("capture", &[]);
    let (mut preview, url) = start_preview(&d, &[]);
    preview.wait_json(DEADLINE, |v| v["previews"].as_u64() >= Some(1));
    let host = host_of(&url);

    for path in [
        "/../../../../etc/passwd",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/..%2f..%2fetc%2fpasswd",
        "/etc/passwd",
        "//etc/passwd",
    ] {
        let answer =
            raw_exchange(&host, format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes());
        let text = String::from_utf8_lossy(&answer);
        assert!(matches!(status_of(&answer), 400 | 404), "{path}: {text}");
        assert!(!text.contains("root:"), "{path} served a file: {text}");
    }
    for method in ["POST", "PUT", "DELETE", "OPTIONS", "PATCH", "FOO"] {
        let answer = raw_exchange(
            &host,
            format!("{method} /snapshot.jpg HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        );
        assert!(matches!(status_of(&answer), 400 | 405), "{method}: {}", String::from_utf8_lossy(&answer));
    }
    let head = raw_exchange(&host, b"HEAD /snapshot.jpg HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!(status_of(&head), 200, "{}", String::from_utf8_lossy(&head));
    assert!(!head.windows(3).any(|w| w == [0xff, 0xd8, 0xff]), "HEAD sent a body");

    let long_line = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(1 << 20));
    let long_header = format!("GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n", "b".repeat(1 << 20));
    let junk: Vec<u8> = (0..65536u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    for (what, request) in [
        ("1 MB request line", long_line.as_bytes()),
        ("1 MB header", long_header.as_bytes()),
        ("binary junk", &junk[..]),
    ] {
        let answer = raw_exchange(&host, request);
        // A 4xx or a plain close, never a page.
        let code = status_of(&answer);
        assert!(code == 0 || (400..500).contains(&code), "{what}: {}", String::from_utf8_lossy(&answer));
    }
    let (status, _, body) = http_get(&url, "/snapshot.jpg");
    assert_eq!(status, 200);
    stamp(&decode(&body));
    assert_eq!(preview.terminate(), Some(0), "{}", preview.stderr_text());
    assert_eq!(capture.terminate(), Some(0));
    d.assert_no_leftovers();
}

/// Viewers that never read (their socket buffers fill) neither delay frames nor other viewers:
/// a reading viewer keeps getting rising frames at full size, and the server drops the stalled
/// ones, freeing their slots.
#[test]
fn stalled_viewers_delay_nobody_and_are_dropped() {
    // Big previews at 30/s fill a stalled viewer's socket buffers within seconds.
    let d = TestDeployment::new(&camera(
        1280,
        720,
        30,
        "fps = 30\nmax-width = 1280\nmax-height = 720\njpeg-quality = 95\n",
    ));
    let mut capture = d.spawn("capture", &[]);
    let (mut preview, url) = start_preview(&d, &[]);
    preview.wait_json(DEADLINE, |v| v["previews"].as_u64() >= Some(1));
    let host = host_of(&url);

    let stalled: Vec<TcpStream> = (0..8)
        .map(|_| {
            let mut s = TcpStream::connect(&host).expect("connect");
            write!(s, "GET /stream.mjpg HTTP/1.1\r\nHost: x\r\n\r\n").expect("request");
            s
        })
        .collect();
    // One viewer reads all the time on its own thread, recording the frame ids it gets.
    let stop = Arc::new(AtomicBool::new(false));
    let got = Arc::new(std::sync::Mutex::new(Vec::<u64>::new()));
    let reading = {
        let (host, stop, got) = (host.clone(), Arc::clone(&stop), Arc::clone(&got));
        std::thread::spawn(move || {
            let mut viewer = Viewer::open(&host);
            while !stop.load(Ordering::Relaxed) {
                let (id, _) = viewer.next().expect("the reading viewer is served");
                got.lock().expect("ids").push(id);
            }
        })
    };
    // The stalled viewers are dropped by the server (write deadline); the reading one stays.
    let until = Instant::now() + Duration::from_secs(60);
    let mut last = serde_json::Value::Null;
    while last["viewers"] != 1 {
        assert!(Instant::now() < until, "stalled viewers were never dropped: {last}");
        std::thread::sleep(Duration::from_millis(200));
        let (_, _, body) = http_get(&url, "/status.json");
        last = serde_json::from_slice(&body).expect("status JSON");
    }
    // And the reading viewer keeps getting frames after that.
    let after = got.lock().expect("ids").len();
    let until = Instant::now() + DEADLINE;
    while got.lock().expect("ids").len() < after + 30 {
        assert!(Instant::now() < until, "the reading viewer stopped getting frames");
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, Ordering::Relaxed);
    reading.join().expect("reading viewer");
    let ids = got.lock().expect("ids").clone();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "stream frame ids do not rise: {ids:?}");
    eprintln!("reading viewer: {} frames (ids {}..{}) next to 8 stalled ones", ids.len(), ids[0], ids[ids.len() - 1]);
    drop(stalled);
    assert_eq!(preview.terminate(), Some(0), "{}", preview.stderr_text());
    assert_eq!(capture.terminate(), Some(0));
    d.assert_no_leftovers();
}

/// 200 stream viewers at once with capture at 30 fps: every viewer gets rising frames and
/// capture keeps publishing (its rate is printed, not asserted).
#[test]
fn two_hundred_stream_viewers_all_get_frames() {
    let d = TestDeployment::new(&camera(640, 480, 30, "max-viewers = 256\n"));
    let mut capture = d.spawn("capture", &["--stats-interval-secs", "1"]);
    let (mut preview, url) = start_preview(&d, &[]);
    preview.wait_json(DEADLINE, |v| v["previews"].as_u64() >= Some(1));
    let host = host_of(&url);
    let viewers: Vec<_> = (0..200)
        .map(|_| {
            let host = host.clone();
            std::thread::spawn(move || Viewer::open(&host).ids(5))
        })
        .collect();
    for v in viewers {
        v.join().expect("every viewer gets 5 rising frames");
    }
    let log = capture.stderr_text();
    eprintln!(
        "capture with 200 viewers: {}",
        log.lines().rfind(|l| l.contains("publishing at")).unwrap_or("no stats line")
    );
    assert_eq!(preview.terminate(), Some(0), "{}", preview.stderr_text());
    assert_eq!(capture.terminate(), Some(0));
    d.assert_no_leftovers();
}

/// Resident memory (VmRSS, VmHWM in KiB) and thread count of a process.
fn memory_and_threads(pid: u32) -> (u64, u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"), field("Threads:"))
}

/// Mean of capture's `publishing at X fps` lines logged after line `from` of its stderr.
fn capture_fps_since(capture: &Proc, from: usize) -> (f64, usize) {
    let log = capture.stderr_text();
    let rates: Vec<f64> = log
        .lines()
        .skip(from)
        .filter_map(|l| l.split("publishing at ").nth(1)?.split(' ').next()?.parse().ok())
        .collect();
    (rates.iter().sum::<f64>() / rates.len().max(1) as f64, log.lines().count())
}

/// One phase of the figures run: preview CPU share, capture fps, memory, threads.
fn measure(label: &str, capture: &Proc, preview: &Proc, secs: u64) -> String {
    let pid = preview.child.id();
    let (_, lines) = capture_fps_since(capture, usize::MAX);
    let (cpu0, t0) = (cpu_time(pid), Instant::now());
    let mut peak_threads = 0;
    while t0.elapsed() < Duration::from_secs(secs) {
        std::thread::sleep(Duration::from_millis(250));
        peak_threads = peak_threads.max(memory_and_threads(pid).2);
    }
    let cpu = (cpu_time(pid) - cpu0).as_secs_f64() / t0.elapsed().as_secs_f64() * 100.0;
    let (fps, _) = capture_fps_since(capture, lines);
    let (rss, hwm, _) = memory_and_threads(pid);
    format!(
        "{label}: capture {fps:.1} fps, preview CPU {cpu:.1}% of a core, RSS {} MiB (peak {} MiB), threads {peak_threads}",
        rss / 1024,
        hwm / 1024
    )
}

/// Figures for the README (not a check; run in release, alone on the machine):
/// `cargo build --release --bins && cargo test --release -p framebus-e2e preview_http_figures -- --ignored --nocapture`.
/// `FRAMEBUS_PREVIEW_BIN=<path>` measures another preview binary (e.g. an older build).
#[test]
#[ignore = "measurement, run by hand"]
fn preview_http_figures() {
    let spawn_preview = |d: &TestDeployment| -> (Proc, String) {
        let mut command = match std::env::var_os("FRAMEBUS_PREVIEW_BIN") {
            Some(path) => std::process::Command::new(path),
            None => std::process::Command::new(framebus_e2e::bin("preview")),
        };
        command.args(["--config", d.config.to_str().expect("utf-8"), "--json"]);
        let mut preview = Proc::spawn_command("preview", &mut command);
        let listening = preview.wait_json(DEADLINE, |v| v["event"] == "listening");
        let url = listening["url"].as_str().expect("url").to_string();
        preview.wait_json(DEADLINE, |v| v["previews"].as_u64() >= Some(1));
        (preview, url)
    };
    let mut report = Vec::new();

    // 200 viewers (max-viewers = 256), previews at 10 and at 30 images/s.
    for preview_fps in [10, 30] {
        let d = TestDeployment::new(&camera(640, 480, 30, &format!("max-viewers = 256\nfps = {preview_fps}\n")));
        let mut capture = d.spawn("capture", &["--stats-interval-secs", "1"]);
        let (mut preview, url) = spawn_preview(&d);
        if preview_fps == 10 {
            report.push(measure("idle, no viewer", &capture, &preview, 10));
        }
        let host = host_of(&url);
        let stop = Arc::new(AtomicBool::new(false));
        let counts: Vec<_> = (0..200)
            .map(|_| {
                let (host, stop) = (host.clone(), Arc::clone(&stop));
                std::thread::spawn(move || {
                    let mut viewer = Viewer::open(&host);
                    let (mut n, mut bytes, mut last) = (0u64, 0usize, 0u64);
                    while !stop.load(Ordering::Relaxed) {
                        match viewer.next() {
                            Ok((id, jpeg)) if id > last => (n, bytes, last) = (n + 1, bytes + jpeg.len(), id),
                            Ok(_) => return Err(format!("frame id did not rise after {last}")),
                            Err(e) => return Err(e.to_string()),
                        }
                    }
                    Ok((n, bytes))
                })
            })
            .collect();
        std::thread::sleep(Duration::from_secs(3));
        let t0 = Instant::now();
        report.push(measure(&format!("200 viewers, preview {preview_fps}/s"), &capture, &preview, 15));
        stop.store(true, Ordering::Relaxed);
        let elapsed = t0.elapsed().as_secs_f64() + 3.0;
        let mut per_viewer: Vec<u64> = Vec::new();
        let (mut failures, mut total_bytes) = (Vec::new(), 0usize);
        for c in counts {
            match c.join().expect("viewer thread") {
                Ok((n, bytes)) => {
                    per_viewer.push(n);
                    total_bytes += bytes;
                }
                Err(e) => failures.push(e),
            }
        }
        per_viewer.sort_unstable();
        let rate = |n: u64| n as f64 / elapsed;
        let images: u64 = per_viewer.iter().sum();
        report.push(format!(
            "200 viewers, preview {preview_fps}/s: {} served, {} failed {:?}; images/s per viewer min {:.1} median {:.1} max {:.1}; {:.0} KiB/image, {:.1} MiB/s served",
            per_viewer.len(),
            failures.len(),
            failures.iter().take(3).collect::<Vec<_>>(),
            rate(*per_viewer.first().unwrap_or(&0)),
            rate(per_viewer.get(per_viewer.len() / 2).copied().unwrap_or(0)),
            rate(*per_viewer.last().unwrap_or(&0)),
            total_bytes as f64 / images.max(1) as f64 / 1024.0,
            total_bytes as f64 / elapsed / (1 << 20) as f64,
        ));
        let _ = preview.terminate();
        let _ = capture.terminate();
        d.assert_no_leftovers();
    }

    // Slowloris against the default limits.
    for attackers in [16usize, 64, 512] {
        let d = TestDeployment::new(&camera(640, 480, 30, ""));
        let mut capture = d.spawn("capture", &["--stats-interval-secs", "1"]);
        let (mut preview, url) = spawn_preview(&d);
        let host = host_of(&url);
        let slow = SlowClients::start(&host, attackers, Duration::from_secs(4));
        std::thread::sleep(Duration::from_secs(1));
        let mut answers = Vec::new();
        for path in ["/snapshot.jpg", "/status.json"] {
            let t = Instant::now();
            let answer =
                raw_exchange(&host, format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes());
            answers.push(format!("{path} {} in {} ms", status_of(&answer), t.elapsed().as_millis()));
        }
        let t = Instant::now();
        let stream = match std::panic::catch_unwind(|| Viewer::open(&host).ids(10)) {
            Ok(ids) => {
                format!("stream viewer got 10 frames ({}..{}) in {} ms", ids[0], ids[9], t.elapsed().as_millis())
            }
            Err(_) => "stream viewer refused".to_string(),
        };
        report.push(format!("{attackers} slow connections: {}; {stream}", answers.join(", ")));
        report.push(measure(&format!("{attackers} slow connections"), &capture, &preview, 8));
        drop(slow);
        let _ = preview.terminate();
        let _ = capture.terminate();
        d.assert_no_leftovers();
    }
    eprintln!("\n== preview HTTP figures ==\n{}", report.join("\n"));
}
