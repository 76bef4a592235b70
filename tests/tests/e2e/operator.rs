//! The operator's day (issue 21, items 1 and 2) under `ctl up`: `ctl restart` and `ctl start`
//! reach the supervisor over its control service; `ctl status` says why a process is not
//! running; `ctl logs` shows the stderr lines the supervisor kept; every child's output is
//! logged by the supervisor with the child's deployment, camera, role and pid.

use std::time::{Duration, Instant};

use framebus_common::control::{code, Command, ControlReply, ControlRequest, CONTROL_PROTOCOL_VERSION};
use framebus_common::ipc::{connect_control, create_named_node, DeploymentGuard};
use framebus_common::names::{DEPLOYMENT_SCOPE, SUPERVISOR_ROLE};
use framebus_e2e::{pid_alive, process_status, synthetic_camera, TestDeployment, DEADLINE};
use serde_json::Value;

fn frames(status: &Value, role: &str) -> u64 {
    process_status(status, "cam0", role)["frames"].as_u64().unwrap_or(0)
}

fn pid(status: &Value, role: &str) -> Option<u64> {
    process_status(status, "cam0", role)["pid"].as_u64()
}

/// What `ctl status --json` adds from the supervisor about a process.
fn supervisor<'a>(status: &'a Value, role: &str) -> &'a Value {
    &process_status(status, "cam0", role)["supervisor"]
}

fn kill(pid: u64, signal: i32) {
    // SAFETY: kill has no memory-safety preconditions; the pid is a child of the test's ctl up.
    unsafe { libc::kill(pid as i32, signal) };
}

/// The line of `ctl status` (text) about `role`.
fn status_line(d: &TestDeployment, role: &str) -> String {
    let (_, table, _) = d.ctl(&["status", "--timeout", "2"]);
    table.lines().find(|l| l.split_whitespace().nth(1) == Some(role)).unwrap_or_default().to_string()
}

