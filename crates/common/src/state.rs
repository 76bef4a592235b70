//! Command state that outlives processes: the preview and saving flags of each camera, set by
//! `ctl` (and by the control server of a process when it receives the command) and read by a
//! process when it starts, so a restarted recorder resumes saving.
//!
//! One small TOML file per camera, `<state-dir>/<camera>.state`, replaced atomically (written to
//! a temporary file, then renamed) under an exclusive `flock` on `<camera>.lock`, so a reader
//! never sees half a file and two concurrent updates of different flags never lose one.
//!
//! Another local user must not be able to change the flags or make framebus (often root) write
//! elsewhere: the folder must be owned by this user and writable by nobody else (the default,
//! `/tmp/framebus-<uid>/<deployment>`, is created with mode 0700; a folder planted by someone
//! else is refused), files are opened without following symlinks (the temporary file is created
//! exclusively under a random name), and only a regular file of at most [`MAX_STATE_BYTES`] is
//! read (a FIFO or a link to `/dev/zero` is an error, never a hang).
//!
//! It also holds the camera controls set while capturing (`ctl control <camera> set`), in a
//! `[controls]` table in the order they were set, so capture sets them again when it restarts
//! ([`StateStore::recorded_controls`], [`StateStore::record_controls`]).
//!
//! The file holds only the flags a command has set ([`RecordedFlags`]). Precedence when a
//! process starts: a flag recorded in the file wins; a flag never set by a command takes the
//! config's initial value (`[camera.preview] enabled`, `[camera.recorder] enabled`); without
//! those tables, the built-in defaults ([`CameraState::initial`], [`RecordedFlags::over`]).

use std::fs::File;
use std::io::{Read as _, Write};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::config::{defaults, normalize_control_name, CameraConfig, ControlSettings, ControlValue, Deployment};
use crate::secure_fs::{self, Unsafe};

/// Largest state file read (a real one is about 200 bytes).
pub const MAX_STATE_BYTES: u64 = 64 * 1024;

/// The effective flags of one camera: what was recorded by commands, else the config's
/// initial values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CameraState {
    /// Preview image generation on.
    pub preview: bool,
    /// Image saving (recording) on.
    pub saving: bool,
}

impl Default for CameraState {
    fn default() -> Self {
        CameraState { preview: defaults::PREVIEW_ON, saving: defaults::SAVING_ON }
    }
}

/// The flags a command has set for one camera (what the state file holds); `None` = never set,
/// so the config's initial value applies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecordedFlags {
    /// Preview set on or off by a command.
    pub preview: Option<bool>,
    /// Saving set on or off by a command.
    pub saving: Option<bool>,
}

impl RecordedFlags {
    /// The effective flags: each recorded flag wins over `initial`.
    pub fn over(self, initial: CameraState) -> CameraState {
        CameraState { preview: self.preview.unwrap_or(initial.preview), saving: self.saving.unwrap_or(initial.saving) }
    }
}

/// A state file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Reading, writing, locking or renaming failed.
    #[error("{what} `{}`: {source}", path.display())]
    Io {
        /// What was attempted.
        what: &'static str,
        /// The file or folder.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not valid state TOML.
    #[error("state file `{}` is malformed: {message}; delete it to reset the camera's flags", path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// The path is not a small regular file (a symlink, a FIFO, a device, too large).
    #[error("state file `{}` {reason}; delete it to reset the camera's flags", path.display())]
    NotRegular {
        /// The file.
        path: PathBuf,
        /// What it is instead.
        reason: String,
    },
    /// The folder could be changed by another user (owner, mode, symlink).
    #[error(
        "state folder {0}; remove it (or fix its owner and mode) or set `[deployment] state-dir` to a private folder"
    )]
    UnsafeFolder(Unsafe),
    /// Another live process holds the deployment's supervisor lock ([`StateStore::lock_supervisor`]).
    #[error("deployment {deployment} is already supervised by {}; stop it first (lock `{}`)", pid.map_or("another process".to_string(), |p| format!("pid {p}")), path.display())]
    AlreadySupervised {
        /// The deployment's name.
        deployment: String,
        /// The pid the holder wrote into the lock file, when readable.
        pid: Option<u32>,
        /// The lock file.
        path: PathBuf,
    },
}

