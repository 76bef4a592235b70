//! Dynamic shell completions: the shell's completion function runs
//! `FRAMEBUS_COMPLETE=<shell> ctl -- <words>` and ctl answers with the candidates, so camera
//! names (`ctl status <TAB>`) and role names (`ctl stop cam0 <TAB>`) come from the config in
//! effect: `--config` on the line being completed, else `FRAMEBUS_CONFIG`, else
//! `./framebus.toml`, else `configs/default.toml` ([`locate_config`]). Built on clap_complete's engine ([`clap_complete::CompleteEnv`]).

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Arc;

use clap::CommandFactory;
use clap_complete::engine::{ArgValueCandidates, CompletionCandidate};
use framebus_common::config::locate_config;
use framebus_common::config::Deployment;

use crate::cli::Cli;

/// The environment variable through which the shell's completion function asks `ctl` for
/// candidates (`FRAMEBUS_COMPLETE=bash ctl -- ctl status ""`): a name of framebus's own, so a
/// `COMPLETE` variable set for something else does not turn ctl into a completer.
pub const COMPLETE_VAR: &str = "FRAMEBUS_COMPLETE";

/// When the shell asks for completions (`FRAMEBUS_COMPLETE=<shell>` set), prints them, or the
/// registration script without words, and exits; otherwise returns at once.
pub fn complete_from_env() {
    let words = words_after_escape(std::env::args_os().collect());
    clap_complete::CompleteEnv::with_factory(move || command_for(&words)).var(COMPLETE_VAR).bin("ctl").complete();
}

/// Writes the script that registers `ctl`'s dynamic completions with `shell` (what `ctl
/// completions <shell>` prints); `completer` is how the script runs ctl.
pub fn registration(shell: clap_complete::Shell, completer: &str, out: &mut dyn std::io::Write) -> std::io::Result<()> {
    let name = shell.to_string();
    let shells = clap_complete::env::Shells::builtins();
    let script =
        shells.completer(&name).ok_or_else(|| std::io::Error::other(format!("no dynamic completions for `{name}`")))?;
    script.write_registration(COMPLETE_VAR, "ctl", "ctl", completer, out)
}

/// The candidates for the word at `index` of `words` (`words[0]` is `ctl`), completed against
/// the config the words name (or the one in effect); for tests and tools.
pub fn candidates(words: &[&str], index: usize) -> std::io::Result<Vec<String>> {
    let args: Vec<OsString> = words.iter().map(OsString::from).collect();
    let mut command = command_for(&args);
    let found = clap_complete::engine::complete(&mut command, args, index, None)?;
    Ok(found.iter().map(|c| c.get_value().to_string_lossy().into_owned()).collect())
}

/// The words after `--` (what the shell passed: `ctl -- ctl status ...`), or all of them.
fn words_after_escape(args: Vec<OsString>) -> Vec<OsString> {
    match args.iter().position(|a| a == "--") {
        Some(i) => args[i + 1..].to_vec(),
        None => args,
    }
}

/// Camera names and each camera's roles, from a config.
#[derive(Debug, Default)]
struct Names {
    cameras: Vec<(String, Vec<String>)>,
    /// The per-deployment processes of the config (`mediaserver`): `ctl restart|start|stop|logs`
    /// take them in place of a camera.
    processes: Vec<String>,
    /// The camera already on the line (`ctl stop cam0 <TAB>`), if any.
    camera: Option<String>,
}

impl Names {
    fn camera_names(&self) -> Vec<CompletionCandidate> {
        self.cameras.iter().map(|(name, _)| CompletionCandidate::new(name)).collect()
    }

    /// Camera names, then the per-deployment processes.
    fn camera_or_process_names(&self) -> Vec<CompletionCandidate> {
        let mut names = self.camera_names();
        names.extend(self.processes.iter().map(CompletionCandidate::new));
        names
    }

