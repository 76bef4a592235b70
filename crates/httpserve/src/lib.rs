//! The one HTTP server setup of framebus: the preview, the metrics endpoint of `ctl` and the
//! media server all serve HTTP/1.1 through [`spawn`] (hyper on a single-threaded tokio runtime,
//! on a thread of its own; every connection is a small task, never a thread).
//!
//! What it guarantees, so that a hostile or broken client cannot take a server offline:
//! - **per-client limit**: one client address is served on at most [`Limits::per_client`]
//!   connections at once; its further connections wait, in order, for one of its own slots
//!   (at most [`Limits::per_client_waiting`] of them; more are closed at once). A reconnecting
//!   slowloris from one address therefore only ever delays itself;
//! - **global cap**: at most [`Limits::max_connections`] connections are served at once; a
//!   connection waiting for its client's slot does not hold a global place;
//! - **header deadline**: a request head must arrive whole within [`Limits::header_timeout`]
//!   of the connection being served (or of the previous response on a kept-alive connection),
//!   however often its bytes come, and be at most [`Limits::max_head_bytes`];
//! - **body deadline**: handlers read bodies only through [`read_body`], bounded in size and
//!   time;
//! - **write deadline**: a connection whose socket accepts nothing for
//!   [`Limits::write_timeout`] is dropped;
//! - **TLS**: with a [`Tls`] (`[tls]`), HTTPS; the handshake must end within the header
//!   deadline;
//! - **authentication**: with an [`Access`] that has users (`[auth] users-file`), a request
//!   without valid basic credentials gets `401` before the handler sees it ([`auth`]).
//!
//! A handler that keeps a response open for long (the preview's MJPEG stream) calls
//! [`Conn::release`] so that the connection no longer counts against either limit (those have
//! limits of their own).

pub mod auth;
pub mod tls;

pub use auth::Access;
pub use tls::Tls;

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::{BodyExt, Either, Full, Limited};
use hyper::body::{Body, Bytes, Incoming};
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE, WWW_AUTHENTICATE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_io_timeout::TimeoutStream;

/// How much the server lets clients hold (see the crate docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Connections served at once, all clients together.
    pub max_connections: usize,
    /// Connections of one client address served at once.
    pub per_client: usize,
    /// Connections of one client address waiting for one of its slots; more are closed.
    pub per_client_waiting: usize,
    /// Time a request head has to arrive whole.
    pub header_timeout: Duration,
    /// Largest request head (hyper's minimum buffer is 8 KiB).
    pub max_head_bytes: usize,
    /// A connection whose socket accepts no byte for this long is dropped.
    pub write_timeout: Duration,
    /// Send header names in title case (`Content-Type`): some MJPEG clients compare names
    /// exactly.
    pub title_case_headers: bool,
}

impl Limits {
    /// Limits for a server of `max_connections`: a client gets a quarter of them, at least
    /// `min(8, max_connections)`; 5 s header deadline, 16 KiB heads, 10 s write deadline.
    pub fn new(max_connections: usize) -> Limits {
        let max_connections = max_connections.max(1);
        Limits {
            max_connections,
            per_client: (max_connections / 4).max(max_connections.min(8)),
            per_client_waiting: 512,
            header_timeout: Duration::from_secs(5),
            max_head_bytes: 16 * 1024,
            write_timeout: Duration::from_secs(10),
            title_case_headers: false,
        }
    }

    /// The same with another header deadline.
    pub fn header_timeout(self, header_timeout: Duration) -> Limits {
        Limits { header_timeout, ..self }
    }
}

/// A body that could not be read (see [`read_body`]).
#[derive(Debug, PartialEq, Eq)]
pub enum BodyError {
    /// More than the allowed bytes (answer 413).
    TooLarge,
    /// Not all there within the deadline (answer 408).
    Timeout,
    /// The connection failed.
    Failed(String),
}

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BodyError::TooLarge => f.write_str("the body is too large"),
            BodyError::Timeout => f.write_str("the body did not arrive in time"),
            BodyError::Failed(e) => write!(f, "reading the body: {e}"),
        }
    }
}