/// On-disk form: unknown keys are ignored and missing keys take defaults, so files written by
/// other versions still load.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct RawState {
    preview: Option<bool>,
    saving: Option<bool>,
    controls: Option<ControlSettings>,
}

/// The state files of one deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateStore {
    dir: PathBuf,
    /// The per-user folder above `dir` framebus creates itself (default `state-dir` only).
    private_root: Option<PathBuf>,
}

impl StateStore {
    /// The store of `deployment` (its `state-dir`).
    pub fn of(deployment: &Deployment) -> StateStore {
        let private_root = match deployment.deployment.state_dir {
            None => Some(defaults::state_root()),
            Some(_) => None,
        };
        StateStore { dir: deployment.state_dir(), private_root }
    }

    /// A store in `dir`.
    pub fn in_dir(dir: impl Into<PathBuf>) -> StateStore {
        StateStore { dir: dir.into(), private_root: None }
    }

    /// The state file of `camera`.
    pub fn path(&self, camera: &str) -> PathBuf {
        self.dir.join(format!("{camera}.state"))
    }

    /// The folder, checked to be changeable by nobody but this user (and root), resolved; with
    /// `create`, created (mode 0700) when missing, else `None` when missing.
    fn checked_dir(&self, create: bool) -> Result<Option<PathBuf>, StateError> {
        let exists = |p: &Path| std::fs::symlink_metadata(p).is_ok();
        if !create && !exists(&self.dir) {
            return Ok(None);
        }
        match &self.private_root {
            // framebus's own folders: never a symlink, always this user's, created 0700.
            Some(root) => {
                secure_fs::ensure_own_dir(root).map_err(StateError::UnsafeFolder)?;
                secure_fs::ensure_own_dir(&self.dir).map_err(StateError::UnsafeFolder)?;
            }
            None if create => {
                use std::os::unix::fs::DirBuilderExt;
                std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&self.dir).map_err(|source| {
                    StateError::Io { what: "creating state folder", path: self.dir.clone(), source }
                })?;
            }
            None => {}
        }
        secure_fs::check_private_dir(&self.dir).map(Some).map_err(StateError::UnsafeFolder)
    }

    /// The flags commands have set for `camera`; none when the file does not exist yet.
    pub fn recorded(&self, camera: &str) -> Result<RecordedFlags, StateError> {
        let Some(dir) = self.checked_dir(false)? else { return Ok(RecordedFlags::default()) };
        self.recorded_in(&dir, camera)
    }

    fn recorded_in(&self, dir: &Path, camera: &str) -> Result<RecordedFlags, StateError> {
        let raw = self.raw_in(dir, camera)?;
        Ok(RecordedFlags { preview: raw.preview, saving: raw.saving })
    }

    fn raw_in(&self, dir: &Path, camera: &str) -> Result<RawState, StateError> {
        let path = self.path(camera);
        let text = match secure_fs::read_regular(&dir.join(format!("{camera}.state")), MAX_STATE_BYTES) {
            Ok(Some(text)) => text,
            Ok(None) => return Ok(RawState { preview: None, saving: None, controls: None }),
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                return Err(StateError::NotRegular { path, reason: e.to_string() })
            }
            Err(source) => return Err(StateError::Io { what: "reading state file", path, source }),
        };
        toml::from_str(&text).map_err(|e| StateError::Malformed { path: path.clone(), message: e.to_string() })
    }

    /// The camera controls set while capturing, in the order they were last set; none when
    /// nothing was set.
    pub fn recorded_controls(&self, camera: &str) -> Result<Vec<(String, ControlValue)>, StateError> {
        let Some(dir) = self.checked_dir(false)? else { return Ok(Vec::new()) };
        Ok(self.raw_in(&dir, camera)?.controls.map(|c| c.0).unwrap_or_default())
    }

    /// Like [`StateStore::recorded_controls`], but a broken file logs a warning and counts as
    /// nothing recorded.
    pub fn recorded_controls_or_none(&self, camera: &str) -> Vec<(String, ControlValue)> {
        self.recorded_controls(camera).unwrap_or_else(|e| {
            tracing::warn!(camera, "{e}; setting only the config's controls");
            Vec::new()
        })
    }

    /// Records controls set while capturing: each one replaces its earlier value and moves to
    /// the end (re-applying the list sets each once, in the order it was last set). Written
    /// atomically under the camera's lock, keeping the flags. Returns every recorded control.
    pub fn record_controls(
        &self,
        camera: &str,
        settings: &[(String, ControlValue)],
    ) -> Result<Vec<(String, ControlValue)>, StateError> {
        let dir = self.checked_dir(true)?.unwrap_or_else(|| self.dir.clone());
        let _lock = FileLock::acquire(&dir.join(format!("{camera}.lock")))?;
        let raw = self.raw_in(&dir, camera).unwrap_or_else(|e| {
            tracing::warn!(camera, "{e}; replacing it");
            RawState { preview: None, saving: None, controls: None }
        });
        let flags = RecordedFlags { preview: raw.preview, saving: raw.saving };
        let mut controls = raw.controls.map(|c| c.0).unwrap_or_default();
        for (name, value) in settings {
            let key = normalize_control_name(name);
            controls.retain(|(k, _)| *k != key);
            controls.push((key, value.clone()));
        }
        self.write_in(&dir, camera, flags, &controls)?;
        Ok(controls)
    }

    /// Like [`StateStore::recorded`], but a broken file logs a warning and counts as nothing
    /// recorded: a process must not fail to start over its flags.
    pub fn recorded_or_none(&self, camera: &str) -> RecordedFlags {
        self.recorded(camera).unwrap_or_else(|e| {
            tracing::warn!(camera, "{e}; using the config's initial flags");
            RecordedFlags::default()
        })
    }

    /// The effective flags of `camera`: recorded ones over `initial`; a broken file logs a
    /// warning and gives `initial`.
    pub fn effective(&self, camera: &str, initial: CameraState) -> CameraState {
        self.recorded_or_none(camera).over(initial)
    }

    /// Reads the recorded flags of `camera`, applies `change` and writes them back atomically,
    /// holding the camera's lock throughout. Returns the new recorded flags.
    pub fn update(&self, camera: &str, change: impl FnOnce(&mut RecordedFlags)) -> Result<RecordedFlags, StateError> {
        let dir = self.checked_dir(true)?.unwrap_or_else(|| self.dir.clone());
        let _lock = FileLock::acquire(&dir.join(format!("{camera}.lock")))?;
        // A malformed file is replaced: the command being recorded is what the operator wants now.
        let raw = self.raw_in(&dir, camera).unwrap_or_else(|e| {
            tracing::warn!(camera, "{e}; replacing it");
            RawState { preview: None, saving: None, controls: None }
        });
        let mut state = RecordedFlags { preview: raw.preview, saving: raw.saving };
        change(&mut state);
        self.write_in(&dir, camera, state, &raw.controls.map(|c| c.0).unwrap_or_default())?;
        Ok(state)
    }

    /// Replaces the state file of `camera` in `dir` (the caller holds its lock).
    fn write_in(
        &self,
        dir: &Path,
        camera: &str,
        state: RecordedFlags,
        controls: &[(String, ControlValue)],
    ) -> Result<(), StateError> {
        let path = self.path(camera);
        let mut text = format!(
            "# framebus command state of camera `{camera}` (written by ctl and the camera's processes);\n# a flag listed here wins over the config's `enabled`, delete the file to start from the config\n"
        );
        for (key, value) in [("preview", state.preview), ("saving", state.saving)] {
            if let Some(on) = value {
                text.push_str(&format!("{key} = {on}\n"));
            }
        }
        if !controls.is_empty() {
            text.push_str(
                "\n# camera controls set while capturing, set again at every start and reconnect\n[controls]\n",
            );
            for (name, value) in controls {
                let value = match value {
                    ControlValue::Integer(v) => toml::Value::Integer(*v),
                    ControlValue::Bool(v) => toml::Value::Boolean(*v),
                    ControlValue::Menu(v) => toml::Value::String(v.clone()),
                };
                text.push_str(&format!("{name} = {value}\n"));
            }
        }
        // Created exclusively (O_EXCL, mode 0600) under a random name: nothing planted is followed.
        let mut tmp =
            tempfile::Builder::new().prefix(&format!(".{camera}.state.")).tempfile_in(dir).map_err(|source| {
                StateError::Io { what: "creating a temporary state file in", path: dir.to_path_buf(), source }
            })?;
        let tmp_path = tmp.path().to_path_buf();
        let file = tmp.as_file_mut();
        file.write_all(text.as_bytes()).and_then(|()| file.sync_all()).map_err(|source| StateError::Io {
            what: "writing state file",
            path: tmp_path,
            source,
        })?;
        // rename replaces a symlink at the final name itself, never its target.
        tmp.persist(dir.join(format!("{camera}.state"))).map_err(|e| StateError::Io {
            what: "replacing state file",
            path: path.clone(),
            source: e.error,
        })?;
        Ok(())
    }
}

