//! Issue 3: commands and status over iceoryx2 request/response (`ctl`), command state that
//! survives restarts, malformed requests, and the supervisor (`ctl up`).

use std::time::{Duration, Instant};

use framebus_common::control::{code, ControlReply, ControlRequest, CONTROL_PROTOCOL_VERSION};
use framebus_common::ipc::{connect_control, create_named_node, DeploymentGuard};
use framebus_common::names::ProcessRole;
use framebus_e2e::{pid_alive, process_status, synthetic_camera, Proc, TestDeployment, DEADLINE};
use serde_json::Value;

fn flag(status: &Value, role: &str, name: &str) -> Option<bool> {
    process_status(status, "cam0", role)[name].as_bool()
}

fn pid_of(status: &Value, role: &str) -> u64 {
    process_status(status, "cam0", role)["pid"].as_u64().unwrap_or_else(|| panic!("no {role} pid in {status}"))
}

/// `ctl record on|off` and `ctl preview on|off` reach every process of the camera (status shows
/// the flags), and a killed, restarted process resumes with the recorded flags.
#[test]
fn ctl_toggles_preview_and_saving_and_the_flags_survive_a_restart() {
    let d = TestDeployment::new(&synthetic_camera("cam0", 320, 240, 60));
    let mut capture = d.spawn("capture", &[]);
    let mut algo = d.spawn("algo", &[]);
    // A generous timeout: ctl waits for both control services to appear.
    let (code, out, err) = d.ctl(&["record", "on", "cam0", "--timeout", "10"]);
    assert_eq!(code, Some(0), "stdout:\n{out}\nstderr:\n{err}");
    let (code, out, err) = d.ctl(&["preview", "off", "cam0", "--json"]);
    assert_eq!(code, Some(0), "stdout:\n{out}\nstderr:\n{err}");
    let reply: Value = serde_json::from_str(&out).expect("ctl --json prints JSON");
    assert_eq!(reply["recorded"]["preview"], false, "{reply}");
    assert_eq!(reply["recorded"]["saving"], true, "{reply}");

    let status = d.wait_status(|s| flag(s, "algo", "saving").is_some() && flag(s, "capture", "saving").is_some());
    for role in ["capture", "algo"] {
        assert_eq!(flag(&status, role, "saving"), Some(true), "{role}: {status}");
        assert_eq!(flag(&status, role, "preview"), Some(false), "{role}: {status}");
    }
    let old_algo = pid_of(&status, "algo");

    algo.kill9();
    let mut algo = d.spawn("algo", &[]);
    let status = d.wait_status(|s| process_status(s, "cam0", "algo")["pid"].as_u64().is_some_and(|p| p != old_algo));
    assert_eq!(flag(&status, "algo", "saving"), Some(true), "restarted algo lost the saving flag: {status}");
    assert_eq!(flag(&status, "algo", "preview"), Some(false), "restarted algo lost the preview flag: {status}");

    let (code, _, err) = d.ctl(&["record", "off", "cam0"]);
    assert_eq!(code, Some(0), "{err}");
    let status = d.wait_status(|_| true);
    assert_eq!(flag(&status, "algo", "saving"), Some(false), "{status}");
    assert_eq!(flag(&status, "capture", "saving"), Some(false), "{status}");

    assert_eq!(algo.terminate(), Some(0));
    assert_eq!(capture.terminate(), Some(0));
    d.assert_no_leftovers();
}

