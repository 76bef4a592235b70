//! `ctl systemd`: a systemd unit that runs a deployment under `ctl up`.
//!
//! One unit for the supervisor, not one per process: `ctl up` already starts capture before
//! its readers and waits until capture serves, restarts a crashed process with backoff and
//! counts it in the metrics, stops readers before capture, stops a camera's readers when its
//! capture ends, removes what a deployment leaves in shared memory, and serves the metrics.
//! Per-process units would have to rebuild each of these from systemd directives and keep them
//! in step with the supervisor. What per-process units give (a journal stream and a
//! `systemctl` handle per process) the one unit keeps through `--log-format json` (every line
//! names its camera and role) and `ctl stop`/`ctl status`. docs/systemd.md has the whole
//! reasoning and the meaning of every directive.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use framebus_common::config::SourceConfig;
use framebus_common::Deployment;

use crate::supervisor::SupervisorOptions;

/// What the unit is for.
#[derive(Debug, Clone)]
pub struct UnitOptions {
    /// A unit for the user's own service manager (`systemctl --user`).
    pub user_mode: bool,
    /// Account a system unit runs as (`User=`); `None` runs it as root.
    pub service_user: Option<String>,
    /// Absolute path of the `ctl` binary the unit starts (the other binaries are next to it).
    pub ctl: PathBuf,
}

/// A rendered unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unit {
    /// File name: `framebus-<deployment>.service`.
    pub file_name: String,
    /// The unit file's text.
    pub text: String,
    /// Things the operator must do before starting it (e.g. folders to create).
    pub warnings: Vec<String>,
}

