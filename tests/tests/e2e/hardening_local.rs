//! Issue 17, local-host items: one supervisor per deployment (item 7), /dev/shm full is an
//! error and never SIGBUS (item 6), no iceoryx2 folder another user controls (item 8), files
//! the recorder appends to opened safely and `ctl events` that skips undecodable lines (item 9),
//! and the small ones (item 12: systemd escaping, `preview off` racing `state reset`).

use std::os::unix::fs::OpenOptionsExt;
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

// ---------------------------------------------------------------------------------------------
// Item 9: files the recorder appends to; `ctl events` and undecodable lines.

/// A synthetic 320×240 camera at 30 fps with a recorder writing to `<test dir>/rec`.
fn recorder_camera() -> String {
    "[[camera]]\nname = \"cam0\"\nwidth = 320\nheight = 240\nfps = 30\n\n[camera.source]\nkind = \"synthetic\"\n\n[camera.recorder]\ndirectory = \"rec\"\nstats-interval-secs = 0.25\nmin-free-mb = 1\n".to_string()
}

fn mkfifo(path: &std::path::Path) {
    let c = std::ffi::CString::new(path.to_string_lossy().as_bytes()).expect("path");
    // SAFETY: mkfifo with a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o666) }, 0, "mkfifo {}", path.display());
}

fn ctl_ok(d: &TestDeployment, args: &[&str]) {
    let (code, out, err) = d.ctl(args);
    assert_eq!(code, Some(0), "ctl {args:?}:\n{out}\n{err}");
}

/// In a shared recordings folder another user plants `events/cam0.jsonl` as a symlink to a
/// 0600 file, then as a FIFO: the recorder never writes through the link (the target is
/// unchanged), never blocks on the FIFO, logs each refusal naming the file, and keeps
/// recording (its clips are complete).
#[test]
fn a_planted_journal_symlink_or_fifo_is_refused_and_recording_goes_on() {
    let d = TestDeployment::new(&recorder_camera());
    let rec = d.dir.path().join("rec");
    let events = rec.join("events");
    std::fs::create_dir_all(&events).expect("events folder");
    let victim = d.dir.path().join("victim");
    std::fs::write(&victim, b"root only\n").expect("victim");
    std::fs::set_permissions(&victim, std::os::unix::fs::PermissionsExt::from_mode(0o600)).expect("chmod");
    let journal = events.join("cam0.jsonl");
    std::os::unix::fs::symlink(&victim, &journal).expect("plant symlink");

    let mut capture = d.spawn("capture", &[]);
    let mut recorder = d.spawn("recorder", &["--json"]);
    recorder.wait_json(DEADLINE, |v| v["state"] == "off");
    ctl_ok(&d, &["record", "on", "cam0", "--timeout", "10"]);
    recorder.wait_json(DEADLINE, |v| v["state"] == "recording" && v["written"].as_u64() >= Some(10));
    let line = recorder.wait_stderr(DEADLINE, "is a symlink (refused, not followed)");
    assert!(line.contains(&journal.display().to_string()), "{line}");
    ctl_ok(&d, &["record", "off", "cam0", "--timeout", "10"]);
    recorder.wait_json(DEADLINE, |v| v["clips"].as_u64() >= Some(1) && v["state"] == "off");
    assert_eq!(std::fs::read(&victim).expect("victim"), b"root only\n", "written through the symlink");

    std::fs::remove_file(&journal).expect("remove symlink");
    mkfifo(&journal);
    let _reader = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&journal)
        .expect("hold the FIFO open for reading");
    // Someone holds the FIFO open for reading, so a blocking open would succeed and writes
    // would go to them; a FIFO without a reader would hang a blocking open for ever.
    ctl_ok(&d, &["record", "on", "cam0", "--timeout", "10"]);
    let line = recorder.wait_stderr(DEADLINE, "is not a regular file (a FIFO)");
    assert!(line.contains(&journal.display().to_string()), "{line}");
    let before = recorder.wait_json(DEADLINE, |v| v["state"] == "recording")["written"].as_u64().unwrap_or(0);
    recorder.wait_json(DEADLINE, |v| v["written"].as_u64() > Some(before + 15));
    ctl_ok(&d, &["record", "off", "cam0", "--timeout", "10"]);
    recorder.wait_json(DEADLINE, |v| v["clips"].as_u64() >= Some(2) && v["state"] == "off");
    let status = d.wait_status(|s| process_status(s, "cam0", "recorder")["state"].is_string());
    assert_ne!(process_status(&status, "cam0", "recorder")["state"], "waiting", "{status}");
    assert_eq!(recorder.terminate(), Some(0), "{}", recorder.stderr_text());
    assert_eq!(capture.terminate(), Some(0), "{}", capture.stderr_text());
    let meta = std::fs::symlink_metadata(&journal).expect("journal entry");
    assert!(std::os::unix::fs::FileTypeExt::is_fifo(&meta.file_type()), "the FIFO was replaced");
    d.assert_no_leftovers();
}

