//! The metrics endpoint: every process of a deployment in the Prometheus text format,
//! gathered from their status replies at each scrape (`ctl metrics`, or a thread of `ctl up`
//! when `[deployment] metrics` is set). Metric names are stable and documented in
//! docs/metrics.md; all start with `framebus_`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use framebus_common::control::{Command, ControlClient, ProcessStatus, Target};
use framebus_common::ipc::create_named_node;
use framebus_common::Deployment;

use crate::figures::RowFigures;
use prometheus_client::registry::Registry;

mod families;

/// Restarts per (camera, role) as the supervisor counts them.
pub type RestartBook = Arc<Mutex<HashMap<(String, String), u64>>>;

/// How long one scrape waits for the processes' replies.
const SCRAPE_TIMEOUT: Duration = Duration::from_millis(500);

/// One scrape: each process's status (`None`: it did not answer).
#[derive(Debug, Default)]
pub struct Snapshot {
    /// (target, its status) in `ctl status` order.
    pub rows: Vec<(Target, Option<ProcessStatus>)>,
    /// The figures of each row (streamer, recorder events, media server), as `ctl status`
    /// shows them.
    pub figures: Vec<Option<RowFigures>>,
    /// Supervisor restarts per (camera, role), when run under `ctl up`.
    pub restarts: HashMap<(String, String), u64>,
}

impl Snapshot {
    /// Asks every process of the deployment for its status (configured roles plus user
    /// readers found running).
    pub fn gather(deployment: &Deployment, client: &ControlClient<'_>, restarts: Option<&RestartBook>) -> Snapshot {
        let targets = crate::status_targets(deployment, None).unwrap_or_default();
        let results = client.send_all(&targets, &Command::Status, SCRAPE_TIMEOUT);
        let rows: Vec<(Target, Option<ProcessStatus>)> = targets
            .into_iter()
            .zip(results)
            .map(|(target, result)| {
                let status = result.ok().filter(|r| r.is_ok()).and_then(|r| r.status());
                (target, status)
            })
            .collect();
        let targets: Vec<Target> = rows.iter().map(|(t, _)| t.clone()).collect();
        let up: Vec<bool> = rows.iter().map(|(_, s)| s.is_some()).collect();
        let figures = crate::figures::gather(deployment, client, &targets, &up, SCRAPE_TIMEOUT);
        let restarts = restarts.and_then(|b| b.lock().ok().map(|m| m.clone())).unwrap_or_default();
        Snapshot { rows, figures, restarts }
    }

    /// The snapshot in the Prometheus text format (version 0.0.4).
    pub fn encode(self) -> String {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(self));
        let mut text = String::new();
        if let Err(e) = prometheus_client::encoding::prometheus_text::encode(&mut text, &registry) {
            tracing::warn!("encoding metrics: {e}");
        }
        text
    }
}

/// Connections served at once; more wait in the kernel's accept queue.
const MAX_CONNECTIONS: usize = 32;

/// A request head must arrive whole within this long (a slow client cannot hold a slot).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// A scrape request handed from the HTTP thread to the thread that owns the iceoryx2 node.
type ScrapeRequest = tokio::sync::oneshot::Sender<String>;