/// Renders the unit of `deployment` (loaded from the config file the unit will name).
pub fn render(deployment: &Deployment, options: &UnitOptions) -> anyhow::Result<Unit> {
    let config = std::path::absolute(&deployment.source_file)
        .with_context(|| format!("resolving config path `{}`", deployment.source_file.display()))?;
    if !options.ctl.is_absolute() {
        bail!("the ctl binary path `{}` is not absolute", options.ctl.display());
    }
    let config_dir = config.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("/"));
    let name = deployment.name();
    let supervisor = SupervisorOptions::default();
    let v4l2 = deployment.camera.iter().any(|c| matches!(c.source, SourceConfig::V4l2(_)));
    let mut warnings = Vec::new();

    // Everything a deployment writes: iceoryx2's node and service files (/tmp/iceoryx2/...),
    // the command state (under /tmp unless `state-dir` says otherwise) and the recordings.
    // Shared memory lives in /dev/shm, which ProtectSystem= leaves writable.
    let mut writable = vec![PathBuf::from("/tmp")];
    let state_dir = deployment.state_dir();
    writable.push(state_dir.clone());
    for cam in &deployment.camera {
        if let Some(recorder) = &cam.recorder {
            writable.push(deployment.resolve_path(&recorder.directory));
        }
    }
    let mut paths: Vec<PathBuf> = Vec::new();
    for path in writable {
        let path = std::path::absolute(&path).unwrap_or(path);
        if paths.iter().any(|p| path.starts_with(p)) {
            continue;
        }
        paths.retain(|p| !p.starts_with(&path));
        if !path.exists() {
            warnings.push(format!(
                "`{}` does not exist yet: create it, owned by the unit's user, before starting the unit (systemd refuses to start a unit whose ReadWritePaths= entry is missing)",
                path.display()
            ));
        }
        paths.push(path);
    }

    let mut text = String::new();
    let w = &mut text;
    let _ = writeln!(w, "# framebus deployment `{name}`, written by `ctl systemd` from {}.", config.display());
    let _ = writeln!(w, "# Regenerate it after moving the binaries or the config. Every directive: docs/systemd.md.");
    let _ = writeln!(w, "[Unit]");
    let _ = writeln!(w, "Description=framebus deployment {name} (ctl up)");
    let _ = writeln!(w, "After=network.target");
    let _ = writeln!(w, "# At most 5 failed starts in 5 minutes, then the unit stays failed.");
    let _ = writeln!(w, "StartLimitIntervalSec=300");
    let _ = writeln!(w, "StartLimitBurst=5");
    let _ = writeln!(w);
    let _ = writeln!(w, "[Service]");
    let _ = writeln!(w, "# ctl up reports READY=1 once every capture serves control and the readers are started.");
    let _ = writeln!(w, "Type=notify");
    let _ = writeln!(w, "NotifyAccess=main");
    let _ = writeln!(w, "ExecStart={} up --config {}", quote_arg(&options.ctl)?, exec_arg(&config)?);
    let _ = writeln!(w, "WorkingDirectory={}", escape_specifiers(&checked(&config_dir)?));
    let _ = writeln!(w, "Environment=FRAMEBUS_LOG_FORMAT=json");
    let _ = writeln!(w, "SyslogIdentifier=framebus-{name}");
    let _ = writeln!(w, "# ctl up restarts crashed processes itself; systemd restarts ctl up when it fails.");
    let _ = writeln!(w, "Restart=on-failure");
    let _ = writeln!(w, "RestartSec=5s");
    let cameras = u32::try_from(deployment.camera.len()).unwrap_or(u32::MAX);
    let start_timeout = supervisor.ready_timeout.saturating_mul(cameras).as_secs() + 30;
    let stop_timeout = supervisor.stop_grace.as_secs() * 2 + 10;
    let _ = writeln!(w, "TimeoutStartSec={start_timeout}s");
    let _ = writeln!(
        w,
        "# SIGTERM goes to ctl up only: it stops the readers, then capture (each within {}s).",
        supervisor.stop_grace.as_secs()
    );
    let _ = writeln!(w, "KillMode=mixed");
    let _ = writeln!(w, "TimeoutStopSec={stop_timeout}s");
    if !options.user_mode {
        if let Some(user) = &options.service_user {
            let _ = writeln!(w, "User={}", checked_user(user)?);
            if user == "nobody" {
                warnings.push("`nobody` is shared by unrelated services (systemd warns: \"not safe\"): create an account of its own, e.g. `useradd --system --groups video framebus`".into());
            }
            if v4l2 {
                let _ = writeln!(w, "# Camera devices belong to the group `video`.");
                let _ = writeln!(w, "SupplementaryGroups=video");
            }
        }
    }
    let _ = writeln!(w);
    if options.user_mode {
        let _ = writeln!(w, "# A user unit runs with the user's own rights. The sandboxing directives of system");
        let _ = writeln!(w, "# units need user namespaces in a user manager (PrivateUsers= is implied there) and");
        let _ = writeln!(w, "# device access control is not delegated to it, so only this one is set.");
        let _ = writeln!(w, "NoNewPrivileges=yes");
    } else {
        let _ = writeln!(w, "# Hardening.");
        let _ = writeln!(w, "NoNewPrivileges=yes");
        let _ = writeln!(w, "CapabilityBoundingSet=");
        let _ = writeln!(w, "ProtectSystem=strict");
        let _ = writeln!(w, "ProtectHome=read-only");
        let _ = writeln!(w, "# /tmp stays shared: iceoryx2 keeps the deployment's node and service files in");
        let _ = writeln!(w, "# /tmp/iceoryx2/, and `ctl` run from a shell must see the same ones to reach the");
        let _ = writeln!(w, "# processes. PrivateTmp=yes would hide them (and the command state under /tmp).");
        let _ = writeln!(w, "PrivateTmp=no");
        let list: Vec<String> = paths.iter().map(|p| quote_arg(p)).collect::<anyhow::Result<_>>()?;
        let _ = writeln!(w, "ReadWritePaths={}", list.join(" "));
        let _ = writeln!(w, "ProtectKernelTunables=yes");
        let _ = writeln!(w, "ProtectKernelModules=yes");
        let _ = writeln!(w, "ProtectKernelLogs=yes");
        let _ = writeln!(w, "ProtectControlGroups=yes");
        let _ = writeln!(w, "ProtectHostname=yes");
        let _ = writeln!(w, "RestrictNamespaces=yes");
        let _ = writeln!(w, "RestrictRealtime=yes");
        let _ = writeln!(w, "RestrictSUIDSGID=yes");
        let _ = writeln!(w, "LockPersonality=yes");
        let _ = writeln!(w, "SystemCallArchitectures=native");
        let _ = writeln!(w, "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6");
        let _ = writeln!(w, "# No device nodes except the pseudo devices every process has");
        if v4l2 {
            let _ = writeln!(w, "# and the V4L2 cameras: /dev/video* and /dev/v4l-subdev* (video4linux), /dev/media*.");
            let _ = writeln!(w, "DevicePolicy=closed");
            let _ = writeln!(w, "DeviceAllow=char-video4linux rw");
            let _ = writeln!(w, "DeviceAllow=char-media rw");
        } else {
            let _ = writeln!(w, "# (no camera of this deployment is a V4L2 device).");
            let _ = writeln!(w, "DevicePolicy=closed");
        }
    }
    let _ = writeln!(w);
    let _ = writeln!(w, "[Install]");
    let _ = writeln!(w, "WantedBy={}", if options.user_mode { "default.target" } else { "multi-user.target" });
    Ok(Unit { file_name: format!("framebus-{name}.service"), text, warnings })
}

