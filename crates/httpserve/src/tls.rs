//! HTTPS for every framebus HTTP server when the deployment has `[tls]` (rustls with the ring
//! provider, TLS 1.2 and 1.3). The handshake must end within the request-head deadline, so a
//! client stalling in it holds its place no longer than one stalling in its request.

use std::sync::Arc;

use framebus_common::config::{ConfigError, Deployment, TlsFiles};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// A server's TLS set-up (certificate chain and key).
#[derive(Clone)]
pub struct Tls(pub(crate) tokio_rustls::TlsAcceptor);

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tls")
    }
}

impl Tls {
    /// From a PEM certificate chain (the server's certificate first) and its PEM private key;
    /// the error says which part is wrong.
    pub fn from_pem(certificate_pem: &str, key_pem: &str) -> Result<Tls, String> {
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(certificate_pem.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|e| format!("the certificate file: {e}"))?;
        if chain.is_empty() {
            return Err("the certificate file holds no certificate".into());
        }
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| format!("the key file: {e}"))?;
        // ring rather than aws-lc-rs (rustls' choice, which needs cmake to build); rustls 0.23.48
        // deprecates ring's provider only for its lack of post-quantum key exchange.
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS versions: {e}"))?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| format!("the certificate and key do not make a TLS set-up: {e}"))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Tls(tokio_rustls::TlsAcceptor::from(Arc::new(config))))
    }

    /// The deployment's `[tls]`, or `None`; errors name the config file and the key.
    pub fn of_deployment(deployment: &Deployment) -> Result<Option<Tls>, ConfigError> {
        let Some(files) = deployment.tls_files()? else { return Ok(None) };
        Tls::of_files(deployment, &files).map(Some)
    }

    fn of_files(deployment: &Deployment, files: &TlsFiles) -> Result<Tls, ConfigError> {
        Tls::from_pem(&files.certificate_pem, &files.key_pem).map_err(|e| {
            ConfigError::value(
                &deployment.source_file,
                "tls",
                format!("`{}` and `{}`: {e}", files.certificate.display(), files.key.display()),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Text that is not a certificate and key is refused naming the part.
    #[test]
    fn bad_pem_is_refused_naming_the_part() {
        let e = Tls::from_pem("nothing", "nothing").expect_err("no certificate");
        assert!(e.contains("no certificate"), "{e}");
        let cert = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        let e = Tls::from_pem(cert, "nothing").expect_err("no key");
        assert!(e.contains("the key file"), "{e}");
    }
}
