//! `[tls]`: a certificate and key for every server viewers reach. With it the media server speaks
//! RTSPS and HTTPS, every preview and the metrics endpoint HTTPS; without it they speak plain
//! RTSP and HTTP. One table for all of them, like `[auth]`.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use serde::Deserialize;

use super::{ConfigError, Deployment};

/// Largest certificate chain or key file read.
const MAX_PEM_BYTES: u64 = 1024 * 1024;

/// `[tls]`: the servers' certificate chain and private key (PEM files).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct TlsConfig {
    /// The certificate chain (PEM, the server's own certificate first), relative to the config
    /// file.
    pub certificate: PathBuf,
    /// Its private key (PEM: PKCS#8, PKCS#1 or SEC1), relative to the config file; readable by
    /// its owner (and group) only.
    pub key: PathBuf,
}

/// The PEM text of a deployment's certificate chain and key, read and checked.
#[derive(Clone)]
pub struct TlsFiles {
    /// The certificate chain file.
    pub certificate: PathBuf,
    /// The key file.
    pub key: PathBuf,
    /// The certificate chain, PEM.
    pub certificate_pem: String,
    /// The private key, PEM.
    pub key_pem: String,
}

impl std::fmt::Debug for TlsFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsFiles").field("certificate", &self.certificate).field("key", &self.key).finish()
    }
}

impl Deployment {
    /// The `[tls]` files, read now; `None` without a `[tls]` table. Errors name the file, the
    /// key and the fix.
    pub fn tls_files(&self) -> Result<Option<TlsFiles>, ConfigError> {
        let Some(tls) = &self.tls else { return Ok(None) };
        let read = |key: &str, path: &PathBuf, marker: &str, private: bool| -> Result<(PathBuf, String), ConfigError> {
            let file = self.resolve_path(path);
            let fail = |message: String| {
                ConfigError::value(&self.source_file, &format!("tls.{key}"), format!("`{}`: {message}", file.display()))
            };
            let text = match crate::secure_fs::read_regular(&file, MAX_PEM_BYTES) {
                Ok(Some(text)) => text,
                Ok(None) => return Err(fail("does not exist".into())),
                Err(e) => return Err(fail(format!("cannot be read: {e}"))),
            };
            if !text.contains(marker) {
                return Err(fail(format!("is not PEM with a `{marker}` block")));
            }
            if private {
                let mode =
                    std::fs::metadata(&file).map_err(|e| fail(format!("cannot be read: {e}")))?.permissions().mode();
                if mode & 0o027 != 0 {
                    return Err(fail(format!(
                        "mode {:o} lets other users read or change the private key: `chmod 600 {}`",
                        mode & 0o777,
                        file.display()
                    )));
                }
            }
            Ok((file, text))
        };
        let (certificate, certificate_pem) =
            read("certificate", &tls.certificate, "-----BEGIN CERTIFICATE-----", false)?;
        let (key, key_pem) = read("key", &tls.key, "PRIVATE KEY-----", true)?;
        Ok(Some(TlsFiles { certificate, key, certificate_pem, key_pem }))
    }

    /// `https` with `[tls]`, else `http`.
    pub fn http_scheme(&self) -> &'static str {
        if self.tls.is_some() {
            "https"
        } else {
            "http"
        }
    }
}
