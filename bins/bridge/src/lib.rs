//! The bridge: a deployment's cameras, results and events across hosts over Zenoh
//! (docs/multi-host.md). One process per deployment exports the cameras with
//! `[camera.export]` ([`export`]) and serves its own control service
//! (`framebus/<deployment>/_deployment/bridge/control`); one process per `[[remote-camera]]`
//! (`bridge --camera <name>`, run by `ctl up` in place of capture) publishes that camera into
//! local shared memory ([`import`]). All key expressions come from
//! `framebus_common::names::zenoh_key`.

pub mod cli;
pub mod decoder;
pub mod export;
pub mod flow;
pub mod import;
pub mod remote;
pub mod results;
pub mod session;
pub mod wire;

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use framebus_common::config::SourceConfig;
use framebus_common::control::server::{Answer, ControlServer, Metrics};
use framebus_common::control::{Command, ProcessState};
use framebus_common::figures::Figures;
use framebus_common::ipc::{create_named_node, DeploymentGuard};
use framebus_common::names::{zenoh_key, Role, ZenohKind, BRIDGE_ROLE, DEPLOYMENT_SCOPE};
use framebus_common::{logging, shm_budget, signals, Deployment};
use serde_json::json;
use zenoh::Wait;

/// Role name of the bridge in logs and node names.
pub const ROLE: &str = BRIDGE_ROLE;

/// How often each exported camera's status is published.
const STATUS_PERIOD: Duration = Duration::from_secs(1);

