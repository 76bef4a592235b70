//! The preview's HTTP server: hyper (HTTP/1.1) on a single-threaded tokio runtime, on one
//! thread of its own, so every connection is a small task and never a thread. Viewers only ever
//! take the newest JPEG out of the [`Hub`], so a slow or stalled viewer skips images and never
//! delays the frame loop or another viewer.
//!
//! Routes: `/` (page), `/stream.mjpg` (multipart MJPEG), `/snapshot.jpg`, `/status.json`, and
//! the events page of the whole deployment ([`crate::events`]): `/events` (page),
//! `/api/events` (JSON, paged), `/events/thumb/<camera>/<clip>.jpg`,
//! `/events/clip/<camera>/<file>` (the clip's video, with HTTP range requests). Journal reads,
//! thumbnails (one at a time) and file reads run on tokio's blocking threads, never on the
//! HTTP thread.
//!
//! Limits, so that hostile or broken clients cannot take the preview offline:
//! - a request head must arrive whole within `request-timeout-secs` of the connection (or of
//!   the previous response on a kept-alive connection), however often its bytes come, and may
//!   be at most 16 KiB (longer: 431, then close);
//! - connections that are not stream viewers (requests being read, page, snapshot, status, idle
//!   kept-alive) are at most `max-connections`, and one client address gets at most a quarter
//!   of them (at least 8); a client's further connections wait for its own places (the shared
//!   setup of [`framebus_httpserve`], like the metrics endpoint and the media server);
//! - `/stream.mjpg` takes one of `max-viewers` slots only once its request has been read, and
//!   then no longer counts as a connection: snapshot and status never compete with streams;
//! - a viewer whose socket accepts nothing for [`WRITE_TIMEOUT`] is dropped.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use framebus_httpserve::Conn;
use hyper::body::{Body, Bytes, Frame, Incoming, SizeHint};
use hyper::header::{
    HeaderValue, ACCEPT_RANGES, ALLOW, CACHE_CONTROL, CONNECTION, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, PRAGMA,
    RANGE,
};
use hyper::{Method, Request, Response, StatusCode, Version};
use tokio::sync::{watch, Semaphore};

use crate::events::{is_plain_name, Events, Query};

/// A viewer whose socket has accepted no byte for this long is dropped (it stalled).
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest request head read (hyper's minimum buffer).
const MAX_HEAD_BYTES: usize = 16 * 1024;
/// How long `/snapshot.jpg` waits for the first image after start-up or switching on.
const FIRST_IMAGE_WAIT: Duration = Duration::from_secs(3);
const BOUNDARY: &str = "framebusframe";

/// One preview image.
#[derive(Debug, Clone)]
struct Image {
    frame_id: u64,
    jpeg: Bytes,
}

/// What the frame loop last published.
#[derive(Debug, Clone, Default)]
struct Latest {
    image: Option<Image>,
    shutdown: bool,
}

/// What the frame loop publishes and the viewers read.
#[derive(Debug, Default)]
pub struct Hub {
    latest: watch::Sender<Latest>,
    status: Mutex<Bytes>,
    enabled: AtomicBool,
    viewers: AtomicUsize,
}

impl Hub {
    /// Publishes a new preview image and wakes every viewer.
    pub fn publish(&self, frame_id: u64, jpeg: &[u8]) {
        let image = Image { frame_id, jpeg: Bytes::copy_from_slice(jpeg) };
        self.latest.send_modify(|latest| latest.image = Some(image));
    }

    /// Records whether images are being generated (snapshots answer 503 when not).
    pub fn set_enabled(&self, on: bool) {
        self.enabled.store(on, Ordering::Relaxed);
    }

    /// Replaces the status document served at `/status.json`.
    pub fn set_status(&self, json: String) {
        if let Ok(mut status) = self.status.lock() {
            *status = Bytes::from(json);
        }
    }

    /// Stream viewers connected now.
    pub fn viewers(&self) -> usize {
        self.viewers.load(Ordering::Relaxed)
    }

    /// Ends every stream (the process is stopping).
    pub fn shut_down(&self) {
        self.latest.send_modify(|latest| latest.shutdown = true);
    }

    /// Takes a stream slot if fewer than `max` are taken; the slot is freed when dropped.
    fn take_viewer_slot(self: &Arc<Self>, max: usize) -> Option<ViewerSlot> {
        let taken = self.viewers.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < max).then_some(n + 1));
        taken.is_ok().then(|| ViewerSlot(Arc::clone(self)))
    }

    /// The newest image, waiting up to `wait` for a first one.
    async fn snapshot(&self, wait: Duration) -> Option<Image> {
        let mut rx = self.latest.subscribe();
        let first = async move {
            loop {
                let latest = rx.borrow_and_update().clone();
                if latest.shutdown || latest.image.is_some() {
                    return latest.image;
                }
                rx.changed().await.ok()?;
            }
        };
        tokio::time::timeout(wait, first).await.ok().flatten()
    }
}

