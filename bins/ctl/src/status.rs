//! `ctl status`: every process's status, the figures of the streamer, recorder and media
//! server, what the supervisor knows, and each camera's command state, as a table or JSON.

use std::fmt::Write as _;

use framebus_common::control::{Command, ProcessStatus, Target};
use framebus_common::names::{ProcessRole, DEPLOYMENT_SCOPE};
use framebus_common::state::{CameraState, StateStore};
use framebus_common::Deployment;
use serde_json::{json, Value};

use crate::cli::Cli;
use crate::{control_service, figures, metrics, status_targets, supervised, Delivery, Outcome, Session};

pub(crate) fn status(
    deployment: &Deployment,
    session: &Session,
    cli: &Cli,
    camera: &Option<String>,
) -> anyhow::Result<Outcome> {
    let targets = status_targets(deployment, camera.as_deref())?;
    let results = session.client.send_all(&targets, &Command::Status, cli.timeout);
    let mut rows = Vec::new();
    for (target, result) in targets.iter().zip(results) {
        let service = control_service(deployment, target);
        let row = match result.map(|reply| (reply.status(), reply)) {
            Ok((Some(status), reply)) if reply.is_ok() => Row::Up(Box::new(status)),
            Ok((_, reply)) => Row::Down(format!("unreadable reply on `{service}`: {}", reply.message_text())),
            Err(e) if e.is_busy() => Row::Busy(e.to_string()),
            Err(e) => Row::Down(e.to_string()),
        };
        rows.push((target, service, row));
    }
    let outcome = Outcome::of(rows.iter().map(|(_, _, row)| match row {
        Row::Up(_) => Delivery::Ok,
        Row::Busy(_) => Delivery::Busy,
        Row::Down(_) => Delivery::Failed,
    }));
    // The streamer's, the recorder's and the media server's own figures.
    let up: Vec<bool> = rows.iter().map(|(_, _, row)| matches!(row, Row::Up(_))).collect();
    let figures = figures::gather(deployment, &session.client, &targets, &up, cli.timeout);
    // Under `ctl up`: what the supervisor knows of each process (why one is not running).
    let supervised = supervised::lookup(deployment, session, &targets, cli.timeout);
    let command_state = command_state(deployment, &targets);
    if cli.json {
        let processes: Vec<Value> = rows
            .iter()
            .zip(&supervised)
            .zip(&figures)
            .map(|(((target, service, row), supervised), figures)| {
                let mut value = match row {
                    Row::Up(status) => serde_json::to_value(status).unwrap_or(Value::Null),
                    Row::Down(error) => json!({ "camera": target.camera, "role": target.role.as_str(), "state": "not-running", "error": error }),
                    Row::Busy(error) => json!({ "camera": target.camera, "role": target.role.as_str(), "state": "busy", "error": error }),
                };
                value["service"] = json!(service);
                if let Some(info) = supervised {
                    value["supervisor"] = info.clone();
                }
                if let Some(figures) = figures {
                    let (key, figures) = figures.json();
                    value[key] = figures;
                }
                value
            })
            .collect();
        let state: Vec<Value> = command_state
            .iter()
            .map(|c| json!({ "camera": c.camera, "path": c.path, "preview": c.flags.preview, "saving": c.flags.saving, "error": c.error }))
            .collect();
        let mut report = json!({ "deployment": deployment.name(), "processes": processes, "command_state": state });
        if let Some(metrics) = metrics::endpoint_status(deployment) {
            report["metrics"] = metrics.to_json();
        }
        println!("{report}");
    } else {
        print!("{}", status_table(&rows, &supervised, &figures));
        if let Some(metrics) = metrics::endpoint_status(deployment) {
            println!("metrics: {}: {}", metrics.state, metrics.message);
        }
        for c in command_state.iter().filter(|c| c.error.is_some()) {
            println!(
                "{}: command state unusable, processes use the config's flags (preview {}, saving {}): {}",
                c.camera,
                on_off(c.flags.preview),
                on_off(c.flags.saving),
                c.error.as_deref().unwrap_or_default()
            );
        }
    }
    Ok(outcome)
}

enum Row {
    Up(Box<ProcessStatus>),
    /// Running, but it did not answer within the timeout.
    Busy(String),
    Down(String),
}

fn on_off(on: bool) -> &'static str {
    if on {
        "on"
    } else {
        "off"
    }
}

/// The command state of one camera as ctl reads it itself (the processes fall back to the
/// config's flags when the file is unusable, and can only log it).
struct CommandState {
    camera: String,
    path: std::path::PathBuf,
    flags: CameraState,
    error: Option<String>,
}

