//! Issue 11 (items 2, 3, 6, 7, 8): what another local user, a hostile state file, an oversized
//! config, a killed reader or a burst of `ctl` commands must not break. "Another user" is
//! played by `nobody` (uid 65534) through `setpriv` where the tests run as root.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use framebus_common::node_counter;
use framebus_e2e::{bin, process_status, synthetic_camera, Proc, TestDeployment, DEADLINE};
use serde_json::Value;

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Runs `sh -c script` as `nobody`; returns (exit code, stderr).
fn as_nobody(script: &str) -> (Option<i32>, String) {
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "sh", "-c", script])
        .output()
        .expect("setpriv (util-linux) runs");
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).mode() & 0o7777
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}):\n{text}"))
}

/// A synthetic camera `cam0` without readers (only capture runs).
fn camera_only() -> String {
    "[[camera]]\nname = \"cam0\"\nwidth = 320\nheight = 240\nfps = 30\n\n[camera.source]\nkind = \"synthetic\"\n"
        .to_string()
}

/// Waits (bounded) until capture of `cam0` answers status.
fn wait_capture(d: &TestDeployment) {
    d.wait_status(|s| process_status(s, "cam0", "capture")["state"] == "running");
}

// ---------------------------------------------------------------------------------------------
// Item 2: command state files.

/// The default state folder is `/tmp/framebus-<uid>/<deployment>`, mode 0700 and this user's;
/// the command is recorded there.
#[test]
fn the_default_state_folder_is_private_to_the_user() {
    let d = TestDeployment::new(&synthetic_camera("cam0", 320, 240, 30));
    // No `state-dir`: the default applies.
    std::fs::write(
        &d.config,
        format!("[deployment]\nname = \"{}\"\n\n{}", d.name, synthetic_camera("cam0", 320, 240, 30)),
    )
    .expect("config");
    // SAFETY: geteuid has no preconditions.
    let uid = unsafe { libc::geteuid() };
    let dir = PathBuf::from(format!("/tmp/framebus-{uid}/{}", d.name));
    let root_existed = dir.parent().is_some_and(std::path::Path::exists);
    let (code, out, err) = d.ctl(&["record", "on", "cam0", "--timeout", "0.2"]);
    assert_eq!(code, Some(1), "no process runs: recorded, not delivered\n{out}\n{err}");
    assert!(out.contains(&format!("recorded in {}/cam0.state", dir.display())), "{out}");
    for folder in [dir.parent().expect("root"), dir.as_path()] {
        assert_eq!(mode(folder), 0o700, "{}", folder.display());
        assert_eq!(std::fs::metadata(folder).expect("meta").uid(), uid);
    }
    assert_eq!(mode(&dir.join("cam0.state")), 0o600);
    let _ = std::fs::remove_dir_all(&dir);
    // The per-user root too, when this test made it (and nothing else is in it): nothing is
    // left in /tmp.
    if !root_existed {
        let _ = dir.parent().map(std::fs::remove_dir);
    }
    d.assert_no_leftovers();
}