/// One taken stream slot of the [`Hub`].
#[derive(Debug)]
struct ViewerSlot(Arc<Hub>);

impl Drop for ViewerSlot {
    fn drop(&mut self) {
        self.0.viewers.fetch_sub(1, Ordering::AcqRel);
    }
}

/// How much the server lets clients hold (see the module docs).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// `/stream.mjpg` responses at once.
    pub max_viewers: usize,
    /// Other connections at once (requests being read, short responses, idle kept-alive).
    pub max_connections: usize,
    /// Time a request head has to arrive whole.
    pub request_timeout: Duration,
}

/// What the server's pages show besides the live image.
pub struct Site {
    /// The camera's name.
    pub camera: String,
    /// Links to its H.264 stream ([`stream_links`]).
    pub links: String,
    /// The deployment's events (the events page).
    pub events: Arc<Events>,
}

/// Binds `addr`; the returned listener's `local_addr` is the real one (port 0 picks a port).
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    TcpListener::bind(addr)
}

/// Serves viewers from `listener` on a background thread until the process exits (the shared
/// HTTP setup of [`framebus_httpserve`]: per-client and global connection limits, header and
/// write deadlines; with `access` of users, basic authentication of every request).
pub fn serve(
    listener: TcpListener,
    hub: Arc<Hub>,
    site: Site,
    limits: Limits,
    access: framebus_httpserve::Access,
    tls: Option<framebus_httpserve::Tls>,
) -> io::Result<()> {
    let Site { camera, links, events } = site;
    let server = Arc::new(Server {
        hub,
        page: Bytes::from(page(&camera).replace("{streams}", &links)),
        limits,
        events,
        thumbnailer: Arc::new(Semaphore::new(1)),
    });
    let http_limits = framebus_httpserve::Limits {
        title_case_headers: true,
        max_head_bytes: MAX_HEAD_BYTES,
        write_timeout: WRITE_TIMEOUT,
        ..framebus_httpserve::Limits::new(limits.max_connections).header_timeout(limits.request_timeout)
    };
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    framebus_httpserve::spawn("http", listener, http_limits, access, tls, stop, move |request, conn| {
        let server = Arc::clone(&server);
        async move { server.answer(request, &conn).await }
    })?;
    Ok(())
}

struct Server {
    hub: Arc<Hub>,
    page: Bytes,
    limits: Limits,
    events: Arc<Events>,
    /// Thumbnails are made one at a time (each decodes video).
    thumbnailer: Arc<Semaphore>,
}

