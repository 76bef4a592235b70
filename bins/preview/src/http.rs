//! The preview's HTTP server: std `TcpListener`, one thread per viewer (bounded by
//! `max-viewers`). Viewers only ever clone the newest JPEG out of the [`Hub`], so a slow or
//! stalled viewer skips images and never delays the frame loop or another viewer.
//!
//! Routes: `/` (page), `/stream.mjpg` (multipart MJPEG), `/snapshot.jpg`, `/status.json`.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// The newest preview image, shared by the frame loop and the viewers.
#[derive(Debug, Default)]
struct Latest {
    /// Rises by one per published image.
    seq: u64,
    /// Frame id of the image.
    frame_id: u64,
    jpeg: Option<Arc<Vec<u8>>>,
}

/// What the frame loop publishes and the viewers read.
#[derive(Debug, Default)]
pub struct Hub {
    latest: Mutex<Latest>,
    fresh: Condvar,
    status: Mutex<String>,
    enabled: AtomicBool,
    shutdown: AtomicBool,
    viewers: AtomicUsize,
}

impl Hub {
    /// Publishes a new preview image and wakes every viewer.
    pub fn publish(&self, frame_id: u64, jpeg: &[u8]) {
        let image = Arc::new(jpeg.to_vec());
        if let Ok(mut latest) = self.latest.lock() {
            latest.seq += 1;
            latest.frame_id = frame_id;
            latest.jpeg = Some(image);
        }
        self.fresh.notify_all();
    }

    /// Records whether images are being generated (viewers answer 503 for snapshots when not).
    pub fn set_enabled(&self, on: bool) {
        self.enabled.store(on, Ordering::Relaxed);
        self.fresh.notify_all();
    }

    /// Replaces the status document served at `/status.json`.
    pub fn set_status(&self, json: String) {
        if let Ok(mut status) = self.status.lock() {
            *status = json;
        }
    }

    /// Viewers connected now.
    pub fn viewers(&self) -> usize {
        self.viewers.load(Ordering::Relaxed)
    }

    /// Ends every stream (the process is stopping).
    pub fn shut_down(&self) {
        self.shutdown.store(true, Ordering::Relaxed);
        self.fresh.notify_all();
    }

    /// Waits until an image newer than `after` exists (or `timeout`); returns it with its seq.
    fn next_image(&self, after: u64, timeout: Duration) -> Option<(u64, u64, Arc<Vec<u8>>)> {
        let until = Instant::now() + timeout;
        let mut latest = self.latest.lock().ok()?;
        loop {
            if let Some(jpeg) = latest.jpeg.as_ref().filter(|_| latest.seq > after) {
                return Some((latest.seq, latest.frame_id, Arc::clone(jpeg)));
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() || self.shutdown.load(Ordering::Relaxed) {
                return None;
            }
            latest = self.fresh.wait_timeout(latest, left).ok()?.0;
        }
    }

    fn newest(&self) -> Option<(u64, u64, Arc<Vec<u8>>)> {
        let latest = self.latest.lock().ok()?;
        latest.jpeg.as_ref().map(|jpeg| (latest.seq, latest.frame_id, Arc::clone(jpeg)))
    }
}

/// Binds `addr`; the returned listener's `local_addr` is the real one (port 0 picks a port).
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    TcpListener::bind(addr)
}

/// Serves viewers from `listener` on a background thread until the process exits.
pub fn serve(listener: TcpListener, hub: Arc<Hub>, camera: String, max_viewers: usize) -> io::Result<()> {
    std::thread::Builder::new().name("http-accept".into()).spawn(move || {
        let page: Arc<str> = Arc::from(page(&camera));
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            if hub.shutdown.load(Ordering::Relaxed) {
                break;
            }
            let _ = stream.set_write_timeout(Some(Duration::from_secs(10)));
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let _ = stream.set_nodelay(true);
            if hub.viewers.fetch_add(1, Ordering::Relaxed) >= max_viewers {
                hub.viewers.fetch_sub(1, Ordering::Relaxed);
                let mut stream = stream;
                let _ = respond(&mut stream, "503 Service Unavailable", "text/plain", b"too many viewers\n", false);
                continue;
            }
            let hub = Arc::clone(&hub);
            let page = Arc::clone(&page);
            let spawned = std::thread::Builder::new().name("http-viewer".into()).spawn(move || {
                if let Err(e) = handle(stream, &hub, &page) {
                    tracing::debug!("viewer: {e}");
                }
                hub.viewers.fetch_sub(1, Ordering::Relaxed);
            });
            if let Err(e) = spawned {
                tracing::warn!("cannot start a viewer thread: {e}");
            }
        }
    })?;
    Ok(())
}

/// Reads the request head (bounded) and returns the method and path without the query.
fn read_request(stream: &mut TcpStream) -> io::Result<(String, String)> {
    let mut buf = [0u8; 8192];
    let mut len = 0;
    while !buf[..len].windows(4).any(|w| w == b"\r\n\r\n") {
        if len == buf.len() {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "request head over 8 KiB"));
        }
        let n = stream.read(&mut buf[len..])?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed before the request head"));
        }
        len += n;
    }
    let head = String::from_utf8_lossy(&buf[..len]);
    let mut parts = head.lines().next().unwrap_or_default().split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let target = parts.next().unwrap_or_default();
    let path = target.split(['?', '#']).next().unwrap_or_default().to_string();
    Ok((method, path))
}

