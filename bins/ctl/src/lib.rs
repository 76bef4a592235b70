//! `ctl`: the operator's tool. Sends commands to the processes of a deployment over their
//! iceoryx2 control services and prints the replies (`status`, `stop`, `preview`, `record`,
//! `control`, `state reset`), lists cameras and services (`list`), prints the deployment's
//! iceoryx2 config (`iox2-config`) and the cross-process record layouts (`abi`), serves metrics
//! (`metrics`), runs a whole deployment as its supervisor (`up`), and asks that supervisor to
//! restart or start processes and for their kept stderr lines (`restart`, `start`, `logs`).
//!
//! Every wait is bounded by `--timeout`; a process that is not running is reported with the
//! service that was tried, and ctl exits 1; one that runs but did not answer in time (busy) is
//! reported as busy, and ctl exits 3. ctl never links OpenCV or v4l.

pub mod cli;
pub mod complete;
pub mod events;
pub mod figures;
pub mod generate;
pub mod metrics;
pub mod origin;
pub mod ports;
pub mod supervisor;
pub mod systemd;
pub mod webhook_client;
pub mod webhooks;

mod status;
mod supervised;

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use anyhow::Context;
use framebus_common::config::{control_assignments_text, parse_control_assignments};
use framebus_common::control::{Command, ControlClient, ControlError, ControlReply, Target, REQUEST_TEXT};
use framebus_common::ipc::{
    connect_control, control_roles, create_client_node, iceoryx_config, DeploymentGuard, IpcService,
};
use framebus_common::names::{service_name, DeploymentProcess, ProcessRole, Role, ServiceKind, DEPLOYMENT_SCOPE};
use framebus_common::state::{CameraState, StateStore};
use framebus_common::Deployment;
use iceoryx2::prelude::*;
use serde_json::{json, Value};

use crate::cli::{Cli, ControlAction, CtlCommand};

/// How a command ended, beyond hard errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Everything asked for was done.
    Done,
    /// Some target is not running or refused; the output says which.
    Incomplete,
    /// Every target that did not answer is running but busy (it did not answer within
    /// `--timeout`); the output says which. Trying again may succeed.
    Busy,
}

impl Outcome {
    /// The process exit code: 0, 1 or 3 (hard errors exit 2).
    pub fn exit_code(self) -> u8 {
        match self {
            Outcome::Done => 0,
            Outcome::Incomplete => 1,
            Outcome::Busy => 3,
        }
    }

    /// The outcome of several deliveries: not running or refused wins over busy.
    fn of(deliveries: impl IntoIterator<Item = Delivery>) -> Outcome {
        deliveries.into_iter().fold(Outcome::Done, |outcome, d| match (outcome, d) {
            (Outcome::Incomplete, _) | (_, Delivery::Failed) => Outcome::Incomplete,
            (_, Delivery::Busy) => Outcome::Busy,
            (outcome, Delivery::Ok) => outcome,
        })
    }
}

/// How one command reached one process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Delivery {
    /// Answered and done.
    Ok,
    /// Running, but it did not answer in time.
    Busy,
    /// Not running, refused, or an error.
    Failed,
}

/// Runs one `ctl` command.
pub fn run(cli: &Cli) -> anyhow::Result<Outcome> {
    if let CtlCommand::Abi = cli.command {
        abi(cli.json);
        return Ok(Outcome::Done);
    }
    if cli.needs_no_config() {
        return generate::run(&cli.command, cli.json);
    }
    let located = framebus_common::config::locate_config(cli.config.as_deref())?;
    let deployment = Deployment::load(&located.path)?;
    framebus_common::logging::set_context(deployment.name(), None, "ctl");
    let outcome = run_command(cli, &deployment)?;
    if outcome == Outcome::Incomplete && located.origin != framebus_common::config::ConfigOrigin::Explicit {
        // Not running may mean another deployment than the user thinks: say which one was asked.
        eprintln!("ctl: deployment `{}` from the config {located}", deployment.name());
    }
    Ok(outcome)
}