/// The body of `main`: logging, config, then export or import; exit 0, 2 on an error, or
/// [`shm_budget::EXIT_SHORT_OF_MEMORY`].
pub fn main(args: &cli::Args) -> ExitCode {
    signals::install_sigbus();
    logging::init("info", args.log.log_format);
    let result = Deployment::load(&args.config).map_err(anyhow::Error::from).and_then(|deployment| {
        logging::set_context(deployment.name(), args.camera.as_deref(), ROLE);
        match &args.camera {
            Some(name) => {
                let camera = deployment.camera(Some(name))?.clone();
                let SourceConfig::Remote(remote) = &camera.source else {
                    anyhow::bail!(
                        "{}: camera `{name}` is a local camera: `bridge --camera` imports a [[remote-camera]]",
                        deployment.source_file.display()
                    );
                };
                import::run(&deployment, &camera, remote)
            }
            None => run(&deployment),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            logging::exit_error(ROLE, format_args!("{e:#}"));
            if shm_budget::find_shortage(e.as_ref()).is_some() {
                return ExitCode::from(shm_budget::EXIT_SHORT_OF_MEMORY);
            }
            ExitCode::from(2)
        }
    }
}

/// Runs the export side of `deployment` until SIGINT/SIGTERM or `ctl stop`.
pub fn run(deployment: &Deployment) -> anyhow::Result<()> {
    signals::install();
    let zenoh = deployment
        .zenoh
        .clone()
        .ok_or_else(|| anyhow::anyhow!("{}: no [zenoh] table: nothing to bridge", deployment.source_file.display()))?;
    let _release = DeploymentGuard::new(deployment.name());
    let node = create_named_node(deployment.name(), &framebus_common::names::node_name(ROLE, DEPLOYMENT_SCOPE))?;
    let control = ControlServer::create(&node, deployment, DEPLOYMENT_SCOPE, &Role::new(ROLE)?)?;
    let session = session::open(deployment, session::Listening::Listen)?;
    let stop = Arc::new(AtomicBool::new(false));
    let (flows, threads) = export::start(deployment, &session, &stop)?;
    let status_publishers = flows
        .iter()
        .map(|flow| {
            let key = zenoh_key(&zenoh.site, deployment.name(), &flow.camera, ZenohKind::Status);
            session.declare_publisher(key.clone()).wait().map_err(|e| anyhow::anyhow!("declaring `{key}`: {e}"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    tracing::info!(
        site = zenoh.site,
        listen = ?zenoh.listen,
        connect = ?zenoh.connect,
        cameras = flows.len(),
        "bridge ready"
    );
    let started = Instant::now();
    let mut next_status = Instant::now();
    let mut quit = false;
    let mut link = flow::Link::default();
    while !quit && !signals::termination_requested() {
        std::thread::sleep(Duration::from_millis(20));
        let peers = session::peers(&session);
        let was_degraded = link.degraded();
        if let Some(since) = link.set(peers > 0) {
            let down = since.elapsed().unwrap_or_default();
            tracing::info!(peers, down_ms = down.as_millis() as u64, "link up again: a peer is connected");
        } else if link.degraded() && !was_degraded {
            tracing::warn!("link degraded: every peer is gone");
        }
        control.poll(|command| answer(command, &flows, peers, &link, &mut quit));
        if Instant::now() >= next_status {
            next_status += STATUS_PERIOD;
            publish_statuses(&flows, &status_publishers, started, peers);
        }
    }
    tracing::info!("stopping");
    stop.store(true, Ordering::Relaxed);
    // Every thread sees the flag within 100 ms (frame readers on a timer).
    for thread in threads {
        if thread.join().is_err() {
            tracing::error!("an export thread panicked");
        }
    }
    drop(session);
    Ok(())
}

/// The deployment bridge's answer to one control `command`; `Stop` sets `quit`.
fn answer(
    command: Command,
    flows: &[Arc<export::CameraFlows>],
    peers: usize,
    link: &flow::Link,
    quit: &mut bool,
) -> Answer {
    match command {
        Command::Status => Answer::Status(Box::new(Metrics {
            state: match link.state() {
                "up" => ProcessState::Running,
                "degraded" => ProcessState::Degraded,
                _ => ProcessState::Waiting,
            },
            frames: flows.iter().map(|f| f.frames.read().0).sum(),
            message: summary(flows, peers, link),
            ..Metrics::default()
        })),
        Command::Figures(camera) => match flows.iter().find(|f| f.camera == camera) {
            Some(f) => {
                match Figures::Bridge(link.camera(&f.camera, "export", String::new(), peers, f.figures())).to_message()
                {
                    Ok(json) => Answer::Done(json),
                    Err(e) => Answer::Refused(e.to_string()),
                }
            }
            None => Answer::Refused(format!(
                "`figures {camera}`: the bridge exports no camera `{camera}` (it exports: {})",
                flows.iter().map(|f| f.camera.as_str()).collect::<Vec<_>>().join(", ")
            )),
        },
        Command::Stop => {
            *quit = true;
            Answer::Done("stopping".into())
        }
        _ => Answer::Ignored,
    }
}

/// Publishes each exported camera's status on its Zenoh key (its flows rolled into the next
/// second first).
fn publish_statuses(
    flows: &[Arc<export::CameraFlows>],
    publishers: &[zenoh::pubsub::Publisher<'_>],
    started: Instant,
    peers: usize,
) {
    for (flow, publisher) in flows.iter().zip(publishers) {
        flow.roll();
        let status = json!({
            "camera": flow.camera,
            "uptime_secs": started.elapsed().as_secs_f64(),
            "peers": peers,
            "time": wall_time(SystemTime::now()),
            "frames": flow_json(&flow.frames),
            "encoded": flow_json(&flow.encoded),
            "results": flow_json(&flow.results),
            "events": flow_json(&flow.events),
            "results_back": flow_json(&flow.results_back),
            "control": flow_json(&flow.control),
        });
        if let Err(e) = publisher.put(status.to_string()).wait() {
            tracing::debug!(camera = flow.camera, "publishing status: {e}");
        }
    }
}

fn flow_json(flow: &flow::Flow) -> serde_json::Value {
    let (messages, bytes, drops) = flow.read();
    json!({ "messages": messages, "bytes": bytes, "drops": drops })
}

/// One line for `ctl status`: link and peers, then per camera the messages sent and dropped.
fn summary(flows: &[Arc<export::CameraFlows>], peers: usize, link: &flow::Link) -> String {
    let mut text = match link.down_since() {
        Some(since) => format!("link degraded since {} (no peer), peers {peers}", wall_time(since)),
        None => format!("link {}, peers {peers}", link.state()),
    };
    for flow in flows {
        let (frames, _, frame_drops) = flow.frames.read();
        let (results, _, _) = flow.results.read();
        let (encoded, _, _) = flow.encoded.read();
        let (back, _, _) = flow.results_back.read();
        text.push_str(&format!(
            "; {}: frames {frames} (dropped {frame_drops}), encoded {encoded}, results {results}, back {back}",
            flow.camera
        ));
    }
    text
}

/// A wall-clock time as RFC 3339 UTC.
pub fn wall_time(time: SystemTime) -> String {
    jiff::Timestamp::try_from(time).map(|t| t.to_string()).unwrap_or_default()
}