/// `ctl stop <camera>` makes capture exit with code 0, and capture's status reports the
/// effective format and frame rate while it runs.
#[test]
fn ctl_stop_makes_capture_exit_cleanly() {
    let d = TestDeployment::new(&synthetic_camera("cam0", 320, 240, 50));
    let mut capture = d.spawn("capture", &[]);
    let status = d.wait_status(|s| process_status(s, "cam0", "capture")["frames"].as_u64() > Some(0));
    let cap = process_status(&status, "cam0", "capture");
    assert_eq!(cap["format"]["width"], 320, "{cap}");
    assert_eq!(cap["format"]["height"], 240, "{cap}");
    assert_eq!(cap["format"]["fourcc"], "BGR3", "{cap}");
    assert_eq!(cap["target_fps"].as_f64(), Some(50.0), "{cap}");
    assert_eq!(cap["state"], "running", "{cap}");

    let (code, out, err) = d.ctl(&["stop", "cam0", "--timeout", "10"]);
    assert_eq!(code, Some(0), "stdout:\n{out}\nstderr:\n{err}");
    assert!(out.contains("stopped"), "{out}");
    assert_eq!(capture.wait_exit(DEADLINE), Some(0), "{}", capture.stderr_text());
    d.assert_no_leftovers();
}

/// `ctl status | head -1`: stdout closed before ctl prints. ctl exits 0 without a panic message
/// and leaves nothing behind (before: "failed printing to stdout: Broken pipe" with a backtrace).
#[test]
fn ctl_whose_stdout_is_closed_exits_quietly_and_cleanly() {
    let d = TestDeployment::new(&synthetic_camera("cam0", 320, 240, 30));
    let mut capture = d.spawn("capture", &[]);
    d.wait_status(|s| process_status(s, "cam0", "capture")["frames"].as_u64() > Some(0));
    for args in [&["status"][..], &["status", "--json"][..], &["preview", "on", "cam0"][..]] {
        let (read_end, write_end) = std::io::pipe().expect("pipe");
        drop(read_end);
        let out = std::process::Command::new(framebus_e2e::bin("ctl"))
            .arg("--config")
            .arg(&d.config)
            .args(args)
            .stdout(write_end)
            .stderr(std::process::Stdio::piped())
            .output()
            .expect("ctl runs");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "ctl {args:?}: {err}");
        assert!(!err.contains("panicked"), "ctl {args:?}: {err}");
    }
    let (code, out, err) = d.ctl(&["stop", "cam0"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert_eq!(capture.wait_exit(DEADLINE), Some(0), "{}", capture.stderr_text());
    d.assert_no_leftovers();
}

/// With nothing running, `ctl stop` and `ctl status` give up after their timeout, exit 1 and
/// name the service they tried; ctl leaves nothing behind.
#[test]
fn ctl_against_a_missing_target_fails_within_the_timeout_naming_the_service() {
    let d = TestDeployment::new(&synthetic_camera("cam0", 320, 240, 30));
    let started = Instant::now();
    let (code, _, err) = d.ctl(&["stop", "cam0", "--timeout", "0.5"]);
    let took = started.elapsed();
    assert_eq!(code, Some(1), "{err}");
    let service = format!("framebus/{}/cam0/capture/control", d.name);
    assert!(err.contains(&service), "stderr does not name `{service}`:\n{err}");
    // Not a timing assertion, a hang detector: a bounded wait returns long before this.
    assert!(took < Duration::from_secs(10), "ctl stop took {took:?}");

    let (code, out, _) = d.ctl(&["status", "--timeout", "0.5"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains(&format!("framebus/{}/cam0/algo/control", d.name)), "{out}");

    let (code, out, err) = d.ctl(&["stop", "nocam"]);
    assert_eq!(code, Some(2), "{out}");
    assert!(err.contains("no camera named `nocam`"), "{err}");
    d.assert_no_leftovers();
}

/// Requests with an unknown command code, another protocol version or a bad argument, sent
/// straight over iceoryx2, get error replies, and the process keeps serving.
#[test]
fn malformed_requests_get_an_error_reply() {
    let d = TestDeployment::new(&synthetic_camera("cam0", 320, 240, 30));
    let mut capture = d.spawn("capture", &[]);
    {
        let _release = DeploymentGuard::new(&d.name);
        let node = create_named_node(&d.name, "test").expect("node");
        let until = Instant::now() + DEADLINE;
        let services = loop {
            match connect_control(&node, &d.name, "cam0", ProcessRole::Capture.name()).expect("connect") {
                Some(s) if s.has_server() => break s,
                _ => {}
            }
            assert!(Instant::now() < until, "capture never served control; {}", capture.stderr_text());
            std::thread::sleep(Duration::from_millis(20));
        };
        let client = services.requests.client_builder().create().expect("client");
        let ready = services.ready.as_ref().expect("ready event").notifier_builder().create().expect("notifier");
        let ask = |request: ControlRequest| -> ControlReply {
            let pending = client.send_copy(request).expect("send");
            let _ = ready.notify();
            let until = Instant::now() + DEADLINE;
            loop {
                if let Some(reply) = pending.receive().expect("receive") {
                    return *reply.payload();
                }
                assert!(Instant::now() < until, "no reply to {request:?}");
                std::thread::sleep(Duration::from_millis(1));
            }
        };
        let valid = ControlRequest { version: CONTROL_PROTOCOL_VERSION, command: code::STATUS, ..Default::default() };
        for (request, expected) in [
            (ControlRequest { command: 999, ..valid }, "unknown command code 999"),
            (ControlRequest { version: 77, ..valid }, "unsupported control protocol version 77"),
            (ControlRequest { command: code::SET_SAVING, argument: 9, ..valid }, "invalid argument 9"),
            (ControlRequest { command: code::SET_CONTROLS, text_len: 5000, ..valid }, "invalid text argument"),
        ] {
            let reply = ask(request);
            assert!(!reply.is_ok(), "{request:?} was accepted");
            assert!(reply.message_text().contains(expected), "{request:?}: {}", reply.message_text());
        }
        let reply = ask(ControlRequest { nonce: 42, ..valid });
        assert!(reply.is_ok(), "{}", reply.message_text());
        assert_eq!(reply.nonce, 42);
        assert_eq!(reply.status().map(|s| s.role), Some("capture".to_string()));
    }
    assert_eq!(capture.terminate(), Some(0), "{}", capture.stderr_text());
    d.assert_no_leftovers();
}

/// `ctl up`: after kill -9 of capture the supervisor restarts it and frames flow again; SIGTERM
/// to the supervisor stops every child cleanly and leaves nothing behind.
#[test]
fn supervisor_restarts_a_killed_child_and_stops_everything_on_sigterm() {
    let d = TestDeployment::new(&synthetic_camera("cam0", 320, 240, 60));
    let mut up = d.spawn("ctl", &["up"]);
    let running = |s: &Value, role: &str| process_status(s, "cam0", role)["frames"].as_u64() > Some(5);
    let status = d.wait_status(|s| running(s, "capture") && running(s, "algo"));
    let capture_pid = pid_of(&status, "capture");
    let algo_pid = pid_of(&status, "algo");

    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(capture_pid as i32, libc::SIGKILL) };
    let restarted = d.wait_status(|s| {
        let cap = process_status(s, "cam0", "capture");
        cap["pid"].as_u64().is_some_and(|p| p != capture_pid) && cap["frames"].as_u64() > Some(5)
    });
    let frames = process_status(&restarted, "cam0", "capture")["frames"].as_u64().unwrap_or(0);
    let new_capture = pid_of(&restarted, "capture");
    // Frames keep flowing through to algo, which survived the capture restart.
    let algo_frames = process_status(&restarted, "cam0", "algo")["frames"].as_u64().unwrap_or(0);
    let later = d.wait_status(|s| {
        process_status(s, "cam0", "capture")["frames"].as_u64() > Some(frames)
            && process_status(s, "cam0", "algo")["frames"].as_u64() > Some(algo_frames)
    });
    assert_eq!(pid_of(&later, "algo"), algo_pid, "algo should not have been restarted: {later}");
    up.wait_stderr(DEADLINE, "restart 1 of 5");

    assert_eq!(up.terminate(), Some(0), "{}", up.stderr_text());
    for pid in [new_capture, algo_pid] {
        assert!(!pid_alive(pid as u32), "child {pid} outlived the supervisor");
    }
    d.assert_no_leftovers();
}

/// `ctl stop` under `ctl up`: capture exits cleanly and is not restarted, the camera's readers
/// are stopped with it, and the supervisor, with nothing left to watch, exits 0.
#[test]
fn supervisor_ends_when_its_only_camera_is_stopped() {
    let d = TestDeployment::new(&synthetic_camera("cam0", 320, 240, 60));
    let mut up = d.spawn("ctl", &["up"]);
    let status = d.wait_status(|s| process_status(s, "cam0", "algo")["frames"].as_u64() > Some(5));
    let algo_pid = pid_of(&status, "algo");
    let (code, _, err) = d.ctl(&["stop", "cam0"]);
    assert_eq!(code, Some(0), "ctl stop: {err}");
    assert_eq!(up.wait_exit(DEADLINE), Some(0), "{}", up.stderr_text());
    up.wait_stderr(DEADLINE, "capture has ended: stopping the camera's readers");
    assert!(!pid_alive(algo_pid as u32), "algo {algo_pid} outlived its camera");
    d.assert_no_leftovers();
}

/// `ctl up` with a capture that cannot start (an unreadable video file) says why and exits
/// non-zero, leaving nothing behind.
#[test]
fn supervisor_fails_when_capture_cannot_start() {
    let d = TestDeployment::new("");
    let video = d.dir.path().join("broken.avi");
    std::fs::write(&video, b"this is not a video").expect("write file");
    let body = format!(
        "[[camera]]\nname = \"cam0\"\nwidth = 320\nheight = 240\n[camera.source]\nkind = \"file\"\npath = \"{}\"\n[camera.algo]\n",
        video.display()
    );
    std::fs::write(&d.config, format!("[deployment]\nname = \"{}\"\nstate-dir = \"state\"\n\n{body}", d.name))
        .expect("config");
    let mut up: Proc = d.spawn("ctl", &["up"]);
    let code = up.wait_exit(DEADLINE);
    assert!(code.is_some_and(|c| c != 0), "ctl up exited {code:?}; stderr:\n{}", up.stderr_text());
    up.wait_stderr(DEADLINE, "capture of camera `cam0` could not start");
    d.assert_no_leftovers();
}

/// A client that gives up on a request while the process is paused and goes away leaves
/// nothing open in the process: after eight such requests, algo's descriptors come back to
/// where they were. (iceoryx2 used to keep each gone client's data segment and connection
/// open for good, two descriptors per request: the soak's growth under bursts of `ctl`.)
#[test]
fn requests_abandoned_by_their_client_leave_no_descriptors_open() {
    let d = TestDeployment::new(&synthetic_camera("cam0", 320, 240, 30));
    let mut capture = d.spawn("capture", &[]);
    let mut algo = d.spawn("algo", &[]);
    let status = d.wait_status(|s| process_status(s, "cam0", "algo")["frames"].as_u64() > Some(5));
    let algo_pid = pid_of(&status, "algo");
    let descriptors = || std::fs::read_dir(format!("/proc/{algo_pid}/fd")).map(|e| e.count()).unwrap_or(0);
    let valid = ControlRequest { version: CONTROL_PROTOCOL_VERSION, command: code::STATUS, ..Default::default() };
    let (before, after) = {
        let _release = DeploymentGuard::new(&d.name);
        let node = create_named_node(&d.name, "test").expect("node");
        let services = connect_control(&node, &d.name, "cam0", ProcessRole::Algo.name())
            .expect("connect")
            .expect("algo serves control");
        let ready = services.ready.as_ref().expect("ready event").notifier_builder().create().expect("notifier");
        // A round trip with a fresh client: algo is connected to it both ways afterwards.
        let connected_client = || {
            let client = services.requests.client_builder().create().expect("client");
            let pending = client.send_copy(valid).expect("send");
            let _ = ready.notify();
            let until = Instant::now() + DEADLINE;
            while pending.receive().expect("receive").is_none() {
                assert!(Instant::now() < until, "algo never replied; {}", algo.stderr_text());
                std::thread::sleep(Duration::from_millis(2));
            }
            drop(pending);
            client
        };
        drop(connected_client());
        let before = descriptors();
        for _ in 0..8 {
            let client = connected_client();
            algo.signal(libc::SIGSTOP);
            let pending = client.send_copy(valid).expect("send");
            let _ = ready.notify();
            // The client gives up (as ctl does at its deadline) and goes away unanswered.
            drop(pending);
            drop(client);
            algo.signal(libc::SIGCONT);
        }
        // Algo has served the abandoned requests once it answers a new one.
        drop(connected_client());
        let until = Instant::now() + Duration::from_secs(10);
        while descriptors() > before + 2 && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(50));
        }
        (before, descriptors())
    };
    assert!(after <= before + 2, "algo's descriptors grew from {before} to {after} after 8 abandoned requests");
    assert_eq!(algo.terminate(), Some(0), "{}", algo.stderr_text());
    assert_eq!(capture.terminate(), Some(0));
    d.assert_no_leftovers();
}

