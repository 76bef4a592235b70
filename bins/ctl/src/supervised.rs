//! The operator's side of the supervisor's control service (`ctl up`,
//! `framebus/<deployment>/_deployment/supervisor/control`): `ctl restart`, `ctl start`,
//! `ctl logs`, and what `ctl status` adds about processes the supervisor runs (why one is not
//! running). Every wait is bounded by `--timeout`.

use std::time::{Duration, Instant};

use framebus_common::control::{Command, ControlError, ControlReply, Target};
use framebus_common::ipc::connect_control;
use framebus_common::names::{service_name, Role, ServiceKind, DEPLOYMENT_SCOPE, SUPERVISOR_ROLE};
use framebus_common::Deployment;
use serde_json::{json, Value};

use crate::cli::Cli;
use crate::{report_failure, Outcome, Session};

/// The supervisor's control service as a control target.
fn target() -> anyhow::Result<Target> {
    Ok(Target { camera: DEPLOYMENT_SCOPE.to_string(), role: Role::new(SUPERVISOR_ROLE)? })
}

/// Name of the supervisor's control service, for messages.
fn service(deployment: &Deployment) -> String {
    service_name(deployment.name(), DEPLOYMENT_SCOPE, ServiceKind::Control(SUPERVISOR_ROLE))
}

/// Why a request to the supervisor got no reply, for the operator.
fn no_reply(deployment: &Deployment, error: &ControlError) -> String {
    match error {
        ControlError::NotRunning { waited, .. } => format!(
            "no supervisor of deployment `{}` is running (`ctl up`): nothing served `{}` within {:.1}s",
            deployment.name(),
            service(deployment),
            waited.as_secs_f64()
        ),
        ControlError::Timeout { waited, .. } | ControlError::Busy { waited, .. } => format!(
            "the supervisor of deployment `{}` is busy: no reply on `{}` within {:.1}s; try again or raise --timeout",
            deployment.name(),
            service(deployment),
            waited.as_secs_f64()
        ),
        other => other.to_string(),
    }
}

/// Sends one command to the supervisor: its reply's JSON message, or the outcome to end with
/// (already reported).
fn ask(
    session: &Session,
    deployment: &Deployment,
    cli: &Cli,
    camera: &str,
    command: &Command,
    timeout: Duration,
) -> anyhow::Result<Result<Value, Outcome>> {
    let reply: Result<ControlReply, ControlError> = session.client.send(&target()?, command, timeout);
    match reply {
        Ok(reply) if reply.is_ok() => {
            let text = reply.message_text();
            match serde_json::from_str(&text) {
                Ok(value) => Ok(Ok(value)),
                Err(e) => Ok(Err(report_failure(
                    cli,
                    camera,
                    &format!("unreadable reply of the supervisor to `{}` ({e}): {text}", command.describe()),
                )?)),
            }
        }
        Ok(reply) => {
            Ok(Err(report_failure(cli, camera, &format!("the supervisor refused: {}", reply.message_text()))?))
        }
        Err(e) => {
            let outcome = report_failure(cli, camera, &no_reply(deployment, &e))?;
            Ok(Err(if e.is_busy() { Outcome::Busy } else { outcome }))
        }
    }
}

/// `<camera> [<role>]` as the request's text, the role checked.
fn request_text(camera: &str, role: Option<&str>) -> anyhow::Result<String> {
    match role {
        Some(role) => {
            let role = Role::new(role).map_err(|e| {
                anyhow::anyhow!("{e} (roles: capture, algo, preview, recorder, streamer, or a user reader's name)")
            })?;
            Ok(format!("{camera} {role}"))
        }
        None => Ok(camera.to_string()),
    }
}