fn run_command(cli: &Cli, deployment: &Deployment) -> anyhow::Result<Outcome> {
    match &cli.command {
        // Printed above: it needs no config.
        CtlCommand::Abi => Ok(Outcome::Done),
        CtlCommand::Iox2Config { output } => {
            iox2_config(deployment, cli.json, output.as_deref())?;
            Ok(Outcome::Done)
        }
        CtlCommand::List => {
            list(deployment, cli.json);
            Ok(Outcome::Done)
        }
        CtlCommand::Events(args) => events::run(deployment, cli.json, args),
        CtlCommand::Up { max_restarts } => {
            let options = supervisor::SupervisorOptions { max_restarts: *max_restarts, ..Default::default() };
            supervisor::run(deployment, &options)?;
            Ok(Outcome::Done)
        }
        CtlCommand::State { action: cli::StateAction::Reset { camera } } => {
            with_client(deployment, |session| reset_state(deployment, session, cli, camera))
        }
        CtlCommand::Metrics { listen, once } => serve_metrics(deployment, *listen, *once),
        CtlCommand::Systemd { user, output, service_user } => {
            systemd::run(deployment, cli.json, *user, output.as_deref(), service_user.as_deref())
        }
        CtlCommand::Completions { .. } | CtlCommand::Man { .. } => generate::run(&cli.command, cli.json),
        CtlCommand::Status { camera } => {
            with_client(deployment, |client| status::status(deployment, client, cli, camera))
        }
        CtlCommand::Stop { camera, role } => {
            // `ctl stop mediaserver` (the role defaults to capture).
            let named_role = (role != ProcessRole::Capture.name()).then_some(role.as_str());
            if let Some(process) = deployment_process(deployment, camera, named_role)? {
                let target = Target { camera: DEPLOYMENT_SCOPE.to_string(), role: process.role() };
                return with_client(deployment, |client| stop_target(deployment, client, cli, process.name(), &target));
            }
            let role = Role::new(role).map_err(|e| {
                anyhow::anyhow!("{e} (roles: capture, algo, preview, recorder, or a user reader's name)")
            })?;
            with_client(deployment, |client| stop(deployment, client, cli, camera, &role))
        }
        CtlCommand::Restart { camera, role } => with_client(deployment, |session| {
            supervised::restart_or_start(deployment, session, cli, camera, role.as_deref(), true)
        }),
        CtlCommand::Start { camera, role } => with_client(deployment, |session| {
            supervised::restart_or_start(deployment, session, cli, camera, role.as_deref(), false)
        }),
        CtlCommand::Logs { camera, role, follow } => with_client(deployment, |session| {
            supervised::logs(deployment, session, cli, camera, role.as_deref(), *follow)
        }),
        CtlCommand::Preview { switch, camera, origin: true } => {
            origin::set_flag(deployment, cli.json, camera, &Command::SetPreview(switch.is_on()))
        }
        CtlCommand::Record { switch, camera, origin: true } => {
            origin::set_flag(deployment, cli.json, camera, &Command::SetSaving(switch.is_on()))
        }
        CtlCommand::Preview { switch, camera, origin: false } => with_client(deployment, |client| {
            set_flag(deployment, client, cli, camera, &Command::SetPreview(switch.is_on()))
        }),
        CtlCommand::Record { switch, camera, origin: false } => with_client(deployment, |client| {
            set_flag(deployment, client, cli, camera, &Command::SetSaving(switch.is_on()))
        }),
        CtlCommand::Control { camera, action } => control(deployment, cli, camera, action),
    }
}