/// File name of the supervisor lock in the deployment's state folder.
pub const SUPERVISOR_LOCK: &str = "supervisor.lock";

/// The deployment's supervisor lock, held while the value lives. The kernel releases it when
/// the process ends in any way (even `kill -9`), so a stale lock never blocks a new start.
#[derive(Debug)]
pub struct SupervisorLock {
    _file: File,
    path: PathBuf,
}

impl SupervisorLock {
    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl StateStore {
    /// Takes the deployment's supervisor lock without waiting: an exclusive `flock` on
    /// `<state-dir>/supervisor.lock` (checked like the state files: a private folder, no
    /// symlink, a regular file), then writes this process's pid into it for the message of the
    /// next one. [`StateError::AlreadySupervised`] when a live process holds it.
    pub fn lock_supervisor(&self, deployment: &str) -> Result<SupervisorLock, StateError> {
        let dir = self.checked_dir(true)?.unwrap_or_else(|| self.dir.clone());
        let path = dir.join(SUPERVISOR_LOCK);
        let io = |what, source| StateError::Io { what, path: path.clone(), source };
        let mut file = secure_fs::open_regular_rw(&path, 0o600).map_err(|e| io("opening supervisor lock", e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = (&file).take(32).read_to_string(&mut text);
                return Err(StateError::AlreadySupervised {
                    deployment: deployment.to_string(),
                    pid: text.trim().parse().ok(),
                    path,
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io("locking supervisor lock", e)),
        }
        let pid = format!("{}\n", std::process::id());
        file.set_len(0)
            .and_then(|()| file.write_all(pid.as_bytes()))
            .map_err(|e| io("writing the pid into supervisor lock", e))?;
        Ok(SupervisorLock { _file: file, path })
    }
}

impl CameraState {
    /// The flags a camera starts with when no command has set them: `enabled` of its
    /// `[camera.preview]` / `[camera.recorder]` table, else the built-in defaults.
    pub fn initial(camera: Option<&CameraConfig>) -> CameraState {
        let defaults = CameraState::default();
        CameraState {
            preview: camera.and_then(|c| c.preview.as_ref()).map_or(defaults.preview, |p| p.enabled),
            saving: camera.and_then(|c| c.recorder.as_ref()).map_or(defaults.saving, |r| r.enabled),
        }
    }

    /// The effective flags of `camera` in `deployment`: recorded by a command, else the
    /// config's initial values.
    pub fn load(deployment: &Deployment, camera: &str) -> Result<CameraState, StateError> {
        let initial = CameraState::initial(deployment.camera(Some(camera)).ok());
        Ok(StateStore::of(deployment).recorded(camera)?.over(initial))
    }
}

/// An exclusive `flock`, released when dropped (closing the file releases it).
struct FileLock {
    _file: File,
}

impl FileLock {
    fn acquire(path: &Path) -> Result<FileLock, StateError> {
        let io = |what, source| StateError::Io { what, path: path.to_path_buf(), source };
        let file = secure_fs::open_regular_rw(path, 0o600).map_err(|e| io("opening lock file", e))?;
        // `File::lock` is `flock(LOCK_EX)` on Linux: the same lock as before, held until closed.
        file.lock().map_err(|e| io("locking", e))?;
        Ok(FileLock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A missing file records nothing; an update is read back and keeps the other flag
    /// unrecorded; a malformed file is an error naming the file, and the next update replaces it.
    #[test]
    fn state_round_trips_and_malformed_files_are_reported() {
        let dir = tempfile_dir("roundtrip");
        let store = StateStore::in_dir(&dir);
        assert_eq!(store.recorded("cam0").ok(), Some(RecordedFlags::default()));
        let written = store.update("cam0", |s| s.saving = Some(true)).ok();
        assert_eq!(written, Some(RecordedFlags { saving: Some(true), preview: None }));
        assert_eq!(store.recorded("cam0").ok(), written);
        assert_eq!(store.recorded("cam1").ok(), Some(RecordedFlags::default()));
        std::fs::write(store.path("cam0"), "saving = 7").ok();
        let err = store.recorded("cam0").err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("cam0.state") && err.contains("malformed"), "{err}");
        let fixed = store.update("cam0", |s| s.preview = Some(false)).ok();
        assert_eq!(fixed, Some(RecordedFlags { preview: Some(false), saving: None }));
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Precedence: a recorded flag wins over the config's `enabled`; an unrecorded one takes it.
    #[test]
    fn recorded_flags_win_over_the_config() {
        let dir = tempfile_dir("precedence");
        let store = StateStore::in_dir(&dir);
        let config = CameraState { preview: false, saving: true };
        assert_eq!(store.effective("cam0", config), config, "no file: the config decides");
        store.update("cam0", |s| s.saving = Some(false)).ok();
        assert_eq!(store.effective("cam0", config), CameraState { preview: false, saving: false });
        store.update("cam0", |s| s.preview = Some(true)).ok();
        assert_eq!(store.effective("cam0", config), CameraState { preview: true, saving: false });
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Controls are recorded in the order last set, survive flag updates, and flags survive
    /// control updates; menu names with quotes round-trip.
    #[test]
    fn controls_are_recorded_in_order_next_to_the_flags() {
        let dir = tempfile_dir("controls");
        let store = StateStore::in_dir(&dir);
        assert_eq!(store.recorded_controls("cam0").ok(), Some(vec![]));
        let menu = ControlValue::Menu("Manual \"Mode\"".into());
        store
            .record_controls(
                "cam0",
                &[("Auto Exposure".into(), menu.clone()), ("gain".into(), ControlValue::Integer(3))],
            )
            .ok();
        store.update("cam0", |s| s.saving = Some(true)).ok();
        let all = store.record_controls("cam0", &[("auto_exposure".into(), ControlValue::Integer(3))]).ok();
        let want = vec![
            ("gain".to_string(), ControlValue::Integer(3)),
            ("auto_exposure".to_string(), ControlValue::Integer(3)),
        ];
        assert_eq!(all.as_ref(), Some(&want));
        assert_eq!(store.recorded_controls("cam0").ok(), Some(want));
        assert_eq!(store.recorded("cam0").ok(), Some(RecordedFlags { saving: Some(true), preview: None }));
        store.record_controls("cam1", &[("x".into(), menu.clone()), ("on".into(), ControlValue::Bool(false))]).ok();
        assert_eq!(
            store.recorded_controls("cam1").ok(),
            Some(vec![("x".to_string(), menu), ("on".to_string(), ControlValue::Bool(false))])
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn tempfile_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("framebus-state-test-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }
}
