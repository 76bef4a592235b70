//! Issues 3 + 4 wired together: `ctl preview|record` drive the real preview and recorder
//! processes over their control services, `ctl status` shows what they do, and the recorded
//! saving flag survives a `kill -9` of the recorder (restarted by `ctl up`).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use framebus_e2e::{cpu_time, ffprobe_frames, http_get, pid_alive, process_status, Proc, TestDeployment, DEADLINE};
use serde_json::Value;

/// A synthetic 320×240 camera at `fps` with the given reader tables appended.
fn camera(fps: u32, tables: &str) -> String {
    format!(
        "[[camera]]\nname = \"cam0\"\nwidth = 320\nheight = 240\nfps = {fps}\n\n[camera.source]\nkind = \"synthetic\"\n\n{tables}"
    )
}

const PREVIEW: &str = "[camera.preview]\nlisten = \"127.0.0.1:0\"\nstats-interval-secs = 0.25\nfps = 10\n";

/// A recorder table writing to `<test dir>/rec`, saving initially `enabled`.
fn recorder(enabled: bool) -> String {
    format!(
        "[camera.recorder]\ndirectory = \"rec\"\nenabled = {enabled}\nmin-free-mb = 1\nstats-interval-secs = 0.25\n"
    )
}

fn role<'a>(status: &'a Value, role: &str) -> &'a Value {
    process_status(status, "cam0", role)
}

/// Runs ctl and asserts it exits 0.
fn ctl_ok(d: &TestDeployment, args: &[&str]) -> String {
    let mut all = args.to_vec();
    all.extend_from_slice(&["--timeout", "10"]);
    let (code, out, err) = d.ctl(&all);
    assert_eq!(code, Some(0), "ctl {args:?}\nstdout:\n{out}\nstderr:\n{err}");
    out
}

/// Sidecar indexes (`*.jsonl`) in `dir`, sorted by name (= by start time).
fn sidecars(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|e| e == "jsonl")).collect()
        })
        .unwrap_or_default();
    found.sort();
    found
}

fn is_partial(path: &Path) -> bool {
    path.to_string_lossy().contains(".partial.")
}

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path).unwrap_or_default().lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
}

fn frame_lines(path: &Path) -> usize {
    lines(path).iter().filter(|l| l["type"] == "frame").count()
}