/// Sends `request` straight over iceoryx2 to the control service of `role` of `camera` and
/// returns the reply.
fn ask_raw(d: &TestDeployment, camera: &str, role: &str, request: ControlRequest) -> ControlReply {
    let _release = DeploymentGuard::new(&d.name);
    let node = create_named_node(&d.name, "operator-test").expect("node");
    let until = Instant::now() + DEADLINE;
    let services = loop {
        match connect_control(&node, &d.name, camera, role).expect("connect") {
            Some(s) if s.has_server() => break s,
            _ => {}
        }
        assert!(Instant::now() < until, "nothing serves the control service of {role}");
        std::thread::sleep(Duration::from_millis(20));
    };
    let client = services.requests.client_builder().create().expect("client");
    let ready = services.ready.as_ref().expect("ready event").notifier_builder().create().expect("notifier");
    let pending = client.send_copy(request).expect("send");
    let _ = ready.notify();
    loop {
        if let Some(reply) = pending.receive().expect("receive") {
            return *reply.payload();
        }
        assert!(Instant::now() < until, "no reply to {request:?}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// `ctl restart cam0 algo`: a new algo (another pid) takes frames again and its restart count
/// starts over (the next crash is restart 1 again); `ctl restart cam0` restarts capture and
/// algo together and frames flow again.
#[test]
fn restart_starts_a_new_process_and_resets_its_restart_count() {
    let d = TestDeployment::new(&synthetic_camera("cam0", 320, 240, 30));
    let mut up = d.spawn("ctl", &["up", "--max-restarts", "2"]);
    let status = d.wait_status(|s| frames(s, "algo") > 5);
    let first = pid(&status, "algo").expect("algo pid");
    assert_eq!(supervisor(&status, "algo")["restarts"], 0, "{status}");

    // A crash counts towards --max-restarts.
    kill(first, libc::SIGKILL);
    let status = d.wait_status(|s| {
        supervisor(s, "algo")["restarts"] == 1 && pid(s, "algo").is_some_and(|p| p != first) && frames(s, "algo") > 0
    });
    let second = pid(&status, "algo").expect("algo pid");
    up.wait_stderr(DEADLINE, "restart 1 of 2");

    let (code, out, err) = d.ctl(&["restart", "cam0", "algo", "--timeout", "10", "--json"]);
    assert_eq!(code, Some(0), "{out}\n{err}");
    let reply: Value = serde_json::from_str(&out).expect("JSON");
    let entry = &reply["processes"][0];
    assert_eq!(entry["role"], "algo", "{reply}");
    assert_eq!(entry["pid_before"], second, "{reply}");
    let third = entry["pid"].as_u64().expect("new pid");
    assert_ne!(third, second, "{reply}");
    let status = d.wait_status(|s| pid(s, "algo") == Some(third) && frames(s, "algo") > 5);
    assert_eq!(supervisor(&status, "algo")["restarts"], 0, "give-up counter reset: {status}");
    assert_eq!(supervisor(&status, "algo")["state"], "running", "{status}");
    assert!(!pid_alive(second as u32), "the restarted algo {second} still runs");
    up.wait_stderr(DEADLINE, "starting it again (restart requested)");

    // The count started over: the next crash is restart 1 of 2 again, not 2 of 2.
    kill(third, libc::SIGKILL);
    d.wait_status(|s| {
        supervisor(s, "algo")["restarts"] == 1 && pid(s, "algo").is_some_and(|p| p != third) && frames(s, "algo") > 0
    });
    let restarts_1 = up.stderr_text().matches("restart 1 of 2").count();
    assert_eq!(restarts_1, 2, "{}", up.stderr_text());
    assert!(!up.stderr_text().contains("restart 2 of 2"), "{}", up.stderr_text());

    // Every process of the camera: capture and algo, new pids, frames flowing again.
    let status = d.wait_status(|_| true);
    let (capture_before, algo_before) = (pid(&status, "capture").expect("pid"), pid(&status, "algo").expect("pid"));
    let (code, out, err) = d.ctl(&["restart", "cam0", "--timeout", "10"]);
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert!(out.contains(&format!("capture restarted (pid {capture_before} -> ")), "{out}");
    assert!(out.contains(&format!("algo restarted (pid {algo_before} -> ")), "{out}");
    d.wait_status(|s| {
        pid(s, "capture").is_some_and(|p| p != capture_before)
            && pid(s, "algo").is_some_and(|p| p != algo_before)
            && frames(s, "capture") > 5
            && frames(s, "algo") > 5
    });

    assert_eq!(up.terminate(), Some(0), "{}", up.stderr_text());
    d.assert_no_leftovers();
}

/// `ctl start` brings back a reader `ctl stop` stopped; a process or camera the supervisor does
/// not run, a missing supervisor and an unknown command get clear errors.
#[test]
fn start_brings_back_a_stopped_reader_and_errors_are_clear() {
    let d = TestDeployment::new(&synthetic_camera("cam0", 320, 240, 30));
    // No supervisor: a bounded wait, exit 1, the service named.
    let asked = Instant::now();
    let (code, out, err) = d.ctl(&["start", "cam0", "algo", "--timeout", "0.5"]);
    assert_eq!(code, Some(1), "{out}\n{err}");
    assert!(err.contains("no supervisor of deployment") && err.contains("/_deployment/supervisor/control"), "{err}");
    assert!(asked.elapsed() < Duration::from_secs(10), "took {:?}", asked.elapsed());
    let (code, _, err) = d.ctl(&["logs", "cam0", "algo", "--timeout", "0.5"]);
    assert_eq!(code, Some(1), "{err}");

    let mut up = d.spawn("ctl", &["up"]);
    let status = d.wait_status(|s| frames(s, "algo") > 5);
    let stopped = pid(&status, "algo").expect("algo pid");
    let (code, out, err) = d.ctl(&["stop", "cam0", "algo", "--timeout", "10"]);
    assert_eq!(code, Some(0), "{out}\n{err}");
    let status = d.wait_status(|s| supervisor(s, "algo")["state"] == "stopped");
    assert_eq!(supervisor(&status, "algo")["last_exit"]["code"], 0, "{status}");
    let line = status_line(&d, "algo");
    assert!(line.contains("not running: stopped: exited 0 at "), "{line}");

    let (code, out, err) = d.ctl(&["start", "cam0", "algo", "--timeout", "10"]);
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert!(out.contains("cam0: algo started (pid "), "{out}");
    let status = d.wait_status(|s| pid(s, "algo").is_some_and(|p| p != stopped) && frames(s, "algo") > 5);
    assert_eq!(supervisor(&status, "algo")["state"], "running", "{status}");
    let (code, out, err) = d.ctl(&["start", "cam0", "algo"]);
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert!(out.contains("algo already running"), "{out}");

    // Targets the supervisor does not run.
    let (code, out, err) = d.ctl(&["start", "cam0", "nobody"]);
    assert_eq!(code, Some(1), "{out}\n{err}");
    assert!(err.contains("runs no `nobody` for camera `cam0`"), "{err}");
    let (code, _, err) = d.ctl(&["restart", "nocam"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("no camera named `nocam`"), "{err}");

    // Straight over iceoryx2: an unknown command and a bad target get error replies, and a
    // supervisor's command sent to a camera's process is refused.
    let valid = ControlRequest { version: CONTROL_PROTOCOL_VERSION, command: code::STATUS, ..Default::default() };
    let reply = ask_raw(&d, DEPLOYMENT_SCOPE, SUPERVISOR_ROLE, ControlRequest { command: 999, ..valid });
    assert!(!reply.is_ok() && reply.message_text().contains("unknown command code 999"), "{}", reply.message_text());
    let reply = ask_raw(&d, DEPLOYMENT_SCOPE, SUPERVISOR_ROLE, Command::Restart("cam0 nope".into()).to_request(1));
    assert!(!reply.is_ok() && reply.message_text().contains("runs no `nope`"), "{}", reply.message_text());
    let reply = ask_raw(&d, "cam0", "capture", Command::Logs(0, "cam0 algo".into()).to_request(2));
    assert!(!reply.is_ok() && reply.message_text().contains("command for the supervisor"), "{}", reply.message_text());
    let reply = ask_raw(&d, DEPLOYMENT_SCOPE, SUPERVISOR_ROLE, valid);
    assert!(reply.is_ok(), "{}", reply.message_text());

    assert_eq!(up.terminate(), Some(0), "{}", up.stderr_text());
    d.assert_no_leftovers();
}

/// Two user readers that crash: one exits 3 (after saying why on stderr), one is killed by
/// SIGSEGV. `ctl status` gives the short reason while the supervisor backs off and once it gave
/// up; `ctl logs` shows their last stderr lines; the supervisor's log (text) carries their
/// lines with deployment, camera, role and pid, and those of the built-in readers too.
#[test]
fn crash_reasons_and_kept_lines_of_crashing_readers() {
    let body = format!(
        "{}\n[[camera.reader]]\nname = \"exits3\"\ncommand = [\"sh\", \"-c\", \"echo reading the config >&2; echo 'exits3: error: bad argument --frobnicate' >&2; exit 3\"]\n\n[[camera.reader]]\nname = \"segv\"\ncommand = [\"sh\", \"-c\", \"echo about to crash >&2; kill -SEGV $$\"]\n",
        synthetic_camera("cam0", 320, 240, 30)
    );
    let d = TestDeployment::new(&body);
    let mut up = d.spawn("ctl", &["up", "--max-restarts", "3"]);

    // While it backs off (0.5 s, 1 s, 2 s): `exited 3 at HH:MM:SS, restart N, next in Ts`.
    let until = Instant::now() + DEADLINE;
    let backing_off = loop {
        let line = status_line(&d, "exits3");
        if line.contains("not running: exited 3 at ") && line.contains(", restart ") && line.contains(", next in ") {
            break line;
        }
        assert!(Instant::now() < until, "never seen backing off: {line}\n{}", up.stderr_text());
        std::thread::sleep(Duration::from_millis(50));
    };
    let clock = backing_off.split("exited 3 at ").nth(1).and_then(|r| r.get(..8)).unwrap_or_default();
    assert!(clock.len() == 8 && clock.as_bytes()[2] == b':' && clock.as_bytes()[5] == b':', "{backing_off}");

    let status = d.wait_status(|s| {
        supervisor(s, "exits3")["state"] == "given-up"
            && supervisor(s, "segv")["state"] == "given-up"
            && frames(s, "algo") > 5
    });
    let exits3 = supervisor(&status, "exits3");
    assert_eq!(process_status(&status, "cam0", "exits3")["state"], "not-running", "shape kept: {status}");
    assert!(process_status(&status, "cam0", "exits3")["error"].is_string(), "shape kept: {status}");
    assert_eq!(exits3["last_exit"]["code"], 3, "{status}");
    assert_eq!(exits3["last_exit"]["reason"], "exited 3", "{status}");
    assert_eq!(exits3["restarts"], 3, "{status}");
    assert!(exits3["last_exit"]["at"].as_str().is_some_and(|t| t.ends_with('Z')), "{status}");
    let segv = supervisor(&status, "segv");
    assert_eq!(segv["last_exit"]["signal"], "SIGSEGV", "{status}");
    assert!(segv["last_exit"]["code"].is_null(), "{status}");
    assert!(segv["last_exit"]["reason"].as_str().is_some_and(|r| r.starts_with("killed by SIGSEGV")), "{status}");
    let line = status_line(&d, "exits3");
    assert!(line.contains("not running: exited 3 at ") && line.contains("given up after 3 restarts"), "{line}");
    let line = status_line(&d, "segv");
    assert!(line.contains("not running: killed by SIGSEGV") && line.contains("given up after 3 restarts"), "{line}");

    // The kept lines: 4 runs of 2 lines each, in order.
    let (code, out, err) = d.ctl(&["logs", "cam0", "exits3"]);
    assert_eq!(code, Some(0), "{out}\n{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 8, "{out}");
    assert_eq!(lines.iter().filter(|l| **l == "exits3: error: bad argument --frobnicate").count(), 4, "{out}");
    let (code, out, err) = d.ctl(&["logs", "cam0", "segv", "--json"]);
    assert_eq!(code, Some(0), "{out}\n{err}");
    let kept: Vec<Value> = out.lines().map(|l| serde_json::from_str(l).expect("JSON line")).collect();
    assert_eq!(kept.len(), 4, "{out}");
    assert!(kept.iter().all(|l| l["text"] == "about to crash" && l["pid"].as_u64().is_some()), "{out}");
    // Only the last 20 lines are kept: algo logs a line a second.
    let (code, out, _) = d.ctl(&["logs", "cam0", "algo"]);
    assert_eq!(code, Some(0));
    assert!(!out.is_empty() && out.lines().count() <= 20, "{out}");

    // The supervisor's log: the readers' lines with who wrote them.
    let log = up.stderr_text();
    let relayed = log.lines().find(|l| l.contains("bad argument --frobnicate")).expect("relayed line");
    assert!(relayed.contains("ERROR"), "{relayed}");
    for field in
        [format!("deployment=\"{}\"", d.name), "camera=\"cam0\"".into(), "role=\"exits3\"".into(), "pid=".into()]
    {
        assert!(relayed.contains(&field), "{field} missing: {relayed}");
    }
    let algo = pid(&status, "algo").expect("algo pid");
    let own = format!("deployment=\"{}\" camera=\"cam0\" role=\"algo\" pid={algo}", d.name);
    assert!(log.lines().any(|l| l.contains("reading frames") && l.contains(&own)), "no algo line with `{own}`:\n{log}");

    assert_eq!(up.terminate(), Some(0), "{}", up.stderr_text());
    d.assert_no_leftovers();
}

/// With `--log-format json` every line of `ctl up` is a JSON object, its children's included:
/// a user reader's plain stderr and stdout lines and the built-in readers' own JSON lines carry
/// deployment, camera, role and pid. `ctl logs --follow` prints new lines as they come.
#[test]
fn child_output_is_logged_as_json_and_logs_follow() {
    let body = format!(
        "{}\n[[camera.reader]]\nname = \"ticker\"\ncommand = [\"sh\", \"-c\", \"echo plain words >&2; echo on stdout; i=0; while true; do i=$((i+1)); echo tick $i >&2; sleep 0.2; done\"]\n",
        synthetic_camera("cam0", 320, 240, 30)
    );
    let d = TestDeployment::new(&body);
    let mut up = d.spawn("ctl", &["up", "--log-format", "json"]);
    let status = d.wait_status(|s| frames(s, "algo") > 5 && supervisor(s, "ticker")["state"] == "running");
    let ticker = supervisor(&status, "ticker")["pid"].as_u64().expect("ticker pid");
    let line = process_status(&status, "cam0", "ticker");
    let summary = line["supervisor"]["summary"].as_str().unwrap_or_default();
    assert!(summary.starts_with("running (pid "), "{line}");
    let table = status_line(&d, "ticker");
    assert!(table.contains("not serving control: running (pid "), "{table}");

    let mut follow = d.spawn("ctl", &["logs", "cam0", "ticker", "--follow"]);
    let first: u64 = follow
        .wait_stdout(DEADLINE, |l| l.starts_with("tick "))
        .trim_start_matches("tick ")
        .parse()
        .expect("tick number");
    follow.wait_stdout(DEADLINE, |l| l.strip_prefix("tick ").and_then(|n| n.parse::<u64>().ok()) >= Some(first + 3));
    assert_eq!(follow.terminate(), Some(0), "{}", follow.stderr_text());

    let algo = pid(&status, "algo").expect("algo pid");
    up.wait_stderr(DEADLINE, "\"tick 3\"");
    assert_eq!(up.terminate(), Some(0), "{}", up.stderr_text());
    let log = up.stderr_text();
    let lines: Vec<Value> =
        log.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}"))).collect();
    let find = |pred: &dyn Fn(&Value) -> bool| lines.iter().find(|l| pred(l)).cloned();
    let plain = find(&|l| l["message"] == "plain words").expect("the reader's stderr line");
    assert_eq!(
        (&plain["deployment"], &plain["camera"], &plain["role"], &plain["pid"]),
        (&Value::from(d.name.as_str()), &Value::from("cam0"), &Value::from("ticker"), &Value::from(ticker)),
        "{plain}"
    );
    assert_eq!((&plain["level"], &plain["stream"]), (&Value::from("warn"), &Value::from("stderr")), "{plain}");
    let stdout = find(&|l| l["message"] == "on stdout").expect("the reader's stdout line");
    assert_eq!(
        (&stdout["level"], &stdout["stream"], &stdout["role"]),
        (&"info".into(), &"stdout".into(), &"ticker".into())
    );
    let reading = find(&|l| l["role"] == "algo" && l["message"] == "reading frames").expect("algo's own line");
    assert_eq!(
        (&reading["deployment"], &reading["pid"]),
        (&Value::from(d.name.as_str()), &Value::from(algo)),
        "{reading}"
    );
    d.assert_no_leftovers();
}

/// With two cameras, `ctl stop cam0` ends cam0's capture and the supervisor stops its readers
/// but goes on for cam1; `ctl start cam0 capture` brings back capture and the readers stopped
/// with it, and frames flow again.
#[test]
fn starting_a_stopped_capture_brings_back_its_readers() {
    let body = format!("{}\n{}", synthetic_camera("cam0", 320, 240, 30), synthetic_camera("cam1", 320, 240, 30));
    let d = TestDeployment::new(&body);
    let mut up = d.spawn("ctl", &["up"]);
    let cam1 = |s: &Value, role: &str| process_status(s, "cam1", role)["frames"].as_u64().unwrap_or(0);
    let status = d.wait_status(|s| frames(s, "algo") > 5 && cam1(s, "algo") > 5);
    let (capture_before, algo_before) = (pid(&status, "capture").expect("pid"), pid(&status, "algo").expect("pid"));
    let (code, out, err) = d.ctl(&["stop", "cam0", "--timeout", "10"]);
    assert_eq!(code, Some(0), "{out}\n{err}");
    let status = d
        .wait_status(|s| supervisor(s, "capture")["state"] == "stopped" && supervisor(s, "algo")["state"] == "stopped");
    assert!(
        supervisor(&status, "algo")["summary"]
            .as_str()
            .is_some_and(|t| t.starts_with("stopped with its camera's capture")),
        "{status}"
    );
    assert!(up.child.try_wait().expect("try_wait").is_none(), "ctl up ended with cam1 running");

    let (code, out, err) = d.ctl(&["start", "cam0", "capture", "--timeout", "10"]);
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert!(out.contains("cam0: capture started (pid ") && out.contains("cam0: algo started (pid "), "{out}");
    d.wait_status(|s| {
        pid(s, "capture").is_some_and(|p| p != capture_before)
            && pid(s, "algo").is_some_and(|p| p != algo_before)
            && frames(s, "algo") > 5
            && cam1(s, "algo") > 5
    });
    assert_eq!(up.terminate(), Some(0), "{}", up.stderr_text());
    d.assert_no_leftovers();
}
