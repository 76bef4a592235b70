//! Running a deployment in production: the systemd unit `ctl systemd` writes passes
//! `systemd-analyze verify`, `ctl up` reports readiness to systemd, JSON logs parse line by line
//! with the deployment, camera and role on every line (threads and iceoryx2 included), a storm
//! of malformed requests is rate-limited, and completions and man pages are generated.
//! (Ctrl-C in the terminal of `just up` is tested in `tests/just_up.rs`.)

use std::io::{Read, Write};
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use framebus_common::control::{code, ControlReply, ControlRequest};
use framebus_common::ipc::{connect_control, create_named_node, DeploymentGuard};
use framebus_common::names::ProcessRole;
use framebus_e2e::{bin, process_status, require_tool, run, Proc, TestDeployment, DEADLINE};
use serde_json::Value;

/// `systemd-analyze verify` on one unit: exit 0 and nothing said (it exits 0 even when it
/// ignores a directive it cannot parse, so its output counts too).
fn verify(unit: &Path, user: bool) {
    let tool = require_tool("systemd-analyze", "systemd");
    let runtime = tempfile::tempdir().expect("runtime dir");
    let mut command = Command::new(tool);
    if user {
        // The user manager needs a runtime folder of its own.
        command.arg("--user").env("XDG_RUNTIME_DIR", runtime.path());
    }
    let (code, out, err) = run(command.arg("verify").arg(unit));
    let text = std::fs::read_to_string(unit).unwrap_or_default();
    assert_eq!(code, Some(0), "systemd-analyze verify {}:\n{out}{err}\n{text}", unit.display());
    assert!(out.trim().is_empty() && err.trim().is_empty(), "systemd-analyze verify said:\n{out}{err}\n{text}");
}

fn directive<'a>(text: &'a str, key: &str) -> Vec<&'a str> {
    text.lines().filter_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix('='))).collect()
}

