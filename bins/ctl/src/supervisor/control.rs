//! The supervisor's control service, `framebus/<deployment>/_deployment/supervisor/control`
//! (camera [`DEPLOYMENT_SCOPE`], role [`SUPERVISOR_ROLE`]): the commands only `ctl up` can carry
//! out, because it owns the processes.
//!
//! - `restart <camera> [<role>]`: SIGTERM (the process stops after its frame in progress), then
//!   a start as soon as it has exited (SIGKILL after the stop grace), its restart count reset; a
//!   process that is not running is started at once.
//! - `start <camera> [<role>]`: starts a process that was stopped (`ctl stop`), given up on or
//!   is waiting for its next restart, its restart count reset; starting a capture also starts
//!   the readers (and the media server) the supervisor stopped because it had ended.
//! - `supervised <camera> <role>`: what the supervisor knows of the process (JSON): state, pid,
//!   starts, restarts, the last exit and a short summary for `ctl status`.
//! - `logs <camera> <role>` from line N: the kept lines of its stderr (JSON).
//!
//! Replies are JSON objects in the reply's message (ASCII, at most [`MESSAGE_TEXT`] bytes).
//! Requests are answered from the supervisor's loop, which wakes on them.

use std::time::{Duration, Instant, SystemTime};

use anyhow::Context as _;
use framebus_common::control::{Answer, Command, ControlServer, Metrics, MESSAGE_TEXT};
use framebus_common::ipc::{IpcService, CONTROL_BYTES_PER_PROCESS};
use framebus_common::names::{Role, DEPLOYMENT_SCOPE, SUPERVISOR_ROLE};
use framebus_common::Deployment;
use iceoryx2::prelude::*;
use serde_json::{json, Value};

use super::output::ascii_json;
use super::{reason, short_of_memory, Supervised, SupervisorOptions};

/// The supervisor's control server.
pub(super) struct Controller {
    server: ControlServer,
}

impl Controller {
    /// Serves the supervisor's control service of `deployment`, its response segment's pages
    /// reserved: a /dev/shm filled later never faults the supervisor (which would end the
    /// deployment). Not tried while /dev/shm lacks the room.
    pub(super) fn create(node: &Node<IpcService>, deployment: &Deployment) -> anyhow::Result<Controller> {
        let what = "the supervisor's control service";
        if let Some(short) = framebus_common::shm_budget::short_of(CONTROL_BYTES_PER_PROCESS, what) {
            return Err(short.into());
        }
        let role = Role::new(SUPERVISOR_ROLE)?;
        let server = ControlServer::create(node, deployment, DEPLOYMENT_SCOPE, &role)?;
        framebus_common::shm_budget::reserve_data_segment(deployment.name(), server.port_id(), what)
            .with_context(|| format!("reserving the shared memory of `{}`", server.service_name()))?;
        Ok(Controller { server })
    }

    /// Waits at most `pause` for a request, then answers every pending one. While `starting`,
    /// `restart` and `start` are refused (the captures are not all up yet).
    pub(super) fn wait_and_serve(
        &self,
        pause: Duration,
        procs: &mut [Supervised],
        options: &SupervisorOptions,
        starting: bool,
    ) {
        if !pause.is_zero() {
            // An error (a signal interrupted the wait) only ends the pause early.
            let _ = self.server.listener().timed_wait(|_| {}, pause);
        }
        self.server.poll(|command| answer(command, procs, options, starting));
    }
}

/// `<camera> <role>` or `<camera>` from a request's text.
fn parse_target(text: &str) -> Result<(String, Option<String>), String> {
    let mut words = text.split_whitespace();
    let camera = words.next().ok_or("no camera named in the request")?.to_string();
    let role = words.next().map(str::to_string);
    if words.next().is_some() {
        return Err(format!("`{text}`: expected `<camera> [<role>]`"));
    }
    Ok((camera, role))
}

