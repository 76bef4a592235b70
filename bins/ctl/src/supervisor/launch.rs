//! Starting the supervised processes: which binary (next to ctl), its arguments and
//! environment, its outputs relayed with its identity.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context};
use framebus_common::logging::{self, Stream, LOG_FORMAT_ENV};
use framebus_common::names::ProcessRole;
use framebus_common::Deployment;

use super::output::{self, ChildIdentity};
use super::{Program, Supervised, BRIDGE, MEDIA_SERVER};

/// Everything the supervisor needs to start a process.
pub(super) struct Launcher {
    pub(super) bin_dir: PathBuf,
    pub(super) config: PathBuf,
    deployment: String,
    /// Cameras imported from other hosts: the bridge runs in place of their capture.
    remote_cameras: Vec<String>,
}

impl Launcher {
    /// The launcher of `deployment`: the binaries next to ctl, the config by its absolute path.
    pub(super) fn new(deployment: &Deployment) -> anyhow::Result<Launcher> {
        Ok(Launcher {
            bin_dir: sibling_dir()?,
            config: absolute(&deployment.source_file)?,
            deployment: deployment.name().to_string(),
            remote_cameras: deployment
                .camera
                .iter()
                .filter(|c| matches!(c.source, framebus_common::config::SourceConfig::Remote(_)))
                .map(|c| c.name.clone())
                .collect(),
        })
    }

    /// Every binary the deployment needs is next to ctl, before anything is started.
    pub(super) fn check_binaries(
        &self,
        deployment: &Deployment,
        media_server: bool,
        bridge: bool,
    ) -> anyhow::Result<()> {
        for cam in &deployment.camera {
            for role in cam.processes() {
                let binary = self.binary(role, &cam.name);
                if !binary.is_file() {
                    bail!(
                        "`{}` (needed for camera `{}`) is not next to ctl in {}: build every binary (`cargo build --release --bins`)",
                        binary.file_name().and_then(|n| n.to_str()).unwrap_or_default(),
                        cam.name,
                        self.bin_dir.display()
                    );
                }
            }
        }
        if media_server && !self.bin_dir.join(MEDIA_SERVER).is_file() {
            bail!(
                "`{MEDIA_SERVER}` (needed for [media-server]) is not next to ctl in {}: build every binary (`cargo build --release --bins`)",
                self.bin_dir.display()
            );
        }
        if bridge && !self.bin_dir.join(BRIDGE).is_file() {
            bail!(
                "`{BRIDGE}` (needed for [zenoh]) is not next to ctl in {}: build every binary (`cargo build --release --bins`)",
                self.bin_dir.display()
            );
        }
        Ok(())
    }

    /// The binary of `role` for `camera`: the bridge stands in for a remote camera's capture.
    pub(super) fn binary(&self, role: ProcessRole, camera: &str) -> PathBuf {
        if role == ProcessRole::Capture && self.remote_cameras.iter().any(|c| c == camera) {
            return self.bin_dir.join(BRIDGE);
        }
        self.bin_dir.join(role.name())
    }

    /// The binary of `proc`'s program and the command that runs it with its own arguments.
    fn command(&self, proc: &Supervised) -> (PathBuf, Command) {
        match &proc.program {
            Program::Builtin(role) => {
                let binary = self.binary(*role, &proc.camera);
                let mut command = Command::new(&binary);
                command.arg("--config").arg(&self.config).arg("--camera").arg(&proc.camera);
                (binary, command)
            }
            Program::User(argv) => {
                let folder = self.config.parent().map(Path::to_path_buf).unwrap_or_default();
                let program = argv.first().map(String::as_str).unwrap_or_default();
                // A path with a `/` is relative to the config file's folder; a bare name is
                // looked up in PATH.
                let binary = if program.contains('/') { folder.join(program) } else { PathBuf::from(program) };
                let mut command = Command::new(&binary);
                command.args(&argv[1..]).current_dir(&folder);
                // Its stdout is a pipe to the supervisor now: a Python reader's `print` is
                // relayed as it happens, not when a block-sized buffer fills.
                if std::env::var_os("PYTHONUNBUFFERED").is_none() {
                    command.env("PYTHONUNBUFFERED", "1");
                }
                (binary, command)
            }
            Program::MediaServer => {
                let binary = self.bin_dir.join(MEDIA_SERVER);
                let mut command = Command::new(&binary);
                command.arg("--config").arg(&self.config);
                (binary, command)
            }
            Program::Bridge => {
                let binary = self.bin_dir.join(BRIDGE);
                let mut command = Command::new(&binary);
                command.arg("--config").arg(&self.config);
                (binary, command)
            }
        }
    }

    /// Starts `proc` and relays its outputs.
    pub(super) fn start(&self, proc: &mut Supervised) -> anyhow::Result<()> {
        let (binary, mut command) = self.command(proc);
        command
            .env("FRAMEBUS_CONFIG", &self.config)
            .env("FRAMEBUS_CAMERA", &proc.camera)
            .env("FRAMEBUS_ROLE", proc.role.as_str())
            .env(LOG_FORMAT_ENV, logging::format().as_str())
            .env_remove("NOTIFY_SOCKET")
            .stdin(Stdio::null())
            // Both relayed by the supervisor's logging (with the child's identity), stderr kept.
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Own process group: a terminal's Ctrl-C reaches only the supervisor, which stops
            // the children in order.
            .process_group(0);
        // SAFETY: the closure runs in the forked child before exec and only calls prctl, which
        // is async-signal-safe; it touches no memory of the parent.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = command.spawn().with_context(|| format!("starting {} ({})", proc.label(), binary.display()))?;
        tracing::info!(camera = proc.camera, role = %proc.role, pid = child.id(), "started");
        let who = ChildIdentity {
            deployment: self.deployment.clone(),
            camera: proc.camera.clone(),
            role: proc.role.as_str().to_string(),
            pid: child.id(),
        };
        proc.relays.retain(|relay| !relay.is_finished());
        if let Some(pipe) = child.stdout.take() {
            proc.relays.extend(output::follow(pipe, Stream::Stdout, who.clone(), Arc::clone(&proc.kept)));
        }
        if let Some(pipe) = child.stderr.take() {
            proc.relays.extend(output::follow(pipe, Stream::Stderr, who, Arc::clone(&proc.kept)));
        }
        proc.pid = Some(child.id());
        proc.starts += 1;
        proc.child = Some(child);
        proc.started = Instant::now();
        proc.restart_at = None;
        proc.restart_requested = None;
        Ok(())
    }
}

/// Folder of ctl's own executable, where the sibling binaries are.
fn sibling_dir() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("locating ctl's own executable")?;
    exe.parent().map(Path::to_path_buf).with_context(|| format!("folder of `{}`", exe.display()))
}

fn absolute(path: &Path) -> anyhow::Result<PathBuf> {
    std::path::absolute(path).with_context(|| format!("resolving config path `{}`", path.display()))
}
