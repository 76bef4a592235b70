//! Ctrl-C in the terminal of `just up` ends it cleanly.
//!
//! A test binary of its own, because `just up` runs `cargo build` first and cargo re-links
//! `target/<profile>/<binary>` even when nothing changed: for a moment each binary is missing.
//! Cargo runs test binaries one after another, so no other test starts a binary meanwhile
//! (the e2e suite, in one binary, once found `ctl` missing this way).

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use framebus_e2e::{process_status, require_tool, run, TestDeployment, DEADLINE};

/// Ctrl-C typed into the terminal of `just up`: the terminal sends SIGINT to the foreground
/// process group (just and ctl up); ctl up stops everything, and neither just nor anything
/// else prints a line starting with "error:". Run in a pseudo-terminal by `script`, with the
/// repository's own justfile.
#[test]
fn ctrl_c_of_just_up_ends_without_an_error() {
    let just = require_tool("just", "just (scripts/bootstrap.sh installs it)");
    let script = require_tool("script", "bsdutils");
    let d = TestDeployment::new(&framebus_e2e::synthetic_camera("cam0", 320, 240, 30));
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("repository root");
    // The profile the binaries under test were built with: target/<dir>/deps/<test>.
    let exe = std::env::current_exe().expect("test executable");
    let dir = exe.parent().and_then(Path::parent).and_then(Path::file_name).expect("profile folder");
    let profile = if dir == "debug" { "dev".to_string() } else { dir.to_string_lossy().into_owned() };
    // The recipe's first line builds the binaries; done here first (a no-op when they are
    // fresh), so the wait below is for the deployment only.
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let (code, _, err) = run(Command::new(cargo)
        .args(["build", "--profile", &profile, "--workspace", "--bins", "--examples"])
        .current_dir(repo));
    assert_eq!(code, Some(0), "cargo build: {err}");
    let command_line = format!(
        "exec '{}' --justfile '{}' up '{}' '{}'",
        just.display(),
        repo.join("justfile").display(),
        d.config.display(),
        profile
    );
    let mut terminal = Command::new(script)
        .args(["--quiet", "--return", "--flush", "--command", &command_line, "/dev/null"])
        .env("SHELL", "/bin/sh")
        .env("NO_COLOR", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("script");
    let mut output = terminal.stdout.take().expect("pty output");
    let reader = std::thread::spawn(move || {
        let mut text = Vec::new();
        let _ = output.read_to_end(&mut text);
        String::from_utf8_lossy(&text).into_owned()
    });
    d.wait_status(|s| {
        process_status(s, "cam0", "capture")["frames"].as_u64() > Some(5)
            && process_status(s, "cam0", "algo")["frames"].as_u64() > Some(2)
    });

    // What the terminal does on Ctrl-C: the line discipline turns ^C into SIGINT for the
    // foreground process group.
    let mut keyboard = terminal.stdin.take().expect("pty input");
    keyboard.write_all(b"\x03").expect("type Ctrl-C");
    keyboard.flush().expect("flush");
    let until = Instant::now() + DEADLINE;
    let status = loop {
        if let Some(status) = terminal.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() >= until {
            let _ = terminal.kill();
            let _ = terminal.wait();
            panic!("just up did not end within {DEADLINE:?} after Ctrl-C");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    drop(keyboard);
    let text = reader.join().expect("reader");
    let mut stderr = String::new();
    if let Some(mut e) = terminal.stderr.take() {
        let _ = e.read_to_string(&mut stderr);
    }
    assert!(text.contains("termination requested"), "ctl up never saw the Ctrl-C:\n{text}");
    for line in text.lines() {
        // The terminal echoes ^C in front of whatever is printed next.
        let line = line.trim_start_matches(['\r', ' ']).trim_start_matches("^C");
        assert!(!line.starts_with("error:"), "`{line}` after Ctrl-C:\n{text}");
    }
    assert!(!text.contains("was terminated") && !text.contains("interrupted by"), "{text}");
    assert_eq!(status.code(), Some(0), "just up after Ctrl-C:\n{text}{stderr}");
    d.assert_no_leftovers();
}
