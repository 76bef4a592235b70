//! Signals (issue 11, item 1): a pause is not a shutdown. SIGSTOP (or Ctrl-Z's SIGTSTP) and
//! SIGCONT leave every process running, also under `ctl up`; only SIGINT/SIGTERM and `ctl stop`
//! end one.

use std::time::Duration;

use framebus_e2e::{pid_alive, process_status, TestDeployment, DEADLINE};
use serde_json::Value;

const PREVIEW: &str = "[camera.preview]\nlisten = \"127.0.0.1:0\"\nstats-interval-secs = 0.25\n";

fn camera() -> String {
    format!(
        "[[camera]]\nname = \"cam0\"\nwidth = 320\nheight = 240\nfps = 50\n\n[camera.source]\nkind = \"synthetic\"\n\n[camera.algo]\nstats-interval-secs = 0.25\n\n{PREVIEW}"
    )
}

fn frames(status: &Value, role: &str) -> u64 {
    process_status(status, "cam0", role)["frames"].as_u64().unwrap_or(0)
}

fn pid(status: &Value, role: &str) -> u32 {
    process_status(status, "cam0", role)["pid"].as_u64().unwrap_or(0) as u32
}

/// Pauses `pid` for a second with `stop` (SIGSTOP or SIGTSTP), continues it, and checks that
/// every role still runs with the same pid and makes progress.
fn pause_and_continue(d: &TestDeployment, pid: u32, stop: i32, roles: &[&str]) {
    let before = d.wait_status(|s| roles.iter().all(|r| frames(s, r) > 0));
    let pids: Vec<u32> = roles.iter().map(|r| self::pid(&before, r)).collect();
    // SAFETY: kill has no memory-safety preconditions; the pids are our children.
    unsafe { libc::kill(pid as i32, stop) };
    // The pause itself is the stimulus (how long a user keeps a process stopped), not a wait
    // for something to happen.
    std::thread::sleep(Duration::from_secs(1));
    // SAFETY: as above.
    unsafe { libc::kill(pid as i32, libc::SIGCONT) };
    let after = d.wait_status(|s| roles.iter().all(|r| frames(s, r) > frames(&before, r) + 10));
    for (role, old) in roles.iter().zip(pids) {
        assert_eq!(self::pid(&after, role), old, "{role} was replaced after a pause of pid {pid}: {after}");
        assert!(pid_alive(old), "{role} (pid {old}) is gone after a pause of pid {pid}");
    }
}

/// capture, algo and preview started by hand survive SIGSTOP/SIGCONT and SIGTSTP/SIGCONT.
#[test]
fn paused_and_continued_processes_keep_running() {
    let d = TestDeployment::new(&camera());
    let mut capture = d.spawn("capture", &[]);
    let mut algo = d.spawn("algo", &[]);
    let mut preview = d.spawn("preview", &[]);
    let roles = ["capture", "algo", "preview"];
    for proc in [&capture, &algo, &preview] {
        for stop in [libc::SIGSTOP, libc::SIGTSTP] {
            pause_and_continue(&d, proc.child.id(), stop, &roles);
        }
    }
    for proc in [&mut preview, &mut algo, &mut capture] {
        assert_eq!(proc.terminate(), Some(0), "{}: {}", proc.name, proc.stderr_text());
    }
    d.assert_no_leftovers();
}

/// Under `ctl up`, pausing capture does not stop the deployment and nothing is restarted.
#[test]
fn a_paused_capture_under_the_supervisor_keeps_the_deployment_up() {
    let d = TestDeployment::new(&camera());
    let mut up = d.spawn("ctl", &["up"]);
    let status = d.wait_status(|s| ["capture", "algo", "preview"].iter().all(|r| frames(s, r) > 0));
    pause_and_continue(&d, pid(&status, "capture"), libc::SIGSTOP, &["capture", "algo", "preview"]);
    assert!(!up.stderr_text().contains("restart"), "the supervisor restarted something:\n{}", up.stderr_text());
    assert_eq!(up.terminate(), Some(0), "{}", up.stderr_text());
    assert_eq!(up.wait_exit(DEADLINE), Some(0));
    d.assert_no_leftovers();
}