/// The processes of `text` (`<camera> [<role>]`), as indexes into `procs`, or why none.
fn select(procs: &[Supervised], text: &str, role_required: bool) -> Result<Vec<usize>, String> {
    let (camera, role) = parse_target(text)?;
    if role_required && role.is_none() {
        return Err(format!("`{text}`: expected `<camera> <role>`"));
    }
    let of_camera: Vec<usize> = (0..procs.len()).filter(|&i| procs[i].camera == camera).collect();
    if of_camera.is_empty() {
        let mut cameras: Vec<&str> =
            procs.iter().map(|p| p.camera.as_str()).filter(|c| *c != DEPLOYMENT_SCOPE).collect();
        cameras.dedup();
        return Err(format!("this supervisor runs no camera `{camera}` (cameras: {})", cameras.join(", ")));
    }
    match role {
        None => Ok(of_camera),
        Some(role) => match of_camera.iter().find(|&&i| procs[i].role.as_str() == role) {
            Some(&i) => Ok(vec![i]),
            None => Err(format!(
                "this supervisor runs no `{role}` for camera `{camera}` (it runs: {}; a reader without `command` in the config is not started by `ctl up`)",
                of_camera.iter().map(|&i| procs[i].role.as_str()).collect::<Vec<_>>().join(", ")
            )),
        },
    }
}

fn answer(command: Command, procs: &mut [Supervised], options: &SupervisorOptions, starting: bool) -> Answer {
    let now = Instant::now();
    match command {
        Command::Status => {
            let running = procs.iter().filter(|p| p.child.is_some()).count();
            Answer::Status(Box::new(Metrics {
                message: format!("supervising {} processes, {running} running", procs.len()),
                ..Metrics::default()
            }))
        }
        Command::Restart(text) | Command::Start(text) if starting => {
            Answer::Refused(format!("`{text}`: the supervisor is still starting the deployment's captures; try again"))
        }
        Command::Restart(text) => match select(procs, &text, false) {
            Ok(selected) => Answer::Done(act(procs, &selected, true, options, now)),
            Err(why) => Answer::Refused(why),
        },
        Command::Start(text) => match select(procs, &text, false) {
            Ok(mut selected) => {
                // Starting a capture brings back what stopped because it had ended.
                let captures: Vec<String> =
                    selected.iter().filter(|&&i| procs[i].is_capture()).map(|&i| procs[i].camera.clone()).collect();
                for (i, p) in procs.iter().enumerate() {
                    let along = p.stopped_with_camera
                        && p.done
                        && (captures.contains(&p.camera) || (p.is_deployment_wide() && !captures.is_empty()));
                    if along && !selected.contains(&i) {
                        selected.push(i);
                    }
                }
                Answer::Done(act(procs, &selected, false, options, now))
            }
            Err(why) => Answer::Refused(why),
        },
        Command::Supervised(text) => match select(procs, &text, true) {
            Ok(selected) => {
                let info = selected.first().map(|&i| info(&procs[i], options, now)).unwrap_or(Value::Null);
                Answer::Done(ascii_json(&info))
            }
            Err(why) => Answer::Refused(why),
        },
        Command::Logs(from, text) => match select(procs, &text, true) {
            Ok(selected) => {
                let Some(&i) = selected.first() else { return Answer::Refused("no process".into()) };
                match procs[i].kept.lock() {
                    Ok(kept) => Answer::Done(kept.reply(u64::from(from), MESSAGE_TEXT - 24)),
                    Err(_) => Answer::Refused("the kept lines are unreadable".into()),
                }
            }
            Err(why) => Answer::Refused(why),
        },
        Command::Stop => Answer::Refused(
            "the supervisor stops on SIGINT/SIGTERM (Ctrl-C, `systemctl stop`), not on command; `ctl stop <camera> [<role>]` stops one process".into(),
        ),
        Command::SetPreview(_)
        | Command::SetSaving(_)
        | Command::ListControls(_)
        | Command::SetControls(_)
        | Command::Figures(_) => {
            Answer::Refused(format!("the supervisor does not take `{}`: send it to a camera's process", command.describe()))
        }
    }
}

