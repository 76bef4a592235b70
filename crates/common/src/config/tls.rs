//! `[tls]`: a certificate and key for every server viewers reach. With it the media server speaks
//! RTSPS and HTTPS, every preview and the metrics endpoint HTTPS; without it they speak plain
//! RTSP and HTTP. One table for all of them, like `[auth]`.

use std::path::PathBuf;

use serde::Deserialize;

use super::files::Access;
use super::{ConfigError, Deployment};

/// What a PEM certificate file holds.
pub(crate) const CERTIFICATE_PEM: &str = "-----BEGIN CERTIFICATE-----";
/// What a PEM private key file holds (any key type).
pub(crate) const PRIVATE_KEY_PEM: &str = "PRIVATE KEY-----";

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
        let certificate =
            self.read_config_file("tls.certificate", &tls.certificate, Access::Public, Some(CERTIFICATE_PEM), "")?;
        let key = self.read_config_file(
            "tls.key",
            &tls.key,
            Access::GroupReadable("lets other users read or change the private key"),
            Some(PRIVATE_KEY_PEM),
            "",
        )?;
        let (certificate, certificate_pem, key, key_pem) = (certificate.path, certificate.text, key.path, key.text);
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