impl Server {
    async fn answer(&self, request: Request<Incoming>, conn: &Conn) -> Response<Reply> {
        let head_only = request.method() == Method::HEAD;
        if request.method() != Method::GET && !head_only {
            let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n");
            response.headers_mut().insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
            return response;
        }
        match request.uri().path() {
            "/" | "/index.html" => full(StatusCode::OK, "text/html; charset=utf-8", self.page.clone()),
            "/status.json" => {
                let status = self.hub.status.lock().map(|s| s.clone()).unwrap_or_default();
                full(StatusCode::OK, "application/json", status)
            }
            "/snapshot.jpg" => {
                if !self.hub.enabled.load(Ordering::Relaxed) {
                    return text(StatusCode::SERVICE_UNAVAILABLE, "preview is off\n");
                }
                match self.hub.snapshot(FIRST_IMAGE_WAIT).await {
                    Some(image) => full(StatusCode::OK, "image/jpeg", image.jpeg),
                    None => text(StatusCode::SERVICE_UNAVAILABLE, "no frame yet\n"),
                }
            }
            "/stream.mjpg" if head_only => stream_response(Reply::Full(None)),
            "/stream.mjpg" => match self.hub.take_viewer_slot(self.limits.max_viewers) {
                Some(slot) => {
                    // A viewer holds a stream slot, no longer a connection place.
                    conn.release();
                    stream_response(Reply::Stream(MjpegBody::new(&self.hub, slot)))
                }
                None => text(StatusCode::SERVICE_UNAVAILABLE, "too many viewers\n"),
            },
            "/events" | "/events/" => {
                full(StatusCode::OK, "text/html; charset=utf-8", Bytes::from_static(EVENTS_PAGE.as_bytes()))
            }
            "/api/events" => {
                let query = Query::parse(request.uri().query());
                let events = Arc::clone(&self.events);
                match tokio::task::spawn_blocking(move || events.list(&query).to_string()).await {
                    Ok(json) => full(StatusCode::OK, "application/json", Bytes::from(json)),
                    Err(_) => text(StatusCode::INTERNAL_SERVER_ERROR, "listing the events failed\n"),
                }
            }
            path if path.starts_with("/events/thumb/") => self.thumbnail(&path["/events/thumb/".len()..]).await,
            path if path.starts_with("/events/clip/") => {
                let range = request.headers().get(RANGE).and_then(|v| v.to_str().ok()).map(str::to_string);
                self.clip(&path["/events/clip/".len()..], range.as_deref(), head_only).await
            }
            _ => text(
                StatusCode::NOT_FOUND,
                "not found: try /, /stream.mjpg, /snapshot.jpg, /status.json, /events, /api/events\n",
            ),
        }
    }

    /// `/events/thumb/<camera>/<clip>.jpg`.
    async fn thumbnail(&self, rest: &str) -> Response<Reply> {
        let Some((camera, name)) = rest.split_once('/') else { return not_found() };
        let Some(clip) = name.strip_suffix(".jpg") else { return not_found() };
        if !is_plain_name(camera) || !is_plain_name(clip) {
            return not_found();
        }
        let Ok(_turn) = Arc::clone(&self.thumbnailer).acquire_owned().await else { return not_found() };
        let (events, camera, clip) = (Arc::clone(&self.events), camera.to_string(), clip.to_string());
        match tokio::task::spawn_blocking(move || events.thumbnail(&camera, &clip)).await {
            Ok(Ok(jpeg)) => {
                let mut response = full(StatusCode::OK, "image/jpeg", Bytes::from(jpeg.as_ref().clone()));
                // A clip's thumbnail never changes.
                response.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("private, max-age=3600"));
                response
            }
            Ok(Err(e)) => {
                framebus_common::logging::repeated(
                    tracing::Level::WARN,
                    "preview.thumbnail",
                    format_args!("events page: thumbnail: {e:#}"),
                );
                not_found()
            }
            Err(_) => text(StatusCode::INTERNAL_SERVER_ERROR, "making the thumbnail failed\n"),
        }
    }

    /// `/events/clip/<camera>/<file>`: the whole file, or the one byte range asked for.
    async fn clip(&self, rest: &str, range: Option<&str>, head_only: bool) -> Response<Reply> {
        let Some((camera, file)) = rest.split_once('/') else { return not_found() };
        if !is_plain_name(camera) || !is_plain_name(file) {
            return not_found();
        }
        let (events, camera, file) = (Arc::clone(&self.events), camera.to_string(), file.to_string());
        let opened = match tokio::task::spawn_blocking(move || events.open_clip(&camera, &file)).await {
            Ok(Ok(opened)) => opened,
            Ok(Err(e)) => {
                tracing::debug!("events page: clip refused: {e:#}");
                return not_found();
            }
            Err(_) => return text(StatusCode::INTERNAL_SERVER_ERROR, "opening the clip failed\n"),
        };
        let len = opened.len;
        let (status, start, end) = match byte_range(range, len) {
            ByteRange::Whole => (StatusCode::OK, 0, len),
            ByteRange::Part(start, last) => (StatusCode::PARTIAL_CONTENT, start, last + 1),
            ByteRange::Unsatisfiable => {
                let mut response = text(StatusCode::RANGE_NOT_SATISFIABLE, "range not satisfiable\n");
                if let Ok(value) = HeaderValue::try_from(format!("bytes */{len}")) {
                    response.headers_mut().insert(CONTENT_RANGE, value);
                }
                return response;
            }
        };
        let body = if head_only || start == end {
            Reply::Full(None)
        } else {
            let mut file = opened.file;
            let seeked = tokio::task::spawn_blocking(move || {
                use std::io::Seek;
                file.seek(io::SeekFrom::Start(start)).map(|_| file)
            })
            .await;
            match seeked {
                Ok(Ok(file)) => Reply::File(FileBody::new(tokio::fs::File::from_std(file), end - start)),
                _ => return text(StatusCode::INTERNAL_SERVER_ERROR, "reading the clip failed\n"),
            }
        };
        let mut response = Response::new(body);
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(opened.content_type));
        headers.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("private, max-age=3600"));
        headers.insert(CONTENT_LENGTH, HeaderValue::from(end - start));
        if status == StatusCode::PARTIAL_CONTENT {
            if let Ok(value) = HeaderValue::try_from(format!("bytes {start}-{}/{len}", end - 1)) {
                headers.insert(CONTENT_RANGE, value);
            }
        }
        response
    }
}

