//! The media server's HTTP side (hyper, one thread): the camera list `/`, a player page per
//! camera `/<camera>` (WebRTC through WHEP), the player script `/whep.js`, WHEP itself
//! (`POST /<camera>/whep` with an SDP offer → `201` + answer + `Location`; `DELETE` of that
//! location ends the session), and `/status.json`. WHEP answers carry CORS headers only for the
//! configured origins (`[media-server] allowed-origins`, default the preview's own origin); a
//! WHEP request from a browser page of any other origin is refused (403) before any work.

use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use framebus_httpserve::BodyError;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{
    HeaderValue, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_EXPOSE_HEADERS, CACHE_CONTROL, CONTENT_TYPE, HOST, LOCATION, ORIGIN, VARY,
};
use hyper::{Method, Request, Response, StatusCode};

use crate::hub::Hub;
use crate::webrtc::{is_session_id, Viewers, WhepError};

/// Largest SDP offer accepted.
const MAX_OFFER_BYTES: usize = 64 * 1024;
/// HTTP connections served at once (one client address gets a quarter of them).
const MAX_CONNECTIONS: usize = 256;
/// A request head must arrive within this, and a WHEP offer's body too.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// The player script (also usable from other pages: `framebusWhep(video, url)`).
pub const WHEP_JS: &str = include_str!("whep.js");

/// What the HTTP handlers need.
pub struct Http {
    /// Streams and their figures.
    pub hub: Arc<Hub>,
    /// WebRTC sessions.
    pub viewers: Arc<Viewers>,
    /// `rtsp://HOST:PORT` base shown on the pages.
    pub rtsp_base: String,
    /// Origins of other pages allowed to use WHEP (CORS), exactly as browsers send them.
    pub origins: Vec<String>,
    /// The address this server listens on (its own pages' origin).
    pub listen: SocketAddr,
    /// `https` with `[tls]`, else `http` (its own pages' origin).
    pub scheme: &'static str,
}

/// What the `Origin` of a WHEP request allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OriginCheck {
    /// No `Origin` (not a browser page) or the server's own page: no CORS headers needed.
    SameOrNone,
    /// An allowed other origin: answer with CORS headers naming it.
    Allowed(HeaderValue),
    /// Any other origin: refused.
    Refused,
}

/// What is served without credentials when `[auth]` has users: the player script (no secret
/// in it; pages of other origins load it with a plain `<script>`) and CORS preflights (browsers
/// never send credentials with those). Everything else, WHEP included, needs them.
pub fn is_public(method: &Method, path: &str) -> bool {
    (method == Method::GET && path == "/whep.js") || method == Method::OPTIONS
}

/// Serves HTTP on `listener` from a thread of its own until the process ends (the shared
/// setup of [`framebus_httpserve`]: per-client and global connection limits, header, body and
/// write deadlines; with `access` of users, basic authentication of all but [`is_public`]).
pub fn serve(
    listener: TcpListener,
    http: Arc<Http>,
    access: framebus_httpserve::Access,
    tls: Option<framebus_httpserve::Tls>,
) -> std::io::Result<()> {
    let limits = framebus_httpserve::Limits::new(MAX_CONNECTIONS).header_timeout(REQUEST_TIMEOUT);
    let stop = Arc::new(AtomicBool::new(false));
    let access = access.with_public(is_public);
    framebus_httpserve::spawn("http", listener, limits, access, tls, stop, move |request, _conn| {
        let http = Arc::clone(&http);
        async move { http.answer(request).await }
    })?;
    Ok(())
}

type Reply = Response<Full<Bytes>>;

