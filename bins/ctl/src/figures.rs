//! The processes' own figures for `ctl status` and the metrics: after the status requests,
//! the streamers, recorders and importing bridges (the capture role of a remote camera) that
//! answered are asked for theirs (`figures`), the media server for each camera with a
//! streamer, and the deployment's bridge for each camera it exports. Nothing is computed here: each figure is the
//! process's (see `framebus_common::figures`); a process that does not answer in time just
//! has none in this report.

use std::time::{Duration, Instant};

use framebus_common::config::SourceConfig;
use framebus_common::control::{Command, ControlClient, Target};
use framebus_common::figures::{BridgeCamera, Figures, MediaServerCamera};
use framebus_common::names::{DeploymentProcess, ProcessRole};
use framebus_common::Deployment;
use serde_json::{json, Value};

/// The figures of one status row.
#[derive(Debug, Clone)]
pub enum RowFigures {
    /// A streamer's or a recorder's.
    Process(Figures),
    /// The media server's, one per camera it serves (config order).
    MediaServer(Vec<MediaServerCamera>),
    /// The deployment's bridge, one per camera it exports (config order).
    Bridge(Vec<BridgeCamera>),
}

/// Whether the process `target` has figures to ask for.
fn has_figures(deployment: &Deployment, target: &Target) -> bool {
    let imported =
        || deployment.camera.iter().any(|c| c.name == target.camera && matches!(c.source, SourceConfig::Remote(_)));
    target.role == ProcessRole::Streamer
        || target.role == ProcessRole::Recorder
        || (target.role == ProcessRole::Capture && imported())
        || DeploymentProcess::from_name(target.role.as_str()).is_some()
}

/// The figures of every target that answered its status (`up`), in order; `None` for the
/// others and for processes without figures. Waits at most `timeout` in all.
pub fn gather(
    deployment: &Deployment,
    client: &ControlClient<'_>,
    targets: &[Target],
    up: &[bool],
    timeout: Duration,
) -> Vec<Option<RowFigures>> {
    let until = Instant::now() + timeout;
    let mut out: Vec<Option<RowFigures>> = vec![None; targets.len()];
    let asked: Vec<usize> = (0..targets.len())
        .filter(|&i| up.get(i).copied().unwrap_or(false) && has_figures(deployment, &targets[i]))
        .filter(|&i| DeploymentProcess::from_name(targets[i].role.as_str()).is_none())
        .collect();
    let batch: Vec<Target> = asked.iter().map(|&i| targets[i].clone()).collect();
    for (&i, result) in asked.iter().zip(client.send_all(&batch, &Command::Figures(String::new()), timeout)) {
        match result {
            Ok(reply) if reply.is_ok() => match Figures::from_message(&reply.message_text()) {
                Ok(figures) => out[i] = Some(RowFigures::Process(figures)),
                Err(e) => tracing::warn!("{} of camera `{}`: {e}", targets[i].role, targets[i].camera),
            },
            Ok(reply) => tracing::debug!("{}: no figures: {}", targets[i].role, reply.message_text()),
            Err(e) => tracing::debug!("{}: no figures: {e}", targets[i].role),
        }
    }
    // The per-deployment processes: one request per camera (a reply holds one camera); the
    // media server serves each camera with a streamer, the bridge exports each camera with
    // `[camera.export]`.
    for i in 0..targets.len() {
        let Some(process) = DeploymentProcess::from_name(targets[i].role.as_str()) else { continue };
        if !up.get(i).copied().unwrap_or(false) {
            continue;
        }
        out[i] = Some(deployment_figures(deployment, client, &targets[i], process, until));
    }
    out
}

/// The figures of one per-deployment process, asked once per camera it serves (the media
/// server: each camera with a streamer; the bridge: each camera with `[camera.export]`), until
/// `until`.
fn deployment_figures(
    deployment: &Deployment,
    client: &ControlClient<'_>,
    target: &Target,
    process: DeploymentProcess,
    until: Instant,
) -> RowFigures {
    let cameras: Vec<&str> = deployment
        .camera
        .iter()
        .filter(|c| match process {
            DeploymentProcess::MediaServer => c.streamer.is_some(),
            DeploymentProcess::Bridge => c.export.is_some(),
        })
        .map(|c| c.name.as_str())
        .collect();
    let mut answers = Vec::new();
    for camera in cameras {
        let left = until.saturating_duration_since(Instant::now()).max(Duration::from_millis(50));
        match client.send(target, &Command::Figures(camera.to_string()), left) {
            Ok(reply) if reply.is_ok() => match Figures::from_message(&reply.message_text()) {
                Ok(figures) => answers.push(figures),
                Err(e) => tracing::warn!("the {process}'s figures of camera `{camera}`: {e}"),
            },
            Ok(reply) => tracing::debug!("the {process}: no figures of `{camera}`: {}", reply.message_text()),
            Err(e) => {
                tracing::debug!("the {process}: no figures of `{camera}`: {e}");
                break;
            }
        }
    }
    match process {
        DeploymentProcess::MediaServer => RowFigures::MediaServer(
            answers
                .into_iter()
                .filter_map(|f| match f {
                    Figures::MediaServer(c) => Some(c),
                    other => {
                        tracing::warn!("the media server answered `figures` with {other:?}");
                        None
                    }
                })
                .collect(),
        ),
        DeploymentProcess::Bridge => RowFigures::Bridge(
            answers
                .into_iter()
                .filter_map(|f| match f {
                    Figures::Bridge(c) => Some(c),
                    other => {
                        tracing::warn!("the bridge answered `figures` with {other:?}");
                        None
                    }
                })
                .collect(),
        ),
    }
}