fn not_found() -> Response<Reply> {
    text(StatusCode::NOT_FOUND, "not found\n")
}

/// What to send of a file for a `Range` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRange {
    /// The whole file (no header, one not about bytes, or several ranges: a server may ignore
    /// a Range header, RFC 9110 14.2).
    Whole,
    /// Bytes `first..=last`, within the file (a range beyond the end is cut at the end).
    Part(u64, u64),
    /// Nothing can be sent (answer 416).
    Unsatisfiable,
}

/// The byte range a `Range` header asks of a file of `len` bytes.
pub fn byte_range(header: Option<&str>, len: u64) -> ByteRange {
    use http_range_header::{RangeInvalid, RangeUnsatisfiableError};
    let Some(header) = header else { return ByteRange::Whole };
    let parsed = match http_range_header::parse_range_header(header) {
        Ok(parsed) => parsed,
        Err(RangeUnsatisfiableError::Invalid(RangeInvalid::DoesNotStartWithToken)) => return ByteRange::Whole,
        Err(_) => return ByteRange::Unsatisfiable,
    };
    if parsed.len() != 1 {
        return ByteRange::Whole;
    }
    match parsed.validate(len) {
        Ok(ranges) => ranges.first().map_or(ByteRange::Whole, |r| ByteRange::Part(*r.start(), *r.end())),
        Err(_) => ByteRange::Unsatisfiable,
    }
}