/// Restarts (`restart`) or starts the selected processes; the reply lists what was done to each
/// and its start count, which `ctl` watches to see the new process: `{"processes": [{"camera",
/// "role", "action", "pid", "starts"}]}` (entries that do not fit are counted in `unlisted`).
fn act(
    procs: &mut [Supervised],
    selected: &[usize],
    restart: bool,
    options: &SupervisorOptions,
    now: Instant,
) -> String {
    let mut entries: Vec<Value> = Vec::new();
    for &i in selected {
        let proc = &mut procs[i];
        let action = match proc.child.as_ref() {
            Some(_) if !restart => "running",
            Some(_) if proc.restart_requested.is_some() => "restarting",
            Some(child) => {
                tracing::info!(camera = proc.camera, role = %proc.role, pid = child.id(), "restart requested: stopping it");
                // SAFETY: kill has no memory-safety preconditions; the pid is our unreaped child.
                unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
                proc.restart_requested = Some(now + options.stop_grace);
                "restarting"
            }
            None => {
                tracing::info!(camera = proc.camera, role = %proc.role, "{} requested: starting it", if restart { "restart" } else { "start" });
                proc.restarts = 0;
                proc.shortages = 0;
                proc.done = false;
                proc.failed = false;
                proc.stopped_with_camera = false;
                proc.restart_at = Some(now);
                "starting"
            }
        };
        entries.push(json!({
            "camera": proc.camera,
            "role": proc.role.as_str(),
            "action": action,
            "pid": proc.child.as_ref().map(|c| c.id()),
            "starts": proc.starts,
        }));
    }
    let mut listed = entries.len();
    loop {
        let reply = json!({ "processes": entries[..listed], "unlisted": entries.len() - listed });
        let text = ascii_json(&reply);
        if text.len() <= MESSAGE_TEXT || listed == 0 {
            return text;
        }
        listed -= 1;
    }
}

/// What the supervisor knows of one process (see [`super::control`]).
fn info(proc: &Supervised, options: &SupervisorOptions, now: Instant) -> Value {
    let next_in = proc.restart_at.map(|at| at.saturating_duration_since(now));
    let state = match (&proc.child, proc.done) {
        (Some(_), _) if proc.restart_requested.is_some() => "stopping",
        (Some(_), _) => "running",
        (None, true) if proc.failed => "given-up",
        (None, true) => "stopped",
        (None, false)
            if proc.restart_at.is_some() && proc.last_exit.as_ref().is_some_and(|e| short_of_memory(e.status)) =>
        {
            "waiting-for-memory"
        }
        (None, false) if proc.restart_at.is_some() => "restarting",
        (None, false) => "starting",
    };
    let last_exit = proc.last_exit.as_ref().map(|exit| {
        use std::os::unix::process::ExitStatusExt;
        json!({
            "reason": reason(exit.status),
            "code": exit.status.code(),
            "signal": exit.status.signal().map(super::signal_name),
            "at": format!("{:.3}", jiff::Timestamp::try_from(exit.at).unwrap_or(jiff::Timestamp::UNIX_EPOCH)),
            "restarts": exit.restarts,
            "backoff_secs": exit.backoff.map(|b| b.as_secs_f64()),
        })
    });
    let exit_at = |exit: &super::LastExit| format!("{} at {}", reason(exit.status), clock(exit.at));
    let summary = match (state, &proc.last_exit) {
        ("running", Some(exit)) if proc.restarts > 0 => format!(
            "running (pid {}), restarts {}; last: {}",
            proc.pid.unwrap_or_default(),
            proc.restarts,
            exit_at(exit)
        ),
        ("running", _) => format!("running (pid {})", proc.pid.unwrap_or_default()),
        ("stopping", _) => format!("restarting: stopping pid {}", proc.pid.unwrap_or_default()),
        ("restarting", Some(exit)) => {
            format!("{}, restart {}, next in {}", exit_at(exit), proc.restarts, seconds(next_in.unwrap_or_default()))
        }
        ("waiting-for-memory", Some(exit)) => format!(
            "{}: not enough shared memory, retry {} in {}",
            exit_at(exit),
            proc.shortages,
            seconds(next_in.unwrap_or_default())
        ),
        ("given-up", Some(exit)) => format!("{}, given up after {} restarts", exit_at(exit), proc.restarts),
        ("stopped", Some(exit)) if proc.stopped_with_camera => {
            format!("stopped with its camera's capture ({})", exit_at(exit))
        }
        ("stopped", Some(exit)) => format!("stopped: {}", exit_at(exit)),
        (state, _) => state.to_string(),
    };
    json!({
        "camera": proc.camera,
        "role": proc.role.as_str(),
        "state": state,
        "pid": proc.child.as_ref().map(|c| c.id()),
        "last_pid": proc.pid,
        "starts": proc.starts,
        "restarts": proc.restarts,
        "max_restarts": options.max_restarts,
        "next_start_in_secs": next_in.map(|d| (d.as_secs_f64() * 1000.0).round() / 1000.0),
        "last_exit": last_exit,
        "summary": summary,
    })
}