impl RowFigures {
    /// The key and value `ctl status --json` adds to the process's object: `streamer`,
    /// `events` (recorder), `cameras` (media server) or `bridge` (the deployment's bridge and
    /// an importing bridge: a list of cameras).
    pub fn json(&self) -> (&'static str, Value) {
        let value = |v: Result<Value, serde_json::Error>| v.unwrap_or(Value::Null);
        match self {
            RowFigures::Process(Figures::Streamer(f)) => ("streamer", value(serde_json::to_value(f))),
            RowFigures::Process(Figures::Recorder(f)) => ("events", value(serde_json::to_value(f))),
            RowFigures::Process(Figures::MediaServer(f)) => ("cameras", json!([value(serde_json::to_value(f))])),
            RowFigures::MediaServer(cameras) => ("cameras", value(serde_json::to_value(cameras))),
            RowFigures::Process(Figures::Bridge(f)) => ("bridge", json!([value(serde_json::to_value(f))])),
            RowFigures::Bridge(cameras) => ("bridge", value(serde_json::to_value(cameras))),
        }
    }

    /// The lines `ctl status` prints under the process's row (without indentation).
    pub fn lines(&self) -> Vec<String> {
        let mib = |bytes: u64| bytes as f64 / (1024.0 * 1024.0);
        let camera_line = |c: &MediaServerCamera| {
            let viewers: Vec<String> = c
                .viewers
                .by_protocol()
                .iter()
                .filter(|(protocol, n)| *n > 0 || *protocol != "rtsps")
                .map(|(protocol, n)| format!("{protocol} {n}"))
                .collect();
            format!(
                "{}: {}; viewers {}; {:.1} MiB out; {} access units in ({} lost, {} skipped by slow viewers)",
                c.camera,
                if c.publishing { "publishing" } else { "not publishing" },
                viewers.join(", "),
                mib(c.bytes_out),
                c.access_units_in,
                c.access_units_lost,
                c.access_units_skipped
            )
        };
        match self {
            RowFigures::Process(Figures::Streamer(f)) => vec![format!(
                "streamer: {} {}, {} kbit/s configured, {:.0} measured, {:.1} access units/s; {} key frames, {} access units published ({} dropped), {} frames skipped, {} encoder restarts",
                f.encoder,
                f.state,
                f.bitrate_kbps,
                f.measured_kbps,
                f.fps,
                f.key_frames,
                f.access_units,
                f.access_units_dropped,
                f.skipped,
                f.restarts
            )],
            RowFigures::Process(Figures::Recorder(f)) => {
                let last = match &f.last_event {
                    Some(e) => format!("last event {} `{}` ({})", e.utc, e.label, e.source),
                    None => "no event yet".to_string(),
                };
                vec![format!(
                    "events: {} clips, {} triggers ({} missed); pre-roll {} frames ({:.1} MiB); {last}; disk {} ({:.0} MiB free, floor {:.0} MiB)",
                    f.clips,
                    f.triggers,
                    f.missed_triggers,
                    f.preroll_frames,
                    mib(f.preroll_bytes),
                    f.disk_guard.state,
                    mib(f.disk_guard.free_bytes),
                    mib(f.disk_guard.min_free_bytes)
                )]
            }
            RowFigures::Process(Figures::MediaServer(c)) => vec![camera_line(c)],
            RowFigures::MediaServer(cameras) => cameras.iter().map(camera_line).collect(),
            RowFigures::Process(Figures::Bridge(c)) => vec![bridge_line(c)],
            RowFigures::Bridge(cameras) => cameras.iter().map(bridge_line).collect(),
        }
    }
}

/// One bridged camera in `ctl status`: where it comes from, the link, then each flow.
fn bridge_line(c: &BridgeCamera) -> String {
    let link = match &c.degraded_since {
        Some(since) => format!("link degraded since {since}"),
        None => format!("link {}", c.link),
    };
    let flows: Vec<String> = c
        .flows
        .iter()
        .map(|f| {
            let latency = f.latency_p50_us.map(|us| format!(", p50 {:.1} ms", us as f64 / 1000.0)).unwrap_or_default();
            format!(
                "{} {} {} ({:.1} KiB/s, {} lost{latency})",
                f.flow,
                f.dir,
                f.messages,
                f.bytes_per_sec as f64 / 1024.0,
                f.drops
            )
        })
        .collect();
    let what = if c.direction == "import" { format!("imported from {}", c.origin) } else { "exported".to_string() };
    format!("bridge: {} {what}: {link} ({} downs), peers {}; {}", c.camera, c.link_downs, c.peers, flows.join(", "))
}