/// The command state of every camera among `targets`, in order.
fn command_state(deployment: &Deployment, targets: &[Target]) -> Vec<CommandState> {
    let store = StateStore::of(deployment);
    let mut cameras: Vec<&str> = Vec::new();
    for target in targets.iter().filter(|t| t.camera != DEPLOYMENT_SCOPE) {
        if !cameras.contains(&target.camera.as_str()) {
            cameras.push(&target.camera);
        }
    }
    cameras
        .into_iter()
        .map(|camera| {
            let initial = CameraState::initial(deployment.camera(Some(camera)).ok());
            let (flags, error) = match store.recorded(camera) {
                Ok(recorded) => (recorded.over(initial), None),
                Err(e) => (initial, Some(e.to_string())),
            };
            CommandState { camera: camera.to_string(), path: store.path(camera), flags, error }
        })
        .collect()
}

/// The table `ctl status` prints: a header, then one line per process (with its own figures
/// below it) or why it is not there.
fn status_table(
    rows: &[(&Target, String, Row)],
    supervised: &[Option<Value>],
    figures: &[Option<figures::RowFigures>],
) -> String {
    let mut out = String::new();
    write_header(&mut out);
    let figures = figures.iter().chain(std::iter::repeat(&None));
    for (((target, _, row), supervised), figures) in
        rows.iter().zip(supervised.iter().chain(std::iter::repeat(&None))).zip(figures)
    {
        match row {
            Row::Up(s) => write_up_row(&mut out, s, figures),
            Row::Down(error) => {
                // The supervisor's short reason (`exited 3 at 14:02:11, restart 2, next in 1s`)
                // says more than the missing service.
                let (what, why) = match supervised {
                    Some(info) if matches!(info["state"].as_str(), Some("running" | "stopping")) => {
                        ("not serving control", info["summary"].as_str().unwrap_or(error).to_string())
                    }
                    Some(info) => ("not running", info["summary"].as_str().unwrap_or(error).to_string()),
                    None => ("not running", error.clone()),
                };
                let _ = writeln!(out, "{:<10} {:<12} {:>7} {what}: {why}", target.camera, target.role.as_str(), "-");
            }
            Row::Busy(error) => {
                let _ = writeln!(out, "{:<10} {:<12} {:>7} busy: {error}", target.camera, target.role.as_str(), "-");
            }
        }
    }
    out
}

/// The table's column names.
fn write_header(out: &mut String) {
    let _ = writeln!(
        out,
        "{:<10} {:<12} {:>7} {:<9} {:>8} {:>9} {:>6} {:>7} {:>6} {:>6} {:<11} {:>13} {:<7} {:<6} FORMAT",
        "CAMERA",
        "ROLE",
        "PID",
        "STATE",
        "UPTIME",
        "FRAMES",
        "FPS",
        "SKIPPED",
        "OVERWR",
        "DROPS",
        "POLICY",
        "LAT p50/p99",
        "PREVIEW",
        "SAVING"
    );
}

/// The line of a process that answered, and its own figures (streamer, recorder, media
/// server) indented below it.
fn write_up_row(out: &mut String, s: &ProcessStatus, figures: &Option<figures::RowFigures>) {
    let latency = match (s.latency_p50_us, s.latency_p99_us) {
        (Some(p50), Some(p99)) => format!("{p50}/{p99}us"),
        _ => "-".into(),
    };
    let format = match s.format {
        Some(f) if s.role == ProcessRole::Capture.name() => {
            format!("{}x{} {} @{:.0}", f.width, f.height, f.fourcc, s.target_fps)
        }
        Some(f) => format!("{}x{} {}", f.width, f.height, f.fourcc),
        None => "-".into(),
    };
    let (overwritten, drops, policy) = match &s.reader {
        Some(r) => {
            let policy = match r.policy {
                "max-fps" => format!("max-fps={}", s.target_fps),
                other => format!("{other}/{}", r.queue_depth),
            };
            (r.overwritten.to_string(), r.driver_drops.to_string(), policy)
        }
        None => ("-".into(), "-".into(), "-".into()),
    };
    let note = if s.message.is_empty() { String::new() } else { format!("  {}", s.message) };
    let _ = writeln!(
        out,
        "{:<10} {:<12} {:>7} {:<9} {:>7.0}s {:>9} {:>6.1} {:>7} {:>6} {:>6} {:<11} {:>13} {:<7} {:<6} {}{note}{}",
        s.camera,
        s.role,
        s.pid,
        s.state.name(),
        s.uptime_secs,
        s.frames,
        s.fps,
        s.skipped,
        overwritten,
        drops,
        policy,
        latency,
        on_off(s.preview),
        on_off(s.saving),
        format,
        figures.iter().flat_map(|f| f.lines()).map(|line| format!("\n{:<10} {line}", "")).collect::<String>()
    );
}