/// A state folder another user owns, or that others may write, is refused with an error
/// naming it; `ctl status` and `ctl list` show why the flags come from the config.
#[test]
fn a_state_folder_of_another_user_is_refused() {
    if !is_root() {
        eprintln!("skipped: needs root to chown");
        return;
    }
    let d = TestDeployment::new(&synthetic_camera("cam0", 320, 240, 30));
    let state = d.dir.path().join("state");
    std::fs::create_dir(&state).expect("mkdir");
    std::fs::write(state.join("cam0.state"), "saving = true\n").expect("plant flags");
    std::os::unix::fs::chown(&state, Some(65534), Some(65534)).expect("chown");
    let (code, out, err) = d.ctl(&["record", "on", "cam0", "--timeout", "0.2"]);
    assert_eq!(code, Some(2), "{out}\n{err}");
    assert!(err.contains("owned by uid 65534") && err.contains("state-dir"), "{err}");

    let (code, out, err) = d.ctl(&["list", "--json"]);
    assert_eq!(code, Some(0), "{err}");
    let list = json(&out);
    let camera = &list["cameras"][0];
    assert_eq!(camera["saving"], false, "the planted flag is not trusted: {list}");
    assert!(camera["state_error"].as_str().is_some_and(|e| e.contains("uid 65534")), "{list}");

    std::os::unix::fs::chown(&state, Some(0), Some(0)).expect("chown back");
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let (code, _, err) = d.ctl(&["record", "on", "cam0", "--timeout", "0.2"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("mode 0777"), "{err}");
}

/// State files are never followed through links, a FIFO or `/dev/zero` never hangs or reads
/// without bound, and garbage shows in `ctl status` (table and JSON) while capture runs with
/// the config's flags.
#[test]
fn hostile_state_files_are_refused_and_shown() {
    let d = TestDeployment::new(&camera_only());
    let state = d.dir.path().join("state");
    std::fs::create_dir(&state).expect("mkdir");
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700)).expect("chmod");

    // A planted lock-file symlink: the target must not be created or touched.
    let victim = d.dir.path().join("victim");
    std::os::unix::fs::symlink(&victim, state.join("cam0.lock")).expect("symlink");
    let (code, _, err) = d.ctl(&["record", "on", "cam0", "--timeout", "0.2"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("cam0.lock") && err.contains("symlink"), "{err}");
    assert!(!victim.exists(), "the lock symlink was followed");
    std::fs::remove_file(state.join("cam0.lock")).expect("rm");

    // A FIFO as the state file: ctl list answers at once, capture starts anyway.
    let fifo = state.join("cam0.state");
    let c = std::ffi::CString::new(fifo.to_str().expect("utf-8")).expect("path");
    // SAFETY: mkfifo with a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let mut list = d.spawn("ctl", &["list", "--json"]);
    assert_eq!(list.wait_exit(DEADLINE), Some(0), "ctl list with a FIFO: {}", list.stderr_text());
    let mut capture = d.spawn("capture", &[]);
    wait_capture(&d);
    let (_, out, _) = d.ctl(&["status", "--json", "--timeout", "5"]);
    let status = json(&out);
    let error = status["command_state"][0]["error"].as_str().unwrap_or_default().to_string();
    assert!(error.contains("FIFO"), "{status}");
    std::fs::remove_file(&fifo).expect("rm fifo");

    // A link to /dev/zero: refused, not read.
    std::os::unix::fs::symlink("/dev/zero", &fifo).expect("symlink");
    let (_, out, _) = d.ctl(&["status", "--json", "--timeout", "5"]);
    let status = json(&out);
    assert!(status["command_state"][0]["error"].as_str().is_some_and(|e| e.contains("symlink")), "{status}");
    std::fs::remove_file(&fifo).expect("rm link");

    // Garbage: shown in the table and in JSON; the processes keep the config's flags.
    std::fs::write(&fifo, "saving = 7\n").expect("garbage");
    let (code, table, err) = d.ctl(&["status", "--timeout", "5"]);
    assert_eq!(code, Some(0), "{table}\n{err}");
    assert!(table.contains("cam0: command state unusable") && table.contains("malformed"), "{table}");
    let (_, out, _) = d.ctl(&["status", "--json", "--timeout", "5"]);
    let status = json(&out);
    assert!(status["command_state"][0]["error"].as_str().is_some_and(|e| e.contains("malformed")), "{status}");
    assert_eq!(process_status(&status, "cam0", "capture")["state"], "running", "{status}");
    // The existing shape is kept: one entry per process.
    assert!(status["processes"].as_array().is_some_and(|p| p.len() == 1), "{status}");

    // A command replaces the garbage (the operator's command is what counts now).
    let (code, _, err) = d.ctl(&["record", "on", "cam0", "--timeout", "5"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(std::fs::read_to_string(&fifo).expect("state").lines().last(), Some("saving = true"));
    assert_eq!(capture.terminate(), Some(0));
    d.assert_no_leftovers();
}

// ---------------------------------------------------------------------------------------------
// Item 3: the node counter and recordings.

/// The iceoryx2 node counter is mode 0600: another user can no longer write into it, and
/// `ctl status` keeps working.
#[test]
fn another_user_cannot_corrupt_the_node_counter() {
    if !is_root() {
        eprintln!("skipped: needs root for setpriv");
        return;
    }
    let d = TestDeployment::new(&camera_only());
    let mut capture = d.spawn("capture", &[]);
    wait_capture(&d);
    let counter = node_counter::path(&d.name);
    assert_eq!(mode(&counter), 0o600, "{}", counter.display());
    let (code, err) = as_nobody(&format!("head -c 16 /dev/zero | tr '\\0' '\\377' > {}", counter.display()));
    assert_ne!(code, Some(0), "nobody wrote into the counter");
    assert!(err.contains("Permission denied"), "{err}");
    let (code, out, err) = d.ctl(&["status", "--timeout", "5"]);
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert_eq!(capture.terminate(), Some(0));
    d.assert_no_leftovers();
}

/// A counter another user created before the deployment starts is refused with an error that
/// names the file and what to do (the denial of service that remains, documented).
#[test]
fn a_node_counter_planted_by_another_user_is_named() {
    if !is_root() {
        eprintln!("skipped: needs root for setpriv");
        return;
    }
    let d = TestDeployment::new(&synthetic_camera("cam0", 320, 240, 30));
    let counter = node_counter::path(&d.name);
    let (code, err) = as_nobody(&format!("umask 0; head -c 16 /dev/zero | tr '\\0' '\\377' > {}", counter.display()));
    assert_eq!(code, Some(0), "{err}");
    let mut capture = d.spawn("capture", &[]);
    assert_eq!(capture.wait_exit(DEADLINE), Some(2));
    let line = capture.wait_stderr(DEADLINE, "node counter");
    let _ = std::fs::remove_file(&counter);
    assert!(
        line.contains(&counter.display().to_string()) && line.contains("uid 65534") && line.contains("rm "),
        "{line}"
    );
    d.assert_no_leftovers();
}

/// Recordings are private by default (files 0600, folders 0700) and take `file-mode`; a bad
/// mode is a config error naming the key.
#[test]
fn recordings_are_private_by_default_and_take_file_mode() {
    for (extra, file, folder) in [("", 0o600, 0o700), ("file-mode = \"0640\"\n", 0o640, 0o750)] {
        let d = TestDeployment::new(&format!(
            "[[camera]]\nname = \"cam0\"\nwidth = 320\nheight = 240\nfps = 30\n\n[camera.source]\nkind = \"synthetic\"\n\n[camera.recorder]\ndirectory = \"rec\"\nenabled = true\nimages = \"jpeg\"\nimage-every = 10\nsegment-secs = 0.5\nstats-interval-secs = 0.25\nmin-free-mb = 1\n{extra}"
        ));
        let mut capture = d.spawn("capture", &[]);
        let mut recorder = d.spawn("recorder", &["--json"]);
        recorder.wait_json(DEADLINE, |v| v["segments"].as_u64() >= Some(1) && v["images"].as_u64() >= Some(1));
        assert_eq!(recorder.terminate(), Some(0));
        let rec = d.dir.path().join("rec");
        assert_eq!(mode(&rec), folder, "recordings folder");
        let mut checked = 0;
        for entry in std::fs::read_dir(&rec).expect("rec").flatten() {
            let path = entry.path();
            if path.is_dir() {
                assert_eq!(mode(&path), folder, "{}", path.display());
                for image in std::fs::read_dir(&path).expect("images").flatten() {
                    assert_eq!(mode(&image.path()), file, "{}", image.path().display());
                    checked += 1;
                }
            } else {
                assert_eq!(mode(&path), file, "{}", path.display());
                checked += 1;
            }
        }
        assert!(checked >= 3, "video, sidecar and an image at least");
        assert_eq!(capture.terminate(), Some(0));
        d.assert_no_leftovers();
    }
    let d = TestDeployment::new(&format!(
        "{}[camera.recorder]\nfile-mode = \"0755\"\n",
        synthetic_camera("cam0", 320, 240, 30)
    ));
    let (code, _, err) = Proc::output("capture", &["--config", d.config.to_str().expect("utf-8"), "--check-config"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("`camera[0].recorder.file-mode`: invalid mode 0755"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// Item 6: configs that pass validation but cannot run.

/// A unique deployment name of exactly `len` characters.
fn name_of_len(len: usize) -> String {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let unique = format!("{}{}", std::process::id(), N.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    format!("h{unique:0>width$}", width = len - 1)
}

fn with_name(d: &mut TestDeployment, name: &str, body: &str) {
    d.name = name.to_string();
    std::fs::write(&d.config, format!("[deployment]\nname = \"{name}\"\nstate-dir = \"state\"\n\n{body}"))
        .expect("config");
}

/// The longest deployment name validation accepts runs (capture, algo, preview, recorder and
/// ctl); one character more is refused at `--check-config` with the reason.
#[test]
fn deployment_names_that_pass_validation_run() {
    let body = format!(
        "{}[camera.preview]\nlisten = \"127.0.0.1:0\"\n[camera.recorder]\ndirectory = \"rec\"\n",
        synthetic_camera("cam0", 320, 240, 30)
    );
    let mut d = TestDeployment::new(&body);
    with_name(&mut d, &name_of_len(15), &body);
    let config = d.config.to_str().expect("utf-8").to_string();
    let (code, _, err) = Proc::output("capture", &["--config", &config, "--check-config"]);
    assert_eq!(code, Some(2), "15 characters must be refused: {err}");
    assert!(err.contains("`deployment.name`") && err.contains("1 to 14 characters"), "{err}");

    with_name(&mut d, &name_of_len(14), &body);
    let (code, _, err) = Proc::output("capture", &["--config", &config, "--check-config"]);
    assert_eq!(code, Some(0), "{err}");
    let mut procs: Vec<Proc> = ["capture", "algo", "preview", "recorder"].iter().map(|b| d.spawn(b, &[])).collect();
    let status = d.wait_status(|s| {
        ["capture", "algo", "preview", "recorder"].iter().all(|r| process_status(s, "cam0", r)["state"] == "running")
    });
    assert!(status["processes"].as_array().is_some_and(|p| p.len() == 4), "{status}");
    for p in procs.iter_mut().rev() {
        assert_eq!(p.terminate(), Some(0), "{}: {}", p.name, p.stderr_text());
    }
    d.assert_no_leftovers();
}

fn check_config(d: &TestDeployment) -> (Option<i32>, String) {
    let (code, _, err) = Proc::output("capture", &["--config", d.config.to_str().expect("utf-8"), "--check-config"]);
    (code, err)
}

/// Oversized shared memory is refused before anything is reserved: past the deployment's cap
/// (`slots = 100000`, 16384x16384) at load, past the free space of /dev/shm at
/// `--check-config`, capture start and `ctl up`; exit 2, naming the file, key and figures.
#[test]
fn oversized_shared_memory_is_refused_with_the_figures() {
    let cam = |extra: &str, w: u32, h: u32| {
        format!("[[camera]]\nname = \"cam0\"\nwidth = {w}\nheight = {h}\nfps = 30\n{extra}\n[camera.source]\nkind = \"synthetic\"\n[camera.algo]\n")
    };
    let mut d = TestDeployment::new(&cam("slots = 100000", 640, 480));
    let (code, err) = check_config(&d);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains(&d.config.display().to_string())
            && err.contains("`camera[0].slots`")
            && err.contains("slots of 640x480 BGR3")
            && err.contains("`deployment.max-shared-memory-mb` = 2048"),
        "{err}"
    );
    let name = d.name.clone();
    with_name(&mut d, &name, &cam("", 16384, 16384));
    let (code, err) = check_config(&d);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("`camera[0].slots`")
            && err.contains("GiB of shared memory (")
            && err.contains("slots of 16384x16384 BGR3"),
        "{err}"
    );

    // Above the free space of /dev/shm, with the cap raised out of the way.
    let (free, _) = framebus_common::shm_budget::free_space(Path::new("/dev/shm")).expect("statvfs /dev/shm");
    let frame = 16384u64 * 16384 * 3;
    let slots = free / frame + 8;
    std::fs::write(
        &d.config,
        format!(
            "[deployment]\nname = \"{name}\"\nstate-dir = \"state\"\nmax-shared-memory-mb = 1048576\n\n{}",
            cam(&format!("slots = {slots}"), 16384, 16384)
        ),
    )
    .expect("config");
    let (code, err) = check_config(&d);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("`camera[0].slots`") && err.contains("but /dev/shm has only"), "{err}");
    let mut capture = d.spawn("capture", &[]);
    assert_eq!(capture.wait_exit(DEADLINE), Some(2), "capture must refuse, not die of SIGBUS");
    capture.wait_stderr(DEADLINE, "/dev/shm has only");
    let (code, _, err) = d.ctl(&["up"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("/dev/shm has only"), "{err}");
    d.assert_no_leftovers();
}

// ---------------------------------------------------------------------------------------------
// Item 7: dead readers' memory.

/// A reader killed with SIGKILL leaves nothing behind once capture, the last process, stops
/// cleanly.
#[test]
fn a_killed_reader_leaves_nothing_after_a_clean_stop() {
    let d = TestDeployment::new(&synthetic_camera("cam0", 320, 240, 30));
    let mut capture = d.spawn("capture", &[]);
    let mut algo = d.spawn("algo", &[]);
    d.wait_status(|s| process_status(s, "cam0", "algo")["frames"].as_u64() > Some(3));
    algo.kill9();
    let (code, out, err) = d.ctl(&["stop", "cam0", "--timeout", "5"]);
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert_eq!(capture.wait_exit(DEADLINE), Some(0), "{}", capture.stderr_text());
    d.assert_no_leftovers();
}

/// Processes killed with SIGKILL while they create their node (60 `ctl status`, each killed
/// 0–9 ms after it starts) leave half-made nodes that iceoryx2 does not list; the next process
/// of the deployment that leaves last removes them once they are a few seconds old, so nothing
/// is left after a clean `ctl status`.
#[test]
fn processes_killed_while_starting_leave_nothing_once_one_leaves_cleanly() {
    let d = TestDeployment::new(&synthetic_camera("cam0", 320, 240, 30));
    let ctl = bin("ctl");
    let config = d.config.to_str().expect("utf-8").to_string();
    for i in 0..60u64 {
        let mut child = Command::new(&ctl)
            .args(["--config", &config, "status", "--timeout", "0.2"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn ctl");
        std::thread::sleep(std::time::Duration::from_micros((i * 7919) % 10_000));
        let _ = child.kill();
        let _ = child.wait();
    }
    // Half-made nodes count as abandoned after 5 s: keep leaving cleanly until they are gone.
    let until = std::time::Instant::now() + DEADLINE;
    while !d.leftovers().is_empty() {
        assert!(std::time::Instant::now() < until, "left behind: {:?}", d.leftovers());
        let _ = d.ctl(&["status", "--timeout", "0.2"]);
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    d.assert_no_leftovers();
}

// ---------------------------------------------------------------------------------------------
// Item 8: bursts of ctl.

/// Runs `count` `ctl status --json` at once; returns each (exit code, stdout). They run under
/// `SCHED_IDLE` (`chrt --idle 0`, util-linux), only when no other process wants a CPU, so the
/// tests running beside this one keep their CPU time (and the burst meets a busy machine).
fn burst(d: &TestDeployment, count: usize, timeout: &str) -> Vec<(Option<i32>, String)> {
    let ctl = bin("ctl");
    let children: Vec<_> = (0..count)
        .map(|_| {
            Command::new("chrt")
                .args(["--idle", "0"])
                .arg(&ctl)
                .args(["--config", d.config.to_str().expect("utf-8"), "status", "--json", "--timeout", timeout])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn ctl")
        })
        .collect();
    children
        .into_iter()
        .map(|child| {
            let out = child.wait_with_output().expect("ctl output");
            (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned())
        })
        .collect()
}

/// 150 `ctl status` at once never report a running process as not running: each answers with
/// the status (exit 0) or says "busy" (exit 3); given time, every one of them answers.
#[test]
fn a_burst_of_ctl_status_never_reports_running_processes_as_dead() {
    let d = TestDeployment::new(&synthetic_camera("cam0", 320, 240, 30));
    let mut capture = d.spawn("capture", &[]);
    let mut algo = d.spawn("algo", &[]);
    d.wait_status(|s| process_status(s, "cam0", "algo")["state"] == "running");
    for (timeout, all_must_answer) in [("1", false), ("60", true)] {
        let results = burst(&d, 150, timeout);
        let mut answered = 0;
        let mut busy = 0;
        for (code, out) in &results {
            let status = json(out);
            let states: Vec<&str> =
                status["processes"].as_array().expect("processes").iter().filter_map(|p| p["state"].as_str()).collect();
            assert!(!states.contains(&"not-running"), "a running process was reported not running: {status}");
            match code {
                Some(0) => {
                    assert!(!states.contains(&"busy") && states.len() == 2, "{status}");
                    answered += 1;
                }
                Some(3) => {
                    assert!(states.contains(&"busy"), "{status}");
                    busy += 1;
                }
                other => panic!("ctl status exited {other:?}: {status}"),
            }
        }
        eprintln!("150 concurrent `ctl status --timeout {timeout}`: {answered} answered, {busy} busy");
        if all_must_answer {
            assert_eq!(answered, 150, "with --timeout {timeout} every command gets its answer");
        }
    }
    assert_eq!(algo.terminate(), Some(0));
    assert_eq!(capture.terminate(), Some(0));
    d.assert_no_leftovers();
}