/// `ctl metrics`: one snapshot on stdout (`--once`), or serve them until told to stop.
fn serve_metrics(deployment: &Deployment, listen: Option<std::net::SocketAddr>, once: bool) -> anyhow::Result<Outcome> {
    if once {
        return with_client(deployment, |session| {
            print!("{}", metrics::Snapshot::gather(deployment, &session.client, None).encode());
            Ok(Outcome::Done)
        });
    }
    let listen = listen
        .or(deployment.deployment.metrics_addr())
        .unwrap_or_else(|| std::net::SocketAddr::from(([127, 0, 0, 1], 9464)));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    framebus_common::signals::install();
    let _release = DeploymentGuard::new(deployment.name());
    let (bound, handle) = metrics::serve(deployment.clone(), listen, None, std::sync::Arc::clone(&stop))?;
    println!("{}://{bound}/metrics", deployment.http_scheme());
    while !framebus_common::signals::termination_requested() {
        std::thread::sleep(Duration::from_millis(100));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = handle.join();
    Ok(Outcome::Done)
}

/// `ctl control <camera> list|set`: capture's device controls.
fn control(deployment: &Deployment, cli: &Cli, camera: &str, action: &ControlAction) -> anyhow::Result<Outcome> {
    deployment.camera(Some(camera))?;
    match action {
        ControlAction::List => with_client(deployment, |client| list_controls(client, cli, camera)),
        ControlAction::Set { settings } => {
            // Malformed arguments are usage errors (exit 2) before anything is sent.
            parse_control_assignments(settings).map_err(|e| anyhow::anyhow!("{e}"))?;
            let text = control_assignments_text(settings, REQUEST_TEXT).map_err(|e| anyhow::anyhow!("{e}"))?;
            with_client(deployment, |client| set_controls(client, cli, camera, text))
        }
    }
}

/// The page header capture puts before a control list: `controls F-L of N:`.
fn control_page(text: &str) -> Option<(usize, usize, usize, &str)> {
    let rest = text.strip_prefix("controls ")?;
    let (header, body) = rest.split_once(':')?;
    let (range, total) = header.split_once(" of ")?;
    let (first, last) = range.split_once('-')?;
    Some((first.parse().ok()?, last.parse().ok()?, total.parse().ok()?, body.trim_start()))
}

/// `ctl control <camera> list`: asks capture page by page (one reply holds about 1 KiB) and
/// prints one control per line.
fn list_controls(session: &Session, cli: &Cli, camera: &str) -> anyhow::Result<Outcome> {
    let target = Target::new(camera, ProcessRole::Capture);
    let mut lines: Vec<String> = Vec::new();
    let mut from = 0;
    loop {
        let reply = match session.client.send(&target, &Command::ListControls(from as u32), cli.timeout) {
            Ok(reply) if reply.is_ok() => reply,
            Ok(reply) => return report_failure(cli, camera, &reply.message_text()),
            Err(e) => return report_failure(cli, camera, &e.to_string()),
        };
        let text = reply.message_text();
        let Some((first, last, total, body)) = control_page(&text) else {
            return report_failure(cli, camera, &format!("capture answered the control list with `{text}`"));
        };
        if total > 0 {
            lines.extend(body.split("; ").map(str::to_string));
        }
        // Stop at the end, and on a page that does not move on (a broken reply).
        if total == 0 || last + 1 >= total || first != from || last < first {
            break;
        }
        from = last + 1;
    }
    if cli.json {
        println!("{}", json!({ "camera": camera, "ok": true, "controls": lines }));
    } else if lines.is_empty() {
        println!("{camera}: the device has no controls");
    } else {
        for line in lines {
            println!("{line}");
        }
    }
    Ok(Outcome::Done)
}

/// `ctl control <camera> set k=v ...`: capture checks every setting against the device, sets
/// them in order, records them and answers what the device kept.
fn set_controls(session: &Session, cli: &Cli, camera: &str, text: String) -> anyhow::Result<Outcome> {
    let target = Target::new(camera, ProcessRole::Capture);
    match session.client.send(&target, &Command::SetControls(text), cli.timeout) {
        Ok(reply) if reply.is_ok() => {
            let message = reply.message_text();
            if cli.json {
                println!("{}", json!({ "camera": camera, "ok": true, "result": message }));
            } else {
                println!("{camera}: {message}");
            }
            Ok(Outcome::Done)
        }
        Ok(reply) => report_failure(cli, camera, &reply.message_text()),
        Err(e) => report_failure(cli, camera, &e.to_string()),
    }
}

/// Runs `f` with a control client on a node of its own; the node is gone before the
/// deployment guard cleans up.
fn with_client<T>(deployment: &Deployment, f: impl FnOnce(&Session) -> anyhow::Result<T>) -> anyhow::Result<T> {
    let _release = DeploymentGuard::new(deployment.name());
    let node = create_client_node(deployment.name(), &format!("ctl-{}", std::process::id()))?;
    let session = Session { node: &node, client: ControlClient::new(&node, deployment.name()) };
    f(&session)
}

struct Session<'n> {
    node: &'n Node<IpcService>,
    client: ControlClient<'n>,
}

