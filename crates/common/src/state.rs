//! Command state that outlives processes: the preview and saving flags of each camera, set by
//! `ctl` (and by the control server of a process when it receives the command) and read by a
//! process when it starts, so a restarted recorder resumes saving.
//!
//! One small TOML file per camera, `<state-dir>/<camera>.state`, replaced atomically (written to
//! a temporary file, then renamed) under an exclusive `flock` on `<camera>.lock`, so a reader
//! never sees half a file and two concurrent updates of different flags never lose one.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::config::{defaults, Deployment};

/// The persisted flags of one camera.
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
}

/// On-disk form: unknown keys are ignored and missing keys take defaults, so files written by
/// other versions still load.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct RawState {
    preview: Option<bool>,
    saving: Option<bool>,
}

/// The state files of one deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateStore {
    dir: PathBuf,
}

impl StateStore {
    /// The store of `deployment` (its `state-dir`).
    pub fn of(deployment: &Deployment) -> StateStore {
        StateStore { dir: deployment.state_dir() }
    }

    /// A store in `dir`.
    pub fn in_dir(dir: impl Into<PathBuf>) -> StateStore {
        StateStore { dir: dir.into() }
    }

    /// The state file of `camera`.
    pub fn path(&self, camera: &str) -> PathBuf {
        self.dir.join(format!("{camera}.state"))
    }

    /// The flags of `camera`; defaults when the file does not exist yet.
    pub fn load(&self, camera: &str) -> Result<CameraState, StateError> {
        let path = self.path(camera);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(CameraState::default()),
            Err(source) => return Err(StateError::Io { what: "reading state file", path, source }),
        };
        let raw: RawState =
            toml::from_str(&text).map_err(|e| StateError::Malformed { path: path.clone(), message: e.to_string() })?;
        let defaults = CameraState::default();
        Ok(CameraState {
            preview: raw.preview.unwrap_or(defaults.preview),
            saving: raw.saving.unwrap_or(defaults.saving),
        })
    }

    /// Like [`StateStore::load`], but a broken file logs a warning and gives the defaults: a
    /// process must not fail to start over its flags.
    pub fn load_or_default(&self, camera: &str) -> CameraState {
        self.load(camera).unwrap_or_else(|e| {
            tracing::warn!(camera, "{e}; using the default flags");
            CameraState::default()
        })
    }

    /// Reads the flags of `camera`, applies `change` and writes them back atomically, holding
    /// the camera's lock throughout. Returns the new flags.
    pub fn update(&self, camera: &str, change: impl FnOnce(&mut CameraState)) -> Result<CameraState, StateError> {
        std::fs::create_dir_all(&self.dir).map_err(|source| StateError::Io {
            what: "creating state folder",
            path: self.dir.clone(),
            source,
        })?;
        let _lock = FileLock::acquire(&self.dir.join(format!("{camera}.lock")))?;
        // A malformed file is replaced: the command being recorded is what the operator wants now.
        let mut state = self.load_or_default(camera);
        change(&mut state);
        let path = self.path(camera);
        let tmp = self.dir.join(format!(".{camera}.state.{}", std::process::id()));
        let text = format!(
            "# framebus command state of camera `{camera}` (written by ctl and the camera's processes)\npreview = {}\nsaving = {}\n",
            state.preview, state.saving
        );
        let write = |file: &mut File| file.write_all(text.as_bytes()).and_then(|()| file.sync_all());
        File::create(&tmp).and_then(|mut file| write(&mut file)).map_err(|source| StateError::Io {
            what: "writing state file",
            path: tmp.clone(),
            source,
        })?;
        std::fs::rename(&tmp, &path).map_err(|source| {
            let _ = std::fs::remove_file(&tmp);
            StateError::Io { what: "replacing state file", path: path.clone(), source }
        })?;
        Ok(state)
    }
}

impl CameraState {
    /// The flags of `camera` in `deployment` (defaults when none were recorded yet).
    pub fn load(deployment: &Deployment, camera: &str) -> Result<CameraState, StateError> {
        StateStore::of(deployment).load(camera)
    }
}

/// An exclusive `flock`, released when dropped (closing the file releases it).
struct FileLock {
    _file: File,
}

impl FileLock {
    fn acquire(path: &Path) -> Result<FileLock, StateError> {
        let io = |what, source| StateError::Io { what, path: path.to_path_buf(), source };
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(|e| io("opening lock file", e))?;
        // SAFETY: flock on a file descriptor we own; no memory is involved.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
        if rc != 0 {
            return Err(io("locking", std::io::Error::last_os_error()));
        }
        Ok(FileLock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A missing file gives the defaults; an update is read back; a malformed file is an error
    /// naming the file, and the next update replaces it.
    #[test]
    fn state_round_trips_and_malformed_files_are_reported() {
        let dir = tempfile_dir();
        let store = StateStore::in_dir(&dir);
        assert_eq!(store.load("cam0").ok(), Some(CameraState::default()));
        let written = store.update("cam0", |s| s.saving = true).ok();
        assert_eq!(written, Some(CameraState { saving: true, ..CameraState::default() }));
        assert_eq!(store.load("cam0").ok(), written);
        assert_eq!(store.load("cam1").ok(), Some(CameraState::default()));
        std::fs::write(store.path("cam0"), "saving = 7").ok();
        let err = store.load("cam0").err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("cam0.state") && err.contains("malformed"), "{err}");
        let fixed = store.update("cam0", |s| s.preview = false).ok();
        assert_eq!(fixed, Some(CameraState { preview: false, saving: defaults::SAVING_ON }));
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn tempfile_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("framebus-state-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }
}