fn full(status: StatusCode, content_type: &'static str, body: Bytes) -> Response<Reply> {
    let mut response = Response::new(Reply::Full(Some(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache, no-store"));
    response
}

fn text(status: StatusCode, body: &'static str) -> Response<Reply> {
    full(status, "text/plain", Bytes::from_static(body.as_bytes()))
}

/// The stream's response: HTTP/1.0 framing (the body ends when the connection closes), which
/// every MJPEG client reads, rather than chunked encoding.
fn stream_response(body: Reply) -> Response<Reply> {
    let mut response = Response::new(body);
    *response.version_mut() = Version::HTTP_10;
    let headers = response.headers_mut();
    let content_type = format!("multipart/x-mixed-replace; boundary={BOUNDARY}");
    headers.insert(CONTENT_TYPE, HeaderValue::try_from(content_type).unwrap_or(HeaderValue::from_static("image/jpeg")));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache, no-store"));
    headers.insert(PRAGMA, HeaderValue::from_static("no-cache"));
    headers.insert(CONNECTION, HeaderValue::from_static("close"));
    response
}

/// A response body: a whole document, the endless MJPEG stream, or (part of) a clip file.
enum Reply {
    Full(Option<Bytes>),
    Stream(MjpegBody),
    File(FileBody),
}

impl Body for Reply {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            Reply::Full(body) => Poll::Ready(body.take().map(|b| Ok(Frame::data(b)))),
            Reply::Stream(stream) => stream.poll_next(cx).map(|chunk| chunk.map(|c| Ok(Frame::data(c)))),
            Reply::File(file) => file.poll_next(cx).map(|chunk| chunk.map(|c| Ok(Frame::data(c)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, Reply::Full(None)) || matches!(self, Reply::File(f) if f.remaining == 0)
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Reply::Full(body) => SizeHint::with_exact(body.as_ref().map_or(0, |b| b.len() as u64)),
            Reply::Stream(_) => SizeHint::default(),
            Reply::File(file) => SizeHint::with_exact(file.remaining),
        }
    }
}

/// Bytes read from a clip file per body chunk.
const FILE_CHUNK: usize = 64 * 1024;

/// `remaining` bytes of a file from where it stands, read in chunks on tokio's blocking threads
/// as the client takes them (a slow client holds one chunk, never the file).
struct FileBody {
    file: tokio::fs::File,
    remaining: u64,
    buf: Vec<u8>,
}

impl FileBody {
    fn new(file: tokio::fs::File, remaining: u64) -> FileBody {
        FileBody { file, remaining, buf: vec![0; FILE_CHUNK] }
    }

    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        use tokio::io::AsyncRead;
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        let want = (self.remaining as usize).min(FILE_CHUNK);
        let mut read = tokio::io::ReadBuf::new(&mut self.buf[..want]);
        match Pin::new(&mut self.file).poll_read(cx, &mut read) {
            Poll::Pending => Poll::Pending,
            // A read error or a file that shrank: end the body early (hyper closes the
            // connection, the client sees a short response).
            Poll::Ready(Err(_)) => Poll::Ready(None),
            Poll::Ready(Ok(())) if read.filled().is_empty() => Poll::Ready(None),
            Poll::Ready(Ok(())) => {
                let chunk = Bytes::copy_from_slice(read.filled());
                self.remaining -= chunk.len() as u64;
                Poll::Ready(Some(chunk))
            }
        }
    }
}

type NextImage = Pin<Box<dyn Future<Output = Option<(watch::Receiver<Latest>, Image)>> + Send>>;

/// The multipart stream of one viewer: each new image once, newest only (an image published
/// while the viewer's socket was full is replaced by the next, never queued).
struct MjpegBody {
    next: NextImage,
    /// Parts of the current image still to hand to hyper: part head, JPEG, CRLF.
    queued: Vec<Bytes>,
    _slot: ViewerSlot,
}

impl MjpegBody {
    fn new(hub: &Hub, slot: ViewerSlot) -> MjpegBody {
        let mut rx = hub.latest.subscribe();
        // The image already there is the viewer's first.
        rx.mark_changed();
        MjpegBody { next: Box::pin(next_image(rx)), queued: Vec::with_capacity(3), _slot: slot }
    }

    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        if let Some(chunk) = self.queued.pop() {
            return Poll::Ready(Some(chunk));
        }
        match self.next.as_mut().poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Ready(Some((rx, image))) => {
                self.next = Box::pin(next_image(rx));
                let head = format!(
                    "--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\nX-Frame-Id: {}\r\n\r\n",
                    image.jpeg.len(),
                    image.frame_id
                );
                // Popped from the back: CRLF last.
                self.queued.push(Bytes::from_static(b"\r\n"));
                self.queued.push(image.jpeg);
                Poll::Ready(Some(Bytes::from(head)))
            }
        }
    }
}

/// Waits for an image newer than the last one `rx` saw; `None` once the process stops.
async fn next_image(mut rx: watch::Receiver<Latest>) -> Option<(watch::Receiver<Latest>, Image)> {
    loop {
        rx.changed().await.ok()?;
        let latest = rx.borrow_and_update().clone();
        if latest.shutdown {
            return None;
        }
        if let Some(image) = latest.image {
            return Some((rx, image));
        }
    }
}