/// Every process of `camera` (or of every camera): the roles the config names, in config
/// order, then (with `discover`) user readers found running that the config does not name.
pub(crate) fn targets(deployment: &Deployment, discover: bool, camera: Option<&str>) -> anyhow::Result<Vec<Target>> {
    let cameras = match camera {
        Some(name) => vec![deployment.camera(Some(name))?],
        None => deployment.camera.iter().collect(),
    };
    let mut targets: Vec<Target> =
        cameras.iter().flat_map(|cam| cam.roles().into_iter().map(|role| Target::new(&cam.name, role))).collect();
    if discover {
        match control_roles(deployment.name()) {
            Ok(found) => {
                for (cam, role) in found {
                    let wanted = cameras.iter().any(|c| c.name == cam);
                    if wanted && !targets.iter().any(|t| t.camera == cam && t.role == role) {
                        targets.push(Target::new(&cam, role));
                    }
                }
            }
            Err(e) => tracing::warn!("could not list the deployment's services for user readers: {e}"),
        }
    }
    // Config order per camera, user readers found at run time after the configured ones.
    let order = |t: &Target| cameras.iter().position(|c| c.name == t.camera).unwrap_or(usize::MAX);
    targets.sort_by_key(order);
    Ok(targets)
}

/// What `ctl status` and the metrics ask: every process of `camera` (see [`targets`]), or of
/// the whole deployment followed by its per-deployment processes (the media server).
pub(crate) fn status_targets(deployment: &Deployment, camera: Option<&str>) -> anyhow::Result<Vec<Target>> {
    let mut targets = targets(deployment, true, camera)?;
    if camera.is_none() {
        targets.extend(
            deployment
                .deployment_processes()
                .into_iter()
                .map(|p| Target { camera: DEPLOYMENT_SCOPE.to_string(), role: p.role() }),
        );
    }
    Ok(targets)
}

fn control_service(deployment: &Deployment, target: &Target) -> String {
    service_name(deployment.name(), &target.camera, ServiceKind::Control(target.role.as_str()))
}

/// A camera argument that names a per-deployment process (`ctl restart mediaserver`), checked
/// against the config; `None` for a camera name. `role`, when given, must be the process's
/// name too (it has no roles).
pub(crate) fn deployment_process(
    deployment: &Deployment,
    name: &str,
    role: Option<&str>,
) -> anyhow::Result<Option<DeploymentProcess>> {
    let Some(process) = DeploymentProcess::from_name(name) else { return Ok(None) };
    if let Some(role) = role.filter(|r| *r != process.name()) {
        anyhow::bail!("`{name}` is the deployment's {process}, not a camera: name no role after it (got `{role}`)");
    }
    if !deployment.deployment_processes().contains(&process) {
        anyhow::bail!(
            "deployment `{}` has no {process}: {} has no [media-server] table",
            deployment.name(),
            deployment.source_file.display()
        );
    }
    Ok(Some(process))
}

fn stop(deployment: &Deployment, session: &Session, cli: &Cli, camera: &str, role: &Role) -> anyhow::Result<Outcome> {
    deployment.camera(Some(camera))?;
    stop_target(deployment, session, cli, camera, &Target::new(camera, role.clone()))
}

/// Stops the process of `target`; `camera` names it in the output (a camera, or `mediaserver`).
fn stop_target(
    deployment: &Deployment,
    session: &Session,
    cli: &Cli,
    camera: &str,
    target: &Target,
) -> anyhow::Result<Outcome> {
    let target = target.clone();
    let role = target.role.clone();
    let service = control_service(deployment, &target);
    let started = Instant::now();
    let reply = match session.client.send(&target, &Command::Stop, cli.timeout) {
        Ok(reply) if reply.is_ok() => reply,
        Ok(reply) => return report_failure(cli, camera, &format!("{role} refused to stop: {}", reply.message_text())),
        Err(e) if e.is_busy() => {
            report_failure(cli, camera, &e.to_string())?;
            return Ok(Outcome::Busy);
        }
        Err(e) => return report_failure(cli, camera, &e.to_string()),
    };
    // The ladder: the cooperative stop was acknowledged; if the process is still serving after
    // the timeout, SIGTERM (which iceoryx2 turns into a clean exit), then give up.
    let mut how = "stopped";
    if !wait_server_gone(session.node, deployment, &target, cli.timeout)? {
        tracing::warn!(camera, pid = reply.pid, "{role} still running after the stop request, sending SIGTERM");
        // SAFETY: kill has no memory-safety preconditions; the pid comes from the process itself.
        unsafe { libc::kill(reply.pid as i32, libc::SIGTERM) };
        how = "terminated (SIGTERM)";
        if !wait_server_gone(session.node, deployment, &target, cli.timeout)? {
            return report_failure(
                cli,
                camera,
                &format!("{role} (pid {}) still serves `{service}` after stop and SIGTERM", reply.pid),
            );
        }
    }
    if cli.json {
        println!(
            "{}",
            json!({ "camera": camera, "role": role.as_str(), "ok": true, "result": how, "pid": reply.pid, "service": service, "seconds": started.elapsed().as_secs_f64() })
        );
    } else {
        let who = if role.as_str() == camera { camera.to_string() } else { format!("{camera}: {role}") };
        println!("{who} (pid {}) {how}", reply.pid);
    }
    Ok(Outcome::Done)
}