fn respond(stream: &mut TcpStream, status: &str, content_type: &str, body: &[u8], head_only: bool) -> io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nCache-Control: no-cache, no-store\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    if !head_only {
        stream.write_all(body)?;
    }
    stream.flush()
}

fn handle(mut stream: TcpStream, hub: &Hub, page: &str) -> io::Result<()> {
    let (method, path) = read_request(&mut stream)?;
    let head_only = method == "HEAD";
    if method != "GET" && !head_only {
        return respond(&mut stream, "405 Method Not Allowed", "text/plain", b"only GET and HEAD\n", false);
    }
    match path.as_str() {
        "/" | "/index.html" => respond(&mut stream, "200 OK", "text/html; charset=utf-8", page.as_bytes(), head_only),
        "/status.json" => {
            let status = hub.status.lock().map(|s| s.clone()).unwrap_or_default();
            respond(&mut stream, "200 OK", "application/json", status.as_bytes(), head_only)
        }
        "/snapshot.jpg" => {
            if !hub.enabled.load(Ordering::Relaxed) {
                return respond(&mut stream, "503 Service Unavailable", "text/plain", b"preview is off\n", head_only);
            }
            // Right after start-up or switching on, wait briefly for the first image.
            let image = hub.newest().or_else(|| hub.next_image(0, Duration::from_secs(3)));
            match image {
                Some((_, _, jpeg)) => respond(&mut stream, "200 OK", "image/jpeg", &jpeg, head_only),
                None => respond(&mut stream, "503 Service Unavailable", "text/plain", b"no frame yet\n", head_only),
            }
        }
        "/stream.mjpg" => stream_mjpeg(&mut stream, hub, head_only),
        _ => respond(
            &mut stream,
            "404 Not Found",
            "text/plain",
            b"not found: try /, /stream.mjpg, /snapshot.jpg\n",
            head_only,
        ),
    }
}

const BOUNDARY: &str = "framebusframe";

fn stream_mjpeg(stream: &mut TcpStream, hub: &Hub, head_only: bool) -> io::Result<()> {
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary={BOUNDARY}\r\nCache-Control: no-cache, no-store\r\nPragma: no-cache\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes())?;
    if head_only {
        return stream.flush();
    }
    let mut sent = hub.newest().map_or(0, |(seq, _, _)| seq.saturating_sub(1));
    let mut part = String::with_capacity(128);
    while !hub.shutdown.load(Ordering::Relaxed) {
        let Some((seq, frame_id, jpeg)) = hub.next_image(sent, Duration::from_secs(1)) else { continue };
        sent = seq;
        part.clear();
        use std::fmt::Write as _;
        let _ = write!(
            part,
            "--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\nX-Frame-Id: {frame_id}\r\n\r\n",
            jpeg.len()
        );
        stream.write_all(part.as_bytes())?;
        stream.write_all(&jpeg)?;
        stream.write_all(b"\r\n")?;
        stream.flush()?;
    }
    Ok(())
}

fn page(camera: &str) -> String {
    PAGE.replace("{camera}", camera)
}

const PAGE: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>framebus preview: {camera}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body { font: 14px/1.4 sans-serif; margin: 12px; background: #111; color: #ddd; }
h1 { font-size: 18px; margin: 0 0 8px; }
img { display: block; max-width: 100%; background: #000; min-width: 320px; min-height: 180px; }
table { border-collapse: collapse; margin-top: 8px; }
td { padding: 1px 10px 1px 0; } td:first-child { color: #888; }
.off { color: #e66; } .on { color: #6e6; }
</style></head>
<body>
<h1>framebus camera <b>{camera}</b> <span id="state"></span></h1>
<img id="live" src="/stream.mjpg" alt="live preview of {camera}">
<table id="status"></table>
<p><a href="/snapshot.jpg">snapshot.jpg</a> · <a href="/stream.mjpg">stream.mjpg</a> · <a href="/status.json">status.json</a></p>
<script>
const rows = [["camera","camera"],["frame size","size"],["pixel format","format"],["camera fps","fps"],
  ["preview fps","preview_fps"],["last frame id","last_frame_id"],["latency p50 (µs)","latency_p50_us"],
  ["frames","frames"],["skipped","skipped"],["previews","previews"],["viewers","viewers"],["errors","errors"],["last error","last_error"]];
async function refresh() {
  try {
    const s = await (await fetch("/status.json", {cache: "no-store"})).json();
    document.getElementById("state").innerHTML = s.enabled ? '<span class="on">● on</span>' : '<span class="off">● off</span>';
    document.getElementById("status").innerHTML = rows.map(([label, key]) =>
      `<tr><td>${label}</td><td>${s[key] === null || s[key] === undefined ? "–" : String(s[key]).replace(/</g, "&lt;")}</td></tr>`).join("");
  } catch (e) { document.getElementById("state").textContent = "(preview process not reachable)"; }
}
refresh(); setInterval(refresh, 1000);
</script>
</body></html>
"#;