/// The page's links to the camera's H.264 stream on the media server (when the camera has a
/// streamer): the WebRTC player and the RTSP URL. A server bound to every interface is linked
/// under the host the page was loaded from.
pub fn stream_links(deployment: &framebus_common::Deployment, camera: &framebus_common::CameraConfig) -> String {
    use framebus_common::config::MediaServerConfig;
    let (Some(server), Some(_)) = (&deployment.media_server, &camera.streamer) else { return String::new() };
    let (http, rtsp) = (server.http_addr(), server.rtsp_addr());
    let (web, stream) = if deployment.tls.is_some() { ("https", "rtsps") } else { ("http", "rtsp") };
    let player = format!("{web}://{}/{}", MediaServerConfig::local(http), camera.name);
    let rtsp_url = format!("{stream}://{}/{}", MediaServerConfig::local(rtsp), camera.name);
    let rehost = if http.ip().is_unspecified() {
        "<script>for (const a of document.querySelectorAll('a.h264')) { const u = new URL(a.href); u.hostname = location.hostname; a.href = u.href; }</script>"
    } else {
        ""
    };
    format!(
        "<p>H.264 live: <a class=\"h264\" id=\"webrtc\" href=\"{player}\">WebRTC player (low latency)</a> · RTSP <code id=\"rtsp\">{rtsp_url}</code></p>{rehost}\n"
    )
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
<p><a href="/events">events</a> · <a href="/snapshot.jpg">snapshot.jpg</a> · <a href="/stream.mjpg">stream.mjpg</a> · <a href="/status.json">status.json</a></p>
{streams}<script>
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

/// `/events`: the deployment's clips, newest first, drawn by the browser from `/api/events`
/// (every value is set as text, never as markup).
const EVENTS_PAGE: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>framebus events</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body { font: 14px/1.4 sans-serif; margin: 0; background: #111; color: #ddd; }
header { display: flex; flex-wrap: wrap; gap: 12px; align-items: center; padding: 10px 16px; background: #1b1b1b; border-bottom: 1px solid #333; position: sticky; top: 0; z-index: 1; }
h1 { font-size: 18px; margin: 0 12px 0 0; }
a { color: #8cf; }
select, button { background: #222; color: #ddd; border: 1px solid #444; border-radius: 4px; padding: 4px 8px; font: inherit; }
#count { color: #888; margin-left: auto; }
main { padding: 16px; display: grid; grid-template-columns: repeat(auto-fill, minmax(340px, 1fr)); gap: 16px; }
.event { background: #1b1b1b; border: 1px solid #333; border-radius: 6px; overflow: hidden; }
.event:target { border-color: #8cf; }
.event video, .event img { display: block; width: 100%; aspect-ratio: 4 / 3; object-fit: contain; background: #000; }
.info { padding: 8px 10px; }
.title { display: flex; gap: 8px; align-items: baseline; }
.label { font-weight: bold; font-size: 16px; color: #fff; }
.score { background: #264; color: #cfc; border-radius: 3px; padding: 0 5px; font-size: 12px; }
.camera { margin-left: auto; color: #8cf; }
.meta { color: #999; font-size: 12px; margin-top: 2px; }
.note { color: #c96; font-size: 12px; margin-top: 4px; }
.empty { grid-column: 1 / -1; color: #888; padding: 40px; text-align: center; }
#more { display: none; margin: 0 16px 24px; }
</style></head>
<body>
<header>
<h1>framebus events</h1>
<label>camera <select id="camera"><option value="">all</option></select></label>
<label>label <select id="label"><option value="">all</option></select></label>
<span id="count"></span>
</header>
<main id="events"></main>
<button id="more">older events</button>
<script>
const params = new URLSearchParams(location.search);
const list = document.getElementById("events"), more = document.getElementById("more");
const cameraSelect = document.getElementById("camera"), labelSelect = document.getElementById("label");
let nextOffset = 0;
function el(tag, className, text) {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}
function fill(select, values, chosen) {
  const have = new Set([...select.options].map(o => o.value));
  for (const v of values) if (!have.has(v)) { const o = el("option", "", v); o.value = v; select.appendChild(o); }
  if (chosen) select.value = chosen;
}
function when(utc) {
  // The journal's times are UTC without a zone ("2026-01-01 12:00:00.000"): say so, or the
  // browser would read them as its local time.
  const d = new Date(/Z$/.test(utc || "") ? utc : String(utc).replace(" ", "T") + "Z");
  return isNaN(d) ? (utc || "?") : d.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "medium" });
}
function card(e) {
  const item = el("article", "event");
  item.id = e.clip;
  if (e.video && e.video.plays_in_browser) {
    const v = el("video");
    v.controls = true; v.preload = "none"; v.muted = true; v.playsInline = true;
    if (e.thumbnail) v.poster = e.thumbnail;
    v.src = e.video.url;
    item.appendChild(v);
  } else if (e.thumbnail) {
    const img = el("img"); img.src = e.thumbnail; img.alt = e.label + " on " + e.camera;
    item.appendChild(img);
  }
  const info = el("div", "info"), title = el("div", "title");
  title.appendChild(el("span", "label", e.label));
  if (e.score !== null && e.score !== undefined) title.appendChild(el("span", "score", Number(Number(e.score).toPrecision(2)).toString()));
  title.appendChild(el("span", "camera", e.camera));
  info.appendChild(title);
  const duration = e.duration_secs === null ? "recording…" : Number(e.duration_secs).toFixed(1) + " s";
  const meta = el("div", "meta", when(e.started_utc) + " · " + duration + (e.frames ? " · " + e.frames + " frames" : ""));
  meta.title = (e.started_utc || "") + " UTC · " + e.summary + " · clip " + e.clip;
  info.appendChild(meta);
  if (e.video && !e.video.plays_in_browser) {
    const note = el("div", "note", "MJPEG AVI: browsers do not play it; ");
    const a = el("a", "", "download"); a.href = e.video.url; a.download = e.video.file;
    note.appendChild(a); note.appendChild(document.createTextNode(" and open it in a video player"));
    info.appendChild(note);
  } else if (!e.video && e.status === "completed") {
    info.appendChild(el("div", "note", "no video left (deleted, failed or images only)"));
  }
  item.appendChild(info);
  return item;
}
async function load(reset) {
  if (reset) { list.textContent = ""; nextOffset = 0; }
  const q = new URLSearchParams({ offset: nextOffset, limit: 48 });
  if (cameraSelect.value) q.set("camera", cameraSelect.value);
  if (labelSelect.value) q.set("label", labelSelect.value);
  try {
    const r = await (await fetch("/api/events?" + q, { cache: "no-store" })).json();
    fill(cameraSelect, r.cameras, params.get("camera")); fill(labelSelect, r.labels, params.get("label"));
    params.delete("camera"); params.delete("label");
    for (const e of r.events) list.appendChild(card(e));
    document.getElementById("count").textContent = r.total + " event" + (r.total === 1 ? "" : "s");
    if (r.total === 0) list.appendChild(el("div", "empty", "No events yet: clips appear here when a recorder's trigger fires or ctl record on runs."));
    nextOffset = r.next_offset || 0;
    more.style.display = r.next_offset ? "block" : "none";
    if (reset && location.hash) { const t = document.getElementById(decodeURIComponent(location.hash.slice(1))); if (t) t.scrollIntoView(); }
  } catch (err) { list.textContent = ""; list.appendChild(el("div", "empty", "events not reachable: " + err)); }
}
function filtersChanged() {
  const q = new URLSearchParams();
  if (cameraSelect.value) q.set("camera", cameraSelect.value);
  if (labelSelect.value) q.set("label", labelSelect.value);
  history.replaceState(null, "", "/events" + (q.toString() ? "?" + q : ""));
  load(true);
}
cameraSelect.onchange = filtersChanged; labelSelect.onchange = filtersChanged;
more.onclick = () => load(false);
fill(cameraSelect, [], params.get("camera")); fill(labelSelect, [], params.get("label"));
if (params.get("camera")) { const o = el("option", "", params.get("camera")); o.value = params.get("camera"); cameraSelect.appendChild(o); cameraSelect.value = o.value; }
if (params.get("label")) { const o = el("option", "", params.get("label")); o.value = params.get("label"); labelSelect.appendChild(o); labelSelect.value = o.value; }
load(true);
</script>
</body></html>
"#;

#[cfg(test)]
mod tests {
    use super::{byte_range, ByteRange};

    /// Ranges are cut at the end of the file, refused beyond it, ignored when several.
    #[test]
    fn ranges_stay_within_the_file() {
        assert_eq!(byte_range(None, 100), ByteRange::Whole);
        assert_eq!(byte_range(Some("bytes=10-19"), 100), ByteRange::Part(10, 19));
        assert_eq!(byte_range(Some("bytes=10-99999999999999999"), 100), ByteRange::Part(10, 99));
        assert_eq!(byte_range(Some("bytes=-30"), 100), ByteRange::Part(70, 99));
        assert_eq!(byte_range(Some("bytes=-99999999999999"), 100), ByteRange::Part(0, 99));
        assert_eq!(byte_range(Some("bytes=100-"), 100), ByteRange::Unsatisfiable);
        assert_eq!(byte_range(Some("bytes=20-10"), 100), ByteRange::Unsatisfiable);
        assert_eq!(byte_range(Some("bytes=0-1,5-6"), 100), ByteRange::Whole);
        assert_eq!(byte_range(Some("items=0-1"), 100), ByteRange::Whole);
        assert_eq!(byte_range(Some("bytes=0-0"), 0), ByteRange::Unsatisfiable);
    }
}