    /// The roles of the camera on the line, else of every camera (each once).
    fn role_names(&self) -> Vec<CompletionCandidate> {
        // `ctl logs mediaserver <TAB>`: a per-deployment process has no roles.
        if self.camera.as_ref().is_some_and(|c| self.processes.contains(c)) {
            return Vec::new();
        }
        let mut roles: Vec<&String> = Vec::new();
        for (camera, camera_roles) in &self.cameras {
            if self.camera.as_ref().is_some_and(|c| c != camera && self.cameras.iter().any(|(n, _)| n == c)) {
                continue;
            }
            for role in camera_roles {
                if !roles.contains(&role) {
                    roles.push(role);
                }
            }
        }
        roles.into_iter().map(CompletionCandidate::new).collect()
    }
}

/// ctl's command with candidates for every `camera` and `role` argument, from the config the
/// words name (or the one in effect); a config that is missing or does not load gives none.
fn command_for(words: &[OsString]) -> clap::Command {
    let mut names = Names { camera: camera_on_line(words), ..Names::default() };
    if let Ok(located) = locate_config(config_on_line(words).as_deref()) {
        if let Ok(deployment) = Deployment::load(&located.path) {
            names.cameras = deployment
                .camera
                .iter()
                .map(|c| (c.name.clone(), c.roles().iter().map(|r| r.to_string()).collect()))
                .collect();
            names.processes = deployment.deployment_processes().iter().map(|p| p.name().to_string()).collect();
        }
    }
    with_candidates(Cli::command(), &Arc::new(names))
}

fn with_candidates(command: clap::Command, names: &Arc<Names>) -> clap::Command {
    let mut command = command;
    if command.get_arguments().any(|a| a.get_id() == "camera" && a.is_positional()) {
        let names = Arc::clone(names);
        // The commands that also take the media server in place of a camera.
        let processes_too = matches!(command.get_name(), "restart" | "start" | "stop" | "logs");
        command = command.mut_arg("camera", |a| {
            a.add(ArgValueCandidates::new(move || {
                if processes_too {
                    names.camera_or_process_names()
                } else {
                    names.camera_names()
                }
            }))
        });
    }
    if command.get_arguments().any(|a| a.get_id() == "role") {
        let names = Arc::clone(names);
        command = command.mut_arg("role", |a| a.add(ArgValueCandidates::new(move || names.role_names())));
    }
    let subcommands: Vec<String> = command.get_subcommands().map(|s| s.get_name().to_string()).collect();
    for name in subcommands {
        command = command.mut_subcommand(name, |s| with_candidates(s, names));
    }
    command
}

/// `--config FILE` or `--config=FILE` among the words.
fn config_on_line(words: &[OsString]) -> Option<PathBuf> {
    let mut found = None;
    let mut iter = words.iter();
    while let Some(word) = iter.next() {
        let text = word.to_string_lossy();
        if text == "--config" {
            found = iter.next().map(PathBuf::from);
        } else if let Some(path) = text.strip_prefix("--config=") {
            found = Some(PathBuf::from(path));
        }
    }
    found
}