fn reply(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Reply {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn text(status: StatusCode, body: String) -> Reply {
    reply(status, "text/plain; charset=utf-8", body)
}

fn cors(mut response: Reply, origin: &OriginCheck) -> Reply {
    let headers = response.headers_mut();
    headers.insert(VARY, HeaderValue::from_static("origin"));
    if let OriginCheck::Allowed(origin) = origin {
        headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        headers.insert(ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("POST, DELETE, OPTIONS"));
        headers.insert(ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static("content-type, authorization"));
        headers.insert(ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static("location"));
    }
    response
}

impl Http {
    /// Classifies the `Origin` of a request (see [`OriginCheck`]).
    pub fn check_origin<B>(&self, request: &Request<B>) -> OriginCheck {
        let Some(origin) = request.headers().get(ORIGIN) else { return OriginCheck::SameOrNone };
        let Ok(text) = origin.to_str() else { return OriginCheck::Refused };
        if self.origins.iter().any(|o| o.eq_ignore_ascii_case(text)) {
            return OriginCheck::Allowed(origin.clone());
        }
        let own = own_origins(self.scheme, self.listen);
        if own.iter().any(|o| o.eq_ignore_ascii_case(text)) {
            return OriginCheck::SameOrNone;
        }
        // Listening on every interface: the page's own host is whatever the browser used; it is
        // this server when the origin names the Host it sent and this server's port.
        if self.listen.ip().is_unspecified() {
            let host = request.headers().get(HOST).and_then(|h| h.to_str().ok()).unwrap_or_default();
            let port_ok = host.rsplit_once(':').and_then(|(_, p)| p.parse::<u16>().ok()) == Some(self.listen.port());
            if port_ok && text.eq_ignore_ascii_case(&format!("{}://{host}", self.scheme)) {
                return OriginCheck::SameOrNone;
            }
        }
        OriginCheck::Refused
    }

    async fn answer(self: Arc<Self>, request: Request<Incoming>) -> Reply {
        let path = request.uri().path().to_string();
        let parts: Vec<&str> = path.trim_matches('/').split('/').filter(|p| !p.is_empty()).collect();
        let method = request.method().clone();
        let is_whep = matches!(parts.as_slice(), [_, "whep"] | [_, "whep", _]);
        let origin = if is_whep { self.check_origin(&request) } else { OriginCheck::SameOrNone };
        if origin == OriginCheck::Refused {
            tracing::warn!(
                origin = ?request.headers().get(ORIGIN),
                "WHEP request from a page of another origin refused (allowed: [media-server] allowed-origins)"
            );
            return text(StatusCode::FORBIDDEN, "WHEP: this page's origin is not allowed here\n".into());
        }
        match (&method, parts.as_slice()) {
            (&Method::GET, []) => reply(StatusCode::OK, "text/html; charset=utf-8", self.index()),
            (&Method::GET, ["whep.js"]) => reply(StatusCode::OK, "text/javascript; charset=utf-8", WHEP_JS),
            (&Method::GET, ["status.json"]) => {
                let status = serde_json::json!({ "cameras": self.hub.status() });
                reply(StatusCode::OK, "application/json", status.to_string())
            }
            (&Method::GET, [camera]) if self.hub.channel(camera).is_some() => {
                reply(StatusCode::OK, "text/html; charset=utf-8", self.player(camera))
            }
            (&Method::OPTIONS, [_, "whep"] | [_, "whep", _]) => {
                cors(reply(StatusCode::NO_CONTENT, "text/plain", ""), &origin)
            }
            (&Method::POST, [camera, "whep"]) => {
                let camera = camera.to_string();
                cors(self.whep_offer(camera, request).await, &origin)
            }
            (&Method::DELETE, [camera, "whep", id]) => {
                // Only the session's own id on its own camera's path ends it.
                let found = is_session_id(id) && self.viewers.end(camera, id);
                cors(
                    if found {
                        text(StatusCode::OK, "session ended\n".into())
                    } else {
                        text(StatusCode::NOT_FOUND, "no such session\n".into())
                    },
                    &origin,
                )
            }
            (&Method::GET, _) => text(
                StatusCode::NOT_FOUND,
                format!("not found: try / or /<camera> (cameras: {})\n", self.hub.cameras().join(", ")),
            ),
            _ => text(StatusCode::METHOD_NOT_ALLOWED, format!("{method} {path} is not served\n")),
        }
    }

    async fn whep_offer(&self, camera: String, request: Request<Incoming>) -> Reply {
        let is_sdp = request
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim().to_ascii_lowercase().starts_with("application/sdp"));
        if !is_sdp {
            return text(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "WHEP: send the offer as Content-Type: application/sdp\n".into(),
            );
        }
        let body = match framebus_httpserve::read_body(request.into_body(), MAX_OFFER_BYTES, REQUEST_TIMEOUT).await {
            Ok(body) => body,
            Err(e @ BodyError::TooLarge) => {
                return text(StatusCode::PAYLOAD_TOO_LARGE, format!("WHEP: offer not read: {e}\n"))
            }
            Err(e @ BodyError::Timeout) => return text(StatusCode::REQUEST_TIMEOUT, format!("WHEP: {e}\n")),
            Err(e) => return text(StatusCode::BAD_REQUEST, format!("WHEP: {e}\n")),
        };
        let Ok(offer) = String::from_utf8(body.to_vec()) else {
            return text(StatusCode::BAD_REQUEST, "WHEP: the offer is not UTF-8 text\n".into());
        };
        let viewers = Arc::clone(&self.viewers);
        let cam = camera.clone();
        let answered = tokio::task::spawn_blocking(move || viewers.answer(&cam, &offer)).await;
        match answered {
            Ok(Ok((id, sdp))) => {
                let mut response = reply(StatusCode::CREATED, "application/sdp", sdp);
                if let Ok(location) = HeaderValue::from_str(&format!("/{camera}/whep/{id}")) {
                    response.headers_mut().insert(LOCATION, location);
                }
                response
            }
            Ok(Err(e)) => {
                let status = match e {
                    WhepError::UnknownCamera(_) => StatusCode::NOT_FOUND,
                    WhepError::BadOffer(_) => StatusCode::BAD_REQUEST,
                    WhepError::Full { .. } => StatusCode::SERVICE_UNAVAILABLE,
                    WhepError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
                };
                tracing::warn!(camera, "WHEP offer refused: {e}");
                text(status, format!("WHEP: {e}\n"))
            }
            Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, format!("WHEP: {e}\n")),
        }
    }

    fn index(&self) -> String {
        let rows: String = self
            .hub
            .cameras()
            .iter()
            .map(|c| {
                format!(
                    "<li><a href=\"/{c}\">{c}</a> · <code>{base}/{c}</code></li>",
                    c = html_escape(c),
                    base = html_escape(&self.rtsp_base)
                )
            })
            .collect();
        format!(
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>framebus streams</title></head>\
             <body style=\"font-family:sans-serif;background:#222;color:#ddd\"><h1>framebus streams</h1><ul>{rows}</ul>\
             <p><a style=\"color:#9cf\" href=\"/status.json\">status.json</a></p></body></html>"
        )
    }

    fn player(&self, camera: &str) -> String {
        include_str!("player.html")
            .replace("{{CAMERA}}", &html_escape(camera))
            .replace("{{RTSP}}", &html_escape(&format!("{}/{camera}", self.rtsp_base)))
    }
}

/// The origins of this server's own pages: `<scheme>://<listen>` and, on loopback,
/// `<scheme>://localhost:<port>`.
fn own_origins(scheme: &str, listen: SocketAddr) -> Vec<String> {
    let mut own = vec![format!("{scheme}://{listen}")];
    if listen.ip().is_loopback() {
        own.push(format!("{scheme}://localhost:{}", listen.port()));
    }
    own
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}