/// Waits (bounded) until nothing serves the target's control service any more.
fn wait_server_gone(
    node: &Node<IpcService>,
    deployment: &Deployment,
    target: &Target,
    timeout: Duration,
) -> anyhow::Result<bool> {
    let until = Instant::now() + timeout;
    loop {
        let services = connect_control(node, deployment.name(), &target.camera, target.role.as_str())
            .with_context(|| format!("watching {} of camera `{}`", target.role, target.camera))?;
        if services.is_none_or(|s| !s.has_server()) {
            return Ok(true);
        }
        if Instant::now() >= until {
            return Ok(false);
        }
        // An interrupted sleep only shortens the wait; SIGINT/SIGTERM end it.
        let _ = node.wait(Duration::from_millis(10));
        if framebus_common::signals::termination_requested() {
            return Ok(false);
        }
    }
}

fn report_failure(cli: &Cli, camera: &str, error: &str) -> anyhow::Result<Outcome> {
    if cli.json {
        println!("{}", json!({ "camera": camera, "ok": false, "error": error }));
    } else {
        eprintln!("ctl: {camera}: {error}");
    }
    Ok(Outcome::Incomplete)
}

/// `ctl state reset <camera>`: forgets the recorded flags, hands the config's flags to the
/// running processes (so the preview and the recorder act on them now), and forgets the flags
/// their control servers recorded on the way, so the config keeps deciding.
fn reset_state(deployment: &Deployment, session: &Session, cli: &Cli, camera: &str) -> anyhow::Result<Outcome> {
    let cam = deployment.camera(Some(camera))?;
    let store = StateStore::of(deployment);
    let forget = || {
        store
            .update(camera, |state| *state = Default::default())
            .with_context(|| format!("resetting the command state of camera `{camera}`"))
    };
    forget()?;
    let initial = CameraState::initial(Some(cam));
    let targets = targets(deployment, true, Some(camera))?;
    let mut all_ok = true;
    let mut delivered = Vec::new();
    for command in [Command::SetPreview(initial.preview), Command::SetSaving(initial.saving)] {
        for (target, result) in targets.iter().zip(session.client.send_all(&targets, &command, cli.timeout)) {
            let (delivery, text) = describe_delivery(result);
            let ok = matches!(delivery, Delivery::Ok);
            all_ok &= ok;
            delivered.push(
                json!({ "role": target.role.as_str(), "command": command.describe(), "ok": ok, "message": text }),
            );
        }
    }
    // The processes recorded the flags they were just sent; forget those, and only those. A
    // command that raced this reset (`ctl preview off` recorded and delivered meanwhile) left
    // another value, which is what the process now runs with: it stays recorded. (Forgetting
    // every flag here left the preview off while the state said on.) Forgetting a flag equal
    // to the config's value never changes the effective flags.
    store
        .update(camera, |state| {
            if state.preview == Some(initial.preview) {
                state.preview = None;
            }
            if state.saving == Some(initial.saving) {
                state.saving = None;
            }
        })
        .with_context(|| format!("resetting the command state of camera `{camera}`"))?;
    if cli.json {
        println!(
            "{}",
            json!({
                "camera": camera,
                "state_file": store.path(camera),
                "preview": initial.preview,
                "saving": initial.saving,
                "ok": all_ok,
                "processes": delivered,
            })
        );
    } else {
        let on_off = |on: bool| if on { "on" } else { "off" };
        println!(
            "{camera}: command state reset: the config's flags apply (preview {}, saving {}); {}",
            on_off(initial.preview),
            on_off(initial.saving),
            if all_ok { "every running process took them" } else { "processes not running take them when they start" }
        );
    }
    Ok(Outcome::Done)
}