/// `ctl` finds its config without `--config`: `FRAMEBUS_CONFIG`, else `./framebus.toml`, else
/// `configs/default.toml`. With none of them it exits 2 saying what it looked for, and when the
/// deployment it found is not running it names that config and where it came from.
#[test]
fn ctl_finds_its_config_without_the_flag() {
    let d = TestDeployment::new(&synthetic_camera("cam0", 320, 240, 30));
    let mut capture = d.spawn("capture", &[]);
    let mut algo = d.spawn("algo", &[]);
    let status = d.wait_status(|s| ["capture", "algo"].iter().all(|r| process_status(s, "cam0", r)["pid"].is_u64()));
    let capture_pid = pid_of(&status, "capture");
    let ctl = |folder: &std::path::Path, env: Option<&std::path::Path>| -> (Option<i32>, String, String) {
        let mut command = std::process::Command::new(framebus_e2e::bin("ctl"));
        command.args(["status", "--json", "--timeout", "2"]).current_dir(folder).env_remove("FRAMEBUS_CONFIG");
        if let Some(config) = env {
            command.env("FRAMEBUS_CONFIG", config);
        }
        let out = command.output().expect("run ctl");
        (out.status.code(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
    };
    let pid_in = |out: &str| -> Option<u64> {
        let status: Value = serde_json::from_str(out).ok()?;
        process_status(&status, "cam0", "capture")["pid"].as_u64()
    };
    let empty = tempfile::tempdir().expect("temp dir");

    let (code, out, err) = ctl(empty.path(), Some(&d.config));
    assert_eq!((code, pid_in(&out)), (Some(0), Some(capture_pid)), "FRAMEBUS_CONFIG: {out}\n{err}");

    let (code, _, err) = ctl(empty.path(), None);
    assert_eq!(code, Some(2), "no config anywhere: {err}");
    assert!(err.contains("no deployment config") && err.contains("framebus.toml"), "{err}");

    let local = tempfile::tempdir().expect("temp dir");
    let text = std::fs::read_to_string(&d.config).expect("config");
    std::fs::write(local.path().join("framebus.toml"), &text).expect("framebus.toml");
    let (code, out, err) = ctl(local.path(), None);
    assert_eq!((code, pid_in(&out)), (Some(0), Some(capture_pid)), "./framebus.toml: {out}\n{err}");

    // Another deployment's framebus.toml: not running, and ctl says which config it used.
    let other = text.replace(&format!("name = \"{}\"", d.name), &format!("name = \"{}x\"", d.name));
    std::fs::write(local.path().join("framebus.toml"), other).expect("framebus.toml");
    let (code, _, err) = ctl(local.path(), None);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains(&format!("deployment `{}x` from the config framebus.toml", d.name)), "{err}");

    assert_eq!(algo.terminate(), Some(0));
    assert_eq!(capture.terminate(), Some(0));
    d.assert_no_leftovers();
}