/// Runs `ctl systemd`: renders the unit and writes it to `output` (`-`: stdout; default: where
/// systemd looks, [`default_dir`]), then says what to run next.
pub fn run(
    deployment: &Deployment,
    json: bool,
    user_mode: bool,
    output: Option<&Path>,
    service_user: Option<&str>,
) -> anyhow::Result<crate::Outcome> {
    let exe = std::env::current_exe().context("locating ctl's own executable")?;
    let ctl = std::fs::canonicalize(&exe).unwrap_or(exe);
    let service_user = if user_mode { None } else { service_user.map(str::to_string).or_else(current_user) };
    let unit = render(deployment, &UnitOptions { user_mode, service_user, ctl })?;
    for warning in &unit.warnings {
        tracing::warn!("{warning}");
    }
    if output == Some(Path::new("-")) {
        print!("{}", unit.text);
        return Ok(crate::Outcome::Done);
    }
    let dir = match output {
        Some(dir) => dir.to_path_buf(),
        None => default_dir(user_mode)?,
    };
    let path = write(&unit, &dir)?;
    let manager = if user_mode { "systemctl --user" } else { "systemctl" };
    let service = unit.file_name.trim_end_matches(".service");
    if json {
        println!(
            "{}",
            serde_json::json!({ "unit": path.display().to_string(), "service": service, "warnings": unit.warnings })
        );
    } else {
        println!("wrote {}", path.display());
        println!("next: {manager} daemon-reload && {manager} enable --now {service}");
        println!("logs: journalctl {}-u {service} -f", if user_mode { "--user " } else { "" });
        if user_mode {
            println!("to keep it running after you log out: loginctl enable-linger");
        }
    }
    Ok(crate::Outcome::Done)
}

/// Where units are installed: `/etc/systemd/system`, or the user's `~/.config/systemd/user`.
pub fn default_dir(user_mode: bool) -> anyhow::Result<PathBuf> {
    if !user_mode {
        return Ok(PathBuf::from("/etc/systemd/system"));
    }
    if let Some(config) = std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(config).join("systemd/user"));
    }
    let home = std::env::var_os("HOME")
        .filter(|v| !v.is_empty())
        .context("neither XDG_CONFIG_HOME nor HOME is set: pass --output")?;
    Ok(PathBuf::from(home).join(".config/systemd/user"))
}

/// The name of the user running this process (for `User=`); `None` for root.
pub fn current_user() -> Option<String> {
    let uid = nix::unistd::geteuid();
    if uid.is_root() {
        return None;
    }
    // getpwuid_r through nix (it grows the buffer for long entries); the uid when unknown.
    match nix::unistd::User::from_uid(uid) {
        Ok(Some(user)) => Some(user.name),
        _ => Some(uid.to_string()),
    }
}