/// Serves `GET /metrics` on `listen` until `stop` is set; returns the bound address (port 0
/// picks a free one) once it listens. HTTP runs on the shared setup of [`framebus_httpserve`]
/// (one thread; per-client and global connection limits, header and write deadlines, like the
/// preview and the media server); the scrapes run on a second thread, which owns a node of its
/// own.
pub fn serve(
    deployment: Deployment,
    listen: SocketAddr,
    restarts: Option<RestartBook>,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<(SocketAddr, std::thread::JoinHandle<()>)> {
    let file = deployment.source_file.display().to_string();
    // `ctl metrics --listen` follows the config's rule: beyond loopback only with `[auth]`.
    deployment.check_exposed("deployment.metrics (--listen)", listen)?;
    let access = framebus_httpserve::Access::of_deployment(&deployment)?;
    let tls = framebus_httpserve::Tls::of_deployment(&deployment)?;
    let listener = std::net::TcpListener::bind(listen)
        .with_context(|| format!("metrics: cannot listen on {listen} (`metrics` in [deployment] of {file})"))?;
    let bound = listener.local_addr().with_context(|| format!("metrics: reading the address bound for {listen}"))?;
    let (scrapes_tx, scrapes) = std::sync::mpsc::channel::<ScrapeRequest>();
    let scraper_stop = Arc::clone(&stop);
    let scraper = std::thread::Builder::new()
        .name("metrics-scrape".into())
        .spawn(move || scrape_loop(&deployment, restarts.as_ref(), &scrapes, &scraper_stop))
        .context("starting the metrics scrape thread")?;
    let limits = framebus_httpserve::Limits::new(MAX_CONNECTIONS).header_timeout(REQUEST_TIMEOUT);
    let http = framebus_httpserve::spawn("metrics-http", listener, limits, access, tls, stop, move |request, _conn| {
        let scrapes = scrapes_tx.clone();
        async move { answer(&request, &scrapes).await }
    })
    .context("starting the metrics HTTP thread")?;
    let handle = std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || {
            let _ = http.join();
            let _ = scraper.join();
        })
        .context("starting the metrics thread")?;
    Ok((bound, handle))
}

/// How often `ctl up` tries again to listen when the metrics address was taken.
pub const RETRY_EVERY: Duration = Duration::from_secs(2);

/// Like [`serve`] for `ctl up`, where metrics are an optional feature: when the address cannot
/// be taken (another process holds it) the error is logged, naming the address and the holder's
/// pid when visible, the deployment runs on without metrics, and listening is tried again every
/// [`RETRY_EVERY`] until it works or `stop` is set. Returns the thread to join after `stop`.
pub fn serve_retrying(
    deployment: Deployment,
    listen: SocketAddr,
    restarts: Option<RestartBook>,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    let deployment_scheme = deployment.http_scheme();
    let first = serve(deployment.clone(), listen, restarts.clone(), Arc::clone(&stop));
    let first = match first {
        Ok((bound, handle)) => {
            tracing::info!("metrics at {}://{bound}/metrics", deployment_scheme);
            return handle;
        }
        Err(e) => e,
    };
    tracing::error!(
        "metrics are off: {first:#}; held by {}; the cameras run without them (`ctl status` shows `degraded`), retrying every {RETRY_EVERY:?}",
        crate::ports::holder(listen).describe()
    );
    let retry = move || {
        let mut attempts = 1u64;
        while !stop.load(Ordering::Relaxed) {
            let until = std::time::Instant::now() + RETRY_EVERY;
            while std::time::Instant::now() < until {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            attempts += 1;
            match serve(deployment.clone(), listen, restarts.clone(), Arc::clone(&stop)) {
                Ok((bound, handle)) => {
                    tracing::info!(
                        "metrics at {deployment_scheme}://{bound}/metrics (the address was free after {attempts} attempts)"
                    );
                    let _ = handle.join();
                    return;
                }
                Err(e) => framebus_common::logging::repeated(
                    tracing::Level::WARN,
                    "metrics.retry",
                    format_args!("metrics still off: {e:#}; held by {}", crate::ports::holder(listen).describe()),
                ),
            }
        }
    };
    match std::thread::Builder::new().name("metrics-retry".into()).spawn(retry) {
        Ok(handle) => handle,
        Err(e) => {
            tracing::error!("metrics: cannot start the retry thread: {e}; metrics stay off");
            std::thread::spawn(|| {})
        }
    }
}

impl EndpointStatus {
    /// The `metrics` object of `ctl status --json`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({ "address": self.address, "state": self.state, "pid": self.pid, "message": self.message })
    }
}

