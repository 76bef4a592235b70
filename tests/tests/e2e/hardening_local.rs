//! Issue 17, local-host items: one supervisor per deployment (item 7), /dev/shm full is an
//! error and never SIGBUS (item 6), no iceoryx2 folder another user controls (item 8), files
//! the recorder appends to opened safely and `ctl events` that skips undecodable lines (item 9),
//! and the small ones (item 12: systemd escaping, `preview off` racing `state reset`).

use std::time::{Duration, Instant};

use framebus_e2e::{pid_alive, process_status, synthetic_camera, Proc, TestDeployment, DEADLINE};
use serde_json::Value;

fn pid_of(status: &Value, role: &str) -> u64 {
    process_status(status, "cam0", role)["pid"].as_u64().unwrap_or_else(|| panic!("no pid for {role}: {status}"))
}

fn frames(status: &Value, role: &str) -> u64 {
    process_status(status, "cam0", role)["frames"].as_u64().unwrap_or(0)
}

// ---------------------------------------------------------------------------------------------
// Item 7: one supervisor per deployment.

/// A second `ctl up` of a running deployment exits non-zero within 2 s naming the first
/// supervisor's pid, starts nothing and leaves every process of the first in place; once the
/// first is killed with SIGKILL the kernel has released the lock and a new `ctl up` runs.
#[test]
fn a_second_supervisor_of_a_deployment_exits_at_once() {
    let d = TestDeployment::new(&synthetic_camera("cam0", 320, 240, 30));
    let mut first = d.spawn("ctl", &["up"]);
    let before = d.wait_status(|s| frames(s, "capture") > 5 && frames(s, "algo") > 5);
    let (capture, algo) = (pid_of(&before, "capture"), pid_of(&before, "algo"));

    let started = Instant::now();
    let mut second = d.spawn("ctl", &["up"]);
    let code = second.wait_exit(Duration::from_secs(2));
    assert!(code.is_some_and(|c| c != 0), "second ctl up exited {code:?}:\n{}", second.stderr_text());
    assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
    let err = second.stderr_text();
    let want = format!("deployment {} is already supervised by pid {}", d.name, first.child.id());
    assert!(err.contains(&want), "want `{want}` in:\n{err}");
    assert!(!err.contains("started"), "the second supervisor started something:\n{err}");

    // The first keeps every process, and they keep working.
    let after = d.wait_status(|s| frames(s, "capture") > frames(&before, "capture") + 10);
    assert_eq!((pid_of(&after, "capture"), pid_of(&after, "algo")), (capture, algo), "{after}");
    assert!(frames(&after, "algo") > frames(&before, "algo"), "{after}");
    assert!(!first.stderr_text().contains("restart"), "{}", first.stderr_text());

    // kill -9: no clean-up runs, the kernel releases the lock; children follow (PDEATHSIG).
    first.kill9();
    let until = Instant::now() + DEADLINE;
    while pid_alive(capture as u32) || pid_alive(algo as u32) {
        assert!(Instant::now() < until, "children outlived their supervisor");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut third: Proc = d.spawn("ctl", &["up"]);
    d.wait_status(|s| frames(s, "capture") > 5 && pid_of(s, "capture") != capture);
    assert_eq!(third.terminate(), Some(0), "{}", third.stderr_text());
    d.assert_no_leftovers();
}