/// `ctl restart` (`restart`) or `ctl start`: asks the supervisor, then waits (bounded by
/// `--timeout`) until it has started each process again, and prints the new pids.
pub(crate) fn restart_or_start(
    deployment: &Deployment,
    session: &Session,
    cli: &Cli,
    camera: &str,
    role: Option<&str>,
    restart: bool,
) -> anyhow::Result<Outcome> {
    // `ctl restart mediaserver`: the media server's camera is the deployment scope.
    let (scope, text) = match crate::deployment_process(deployment, camera, role)? {
        Some(process) => (DEPLOYMENT_SCOPE, format!("{DEPLOYMENT_SCOPE} {process}")),
        None => {
            deployment.camera(Some(camera))?;
            (camera, request_text(camera, role)?)
        }
    };
    let (command, verb, done) = if restart {
        (Command::Restart(text), "restart", "restarted")
    } else {
        (Command::Start(text), "start", "started")
    };
    let reply = match ask(session, deployment, cli, camera, &command, cli.timeout)? {
        Ok(reply) => reply,
        Err(outcome) => return Ok(outcome),
    };
    let asked: Vec<Value> = reply["processes"].as_array().cloned().unwrap_or_default();
    // Each process asked to (re)start: done once its start count has grown and it runs.
    let until = Instant::now() + cli.timeout;
    let mut results: Vec<Value> = Vec::new();
    for entry in &asked {
        let role = entry["role"].as_str().unwrap_or_default().to_string();
        let action = entry["action"].as_str().unwrap_or_default();
        let before = entry["pid"].as_u64();
        let mut result = json!({ "role": role, "action": action, "pid_before": before, "pid": before });
        if action == "running" {
            result["result"] = json!("already running");
            results.push(result);
            continue;
        }
        let starts = entry["starts"].as_u64().unwrap_or(0);
        let supervised = Command::Supervised(format!("{scope} {role}"));
        let outcome = loop {
            let left = until.saturating_duration_since(Instant::now()).max(Duration::from_millis(100));
            match ask(session, deployment, cli, camera, &supervised, left)? {
                Ok(info) => {
                    let started = info["starts"].as_u64().unwrap_or(0) > starts;
                    if started && info["pid"].as_u64().is_some() {
                        result["pid"] = info["pid"].clone();
                        result["result"] = json!(done);
                        break None;
                    }
                    if started && info["state"] != "starting" {
                        // It ended again at once: the supervisor says why.
                        result["pid"] = Value::Null;
                        result["result"] =
                            json!(format!("{done}, then ended: {}", info["summary"].as_str().unwrap_or("?")));
                        break None;
                    }
                    if Instant::now() >= until {
                        result["pid"] = info["pid"].clone();
                        result["result"] = json!(format!(
                            "not started again within {:.1}s ({}); the supervisor goes on: raise --timeout to wait longer",
                            cli.timeout.as_secs_f64(),
                            info["summary"].as_str().unwrap_or("?")
                        ));
                        break Some(Outcome::Busy);
                    }
                }
                Err(outcome) => return Ok(outcome),
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        result["ok"] = json!(outcome.is_none());
        results.push(result);
    }
    let busy = results.iter().any(|r| r["ok"] == false);
    let unlisted = reply["unlisted"].as_u64().unwrap_or(0);
    if cli.json {
        println!(
            "{}",
            json!({ "camera": camera, "command": verb, "ok": !busy, "processes": results, "unlisted": unlisted })
        );
    } else {
        for r in &results {
            let role = r["role"].as_str().unwrap_or_default();
            // `mediaserver restarted`, `cam0: algo restarted`.
            let who = if role == camera { role.to_string() } else { format!("{camera}: {role}") };
            let pid = |v: &Value| v.as_u64().map_or("-".to_string(), |p| p.to_string());
            let line = match (r["result"].as_str(), r["pid_before"].as_u64()) {
                (Some("restarted"), Some(_)) => {
                    format!("{who} restarted (pid {} -> {})", pid(&r["pid_before"]), pid(&r["pid"]))
                }
                (Some("restarted" | "started"), _) => format!("{who} {done} (pid {})", pid(&r["pid"])),
                (Some("already running"), _) => format!("{who} already running (pid {})", pid(&r["pid"])),
                (Some(other), _) => format!("{who} {other}"),
                (None, _) => format!("{who}: ?"),
            };
            if r["ok"] == false {
                eprintln!("ctl: {line}");
            } else {
                println!("{line}");
            }
        }
        if unlisted > 0 {
            println!("{camera}: {unlisted} more processes asked to {verb} (not listed: the reply is full)");
        }
    }
    Ok(if busy { Outcome::Busy } else { Outcome::Done })
}

/// `ctl logs <camera> <role> [--follow]`: the kept lines, then (with `--follow`) new ones every
/// 200 ms until Ctrl-C.
pub(crate) fn logs(
    deployment: &Deployment,
    session: &Session,
    cli: &Cli,
    camera: &str,
    role: Option<&str>,
    follow: bool,
) -> anyhow::Result<Outcome> {
    let (role, text) = match crate::deployment_process(deployment, camera, role)? {
        Some(process) => (process.name(), format!("{DEPLOYMENT_SCOPE} {process}")),
        None => {
            deployment.camera(Some(camera))?;
            let role = role.ok_or_else(|| {
                anyhow::anyhow!("`ctl logs {camera}` needs the role of the process: `ctl logs {camera} <role>`")
            })?;
            (role, request_text(camera, Some(role))?)
        }
    };
    let mut from = 0u64;
    let mut printed = 0usize;
    loop {
        let page = match ask(session, deployment, cli, camera, &Command::Logs(from as u32, text.clone()), cli.timeout)?
        {
            Ok(page) => page,
            Err(outcome) => return Ok(outcome),
        };
        let first = page["first"].as_u64().unwrap_or(0);
        if from > 0 && first > from {
            eprintln!("ctl: {camera}: {role}: {} lines were not kept (more than 20 between two looks)", first - from);
        }
        for line in page["lines"].as_array().into_iter().flatten() {
            let text = line["text"].as_str().unwrap_or_default();
            if cli.json {
                println!(
                    "{}",
                    json!({ "camera": camera, "role": role, "seq": line["seq"], "pid": line["pid"], "text": text })
                );
            } else {
                println!("{text}");
            }
            printed += 1;
        }
        let next = page["next"].as_u64().unwrap_or(from);
        let end = page["end"].as_u64().unwrap_or(next);
        let progressed = next > from;
        from = next.max(from);
        if progressed && from < end {
            continue;
        }
        if !follow {
            break;
        }
        let until = Instant::now() + Duration::from_millis(200);
        while Instant::now() < until {
            if framebus_common::signals::termination_requested() {
                return Ok(Outcome::Done);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    if printed == 0 && !cli.json {
        eprintln!("{camera}: {role} has written nothing on stderr under this supervisor");
    }
    Ok(Outcome::Done)
}

/// What the supervisor knows of each target, for `ctl status` (`None` for a target it does not
/// run, or when no supervisor serves: then nothing is waited for).
pub(crate) fn lookup(
    deployment: &Deployment,
    session: &Session,
    targets: &[Target],
    timeout: Duration,
) -> Vec<Option<Value>> {
    let serving = connect_control(session.node, deployment.name(), DEPLOYMENT_SCOPE, SUPERVISOR_ROLE)
        .ok()
        .flatten()
        .is_some_and(|s| s.has_server());
    let Ok(supervisor) = target() else { return vec![None; targets.len()] };
    // A supervisor that did not answer in time (busy stopping a camera's readers) is not asked
    // again for the other rows: `ctl status` waits at most one `--timeout` for it.
    let mut answering = serving;
    targets
        .iter()
        .map(|t| {
            if !answering {
                return None;
            }
            let command = Command::Supervised(format!("{} {}", t.camera, t.role));
            match session.client.send(&supervisor, &command, timeout) {
                Ok(reply) if reply.is_ok() => serde_json::from_str(&reply.message_text()).ok(),
                Ok(_) => None,
                Err(_) => {
                    answering = false;
                    None
                }
            }
        })
        .collect()
}