/// Reads a request body of at most `max_bytes` that must arrive whole within `within`.
pub async fn read_body(body: Incoming, max_bytes: usize, within: Duration) -> Result<Bytes, BodyError> {
    match tokio::time::timeout(within, Limited::new(body, max_bytes).collect()).await {
        Err(_) => Err(BodyError::Timeout),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => Err(BodyError::TooLarge),
        Ok(Err(e)) => Err(BodyError::Failed(e.to_string())),
    }
}

/// What a handler knows of its connection.
#[derive(Clone)]
pub struct Conn {
    /// The client's address.
    pub peer: SocketAddr,
    places: Arc<Mutex<Option<Places>>>,
}

impl Conn {
    /// The connection no longer counts against the per-client limit and the global cap (a
    /// long-lived response with a limit of its own). Idempotent.
    pub fn release(&self) {
        drop(self.places.lock().ok().and_then(|mut p| p.take()));
    }
}

/// The two places a served connection holds.
struct Places {
    _client: OwnedSemaphorePermit,
    _global: OwnedSemaphorePermit,
}

/// One client address's slots and how many connections it has (served or waiting).
struct Client {
    slots: Arc<Semaphore>,
    connections: usize,
}

/// Every client address with a connection.
struct Clients {
    per_client: usize,
    max: usize,
    map: Mutex<HashMap<IpAddr, Client>>,
}

/// A connection's membership of its client's entry; removes the entry with the last one.
struct Member {
    clients: Arc<Clients>,
    ip: IpAddr,
}