/// The unit for a deployment whose folder has a space and a `%` in its name (quoting and
/// specifier escaping), with a recorder, passes `systemd-analyze verify`; so do its `--user`
/// variant and the unit of a V4L2 deployment. The unit runs ctl up from absolute paths, with
/// the hardening set and /tmp shared.
#[test]
fn systemd_units_pass_systemd_analyze_verify() {
    let d = TestDeployment::new("");
    // Outside /tmp (which the unit lists as a whole), so the recordings folder is listed itself.
    let site = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("folder outside /tmp");
    let folder = site.path().join("my site 100%");
    std::fs::create_dir_all(folder.join("rec")).expect("folders");
    let config = folder.join("deployment.toml");
    std::fs::write(
        &config,
        format!(
            "[deployment]\nname = \"{}\"\n\n[[camera]]\nname = \"cam0\"\nwidth = 320\nheight = 240\n\n[camera.source]\nkind = \"synthetic\"\n\n[camera.algo]\n\n[camera.recorder]\ndirectory = \"rec\"\n",
            d.name
        ),
    )
    .expect("config");
    let units = d.dir.path().join("units");
    let config_arg = config.to_str().expect("utf-8");
    let (code, out, err) = run(Command::new(bin("ctl")).args([
        "systemd",
        "--config",
        config_arg,
        "--output",
        units.to_str().expect("utf-8"),
        "--service-user",
        "framebus",
    ]));
    assert_eq!(code, Some(0), "{out}{err}");
    let unit = units.join(format!("framebus-{}.service", d.name));
    assert!(out.contains(&format!("wrote {}", unit.display())), "{out}");
    let text = std::fs::read_to_string(&unit).expect("unit written");
    let ctl = std::fs::canonicalize(bin("ctl")).expect("ctl path");
    assert_eq!(
        directive(&text, "ExecStart"),
        vec![format!("\"{}\" up --config \"{}\"", ctl.display(), config_arg.replace('%', "%%"))]
    );
    for (key, value) in [
        ("Type", "notify"),
        ("Restart", "on-failure"),
        ("KillMode", "mixed"),
        ("User", "framebus"),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("PrivateTmp", "no"),
        ("DevicePolicy", "closed"),
        ("Environment", "FRAMEBUS_LOG_FORMAT=json"),
    ] {
        assert_eq!(directive(&text, key), vec![value], "{key} in\n{text}");
    }
    let rec = folder.join("rec");
    assert_eq!(
        directive(&text, "ReadWritePaths"),
        vec![format!("\"/tmp\" \"{}\"", rec.display().to_string().replace('%', "%%"))]
    );
    verify(&unit, false);

    let (code, out, err) =
        run(Command::new(bin("ctl")).args(["systemd", "--config", config_arg, "--user", "--output", "-"]));
    assert_eq!(code, Some(0), "{err}");
    assert!(directive(&out, "User").is_empty() && directive(&out, "WantedBy") == vec!["default.target"], "{out}");
    let user_unit = d.dir.path().join("user").join(format!("framebus-{}.service", d.name));
    std::fs::create_dir_all(user_unit.parent().expect("parent")).expect("folder");
    std::fs::write(&user_unit, &out).expect("user unit");
    verify(&user_unit, true);

    // A V4L2 camera: its device classes are allowed, the rest stays closed.
    let v4l2 = d.dir.path().join("v4l2.toml");
    std::fs::write(
        &v4l2,
        format!(
            "[deployment]\nname = \"{}\"\n\n[[camera]]\nname = \"cam0\"\nwidth = 640\nheight = 480\n\n[camera.source]\nkind = \"v4l2\"\ndevice = \"/dev/video0\"\nformat = \"YUYV\"\n",
            d.name
        ),
    )
    .expect("config");
    let (code, out, err) = run(Command::new(bin("ctl")).args([
        "systemd",
        "--config",
        v4l2.to_str().expect("utf-8"),
        "--output",
        "-",
        "--service-user",
        "framebus",
    ]));
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(directive(&out, "DeviceAllow"), vec!["char-video4linux rw", "char-media rw"], "{out}");
    assert_eq!(directive(&out, "SupplementaryGroups"), vec!["video"], "{out}");
    let v4l2_unit = d.dir.path().join("v4l2").join("framebus-v4l2.service");
    std::fs::create_dir_all(v4l2_unit.parent().expect("parent")).expect("folder");
    std::fs::write(&v4l2_unit, &out).expect("v4l2 unit");
    verify(&v4l2_unit, false);

    // A user name that would smuggle in a directive is refused.
    let (code, _, err) = run(Command::new(bin("ctl")).args([
        "systemd",
        "--config",
        config_arg,
        "--output",
        "-",
        "--service-user",
        "x\nExecStartPre=/bin/sh",
    ]));
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--service-user"), "{err}");
}

/// Under systemd (`NOTIFY_SOCKET`), ctl up reports READY=1 once capture serves and the readers
/// run, STOPPING=1 on SIGTERM; its children do not inherit the socket.
#[test]
fn ctl_up_notifies_systemd_of_readiness_and_stopping() {
    let d = TestDeployment::new(&framebus_e2e::synthetic_camera("cam0", 320, 240, 30));
    let socket_path = d.dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).expect("notify socket");
    socket.set_read_timeout(Some(DEADLINE)).expect("timeout");
    let mut up = Proc::spawn_command(
        "ctl",
        Command::new(bin("ctl"))
            .args(["--config", d.config.to_str().expect("utf-8"), "up"])
            .env("NOTIFY_SOCKET", &socket_path),
    );
    let mut buffer = [0u8; 4096];
    let n = socket.recv(&mut buffer).unwrap_or_else(|e| panic!("no READY=1 ({e}); {}", up.stderr_text()));
    let message = String::from_utf8_lossy(&buffer[..n]).into_owned();
    assert!(message.lines().any(|l| l == "READY=1"), "{message}");
    assert!(message.lines().any(|l| l.starts_with("STATUS=2 processes running")), "{message}");
    // Ready means capture already serves: status answers at once.
    let (code, out, _) = d.ctl(&["status", "--json", "--timeout", "5"]);
    assert_eq!(code, Some(0), "{out}");
    let status: Value = serde_json::from_str(&out).expect("json");
    let capture_pid = process_status(&status, "cam0", "capture")["pid"].as_u64().expect("pid");
    let environ = std::fs::read(format!("/proc/{capture_pid}/environ")).expect("capture's environment");
    assert!(
        !environ.split(|b| *b == 0).any(|var| var.starts_with(b"NOTIFY_SOCKET=")),
        "capture inherited NOTIFY_SOCKET"
    );
    up.signal(libc::SIGTERM);
    let n = socket.recv(&mut buffer).unwrap_or_else(|e| panic!("no STOPPING=1 ({e}); {}", up.stderr_text()));
    assert_eq!(String::from_utf8_lossy(&buffer[..n]).trim(), "STOPPING=1");
    assert_eq!(up.wait_exit(DEADLINE), Some(0), "{}", up.stderr_text());
    d.assert_no_leftovers();
}

