//! The preview's HTTP server: hyper (HTTP/1.1) on a single-threaded tokio runtime, on one
//! thread of its own, so every connection is a small task and never a thread. Viewers only ever
//! take the newest JPEG out of the [`Hub`], so a slow or stalled viewer skips images and never
//! delays the frame loop or another viewer.
//!
//! Routes: `/` (page), `/stream.mjpg` (multipart MJPEG), `/snapshot.jpg`, `/status.json`.
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
use hyper::header::{HeaderValue, ALLOW, CACHE_CONTROL, CONNECTION, CONTENT_TYPE, PRAGMA};
use hyper::{Method, Request, Response, StatusCode, Version};
use tokio::sync::watch;

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
    camera: String,
    links: String,
    limits: Limits,
    access: framebus_httpserve::Access,
    tls: Option<framebus_httpserve::Tls>,
) -> io::Result<()> {
    let server = Arc::new(Server { hub, page: Bytes::from(page(&camera).replace("{streams}", &links)), limits });
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
            _ => text(StatusCode::NOT_FOUND, "not found: try /, /stream.mjpg, /snapshot.jpg, /status.json\n"),
        }
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

/// A response body: a whole document, or the endless MJPEG stream.
enum Reply {
    Full(Option<Bytes>),
    Stream(MjpegBody),
}

impl Body for Reply {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            Reply::Full(body) => Poll::Ready(body.take().map(|b| Ok(Frame::data(b)))),
            Reply::Stream(stream) => stream.poll_next(cx).map(|chunk| chunk.map(|c| Ok(Frame::data(c)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, Reply::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Reply::Full(body) => SizeHint::with_exact(body.as_ref().map_or(0, |b| b.len() as u64)),
            Reply::Stream(_) => SizeHint::default(),
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
<p><a href="/snapshot.jpg">snapshot.jpg</a> · <a href="/stream.mjpg">stream.mjpg</a> · <a href="/status.json">status.json</a></p>
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