fn clip_started(clip: &str) -> String {
    use framebus_common::journal::{JournalRecord, Trigger, TriggerSource};
    let trigger = Trigger {
        source: TriggerSource::Manual,
        rule: None,
        frame_id: 1,
        utc: "2026-01-01T00:00:00.000Z".into(),
        realtime_ns: 1,
        results: Vec::new(),
        continues: None,
    };
    serde_json::to_string(&JournalRecord::ClipStarted {
        clip: clip.into(),
        camera: "cam0".into(),
        utc: "2026-01-01T00:00:00.100Z".into(),
        first_frame_id: 1,
        first_frame_utc: "2026-01-01T00:00:00.000Z".into(),
        first_live_frame_id: 1,
        run_id: 1,
        trigger,
    })
    .expect("json")
}

fn segment_deleted(segment: &str) -> String {
    serde_json::to_string(&framebus_common::journal::JournalRecord::SegmentDeleted {
        utc: "2026-01-01T00:01:00.000Z".into(),
        segment: segment.into(),
        reason: "max-total".into(),
        bytes: 1,
    })
    .expect("json")
}

/// A journal with an invalid UTF-8 line: `ctl events` lists the clips around it and reports
/// the line (number and count) on stderr; `--follow` does the same for lines appended later
/// and goes on printing the records after them.
#[test]
fn ctl_events_skips_and_reports_undecodable_lines() {
    let d = TestDeployment::new(&recorder_camera());
    let events = d.dir.path().join("rec").join("events");
    std::fs::create_dir_all(&events).expect("events folder");
    let journal = events.join("cam0.jsonl");
    let mut bytes = Vec::new();
    for line in
        [clip_started("clip-a").into_bytes(), b"\xff\xfe broken \xc3\x28".to_vec(), clip_started("clip-b").into_bytes()]
    {
        bytes.extend(line);
        bytes.push(b'\n');
    }
    std::fs::write(&journal, &bytes).expect("journal");

    let (code, out, err) = d.ctl(&["events", "cam0", "--json"]);
    assert_eq!(code, Some(0), "{out}\n{err}");
    let clips: Vec<Value> = out.lines().map(|l| serde_json::from_str(l).expect("JSON line")).collect();
    let names: Vec<&str> = clips.iter().filter_map(|c| c["clip"].as_str()).collect();
    assert_eq!(names, ["clip-a", "clip-b"], "{out}");
    assert!(err.contains(&format!("{}: line 2 skipped: not valid UTF-8", journal.display())), "{err}");
    assert!(err.contains("1 line(s) skipped so far"), "{err}");

    let mut follow = d.spawn("ctl", &["events", "cam0", "--follow", "--json"]);
    follow.wait_json(DEADLINE, |v| v["clip"] == "clip-b");
    follow.wait_stderr(DEADLINE, "line 2 skipped");
    let mut more = std::fs::OpenOptions::new().append(true).open(&journal).expect("append");
    std::io::Write::write_all(&mut more, b"\x00\x01 valid UTF-8, not a record\n").expect("append");
    std::io::Write::write_all(&mut more, b"{\"type\": \"\xff\"}\n").expect("append");
    std::io::Write::write_all(&mut more, format!("{}\n", segment_deleted("seg-1")).as_bytes()).expect("append");
    drop(more);
    follow.wait_json(DEADLINE, |v| v["segment"] == "seg-1");
    let line = follow.wait_stderr(DEADLINE, "line 5 skipped");
    assert!(line.contains("2 line(s) skipped so far"), "{line}");
    assert_eq!(follow.terminate(), Some(0), "{}", follow.stderr_text());
    d.assert_no_leftovers();
}

