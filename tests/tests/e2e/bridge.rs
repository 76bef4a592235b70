//! Multi-host over Zenoh (issue 19), two deployments on this host, each with its own iceoryx2
//! root, shared-memory prefix and state folder, linked over TCP on 127.0.0.1: a site exports
//! a camera (results, raw frames downscaled at a capped rate), a viewer imports it as a camera
//! of its own that algo and the example reader read unchanged, the viewer's results travel
//! back, and the supervisor restarts a bridge killed with SIGKILL.

use framebus_e2e::{example, pid_alive, process_status, Proc, TestDeployment, DEADLINE};
use serde_json::Value;

/// A TCP port free right now on 127.0.0.1 (the site's Zenoh listener).
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address").port()
}

/// The site: a 640x480 synthetic camera at 30 fps with algo, exporting results and raw frames
/// (at most 15 fps, downscaled to 320x240), taking results back, listening on `port`.
fn site(port: u16) -> TestDeployment {
    TestDeployment::new(&format!(
        "[zenoh]\nsite = \"hq\"\nlisten = [\"tcp/127.0.0.1:{port}\"]\n\n[[camera]]\nname = \"cam0\"\nwidth = 640\nheight = 480\nfps = 30\n[camera.source]\nkind = \"synthetic\"\n[camera.algo]\nstats-interval-secs = 0.5\n[camera.export]\nresults-back = true\n[camera.export.frames]\nmax-fps = 15\nwidth = 320\nheight = 240\n"
    ))
}

/// The viewer: imports the site's `cam0` as `site-cam0` (320x240 BGR3) with an algo of its own.
fn viewer(port: u16, site: &str) -> TestDeployment {
    TestDeployment::new(&format!(
        "[zenoh]\nsite = \"desk\"\nlisten = []\nconnect = [\"tcp/127.0.0.1:{port}\"]\n\n[[remote-camera]]\nname = \"site-cam0\"\nsite = \"hq\"\ndeployment = \"{site}\"\ncamera = \"cam0\"\nwidth = 320\nheight = 240\nfps = 15\n[remote-camera.algo]\nstats-interval-secs = 0.5\n"
    ))
}

fn frames(status: &Value, camera: &str, role: &str) -> u64 {
    process_status(status, camera, role)["frames"].as_u64().unwrap_or(0)
}

/// The figure `name` in a status message like `... results in 12 back 3`.
fn figure(message: &str, name: &str) -> u64 {
    message
        .split(name)
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.trim_end_matches([',', ';']).parse().ok())
        .unwrap_or(0)
}

/// A site's camera read on the viewer as a local camera: the viewer's algo and the example
/// reader get 320x240 frames with ids rising by one; the site's results arrive, the viewer's
/// go back; both bridges show in `ctl status`; a bridge killed with SIGKILL is restarted and
/// frames flow again; everything stops cleanly and leaves nothing behind.
#[test]
fn a_remote_camera_reads_like_a_local_one_and_results_travel_both_ways() {
    let port = free_port();
    let site = site(port);
    let viewer = viewer(port, &site.name);
    let mut site_up = site.spawn("ctl", &["up"]);
    let mut viewer_up = viewer.spawn("ctl", &["up"]);

    // The viewer's algo reads the imported camera.
    let status = viewer.wait_status(|s| frames(s, "site-cam0", "algo") > 20);
    let import = process_status(&status, "site-cam0", "capture");
    assert_eq!(import["state"], "running", "{status}");
    assert_eq!(import["format"]["width"], 320, "{status}");
    let message = import["message"].as_str().unwrap_or_default();
    assert!(message.contains("remote hq/") && message.contains("link up"), "{message}");

    // The example reader (a program on the framebus crate) reads it unchanged.
    let mut reader = Proc::spawn_command(
        "reader example",
        std::process::Command::new(example("reader")).args([
            "--config",
            viewer.config.to_str().expect("utf-8"),
            "--camera",
            "site-cam0",
            "--frames",
            "20",
        ]),
    );
    let mut ids = Vec::new();
    while ids.len() < 20 {
        let line = reader.wait_stdout(DEADLINE, |l| l.starts_with("frame "));
        assert!(line.contains("320x240 230400 bytes"), "{line}");
        let id: u64 = line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).expect("frame id");
        ids.push(id);
    }
    assert!(ids.windows(2).all(|w| w[1] > w[0]), "ids must rise: {ids:?}");
    assert_eq!(reader.wait_exit(DEADLINE), Some(0), "{}", reader.stderr_text());

    // The site's algo results arrive on the viewer; the viewer's algo results go back.
    let status = viewer.wait_status(|s| {
        let message = process_status(s, "site-cam0", "capture")["message"].as_str().unwrap_or_default();
        figure(message, "results in") > 10 && figure(message, "back") > 10
    });
    let site_status = site.wait_status(|s| {
        let message = process_status(s, "_deployment", "bridge")["message"].as_str().unwrap_or_default();
        figure(message, "back") > 10 && figure(message, "frames") > 10
    });
    let bridge = process_status(&site_status, "_deployment", "bridge");
    assert!(bridge["message"].as_str().unwrap_or_default().contains("peers 1"), "{site_status}");
    // The site's bridge reads frames as a reader of the camera, at its max-fps.
    assert!(frames(&site_status, "cam0", "bridge") > 10, "{site_status}");
    assert!(frames(&status, "site-cam0", "capture") > 20, "{status}");

    // kill -9 of the site's bridge: the supervisor restarts it, and the viewer gets frames again.
    let pid = process_status(&site_status, "_deployment", "bridge")["pid"].as_u64().expect("bridge pid");
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    let restarted = site.wait_status(|s| {
        let b = process_status(s, "_deployment", "bridge");
        b["pid"].as_u64().is_some_and(|p| p != pid) && figure(b["message"].as_str().unwrap_or_default(), "frames") > 5
    });
    let before = frames(&viewer.wait_status(|_| true), "site-cam0", "capture");
    viewer.wait_status(|s| frames(s, "site-cam0", "capture") > before + 10);
    site_up.wait_stderr(DEADLINE, "restart 1 of");

    let new_pid = process_status(&restarted, "_deployment", "bridge")["pid"].as_u64().unwrap_or(0);
    assert_eq!(viewer_up.terminate(), Some(0), "{}", viewer_up.stderr_text());
    assert_eq!(site_up.terminate(), Some(0), "{}", site_up.stderr_text());
    assert!(!pid_alive(new_pid as u32), "the bridge outlived its supervisor");
    viewer.assert_no_leftovers();
    site.assert_no_leftovers();
}