/// Waits (bounded) until a sidecar in `dir` satisfies `pred`; returns it.
fn wait_sidecar(dir: &Path, what: &str, mut pred: impl FnMut(&Path) -> bool) -> PathBuf {
    let until = Instant::now() + DEADLINE;
    loop {
        if let Some(found) = sidecars(dir).into_iter().find(|p| pred(p)) {
            return found;
        }
        assert!(
            Instant::now() < until,
            "no sidecar {what} in {} within {DEADLINE:?}: {:?}",
            dir.display(),
            sidecars(dir)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `ctl preview off` makes the preview stop producing images (previews counter frozen,
/// snapshot 503, CPU near zero while frames flow, status shows it off); `ctl preview on`
/// brings images back.
#[test]
fn ctl_preview_off_stops_images_and_on_brings_them_back() {
    let d = TestDeployment::new(&camera(60, PREVIEW));
    let mut capture = d.spawn("capture", &[]);
    let mut preview = d.spawn("preview", &["--json"]);
    let url = preview.wait_json(DEADLINE, |v| v["event"] == "listening")["url"].as_str().expect("url").to_string();
    preview.wait_json(DEADLINE, |v| v["previews"].as_u64() >= Some(2));

    ctl_ok(&d, &["preview", "off", "cam0"]);
    let off = preview.wait_json(DEADLINE, |v| v["state"] == "off");
    let (previews, frames) = (off["previews"].as_u64().expect("previews"), off["frames"].as_u64().expect("frames"));
    let pid = preview.child.id();
    let (cpu0, t0) = (cpu_time(pid), Instant::now());
    let later = preview.wait_json(DEADLINE, |v| v["frames"].as_u64() >= Some(frames + 120));
    let (cpu, wall) = (cpu_time(pid) - cpu0, t0.elapsed());
    assert_eq!(later["previews"].as_u64(), Some(previews), "images were made while off: {later}");
    let share = cpu.as_secs_f64() / wall.as_secs_f64();
    eprintln!("preview off by ctl: {cpu:?} CPU in {wall:?} ({:.2}% of a core)", share * 100.0);
    assert!(share < 0.05, "preview off used {cpu:?} CPU in {wall:?}");
    let (code, _, _) = http_get(&url, "/snapshot.jpg");
    assert_eq!(code, 503, "snapshot while off");
    let status = d.wait_status(|s| role(s, "preview")["preview"] == false);
    assert_eq!(role(&status, "preview")["activity"], "off", "{status}");
    assert_eq!(role(&status, "capture")["preview"], false, "capture reports the flag: {status}");
    assert!(role(&status, "preview")["frames"].as_u64() > Some(frames), "{status}");

    ctl_ok(&d, &["preview", "on", "cam0"]);
    preview.wait_json(DEADLINE, |v| v["previews"].as_u64() >= Some(previews + 3));
    let (code, head, body) = http_get(&url, "/snapshot.jpg");
    assert_eq!(code, 200, "{head}");
    assert!(body.starts_with(&[0xff, 0xd8]), "snapshot is not a JPEG");
    let status = d.wait_status(|s| role(s, "preview")["preview"] == true);
    let row = role(&status, "preview");
    assert_eq!(row["activity"], "on", "{status}");
    assert!(row["message"].as_str().is_some_and(|m| m.contains(&url)), "status names the URL: {row}");

    assert_eq!(preview.terminate(), Some(0), "{}", preview.stderr_text());
    assert_eq!(capture.terminate(), Some(0));
    d.assert_no_leftovers();
}

/// A fresh deployment starts from the config (saving off); `ctl record on` makes the recorder
/// write a segment, `ctl record off` finalizes it (it plays, with as many frames as its
/// sidecar lists), and `ctl status --json` shows the flag and the recorder's state throughout.
#[test]
fn ctl_record_on_writes_a_segment_and_off_finalizes_it() {
    let d = TestDeployment::new(&camera(30, &recorder(false)));
    let rec = d.dir.path().join("rec");
    let mut capture = d.spawn("capture", &[]);
    let mut recorder = d.spawn("recorder", &[]);
    let status = d.wait_status(|s| role(s, "recorder")["frames"].as_u64() > Some(5));
    let row = role(&status, "recorder");
    assert_eq!((row["saving"].as_bool(), row["activity"].as_str()), (Some(false), Some("off")), "{row}");
    assert!(sidecars(&rec).is_empty(), "wrote while off: {:?}", sidecars(&rec));

    let out = ctl_ok(&d, &["record", "on", "cam0", "--json"]);
    let reply: Value = serde_json::from_str(&out).expect("ctl --json prints JSON");
    assert_eq!(reply["recorded"]["saving"], true, "{reply}");
    assert_eq!(reply["actor"]["configured"], true, "{reply}");
    let partial = wait_sidecar(&rec, "with 20 frames", |p| is_partial(p) && frame_lines(p) >= 20);
    let status = d.wait_status(|s| role(s, "recorder")["activity"] == "recording");
    let row = role(&status, "recorder");
    assert_eq!(row["saving"], true, "{row}");
    assert_eq!(role(&status, "capture")["saving"], true, "{status}");
    assert!(row["latency_p50_us"].as_u64().is_some(), "recorder reports its write latency: {row}");
    let base = partial.file_name().and_then(|n| n.to_str()).and_then(|n| n.split(".partial").next()).expect("name");
    assert!(row["message"].as_str().is_some_and(|m| m.contains(base)), "status names the segment: {row}");

    ctl_ok(&d, &["record", "off", "cam0"]);
    let done = wait_sidecar(&rec, "finalized", |p| !is_partial(p));
    let all = lines(&done);
    let end = all.last().expect("lines");
    assert_eq!((end["type"].as_str(), end["reason"].as_str()), (Some("end"), Some("saving-off")), "{end}");
    let video = rec.join(all[0]["video"].as_str().expect("video name"));
    let frames = frame_lines(&done) as u64;
    assert!(frames >= 20);
    assert_eq!(ffprobe_frames(&video), Some(frames), "{} does not play with its {frames} frames", video.display());
    let status = d.wait_status(|s| role(s, "recorder")["activity"] == "off");
    assert_eq!(role(&status, "recorder")["saving"], false, "{status}");
    assert_eq!(role(&status, "capture")["saving"], false, "{status}");
    assert_eq!(sidecars(&rec).len(), 1, "saving off must not start another segment");

    assert_eq!(recorder.terminate(), Some(0), "{}", recorder.stderr_text());
    assert_eq!(capture.terminate(), Some(0));
    d.assert_no_leftovers();
}

/// Precedence: a flag recorded by a command wins over the config's `enabled` (also when the
/// command was given while the recorder was down); without a recorded flag, the config decides.
#[test]
fn a_recorded_flag_wins_over_the_config() {
    let d = TestDeployment::new(&camera(30, &recorder(true)));
    // Nothing runs: ctl records the flag, reports the missing processes and exits 1.
    let (code, _, err) = d.ctl(&["record", "off", "cam0", "--timeout", "0.3"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("applies when it starts"), "{err}");
    let mut capture = d.spawn("capture", &[]);
    let mut recorder = d.spawn("recorder", &["--json"]);
    let report = recorder.wait_json(DEADLINE, |v| v["frames"].as_u64() >= Some(10));
    assert_eq!((report["saving"].as_bool(), report["written"].as_u64()), (Some(false), Some(0)), "{report}");
    assert_eq!(recorder.terminate(), Some(0));

    // Forgetting the recorded flag (deleting the state file) returns to the config: saving on.
    std::fs::remove_file(d.dir.path().join("state/cam0.state")).expect("state file exists");
    let mut recorder = d.spawn("recorder", &["--json"]);
    recorder.wait_json(DEADLINE, |v| v["saving"] == true && v["written"].as_u64() >= Some(5));
    assert_eq!(recorder.terminate(), Some(0));
    assert_eq!(capture.terminate(), Some(0));
    d.assert_no_leftovers();
}

/// `ctl up` starts capture, preview and recorder (status shows all three); after `ctl record on`
/// and `kill -9` of the recorder, the supervisor restarts it and it resumes saving into a new
/// segment without any new command; SIGTERM to the supervisor finalizes that segment and stops
/// everything.
#[test]
fn recorder_killed_under_ctl_up_resumes_saving_without_a_new_command() {
    let d = TestDeployment::new(&camera(30, &format!("{PREVIEW}{}", recorder(false))));
    let rec = d.dir.path().join("rec");
    let mut up: Proc = d.spawn("ctl", &["up"]);
    let flowing = |s: &Value, r: &str| role(s, r)["frames"].as_u64() > Some(5);
    let status = d.wait_status(|s| ["capture", "preview", "recorder"].iter().all(|r| flowing(s, r)));
    assert_eq!(role(&status, "recorder")["saving"], false, "{status}");
    assert_eq!(role(&status, "preview")["preview"], true, "{status}");
    let (code, table, _) = d.ctl(&["status"]);
    assert_eq!(code, Some(0), "{table}");
    for name in ["capture", "preview", "recorder"] {
        assert!(table.lines().any(|l| l.contains(" running ") && l.contains(name)), "no {name} row:\n{table}");
    }

    ctl_ok(&d, &["record", "on", "cam0"]);
    let first = wait_sidecar(&rec, "with 10 frames", |p| is_partial(p) && frame_lines(p) >= 10);
    let status = d.wait_status(|s| role(s, "recorder")["activity"] == "recording");
    let old_pid = role(&status, "recorder")["pid"].as_u64().expect("recorder pid");
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(old_pid as i32, libc::SIGKILL) };

    let status = d.wait_status(|s| {
        let r = role(s, "recorder");
        r["pid"].as_u64().is_some_and(|p| p != old_pid) && r["activity"] == "recording"
    });
    assert_eq!(role(&status, "recorder")["saving"], true, "{status}");
    let resumed = wait_sidecar(&rec, "of the restarted recorder", |p| p != first && frame_lines(p) >= 10);
    up.wait_stderr(DEADLINE, "restart 1 of 5");
    let new_pid = role(&status, "recorder")["pid"].as_u64().expect("pid");

    assert_eq!(up.terminate(), Some(0), "{}", up.stderr_text());
    assert!(!pid_alive(new_pid as u32), "recorder outlived the supervisor");
    let finalized = PathBuf::from(resumed.to_string_lossy().replace(".partial.jsonl", ".jsonl"));
    let end = lines(&finalized).last().cloned().unwrap_or(Value::Null);
    assert_eq!(end["reason"], "stop", "{}: {end}", finalized.display());
    d.assert_no_leftovers();
}