/// A path as one argument of a unit directive: double-quoted, with `\` and `"` escaped and `%`
/// doubled (systemd would expand it as a specifier).
fn quote_arg(path: &Path) -> anyhow::Result<String> {
    let text = checked(path)?;
    let escaped = escape_specifiers(&text).replace('\\', "\\\\").replace('"', "\\\"");
    Ok(format!("\"{escaped}\""))
}

/// A path as an argument after the program in `ExecStart=`: like [`quote_arg`], and `$`
/// doubled, since systemd expands `$VAR` and `${VAR}` in arguments (`$$` is a literal `$`). The
/// program path itself is never expanded (systemd.service(5)), so it keeps a single `$`.
fn exec_arg(path: &Path) -> anyhow::Result<String> {
    let quoted = quote_arg(path)?;
    Ok(quoted.replace('$', "$$"))
}

fn escape_specifiers(text: &str) -> String {
    text.replace('%', "%%")
}

/// The path as UTF-8 without control characters (a newline would end the directive and start
/// another one of the attacker's choosing).
fn checked(path: &Path) -> anyhow::Result<String> {
    let Some(text) = path.to_str() else {
        bail!("`{}` is not UTF-8: systemd units need UTF-8 paths", path.display());
    };
    if text.chars().any(char::is_control) {
        bail!("`{}` contains control characters: not usable in a unit file", text.escape_debug());
    }
    Ok(text.to_string())
}

/// A user or numeric id as systemd accepts it in `User=`.
fn checked_user(user: &str) -> anyhow::Result<&str> {
    let valid = !user.is_empty()
        && user.len() <= 31
        && user.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
        && !user.starts_with('-');
    if !valid {
        bail!(
            "--service-user `{}`: use a user name (letters, digits, `_`, `-`, `.`) or a numeric id",
            user.escape_debug()
        );
    }
    Ok(user)
}

