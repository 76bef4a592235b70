//! The processes' own figures for `ctl status` and the metrics: after the status requests,
//! the streamers and recorders that answered are asked for theirs (`figures`), and the media
//! server for each camera with a streamer. Nothing is computed here: each figure is the
//! process's (see `framebus_common::figures`); a process that does not answer in time just
//! has none in this report.

use std::time::{Duration, Instant};

use framebus_common::control::{Command, ControlClient, Target};
use framebus_common::figures::{Figures, MediaServerCamera};
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
}

/// Whether a process of `role` has figures to ask for.
fn has_figures(target: &Target) -> bool {
    target.role == ProcessRole::Streamer
        || target.role == ProcessRole::Recorder
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
        .filter(|&i| up.get(i).copied().unwrap_or(false) && has_figures(&targets[i]))
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
    // The media server: one request per camera with a streamer (a reply holds one camera).
    let served: Vec<&str> =
        deployment.camera.iter().filter(|c| c.streamer.is_some()).map(|c| c.name.as_str()).collect();
    for i in 0..targets.len() {
        let process = DeploymentProcess::from_name(targets[i].role.as_str());
        if process != Some(DeploymentProcess::MediaServer) || !up.get(i).copied().unwrap_or(false) {
            continue;
        }
        let mut cameras = Vec::new();
        for camera in &served {
            let left = until.saturating_duration_since(Instant::now()).max(Duration::from_millis(50));
            match client.send(&targets[i], &Command::Figures((*camera).to_string()), left) {
                Ok(reply) if reply.is_ok() => match Figures::from_message(&reply.message_text()) {
                    Ok(Figures::MediaServer(figures)) => cameras.push(figures),
                    Ok(other) => tracing::warn!("the media server answered `figures {camera}` with {other:?}"),
                    Err(e) => tracing::warn!("the media server's figures of camera `{camera}`: {e}"),
                },
                Ok(reply) => tracing::debug!("the media server: no figures of `{camera}`: {}", reply.message_text()),
                Err(e) => {
                    tracing::debug!("the media server: no figures of `{camera}`: {e}");
                    break;
                }
            }
        }
        out[i] = Some(RowFigures::MediaServer(cameras));
    }
    out
}

impl RowFigures {
    /// The key and value `ctl status --json` adds to the process's object: `streamer`,
    /// `events` (recorder) or `cameras` (media server).
    pub fn json(&self) -> (&'static str, Value) {
        let value = |v: Result<Value, serde_json::Error>| v.unwrap_or(Value::Null);
        match self {
            RowFigures::Process(Figures::Streamer(f)) => ("streamer", value(serde_json::to_value(f))),
            RowFigures::Process(Figures::Recorder(f)) => ("events", value(serde_json::to_value(f))),
            RowFigures::Process(Figures::MediaServer(f)) => ("cameras", json!([value(serde_json::to_value(f))])),
            RowFigures::MediaServer(cameras) => ("cameras", value(serde_json::to_value(cameras))),
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
        }
    }
}