/// The parsed stderr lines of a process; panics on the first line that is not a JSON object
/// with the identity fields.
fn json_lines(proc: &Proc, deployment: &str) -> Vec<Value> {
    let text = proc.stderr_text();
    text.lines()
        .filter(|line| !line.is_empty())
        .map(|line| {
            let value: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}\n{text}"));
            for key in ["timestamp", "level", "role", "pid", "message"] {
                assert!(value.get(key).is_some_and(|v| !v.is_null()), "no `{key}` in {line}");
            }
            assert!(value.get("camera").is_some(), "no `camera` in {line}");
            assert_eq!(value["deployment"], deployment, "{line}");
            value
        })
        .collect()
}

/// `ctl up --log-format json`: every line of the supervisor and of every process it starts
/// (which get the format through FRAMEBUS_LOG_FORMAT) is one JSON object with deployment,
/// camera and role, including lines logged by the reader loop's control thread, by the
/// preview's HTTP thread and by iceoryx2 itself.
#[test]
fn json_logs_parse_line_by_line_with_identity_fields() {
    let d = TestDeployment::new(
        "[[camera]]\nname = \"cam0\"\nwidth = 320\nheight = 240\nfps = 30\n\n[camera.source]\nkind = \"synthetic\"\n\n[camera.algo]\nstats-interval-secs = 0.5\n\n[camera.preview]\nlisten = \"127.0.0.1:0\"\n\n[camera.recorder]\ndirectory = \"rec\"\n",
    );
    let mut up = Proc::spawn_command(
        "ctl",
        Command::new(bin("ctl"))
            .args(["--config", d.config.to_str().expect("utf-8"), "up", "--log-format", "json"])
            .env("RUST_LOG", "info,iceoryx2=debug,framebus_preview=debug,framebus_httpserve=debug"),
    );
    let line = up.wait_stderr(DEADLINE, "preview served at http://");
    let value: Value = serde_json::from_str(&line).expect("JSON line");
    let message = value["message"].as_str().expect("message");
    let start = message.find("http://").expect("url");
    let url = message[start..].split_whitespace().next().expect("url").trim_end_matches('/').to_string();
    let roles = ["capture", "algo", "preview", "recorder"];
    d.wait_status(|s| roles.iter().all(|r| process_status(s, "cam0", r)["frames"].as_u64() > Some(3)));

    // A request the preview's HTTP parser rejects: logged (debug) on the HTTP thread.
    let address = url.trim_start_matches("http://");
    let mut tcp = std::net::TcpStream::connect(address).expect("connect");
    tcp.write_all(b"\x01\x02 not http\r\n\r\n").expect("send");
    let mut reply = Vec::new();
    let _ = tcp.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = tcp.read_to_end(&mut reply);
    up.wait_stderr(DEADLINE, "HTTP connection:");

    up.signal(libc::SIGTERM);
    assert_eq!(up.wait_exit(DEADLINE), Some(0), "{}", up.stderr_text());
    let lines = json_lines(&up, &d.name);
    for role in roles {
        // The supervisor's lines about a child name that child; these are the child's own.
        let own = lines.iter().any(|l| {
            l["role"] == role
                && l["camera"] == "cam0"
                && l["target"].as_str().is_some_and(|t| !t.starts_with("framebus_ctl"))
        });
        assert!(own, "no line of {role} itself");
    }
    let of = |role: &str, pred: &dyn Fn(&Value) -> bool| {
        lines.iter().any(|l| l["role"] == role && l["camera"] == "cam0" && pred(l))
    };
    assert!(of("algo", &|l| l["thread"] == "control-algo"), "no line from algo's control thread");
    assert!(
        of("preview", &|l| l["thread"] == "http"
            && l["message"].as_str().is_some_and(|m| m.starts_with("HTTP connection:"))),
        "no line from the preview's HTTP thread"
    );
    // iceoryx2's own lines (which ones a process logs depends on timing: a sleep interrupted
    // by the stop, a service not there yet) carry the identity fields like every other line.
    let iceoryx2: Vec<&Value> =
        lines.iter().filter(|l| l["target"].as_str().is_some_and(|t| t.starts_with("iceoryx2"))).collect();
    assert!(!iceoryx2.is_empty(), "no line of iceoryx2 itself");
    for l in &iceoryx2 {
        assert!(l["deployment"] == d.name.as_str() && l["role"].is_string(), "an iceoryx2 line without identity: {l}");
        assert!(l["role"] == "ctl" || l["camera"] == "cam0", "an iceoryx2 line of a camera process without it: {l}");
    }
    assert!(lines.iter().any(|l| l["role"] == "ctl" && l["camera"].is_null()), "no line of the supervisor itself");
    d.assert_no_leftovers();
}