/// Writes `unit` into `dir` (created if missing); returns the file's path.
pub fn write(unit: &Unit, dir: &Path) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating `{}`", dir.display()))?;
    let path = dir.join(&unit.file_name);
    std::fs::write(&path, &unit.text).with_context(|| format!("writing `{}`", path.display()))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(body: &str) -> (tempfile::TempDir, Deployment) {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("deployment.toml");
        std::fs::write(&path, body).expect("write config");
        let deployment = Deployment::load(&path).expect("config loads");
        (dir, deployment)
    }

    const SYNTHETIC: &str = "[deployment]\nname = \"unit-test\"\n[[camera]]\nname = \"cam0\"\nwidth = 320\nheight = 240\n[camera.source]\nkind = \"synthetic\"\n[camera.recorder]\ndirectory = \"/srv/framebus-unit-test/rec\"\n";

    fn options() -> UnitOptions {
        UnitOptions { user_mode: false, service_user: Some("framebus".into()), ctl: PathBuf::from("/opt/fb/ctl") }
    }

    fn lines<'a>(unit: &'a Unit, key: &str) -> Vec<&'a str> {
        unit.text.lines().filter_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix('='))).collect()
    }

    #[test]
    fn a_system_unit_runs_ctl_up_with_absolute_paths_and_hardening() {
        let (dir, d) = deployment(SYNTHETIC);
        let unit = render(&d, &options()).expect("renders");
        assert_eq!(unit.file_name, "framebus-unit-test.service");
        let config = dir.path().join("deployment.toml");
        assert_eq!(lines(&unit, "ExecStart"), vec![format!("\"/opt/fb/ctl\" up --config \"{}\"", config.display())]);
        assert_eq!(lines(&unit, "User"), vec!["framebus"]);
        assert_eq!(lines(&unit, "PrivateTmp"), vec!["no"]);
        assert_eq!(lines(&unit, "ProtectSystem"), vec!["strict"]);
        assert_eq!(lines(&unit, "DevicePolicy"), vec!["closed"]);
        assert!(lines(&unit, "DeviceAllow").is_empty(), "no camera device for a synthetic source");
        assert!(lines(&unit, "SupplementaryGroups").is_empty());
        let rw = lines(&unit, "ReadWritePaths");
        assert_eq!(rw.len(), 1);
        assert!(rw[0].starts_with("\"/tmp\" "), "{rw:?}");
        assert!(rw[0].contains("\"/srv/framebus-unit-test/rec\""), "{rw:?}");
        // The recordings folder does not exist: the operator is told.
        assert!(
            unit.warnings.iter().any(|w| w.contains("/srv/framebus-unit-test/rec` does not exist")),
            "{:?}",
            unit.warnings
        );
        assert_eq!(lines(&unit, "WantedBy"), vec!["multi-user.target"]);
    }

    #[test]
    fn a_v4l2_camera_gets_its_devices_and_the_video_group() {
        let body =
            SYNTHETIC.replace("kind = \"synthetic\"", "kind = \"v4l2\"\ndevice = \"/dev/video0\"\nformat = \"YUYV\"");
        let (_dir, d) = deployment(&body);
        let unit = render(&d, &options()).expect("renders");
        assert_eq!(lines(&unit, "DeviceAllow"), vec!["char-video4linux rw", "char-media rw"]);
        assert_eq!(lines(&unit, "SupplementaryGroups"), vec!["video"]);
    }

    #[test]
    fn a_user_unit_has_no_user_and_no_system_sandbox() {
        let (_dir, d) = deployment(SYNTHETIC);
        let unit = render(&d, &UnitOptions { user_mode: true, ..options() }).expect("renders");
        assert!(lines(&unit, "User").is_empty());
        assert!(lines(&unit, "ProtectSystem").is_empty());
        assert!(lines(&unit, "DevicePolicy").is_empty());
        assert_eq!(lines(&unit, "NoNewPrivileges"), vec!["yes"]);
        assert_eq!(lines(&unit, "WantedBy"), vec!["default.target"]);
    }

    #[test]
    fn hostile_paths_and_users_cannot_add_directives() {
        let (_dir, d) = deployment(SYNTHETIC);
        let evil = UnitOptions { ctl: PathBuf::from("/opt/x\nExecStartPre=/bin/evil"), ..options() };
        assert!(render(&d, &evil).is_err());
        let evil = UnitOptions { service_user: Some("root\nUser=x".into()), ..options() };
        assert!(render(&d, &evil).is_err());
        // Quotes, backslashes and `%` are escaped, not interpreted.
        let odd = UnitOptions { ctl: PathBuf::from("/opt/my \"fb\" 100%\\bin/ctl"), ..options() };
        let unit = render(&d, &odd).expect("renders");
        let exec = lines(&unit, "ExecStart");
        assert!(exec[0].starts_with("\"/opt/my \\\"fb\\\" 100%%\\\\bin/ctl\" up"), "{exec:?}");
    }

    /// `$` in the config's path is doubled in `ExecStart=` arguments (systemd would expand
    /// `${HOME}`), kept in the program path (never expanded) and in path lists.
    #[test]
    fn dollars_are_escaped_where_systemd_expands_them() {
        let dir = tempfile::tempdir().expect("temp dir");
        let folder = dir.path().join("a${HOME}b$USER 5%");
        std::fs::create_dir_all(&folder).expect("folder");
        let config = folder.join("d.toml");
        std::fs::write(&config, SYNTHETIC).expect("config");
        let d = Deployment::load(&config).expect("loads");
        let opts = UnitOptions { ctl: PathBuf::from("/opt/$fb/ctl"), ..options() };
        let unit = render(&d, &opts).expect("renders");
        let want = config.display().to_string().replace('%', "%%").replace('$', "$$");
        assert_eq!(lines(&unit, "ExecStart"), vec![format!("\"/opt/$fb/ctl\" up --config \"{want}\"")]);
        let wd = folder.display().to_string().replace('%', "%%");
        assert_eq!(lines(&unit, "WorkingDirectory"), vec![wd.as_str()]);
    }
}