fn set_flag(
    deployment: &Deployment,
    session: &Session,
    cli: &Cli,
    camera: &str,
    command: &Command,
) -> anyhow::Result<Outcome> {
    // Recorded first: a process that is not running (or restarting) picks it up when it starts.
    let cam = deployment.camera(Some(camera))?;
    let store = StateStore::of(deployment);
    let recorded = store
        .update(camera, |state| match command {
            Command::SetPreview(on) => state.preview = Some(*on),
            Command::SetSaving(on) => state.saving = Some(*on),
            _ => {}
        })
        .with_context(|| format!("recording `{}` for camera `{camera}`", command.describe()))?;
    let state = recorded.over(CameraState::initial(Some(cam)));
    // The process that acts on the flag; the others record and report it.
    let actor = match command {
        Command::SetPreview(_) => ProcessRole::Preview,
        _ => ProcessRole::Recorder,
    };
    let actor_configured = cam.processes().contains(&actor);
    if !actor_configured {
        let note = format!(
            "{camera}: note: no [camera.{actor}] table in {}: `ctl up` starts no {actor} for this camera; the flag applies to one started by hand",
            deployment.source_file.display()
        );
        if cli.json {
            tracing::info!("{note}");
        } else {
            eprintln!("{note}");
        }
    }
    let targets = targets(deployment, true, Some(camera))?;
    let results = session.client.send_all(&targets, command, cli.timeout);
    let mut deliveries = Vec::new();
    let mut delivered = Vec::new();
    for (target, result) in targets.iter().zip(results) {
        let service = control_service(deployment, target);
        let (delivery, text) = describe_delivery(result);
        deliveries.push(delivery);
        let ok = delivery == Delivery::Ok;
        delivered.push(
            json!({ "role": target.role.as_str(), "service": service, "ok": ok, "busy": delivery == Delivery::Busy, "message": text }),
        );
        if !cli.json {
            let line = format!("{camera}: {}: {text}", target.role);
            match delivery {
                Delivery::Ok => println!("{line}"),
                Delivery::Busy => eprintln!("ctl: {line} (recorded; run the command again to deliver it)"),
                Delivery::Failed => eprintln!("ctl: {line} (recorded; applies when it starts)"),
            }
        }
    }
    let outcome = Outcome::of(deliveries);
    let all_ok = outcome == Outcome::Done;
    if cli.json {
        println!(
            "{}",
            json!({
                "camera": camera,
                "command": command.describe(),
                "recorded": { "path": store.path(camera), "preview": state.preview, "saving": state.saving },
                "actor": { "role": actor.name(), "configured": actor_configured },
                "ok": all_ok,
                "processes": delivered,
            })
        );
    } else {
        println!("{camera}: {} recorded in {}", command.describe(), store.path(camera).display());
    }
    Ok(outcome)
}

fn describe_delivery(result: Result<ControlReply, ControlError>) -> (Delivery, String) {
    match result {
        Ok(reply) if reply.is_ok() => (Delivery::Ok, reply.message_text()),
        Ok(reply) => (Delivery::Failed, format!("refused: {}", reply.message_text())),
        Err(e) if e.is_busy() => (Delivery::Busy, e.to_string()),
        Err(e) => (Delivery::Failed, e.to_string()),
    }
}

/// `ctl abi`: the compiled layouts of every cross-process record.
fn abi(json_output: bool) {
    let layouts = framebus_common::abi::layouts();
    if json_output {
        println!("{}", json!({ "layouts": layouts, "services": framebus_common::abi::service_settings() }));
        return;
    }
    let mut text = String::new();
    for layout in &layouts {
        let _ = writeln!(
            text,
            "{} (`{}`): {} bytes, aligned to {}",
            layout.name, layout.type_name, layout.size, layout.alignment
        );
        for field in &layout.fields {
            let _ = writeln!(text, "  {:>5} {:>5}  {:<22} {}", field.offset, field.size, field.name, field.ty);
        }
    }
    print!("{text}");
}