/// `14:02:11` (UTC) of a wall-clock time.
fn clock(at: SystemTime) -> String {
    let secs = at.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs()) % 86_400;
    format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)
}

/// `1s`, `0.3s`, `10s`.
fn seconds(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs >= 1.0 {
        format!("{secs:.0}s")
    } else {
        format!("{secs:.1}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse() {
        assert_eq!(parse_target("cam0"), Ok(("cam0".into(), None)));
        assert_eq!(parse_target("cam0 algo"), Ok(("cam0".into(), Some("algo".into()))));
        assert!(parse_target("").is_err());
        assert!(parse_target("cam0 algo extra").is_err());
    }

    fn supervised(role: &str) -> Supervised {
        Supervised {
            camera: "cam0".into(),
            role: Role::new(role).expect("role"),
            program: super::super::Program::User(vec!["sh".into()]),
            child: None,
            started: Instant::now(),
            restarts: 0,
            restart_at: None,
            shortages: 0,
            done: false,
            failed: false,
            pid: Some(41),
            starts: 1,
            last_exit: None,
            kept: Default::default(),
            restart_requested: None,
            stopped_with_camera: false,
            relays: Vec::new(),
        }
    }

    fn exit(raw: i32, restarts: u32) -> Option<super::super::LastExit> {
        use std::os::unix::process::ExitStatusExt;
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(14 * 3600 + 2 * 60 + 11);
        let status = std::process::ExitStatus::from_raw(raw);
        Some(super::super::LastExit { status, at, restarts, backoff: Some(Duration::from_secs(1)) })
    }

    /// The short reasons `ctl status` prints, and the state of each case.
    #[test]
    fn summaries_say_why_a_process_is_not_running() {
        let options = SupervisorOptions::default();
        let now = Instant::now();
        let mut backing_off = supervised("plates");
        backing_off.restarts = 2;
        backing_off.restart_at = Some(now + Duration::from_millis(1000));
        backing_off.last_exit = exit(3 << 8, 2);
        let got = info(&backing_off, &options, now);
        assert_eq!(got["summary"], "exited 3 at 14:02:11, restart 2, next in 1s", "{got}");
        assert_eq!((&got["state"], &got["last_exit"]["code"]), (&"restarting".into(), &3.into()));
        assert_eq!(got["last_exit"]["at"], "1970-01-01T14:02:11.000Z");

        let mut given_up = supervised("plates");
        (given_up.done, given_up.failed, given_up.restarts) = (true, true, 5);
        given_up.last_exit = exit(libc::SIGSEGV, 5);
        let got = info(&given_up, &options, now);
        assert_eq!(got["summary"], "killed by SIGSEGV at 14:02:11, given up after 5 restarts", "{got}");
        assert_eq!((&got["state"], &got["last_exit"]["signal"]), (&"given-up".into(), &"SIGSEGV".into()));
        assert!(got["last_exit"]["code"].is_null());

        let mut short = supervised("algo");
        short.shortages = 3;
        short.restart_at = Some(now + Duration::from_secs(2));
        short.last_exit = exit(75 << 8, 0);
        let got = info(&short, &options, now);
        assert_eq!(got["state"], "waiting-for-memory", "{got}");
        assert_eq!(got["summary"], "exited 75 at 14:02:11: not enough shared memory, retry 3 in 2s");

        let mut stopped = supervised("algo");
        stopped.done = true;
        stopped.last_exit = exit(0, 0);
        assert_eq!(info(&stopped, &options, now)["summary"], "stopped: exited 0 at 14:02:11");
        stopped.stopped_with_camera = true;
        assert_eq!(
            info(&stopped, &options, now)["summary"],
            "stopped with its camera's capture (exited 0 at 14:02:11)"
        );
    }

    #[test]
    fn times_are_short() {
        assert_eq!(seconds(Duration::from_millis(1000)), "1s");
        assert_eq!(seconds(Duration::from_millis(260)), "0.3s");
        assert_eq!(clock(SystemTime::UNIX_EPOCH + Duration::from_secs(14 * 3600 + 2 * 60 + 11)), "14:02:11");
    }
}