/// What `ctl status` says about the metrics endpoint of a deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointStatus {
    /// The configured address.
    pub address: String,
    /// `running` (ctl holds it), `degraded` (another process holds it) or `not-running`.
    pub state: &'static str,
    /// The holder's pid, when visible.
    pub pid: Option<u32>,
    /// One line for the operator.
    pub message: String,
}

/// The metrics endpoint's state as seen from outside: who listens on its address. None when
/// the deployment has no fixed metrics address (none, or port 0).
pub fn endpoint_status(deployment: &Deployment) -> Option<EndpointStatus> {
    let listen = deployment.deployment.metrics_addr().filter(|a| a.port() != 0)?;
    let address = listen.to_string();
    let status = match crate::ports::holder(listen) {
        crate::ports::Holder::Nobody => EndpointStatus {
            address,
            state: "not-running",
            pid: None,
            message: format!("nothing listens on {listen} (ctl up is not running)"),
        },
        crate::ports::Holder::Process { pid, name } if name == "ctl" => EndpointStatus {
            address,
            state: "running",
            pid: Some(pid),
            message: format!("serving http://{listen}/metrics (ctl, pid {pid})"),
        },
        holder => EndpointStatus {
            address,
            state: "degraded",
            pid: match holder {
                crate::ports::Holder::Process { pid, .. } => Some(pid),
                _ => None,
            },
            message: format!(
                "{listen} is held by {}, not by ctl up: metrics are off until it is free (ctl up keeps trying)",
                holder.describe()
            ),
        },
    };
    Some(status)
}

/// Answers scrape requests with the deployment's metrics until `stop`.
fn scrape_loop(
    deployment: &Deployment,
    restarts: Option<&RestartBook>,
    requests: &std::sync::mpsc::Receiver<ScrapeRequest>,
    stop: &AtomicBool,
) {
    let node = match create_named_node(deployment.name(), &format!("ctl-metrics-{}", std::process::id())) {
        Ok(node) => node,
        Err(e) => {
            tracing::error!("metrics: {e}");
            return;
        }
    };
    let client = ControlClient::new(&node, deployment.name());
    while !stop.load(Ordering::Relaxed) {
        match requests.recv_timeout(Duration::from_millis(100)) {
            Ok(reply) => {
                let _ = reply.send(Snapshot::gather(deployment, &client, restarts).encode());
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return,
        }
    }
}

async fn answer(
    request: &hyper::Request<hyper::body::Incoming>,
    scrapes: &std::sync::mpsc::Sender<ScrapeRequest>,
) -> hyper::Response<String> {
    let reply = |status: hyper::StatusCode, content_type: &'static str, body: String| {
        let mut response = hyper::Response::new(body);
        *response.status_mut() = status;
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static(content_type));
        response
    };
    const TEXT: &str = "text/plain; charset=utf-8";
    if request.method() != hyper::Method::GET {
        return reply(hyper::StatusCode::METHOD_NOT_ALLOWED, TEXT, "only GET\n".into());
    }
    match request.uri().path() {
        "/metrics" => {
            let (tx, rx) = tokio::sync::oneshot::channel();
            if scrapes.send(tx).is_err() {
                return reply(hyper::StatusCode::SERVICE_UNAVAILABLE, TEXT, "metrics are shutting down\n".into());
            }
            match tokio::time::timeout(Duration::from_secs(5), rx).await {
                Ok(Ok(text)) => reply(hyper::StatusCode::OK, "text/plain; version=0.0.4; charset=utf-8", text),
                _ => reply(hyper::StatusCode::SERVICE_UNAVAILABLE, TEXT, "the scrape did not finish\n".into()),
            }
        }
        "/" => reply(hyper::StatusCode::OK, TEXT, "framebus metrics: /metrics\n".into()),
        _ => reply(hyper::StatusCode::NOT_FOUND, TEXT, "not found: the metrics are at /metrics\n".into()),
    }
}