/// `ctl iox2-config`: the deployment's iceoryx2 config as TOML (stdout or `output`), or as
/// JSON with the derived paths.
fn iox2_config(deployment: &Deployment, json_output: bool, output: Option<&std::path::Path>) -> anyhow::Result<()> {
    let name = deployment.name();
    let config = iceoryx_config(name)?;
    if json_output && output.is_none() {
        let value = serde_json::to_value(&config).context("encoding the iceoryx2 config as JSON")?;
        println!(
            "{}",
            json!({
                "deployment": name,
                "prefix": config.global.prefix.to_string(),
                "root_path": config.global.root_path().to_string(),
                "state_dir": deployment.state_dir(),
                "config": value,
            })
        );
        return Ok(());
    }
    let body = toml::to_string(&config).context("encoding the iceoryx2 config as TOML")?;
    let text = format!(
        "# iceoryx2 config of framebus deployment `{name}` ({}), written by `ctl iox2-config`.\n# iceoryx2 tools read it from ./config/iceoryx2.toml, e.g. `iox2 service list` in this folder's parent.\n{body}",
        deployment.source_file.display()
    );
    match output {
        None => print!("{text}"),
        Some(path) => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            }
            std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
            if json_output {
                println!("{}", json!({ "deployment": name, "written": path }));
            } else {
                println!("iceoryx2 config of deployment `{name}` written to {}", path.display());
            }
        }
    }
    Ok(())
}

fn list(deployment: &Deployment, json_output: bool) {
    let store = StateStore::of(deployment);
    let name = deployment.name();
    let mut cameras = Vec::new();
    let mut text = format!(
        "deployment `{name}` ({}), command state in {}\n",
        deployment.source_file.display(),
        deployment.state_dir().display()
    );
    for cam in &deployment.camera {
        let initial = CameraState::initial(Some(cam));
        let (flags, state_error) = match store.recorded(&cam.name) {
            Ok(recorded) => (recorded.over(initial), None),
            Err(e) => (initial, Some(e.to_string())),
        };
        let services: Vec<Value> = [("frames", ServiceKind::Frames), ("frames-ready", ServiceKind::FrameReady)]
            .into_iter()
            .map(|(what, kind)| json!({ "what": what, "service": service_name(name, &cam.name, kind) }))
            .chain(cam.roles().into_iter().flat_map(|role| {
                [
                    json!({ "what": format!("{role}-control"), "service": service_name(name, &cam.name, ServiceKind::Control(role.as_str())) }),
                    json!({ "what": format!("{role}-control-ready"), "service": service_name(name, &cam.name, ServiceKind::ControlReady(role.as_str())) }),
                ]
            }))
            .collect();
        let _ = writeln!(
            text,
            "camera `{}`: {}x{} {} @ {} fps, source {}, processes: {}; preview {}, saving {}",
            cam.name,
            cam.width,
            cam.height,
            cam.pixel_format,
            cam.fps,
            cam.source.kind(),
            cam.roles().iter().map(|r| r.as_str()).collect::<Vec<_>>().join(", "),
            if flags.preview { "on" } else { "off" },
            if flags.saving { "on" } else { "off" },
        );
        if let Some(error) = &state_error {
            let _ = writeln!(text, "  command state unusable (the config's flags apply): {error}");
        }
        for service in &services {
            let _ = writeln!(
                text,
                "  {:<22} {}",
                service["what"].as_str().unwrap_or_default(),
                service["service"].as_str().unwrap_or_default()
            );
        }
        cameras.push(json!({
            "name": cam.name,
            "width": cam.width,
            "height": cam.height,
            "pixel_format": cam.pixel_format,
            "fps": cam.fps,
            "source": cam.source.kind(),
            "processes": cam.roles().iter().map(|r| r.as_str().to_string()).collect::<Vec<_>>(),
            "preview": flags.preview,
            "saving": flags.saving,
            "state_file": store.path(&cam.name),
            "state_error": state_error,
            "services": services,
        }));
    }
    if json_output {
        println!("{}", json!({ "deployment": name, "config": deployment.source_file, "cameras": cameras }));
    } else {
        print!("{text}");
    }
}