// ---------------------------------------------------------------------------------------------
// Item 8: no iceoryx2 folder another user controls. Each case runs in a private mount
// namespace (`unshare -m`) with a tmpfs over /tmp/iceoryx2, so the real folder, which every
// other test uses, is never touched.

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Runs `setup` then `tail` (`$CTL`, `$CAPTURE` and `$CONFIG` set) in a private mount
/// namespace; returns (exit code, stdout, stderr).
fn in_private_mounts(d: &TestDeployment, script: &str) -> (Option<i32>, String, String) {
    let out = std::process::Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", script])
        .env("CTL", framebus_e2e::bin("ctl"))
        .env("CAPTURE", framebus_e2e::bin("capture"))
        .env("CONFIG", &d.config)
        .env("NO_COLOR", "1")
        .output()
        .expect("unshare (util-linux) runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `/tmp/iceoryx2` owned by another user, or writable by everyone, and a deployment folder
/// another user created inside a good one: `ctl status` and `capture` refuse to run, naming
/// the folder and the fix, and create nothing in it (nor in /dev/shm).
#[test]
fn an_iceoryx2_folder_another_user_controls_is_refused() {
    if !is_root() {
        eprintln!("skipped: needs root for unshare -m and chown");
        return;
    }
    let d = TestDeployment::new(&synthetic_camera("cam0", 320, 240, 30));
    let dep_dir = format!("/tmp/iceoryx2/framebus_{}", d.name);
    let cases = [
        (
            "mount -t tmpfs -o mode=0755 tmpfs /tmp/iceoryx2 && chown 65534 /tmp/iceoryx2",
            "/tmp/iceoryx2",
            "owned by uid 65534",
        ),
        ("mount -t tmpfs -o mode=0777 tmpfs /tmp/iceoryx2", "/tmp/iceoryx2", "has mode 0777"),
        ("mount -t tmpfs -o mode=1777 tmpfs /tmp/iceoryx2", "/tmp/iceoryx2", "has mode 1777"),
        (
            &format!(
                "mount -t tmpfs -o mode=0700 tmpfs /tmp/iceoryx2 && mkdir -m 0700 {dep_dir} && chown 65534 {dep_dir}"
            ),
            dep_dir.as_str(),
            "owned by uid 65534",
        ),
        (
            &format!("mount -t tmpfs -o mode=0700 tmpfs /tmp/iceoryx2 && ln -s /tmp {dep_dir}"),
            dep_dir.as_str(),
            "is a symlink",
        ),
    ];
    for (setup, folder, why) in cases {
        for program in ["\"$CTL\" --config \"$CONFIG\" status --timeout 1", "\"$CAPTURE\" --config \"$CONFIG\""] {
            let script =
                format!("{setup} || exit 99; {program}; rc=$?; echo \"rc=$rc\"; find /tmp/iceoryx2 -mindepth 1");
            let (code, out, err) = in_private_mounts(&d, &script);
            assert_eq!(code, Some(0), "setup `{setup}` failed:\n{out}\n{err}");
            let rc: i32 =
                out.lines().find_map(|l| l.strip_prefix("rc=")).and_then(|r| r.parse().ok()).expect("rc line");
            assert_ne!(rc, 0, "{program} ran under `{setup}`:\n{out}\n{err}");
            assert!(err.contains(&format!("`{folder}` ")) && err.contains(why), "{program} under `{setup}`:\n{err}");
            assert!(err.contains("chmod 0700") && err.contains("rm -r"), "no fix named:\n{err}");
            // Only what the setup made is there.
            let created: Vec<&str> = out.lines().filter(|l| !l.starts_with("rc=") && *l != dep_dir).collect();
            assert!(created.is_empty(), "created in the foreign folder: {created:?}");
        }
    }
    d.assert_no_leftovers();
}

// ---------------------------------------------------------------------------------------------
// Item 12: the small ones.

/// `ctl systemd` for a config in a folder named with `${HOME}`, `$USER` and `%`, run from a ctl
/// whose own folder has a `$`: the program path keeps its `$` (systemd never expands it, and
/// `systemd-analyze verify` finds the program there), the config argument has `$$` (systemd
/// would expand `${HOME}`) and `%%`, and the unit passes `systemd-analyze verify`.
#[test]
fn ctl_systemd_escapes_dollars_for_systemd() {
    let analyze = framebus_e2e::require_tool("systemd-analyze", "systemd");
    let d = TestDeployment::new("");
    // Outside /tmp, and on the same file system as the built ctl (for the hard link).
    let site = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("folder");
    let bin_dir = site.path().join("bin $PATH");
    let folder = site.path().join("site ${HOME} $USER 100%");
    std::fs::create_dir_all(&bin_dir).expect("bin folder");
    std::fs::create_dir_all(folder.join("rec")).expect("site folder");
    let ctl = bin_dir.join("ctl");
    std::fs::hard_link(framebus_e2e::bin("ctl"), &ctl).expect("hard link ctl");
    let config = folder.join("deployment.toml");
    std::fs::write(
        &config,
        format!("[deployment]\nname = \"{}\"\n\n{}", d.name, synthetic_camera("cam0", 320, 240, 30)),
    )
    .expect("config");
    let units = d.dir.path().join("units");
    let out = std::process::Command::new(&ctl)
        .args(["systemd", "--service-user", "framebus", "--config"])
        .arg(&config)
        .arg("--output")
        .arg(&units)
        .output()
        .expect("ctl systemd");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let unit = units.join(format!("framebus-{}.service", d.name));
    let text = std::fs::read_to_string(&unit).expect("unit");
    let exec: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("ExecStart=")).collect();
    let program = ctl.display().to_string();
    let argument = config.display().to_string().replace('%', "%%").replace('$', "$$");
    assert_eq!(exec, vec![format!("\"{program}\" up --config \"{argument}\"")], "{text}");
    let verify = std::process::Command::new(&analyze).arg("verify").arg(&unit).output().expect("verify");
    let said = format!("{}{}", String::from_utf8_lossy(&verify.stdout), String::from_utf8_lossy(&verify.stderr));
    assert!(verify.status.success() && said.trim().is_empty(), "systemd-analyze verify:\n{said}\n{text}");
    // The check is real: the same unit with the program's `$` doubled names no program.
    let wrong = units.join("wrong.service");
    std::fs::write(&wrong, text.replace(&program, &program.replace('$', "$$"))).expect("wrong unit");
    let verify = std::process::Command::new(&analyze).arg("verify").arg(&wrong).output().expect("verify");
    let said = format!("{}{}", String::from_utf8_lossy(&verify.stdout), String::from_utf8_lossy(&verify.stderr));
    assert!(!verify.status.success() || !said.trim().is_empty(), "a doubled `$` in the program path passed:\n{said}");
    d.assert_no_leftovers();
}

/// The preview's activity and the recorded flag agree: ("on"/"off", effective preview flag).
fn preview_and_state(s: &Value) -> (Option<String>, Option<bool>) {
    let activity = process_status(s, "cam0", "preview")["activity"].as_str().map(str::to_string);
    let recorded = s["command_state"].as_array().and_then(|c| c.first()).and_then(|c| c["preview"].as_bool());
    (activity, recorded)
}

fn consistent(s: &Value) -> bool {
    matches!(preview_and_state(s), (Some(a), Some(r)) if (a == "on") == r)
}

/// `ctl preview off` racing `ctl state reset`, many times with shifting timing: once both have
/// returned, the preview runs as the state says (it used to stay off while the state, reset
/// after the `off` was delivered, said on).
#[test]
fn preview_off_racing_state_reset_leaves_preview_and_state_in_agreement() {
    let body = "[[camera]]\nname = \"cam0\"\nwidth = 160\nheight = 120\nfps = 30\n\n[camera.source]\nkind = \"synthetic\"\n\n[camera.preview]\nlisten = \"127.0.0.1:0\"\nstats-interval-secs = 0.25\n";
    let d = TestDeployment::new(body);
    let mut capture = d.spawn("capture", &[]);
    let mut preview = d.spawn("preview", &[]);
    d.wait_status(|s| preview_and_state(s) == (Some("on".into()), Some(true)));
    for round in 0..20u64 {
        let mut reset = d.spawn("ctl", &["state", "reset", "cam0", "--timeout", "5"]);
        // Shift the second command by 0..10 ms so the rounds cover different interleavings.
        std::thread::sleep(Duration::from_millis(round % 11));
        let mut off = d.spawn("ctl", &["preview", "off", "cam0", "--timeout", "5"]);
        assert_eq!(reset.wait_exit(DEADLINE), Some(0), "reset: {}", reset.stderr_text());
        assert_eq!(off.wait_exit(DEADLINE), Some(0), "preview off: {}", off.stderr_text());
        // Agreement is immediate once both returned; allow the preview's frame thread a moment
        // to apply the last command (the bug kept them apart for 30 s and more).
        let until = Instant::now() + Duration::from_secs(3);
        loop {
            let (_, out, _) = d.ctl(&["status", "--json", "--timeout", "2"]);
            let status: Value = serde_json::from_str(&out).unwrap_or(Value::Null);
            if consistent(&status) {
                break;
            }
            assert!(
                Instant::now() < until,
                "round {round}: preview and state disagree: {:?}",
                preview_and_state(&status)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        ctl_ok(&d, &["preview", "on", "cam0", "--timeout", "5"]);
        d.wait_status(|s| preview_and_state(s) == (Some("on".into()), Some(true)));
    }
    assert_eq!(preview.terminate(), Some(0), "{}", preview.stderr_text());
    assert_eq!(capture.terminate(), Some(0), "{}", capture.stderr_text());
    d.assert_no_leftovers();
}

// ---------------------------------------------------------------------------------------------
// Item 6: /dev/shm full is an error, never SIGBUS. `ctl up` runs in a private mount namespace
// with a 48 MiB tmpfs on /dev/shm, which the test fills through `/proc/<pid>/root`.

/// `ctl status --json` run inside the mount namespace of `pid`.
fn ns_status(d: &TestDeployment, pid: u32) -> Value {
    let out = std::process::Command::new("nsenter")
        .args(["-t", &pid.to_string(), "-m", "--"])
        .arg(framebus_e2e::bin("ctl"))
        .arg("--config")
        .arg(&d.config)
        .args(["status", "--json", "--timeout", "2"])
        .output()
        .expect("nsenter (util-linux) runs");
    serde_json::from_str(&String::from_utf8_lossy(&out.stdout)).unwrap_or(Value::Null)
}

fn ns_wait(d: &TestDeployment, pid: u32, within: Duration, mut pred: impl FnMut(&Value) -> bool) -> Value {
    let until = Instant::now() + within;
    loop {
        let status = ns_status(d, pid);
        if pred(&status) {
            return status;
        }
        assert!(Instant::now() < until, "not within {within:?}; last status: {status}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `ctl <args>` run inside the mount namespace of `pid`: (exit code, stdout, stderr).
fn ns_ctl(d: &TestDeployment, pid: u32, args: &[&str]) -> (Option<i32>, String, String) {
    let out = std::process::Command::new("nsenter")
        .args(["-t", &pid.to_string(), "-m", "--"])
        .arg(framebus_e2e::bin("ctl"))
        .arg("--config")
        .arg(&d.config)
        .args(args)
        .output()
        .expect("nsenter (util-linux) runs");
    let mut stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if let Some(signal) = std::os::unix::process::ExitStatusExt::signal(&out.status) {
        stderr.push_str(&format!("(killed by signal {signal})"));
    }
    (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned(), stderr)
}

/// The pid of the child of `parent` whose command name is `name`, waiting for it (bounded).
fn child_named(parent: u32, name: &str, within: Duration) -> u32 {
    let until = Instant::now() + within;
    loop {
        let children = std::fs::read_to_string(format!("/proc/{parent}/task/{parent}/children")).unwrap_or_default();
        for child in children.split_whitespace().filter_map(|c| c.parse::<u32>().ok()) {
            if std::fs::read_to_string(format!("/proc/{child}/comm")).is_ok_and(|c| c.trim() == name) {
                return child;
            }
        }
        assert!(Instant::now() < until, "no child `{name}` of {parent}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Fills `path` until the file system is full and keeps it full (grabbing any space freed)
/// until `stop` is set; the file is removed then.
fn keep_full(
    path: std::path::PathBuf,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut file = std::fs::OpenOptions::new().create(true).append(true).open(&path).expect("filler");
        let chunk = vec![0u8; 64 * 1024];
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            if std::io::Write::write_all(&mut file, &chunk).is_err() {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        drop(file);
        std::fs::remove_file(&path).expect("remove filler");
    })
}

/// Started with /dev/shm full, `ctl up` reports "not enough shared memory: need X MiB,
/// /dev/shm has Y MiB free", stays up (degraded) retrying, and runs the camera within 10 s of
/// the space coming back. Filled again while running (by a process that grabs every page
/// freed), readers killed with SIGKILL restart into it: every process that cannot get a page
/// exits with 75 and "not enough shared memory" (never a signal death), the supervisor retries
/// without giving up, and once the space is back every process runs again within 10 s.
#[test]
fn a_full_dev_shm_is_an_error_and_the_deployment_recovers() {
    if !is_root() {
        eprintln!("skipped: needs root for unshare -m");
        return;
    }
    let d = TestDeployment::new(&synthetic_camera("cam0", 320, 240, 30));
    let mut command = std::process::Command::new("unshare");
    command
        .args(["-m", "--propagation", "private", "sh", "-c"])
        .arg("mount -t tmpfs -o size=48m tmpfs /dev/shm && head -c 48m /dev/zero > /dev/shm/filler 2>/dev/null; exec \"$CTL\" --config \"$CONFIG\" up")
        .env("CTL", framebus_e2e::bin("ctl"))
        .env("CONFIG", &d.config);
    let mut up = Proc::spawn_command("ctl up (private /dev/shm)", &mut command);
    let pid = up.child.id();
    let shm = std::path::PathBuf::from(format!("/proc/{pid}/root/dev/shm"));

    // Full from the start: a clear error, retried; the supervisor stays.
    let line = up.wait_stderr(DEADLINE, "not enough shared memory: need ");
    assert!(line.contains("MiB, /dev/shm has ") && line.contains(" MiB free"), "{line}");
    let until = Instant::now() + DEADLINE;
    while up.stderr_text().matches("degraded:").count() < 3 {
        assert!(Instant::now() < until, "no retries:\n{}", up.stderr_text());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(up.child.try_wait().expect("try_wait").is_none(), "ctl up gave up:\n{}", up.stderr_text());
    // `ctl status` cannot get its pages: an error that says why (exit 75), not a signal death.
    let (code, out, err) = ns_ctl(&d, pid, &["status", "--timeout", "2"]);
    assert_eq!(code, Some(75), "{out}\n{err}");
    assert!(err.contains("not enough shared memory"), "{err}");
    eprintln!("measured: ctl status with /dev/shm full at start: exit {code:?}: {}", err.trim());
    std::fs::remove_file(shm.join("filler")).expect("free the space");
    let freed = Instant::now();
    let running = ns_wait(&d, pid, Duration::from_secs(10), |s| frames(s, "capture") > 0 && frames(s, "algo") > 0);
    eprintln!("measured: running {:?} after the space came back", freed.elapsed());
    let capture = pid_of(&running, "capture");
    let exits_before = up.stderr_text().matches("exited with code 75").count();

    // Full while running, kept full by a greedy filler; readers restart into it.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let filler = keep_full(shm.join("filler"), std::sync::Arc::clone(&stop));
    let until = Instant::now() + Duration::from_secs(60);
    while framebus_common::shm_budget::free_space(&shm).map_or(u64::MAX, |(free, _)| free) >= 64 * 1024 {
        assert!(Instant::now() < until, "the filler did not fill /dev/shm");
        std::thread::sleep(Duration::from_millis(20));
    }
    // `ctl status` cannot get its client's pages now: it says so (75), and no signal ends it.
    let (code, out, err) = ns_ctl(&d, pid, &["status", "--timeout", "2"]);
    assert_eq!(code, Some(75), "{out}\n{err}");
    assert!(err.contains("not enough shared memory"), "{out}\n{err}");
    eprintln!("measured: ctl status with /dev/shm filled while running: exit {code:?}: {}", err.trim());
    for round in 1..=3 {
        let algo = child_named(pid, "algo", DEADLINE);
        // SAFETY: kill has no memory-safety preconditions; the pid is a child of our ctl up.
        unsafe { libc::kill(algo as i32, libc::SIGKILL) };
        let until = Instant::now() + DEADLINE;
        while up.stderr_text().matches("killed by signal 9").count() < round {
            assert!(Instant::now() < until, "no restart:\n{}", up.stderr_text());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    // The replacement readers start into the full /dev/shm: they exit 75 and are retried.
    let until = Instant::now() + Duration::from_secs(10);
    while Instant::now() < until {
        assert!(up.child.try_wait().expect("try_wait").is_none(), "ctl up ended:\n{}", up.stderr_text());
        std::thread::sleep(Duration::from_millis(100));
    }
    let capture_kept = pid_alive(capture as u32);
    let exits_full = up.stderr_text().matches("exited with code 75").count() - exits_before;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    filler.join().expect("filler thread");
    let freed = Instant::now();
    let back = ns_wait(&d, pid, Duration::from_secs(10), |s| frames(s, "algo") > 5 && frames(s, "capture") > 0);
    eprintln!(
        "measured: readers back {:?} after the space came back; capture kept running through the full /dev/shm: {capture_kept}; exits with 75 while full: {exits_full}",
        freed.elapsed()
    );
    assert_eq!(capture_kept, pid_of(&back, "capture") == capture);
    let log = up.stderr_text();
    for line in log.lines().filter(|l| l.contains("degraded:") || l.contains("killed by signal")) {
        eprintln!("supervisor: {line}");
    }
    assert!(exits_full > 0, "no process was short of memory while full:\n{log}");
    // Only our SIGKILLs: no SIGBUS (7), no other signal death.
    assert_eq!(log.matches("killed by signal").count(), log.matches("killed by signal 9").count(), "{log}");
    assert_eq!(log.matches("killed by signal 9").count(), 3, "{log}");
    assert!(!log.contains("giving up"), "{log}");
    assert_eq!(up.terminate(), Some(0), "{}", up.stderr_text());
    d.assert_no_leftovers();
}
