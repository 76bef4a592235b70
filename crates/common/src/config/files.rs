//! Files a config names (viewers' passwords, TLS keys and certificates, webhook secrets, Zenoh's
//! keys and access rules), read the one way: resolved against the config's folder, a regular
//! file of bounded size (never a symlink, FIFO or device: no hang, no redirection), and refused
//! when other users may read (a secret) or change (a rule) it. Every error names the config
//! file, the key and the fix.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::{ConfigError, Deployment};

/// Largest file a config may name (PEM files, user lists, secrets, access rules).
pub(crate) const MAX_CONFIG_FILE_BYTES: u64 = 1024 * 1024;

/// Who else may touch a file.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Access {
    /// Anyone may read it; not every user may change it (certificates and rules: public, but
    /// a replaced authority or rule would let anyone in).
    Public,
    /// Its group may read it, nobody else may read or change it (private keys: the
    /// `ssl-cert` group convention); `why` ends the refusal.
    GroupReadable(&'static str),
    /// Only its owner may read it (shared secrets); `why` ends the refusal.
    OwnerOnly(&'static str),
}

impl Access {
    /// The mode bits that must be clear.
    fn forbidden(self) -> u32 {
        match self {
            Access::Public => 0o002,
            Access::GroupReadable(_) => 0o027,
            Access::OwnerOnly(_) => 0o077,
        }
    }
}

/// A file read for a config key: where it is and what it holds.
#[derive(Debug, Clone)]
pub(crate) struct ConfigFile {
    /// Its path, resolved against the config's folder.
    pub path: PathBuf,
    /// Its text.
    pub text: String,
}

impl Deployment {
    /// Reads the file at `path` that the config key `key` names, under `access`; `missing` is
    /// the hint given when it does not exist. `marker` (a PEM block's start), when given, must
    /// occur in it.
    pub(crate) fn read_config_file(
        &self,
        key: &str,
        path: &Path,
        access: Access,
        marker: Option<&str>,
        missing: &str,
    ) -> Result<ConfigFile, ConfigError> {
        let file = self.resolve_path(path);
        let fail =
            |message: String| ConfigError::value(&self.source_file, key, format!("`{}`: {message}", file.display()));
        let text = match crate::secure_fs::read_regular(&file, MAX_CONFIG_FILE_BYTES) {
            Ok(Some(text)) => text,
            Ok(None) => return Err(fail(format!("does not exist{missing}"))),
            Err(e) => return Err(fail(format!("cannot be read: {e}"))),
        };
        let mode = std::fs::metadata(&file).map_err(|e| fail(format!("cannot be read: {e}")))?.permissions().mode();
        if mode & access.forbidden() != 0 {
            let (fix, why) = match access {
                Access::Public => ("chmod o-w", "lets every user change it"),
                Access::GroupReadable(why) | Access::OwnerOnly(why) => ("chmod 600", why),
            };
            return Err(fail(format!("mode {:o} {why}: `{fix} {}`", mode & 0o777, file.display())));
        }
        if let Some(marker) = marker {
            if !text.contains(marker) {
                return Err(fail(format!("is not PEM with a `{marker}` block")));
            }
        }
        Ok(ConfigFile { path: file, text })
    }
}