/// The camera argument of the command on the line, as far as it parses.
fn camera_on_line(words: &[OsString]) -> Option<String> {
    let matches = Cli::command().ignore_errors(true).try_get_matches_from(words).ok()?;
    let mut level = &matches;
    let mut camera = None;
    while let Some((_, sub)) = level.subcommand() {
        if let Ok(Some(name)) = sub.try_get_one::<String>("camera") {
            camera = Some(name.clone());
        }
        level = sub;
    }
    camera
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"
[deployment]
name = "completiontest"

[media-server]

[[camera]]
name = "front"
width = 160
height = 120
fps = 10
max-readers = 3
slots = 13
[camera.source]
kind = "synthetic"
[camera.algo]
[[camera.reader]]
name = "plates"

[[camera]]
name = "yard"
width = 160
height = 120
fps = 10
max-readers = 3
slots = 13
[camera.source]
kind = "synthetic"
[camera.preview]
"#;

    /// A config in a temporary folder, removed when the guard is dropped.
    fn config() -> (tempfile::TempDir, String) {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("site.toml");
        std::fs::write(&path, CONFIG).expect("writes the config");
        if let Err(e) = Deployment::load(&path) {
            panic!("the test config does not load: {e}");
        }
        (dir, path.display().to_string())
    }

    /// The candidates that are not options (with an empty word clap offers the options too).
    fn sorted(names: Vec<String>) -> Vec<String> {
        let mut names: Vec<String> = names.into_iter().filter(|n| !n.starts_with('-')).collect();
        names.sort();
        names
    }

    #[test]
    fn status_completes_the_configs_cameras() {
        let (_dir, path) = config();
        let found = candidates(&["ctl", "status", "--config", &path, ""], 4).expect("completes");
        assert_eq!(sorted(found), vec!["front", "yard"]);
        let found = candidates(&["ctl", "--config", &path, "status", "y"], 4).expect("completes");
        assert_eq!(found, vec!["yard"]);
        let found = candidates(&["ctl", "record", "on", "--config", &path, "f"], 5).expect("completes");
        assert_eq!(found, vec!["front"]);
    }

    #[test]
    fn stop_completes_the_roles_of_the_camera_on_the_line() {
        let (_dir, path) = config();
        let found = candidates(&["ctl", "stop", "front", "--config", &path, ""], 5).expect("completes");
        assert_eq!(sorted(found), vec!["algo", "capture", "plates"]);
        let found = candidates(&["ctl", &format!("--config={path}"), "stop", "yard", ""], 4).expect("completes");
        assert_eq!(sorted(found), vec!["capture", "preview"]);
        let found = candidates(&["ctl", "stop", "--config", &path, "front", "p"], 5).expect("completes");
        assert_eq!(found, vec!["plates"]);
    }

    /// `ctl restart|start|stop|logs` also offer the media server in place of a camera (and no
    /// role after it); the other commands only cameras.
    #[test]
    fn restart_start_stop_and_logs_also_complete_the_media_server() {
        let (_dir, path) = config();
        for command in ["restart", "start", "stop", "logs"] {
            let found = candidates(&["ctl", command, "--config", &path, ""], 4).expect("completes");
            assert_eq!(sorted(found), vec!["front", "mediaserver", "yard"], "ctl {command}");
        }
        let found = candidates(&["ctl", "restart", "--config", &path, "m"], 4).expect("completes");
        assert_eq!(found, vec!["mediaserver"]);
        let found = candidates(&["ctl", "status", "--config", &path, ""], 4).expect("completes");
        assert_eq!(sorted(found), vec!["front", "yard"]);
        let found = candidates(&["ctl", "logs", "mediaserver", "--config", &path, ""], 5).expect("completes");
        assert!(sorted(found).is_empty());
    }

    #[test]
    fn without_a_config_there_are_no_names_but_commands_still_complete() {
        let found = candidates(&["ctl", "status", "--config", "/nonexistent/framebus.toml", ""], 4).expect("completes");
        assert!(sorted(found).is_empty());
        let found = candidates(&["ctl", "sta"], 1).expect("completes");
        assert_eq!(sorted(found), vec!["start", "state", "status"]);
    }

    #[test]
    fn the_bash_registration_calls_ctl_back() {
        let mut out = Vec::new();
        registration(clap_complete::Shell::Bash, "ctl", &mut out).expect("writes");
        let script = String::from_utf8(out).expect("utf-8");
        assert!(script.contains("FRAMEBUS_COMPLETE=\"bash\""), "{script}");
        assert!(script.contains("-F _clap_complete_ctl ctl"), "{script}");
        for shell in [
            clap_complete::Shell::Zsh,
            clap_complete::Shell::Fish,
            clap_complete::Shell::Elvish,
            clap_complete::Shell::PowerShell,
        ] {
            registration(shell, "ctl", &mut Vec::new()).expect("every shell registers");
        }
    }
}