impl Clients {
    /// Registers a connection of `ip`: its client's slots, or none when it has too many
    /// waiting already.
    fn join(self: &Arc<Self>, ip: IpAddr) -> Option<(Member, Arc<Semaphore>)> {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let client = map
            .entry(ip)
            .or_insert_with(|| Client { slots: Arc::new(Semaphore::new(self.per_client)), connections: 0 });
        if client.connections >= self.per_client + self.max {
            return None;
        }
        client.connections += 1;
        Some((Member { clients: Arc::clone(self), ip }, Arc::clone(&client.slots)))
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        let mut map = self.clients.map.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(client) = map.get_mut(&self.ip) {
            client.connections = client.connections.saturating_sub(1);
            if client.connections == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

/// Serves HTTP on `listener` from a thread named `name` until `stop` is set (checked every
/// 100 ms) or the process ends; over TLS with `tls`. A request `access` refuses gets `401`
/// (with the basic challenge); `handler` answers every other request; it gets the request and
/// its [`Conn`].
pub fn spawn<H, F, B>(
    name: &str,
    listener: TcpListener,
    limits: Limits,
    access: Access,
    tls: Option<Tls>,
    stop: Arc<AtomicBool>,
    handler: H,
) -> io::Result<std::thread::JoinHandle<()>>
where
    H: Fn(Request<Incoming>, Conn) -> F + Send + Sync + 'static,
    F: Future<Output = Response<B>> + Send + 'static,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    listener.set_nonblocking(true)?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_io().enable_time().build()?;
    let label = name.to_string();
    let handler = Arc::new(handler);
    std::thread::Builder::new().name(name.to_string()).spawn(move || {
        runtime.block_on(async move {
            match tokio::net::TcpListener::from_std(listener) {
                Ok(listener) => accept_loop(&label, listener, limits, (access, tls), &stop, handler).await,
                Err(e) => tracing::error!("{label}: the HTTP server cannot use its socket: {e}"),
            }
        })
    })
}

async fn accept_loop<H, F, B>(
    label: &str,
    listener: tokio::net::TcpListener,
    limits: Limits,
    (access, tls): (Access, Option<Tls>),
    stop: &AtomicBool,
    handler: Arc<H>,
) where
    H: Fn(Request<Incoming>, Conn) -> F + Send + Sync + 'static,
    F: Future<Output = Response<B>> + Send + 'static,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let global = Arc::new(Semaphore::new(limits.max_connections));
    let clients = Arc::new(Clients {
        per_client: limits.per_client.max(1),
        max: limits.per_client_waiting,
        map: Mutex::new(HashMap::new()),
    });
    while !stop.load(Ordering::Relaxed) {
        let (tcp, peer) = match tokio::time::timeout(Duration::from_millis(100), listener.accept()).await {
            Err(_) => continue,
            Ok(Ok(accepted)) => accepted,
            Ok(Err(e)) => {
                // Out of file descriptors or similar: say so (rate-limited), back off.
                framebus_common::logging::repeated(
                    tracing::Level::WARN,
                    "http.accept",
                    format_args!("{label}: cannot accept a connection: {e}"),
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Some((member, slots)) = clients.join(peer.ip()) else {
            tracing::debug!(%peer, "{label}: too many connections from this address: closed");
            continue;
        };
        let (global, handler, access, tls) = (Arc::clone(&global), Arc::clone(&handler), access.clone(), tls.clone());
        tokio::spawn(async move {
            let _member = member;
            // First the client's own slot (its other connections delay only it), then a global
            // place.
            let Ok(client) = slots.acquire_owned().await else { return };
            let Ok(global) = global.acquire_owned().await else { return };
            let places = Arc::new(Mutex::new(Some(Places { _client: client, _global: global })));
            let conn = Conn { peer, places };
            let _ = tcp.set_nodelay(true);
            match tls {
                None => serve_connection(tcp, conn, limits, access, handler).await,
                Some(Tls(acceptor)) => match tokio::time::timeout(limits.header_timeout, acceptor.accept(tcp)).await {
                    Ok(Ok(stream)) => serve_connection(stream, conn, limits, access, handler).await,
                    Ok(Err(e)) => tracing::debug!(%peer, "TLS handshake failed: {e}"),
                    Err(_) => tracing::debug!(%peer, "TLS handshake not done in time: closed"),
                },
            }
        });
    }
}

async fn serve_connection<S, H, F, B>(stream: S, conn: Conn, limits: Limits, access: Access, handler: Arc<H>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + 'static,
    H: Fn(Request<Incoming>, Conn) -> F + Send + Sync + 'static,
    F: Future<Output = Response<B>> + Send + 'static,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut io = TimeoutStream::new(stream);
    io.set_write_timeout(Some(limits.write_timeout));
    let io = TokioIo::new(Box::pin(io));
    let service = {
        let conn = conn.clone();
        service_fn(move |request: Request<Incoming>| {
            let answer = if access.allows(&request) {
                Ok(handler(request, conn.clone()))
            } else {
                tracing::debug!(peer = %conn.peer, path = request.uri().path(), "HTTP request without valid credentials: 401");
                Err(unauthorized())
            };
            async move {
                Ok::<_, Infallible>(match answer {
                    Ok(answer) => answer.await.map(Either::Left),
                    Err(refused) => refused.map(Either::Right),
                })
            }
        })
    };
    let served = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .title_case_headers(limits.title_case_headers)
        .max_buf_size(limits.max_head_bytes.max(8192))
        .serve_connection(io, service)
        .await;
    if let Err(e) = served {
        tracing::debug!(peer = %conn.peer, "HTTP connection: {e}");
    }
}

/// `401` with the basic challenge of [`Access`].
fn unauthorized() -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(b"authentication required\n")));
    *response.status_mut() = StatusCode::UNAUTHORIZED;
    let headers = response.headers_mut();
    headers.insert(WWW_AUTHENTICATE, Access::challenge());
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client gets a quarter of the connections, at least 8 (or all when fewer).
    #[test]
    fn limits_share_connections_between_clients() {
        assert_eq!(Limits::new(256).per_client, 64);
        assert_eq!(Limits::new(32).per_client, 8);
        assert_eq!(Limits::new(4).per_client, 4);
        assert_eq!(Limits::new(0).max_connections, 1);
    }

    /// A client's connections beyond its slots and waiting places are refused; its entry goes
    /// with its last connection.
    #[test]
    fn clients_are_counted_and_forgotten() {
        let clients = Arc::new(Clients { per_client: 2, max: 1, map: Mutex::new(HashMap::new()) });
        let ip: IpAddr = [127, 0, 0, 1].into();
        let members: Vec<_> = (0..3).map(|_| clients.join(ip).expect("room")).collect();
        assert!(clients.join(ip).is_none(), "2 served + 1 waiting is the most");
        assert!(clients.join([127, 0, 0, 2].into()).is_some(), "another address has its own places");
        drop(members);
        assert!(clients.map.lock().expect("map").is_empty());
    }
}