/// A local user floods capture with malformed control requests: its log keeps the first 3 and
/// then reports the rest as counts ("N more like this"), with nothing lost from the count.
#[test]
fn a_storm_of_malformed_requests_is_logged_with_a_count() {
    const SENT: u64 = 40;
    let d = TestDeployment::new(&framebus_e2e::synthetic_camera("cam0", 320, 240, 30));
    let mut capture = d.spawn("capture", &["--log-format", "json"]);
    {
        let _release = DeploymentGuard::new(&d.name);
        let node = create_named_node(&d.name, "hostile").expect("node");
        let until = Instant::now() + DEADLINE;
        let services = loop {
            if let Some(s) = connect_control(&node, &d.name, "cam0", ProcessRole::Capture.name()).expect("connect") {
                if s.has_server() {
                    break s;
                }
            }
            assert!(Instant::now() < until, "capture never served control; {}", capture.stderr_text());
            std::thread::sleep(Duration::from_millis(20));
        };
        let client = services.requests.client_builder().create().expect("client");
        let ready = services.ready.as_ref().expect("ready event").notifier_builder().create().expect("notifier");
        for i in 0..SENT {
            let request = ControlRequest { version: 77, command: code::STATUS, nonce: i, ..Default::default() };
            let pending = client.send_copy(request).expect("send");
            let _ = ready.notify();
            let until = Instant::now() + DEADLINE;
            let reply: ControlReply = loop {
                if let Some(reply) = pending.receive().expect("receive") {
                    break *reply.payload();
                }
                assert!(Instant::now() < until, "no reply to request {i}");
                std::thread::sleep(Duration::from_millis(1));
            };
            assert!(!reply.is_ok());
        }
    }
    // Every suppressed request is counted in a summary once its window has ended.
    let until = Instant::now() + DEADLINE;
    let (logged, suppressed) = loop {
        let lines = json_lines(&capture, &d.name);
        let malformed: Vec<&Value> = lines.iter().filter(|l| l["repeat"] == "control.malformed-request").collect();
        let logged = malformed.iter().filter(|l| l.get("suppressed").is_none()).count() as u64;
        let suppressed: u64 = malformed.iter().filter_map(|l| l["suppressed"].as_u64()).sum();
        if logged + suppressed >= SENT || Instant::now() >= until {
            break (logged, suppressed);
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(logged, 3, "{}", capture.stderr_text());
    assert_eq!(suppressed, SENT - 3, "{}", capture.stderr_text());
    assert!(capture.stderr_text().contains("more like this in the last 10 s"), "{}", capture.stderr_text());
    assert_eq!(capture.terminate(), Some(0), "{}", capture.stderr_text());
    d.assert_no_leftovers();
}

/// `ctl completions` for bash is valid bash; pressing TAB asks ctl, which completes `ctl st<TAB>`
/// to its commands (start, state, status, stop), `ctl status <TAB>` to the cameras and `ctl stop yard <TAB>` to that camera's
/// roles of the config in effect (`./framebus.toml` of the shell's folder, or `--config` on the
/// line), and the media server after `ctl restart` when the config has one; fish completes the
/// same through its script (zsh was checked by hand: its script is generated); `ctl man --output` writes pages that groff renders
/// without a warning; none of it needs a config file.
#[test]
fn completions_and_man_pages_are_generated() {
    let outside = tempfile::tempdir().expect("folder without configs/");
    let ctl = || {
        let mut command = Command::new(bin("ctl"));
        command.current_dir(outside.path());
        command
    };
    let (code, script, err) = run(ctl().args(["completions", "bash"]));
    assert_eq!(code, Some(0), "{err}");
    let script_path = outside.path().join("ctl.bash");
    std::fs::write(&script_path, &script).expect("script");
    let (code, _, err) = run(Command::new("bash").arg("-n").arg(&script_path));
    assert_eq!(code, Some(0), "bash -n: {err}");
    // What bash does on TAB: the registered function with the words and the word's index.
    let complete = |words: &[&str], folder: &std::path::Path| {
        let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
        let probe = format!(
            "source '{}'\nCOMP_WORDS=({})\nCOMP_CWORD={}\nCOMP_TYPE=9\n_clap_complete_ctl ctl '{}' '{}'\nprintf '%s\\n' \"${{COMPREPLY[@]}}\"\n",
            script_path.display(),
            quoted.join(" "),
            words.len() - 1,
            words[words.len() - 1],
            words[words.len().saturating_sub(2)],
        );
        let (code, out, err) = run(Command::new("bash").arg("-c").arg(&probe).current_dir(folder));
        assert_eq!(code, Some(0), "{err}");
        let mut offered: Vec<String> =
            out.lines().map(|l| l.trim_end().to_string()).filter(|l| !l.is_empty() && !l.starts_with('-')).collect();
        offered.sort_unstable();
        offered
    };
    assert_eq!(complete(&["ctl", "st"], outside.path()), vec!["start", "state", "status", "stop"]);
    // Names from the config in effect: none here (no config), then ./framebus.toml.
    assert_eq!(complete(&["ctl", "status", ""], outside.path()), Vec::<String>::new());
    let config = "[deployment]\nname = \"completions\"\n\n[[camera]]\nname = \"front\"\nwidth = 160\nheight = 120\nfps = 10\n\
                  [camera.source]\nkind = \"synthetic\"\n\n[[camera]]\nname = \"yard\"\nwidth = 160\nheight = 120\nfps = 10\n\
                  max-readers = 3\nslots = 13\n[camera.source]\nkind = \"synthetic\"\n[camera.algo]\n\n[[camera.reader]]\nname = \"plates\"\n";
    std::fs::write(outside.path().join("framebus.toml"), config).expect("config");
    assert_eq!(complete(&["ctl", "status", ""], outside.path()), vec!["front", "yard"]);
    assert_eq!(complete(&["ctl", "stop", "yard", ""], outside.path()), vec!["algo", "capture", "plates"]);
    assert_eq!(complete(&["ctl", "stop", "front", ""], outside.path()), vec!["capture"]);
    // `--config` on the line wins, relative to the shell's folder.
    let elsewhere = tempfile::tempdir().expect("another folder");
    let config_arg = outside.path().join("framebus.toml").display().to_string();
    assert_eq!(complete(&["ctl", "record", "on", "--config", &config_arg, "y"], elsewhere.path()), vec!["yard"]);
    let (code, out, err) =
        run(Command::new("bash").arg("-c").arg(format!("source '{}'; complete -p ctl", script_path.display())));
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("_clap_complete_ctl"), "{out}");

    // With a media server, `ctl restart|logs <TAB>` offer it too (issue 21), and nothing after it.
    let served = elsewhere.path().join("served.toml");
    std::fs::write(&served, config.replacen("[[camera]]", "[media-server]\n\n[[camera]]", 1)).expect("config");
    let served_arg = served.display().to_string();
    assert_eq!(
        complete(&["ctl", "--config", &served_arg, "restart", ""], elsewhere.path()),
        vec!["front", "mediaserver", "yard"]
    );
    assert_eq!(complete(&["ctl", "--config", &served_arg, "status", ""], elsewhere.path()), vec!["front", "yard"]);

    let (code, zsh, _) = run(ctl().args(["completions", "zsh"]));
    assert_eq!(code, Some(0));
    assert!(zsh.starts_with("#compdef ctl"), "{zsh}");
    let (code, fish, _) = run(ctl().args(["completions", "fish"]));
    assert_eq!(code, Some(0));
    assert!(fish.contains("complete --keep-order --exclusive --command ctl"), "{fish}");
    // What fish does on TAB (`complete -C` lists what the line completes to): names from the
    // config on the line, the media server after restart, the camera's roles after logs.
    let fish_bin = require_tool("fish", "fish");
    let fish_path = outside.path().join("ctl.fish");
    std::fs::write(&fish_path, &fish).expect("script");
    let fish_complete = |line: &str| {
        let probe = format!("source '{}'; complete -C '{line}'", fish_path.display());
        let (code, out, err) = run(Command::new(&fish_bin).args(["--no-config", "-c", &probe]));
        assert_eq!(code, Some(0), "fish: {err}");
        let mut offered: Vec<String> = out
            .lines()
            .map(|l| l.split('\t').next().unwrap_or_default().to_string())
            .filter(|l| !l.is_empty() && !l.starts_with('-'))
            .collect();
        offered.sort_unstable();
        offered
    };
    assert_eq!(fish_complete(&format!("ctl --config {served_arg} restart ")), vec!["front", "mediaserver", "yard"]);
    assert_eq!(fish_complete(&format!("ctl --config {served_arg} logs yard ")), vec!["algo", "capture", "plates"]);
    assert_eq!(fish_complete(&format!("ctl --config {served_arg} logs mediaserver ")), Vec::<String>::new());
    assert_eq!(fish_complete("ctl sta"), vec!["start", "state", "status"]);
    let (code, _, err) = run(ctl().args(["completions", "tcsh"]));
    assert_eq!(code, Some(2), "{err}");

    let groff = require_tool("groff", "groff-base");
    let pages = outside.path().join("man");
    let (code, out, err) = run(ctl().args(["man", "--output", pages.to_str().expect("utf-8")]));
    assert_eq!(code, Some(0), "{err}");
    for name in ["ctl", "ctl-status", "ctl-up", "ctl-systemd", "ctl-completions", "ctl-man"] {
        let page = pages.join(format!("{name}.1"));
        assert!(out.contains(&page.display().to_string()), "{name}: {out}");
        let (code, text, warnings) = run(Command::new(&groff)
            .args(["-man", "-Tutf8", "-ww", "-P", "-cbou"])
            .arg(&page)
            .env("LC_ALL", "C.UTF-8"));
        assert_eq!(code, Some(0), "{name}: {warnings}");
        assert!(warnings.trim().is_empty(), "groff warns on {name}.1:\n{warnings}");
        for section in ["NAME", "SYNOPSIS", "EXIT STATUS"] {
            assert!(text.contains(section), "{name}.1 has no {section}:\n{text}");
        }
        assert!(text.contains("--config"), "{name}.1 lacks the global options:\n{text}");
    }
    let (_, top, _) = run(Command::new(&groff).args(["-man", "-Tutf8", "-P", "-cbou"]).arg(pages.join("ctl.1")));
    assert!(top.contains("ctl-systemd(1)") && top.contains("FRAMEBUS_LOG_FORMAT"), "{top}");
    let (code, page, _) = run(ctl().arg("man"));
    assert_eq!(code, Some(0));
    assert!(page.contains(".TH ctl 1"), "{page}");
}
