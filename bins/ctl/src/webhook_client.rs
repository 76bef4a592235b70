//! One webhook POST: HTTP/1.1 (hyper's client) over TCP, or over TLS (rustls with ring, the
//! servers' provider) for an `https://` endpoint, its certificate checked against the system's
//! trusted certificates and the endpoint's `ca-file`; signed with HMAC-SHA256 when the endpoint
//! has a `secret-file`.
//!
//! Signature: `X-Framebus-Timestamp: <unix seconds>` and
//! `X-Framebus-Signature: sha256=<hex of HMAC-SHA256(secret, "<timestamp>.<body>")>`. The
//! timestamp is that of the attempt, so a receiver can refuse old ones (replays).

use std::sync::Arc;

use framebus_common::config::{WebhookFiles, WebhookUrl};
use hmac::{Hmac, Mac};
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::header::{CONTENT_TYPE, HOST, USER_AGENT};
use hyper::{Request, StatusCode};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite};

/// Header with the attempt's time in Unix seconds (signed with the body).
pub const TIMESTAMP_HEADER: &str = "x-framebus-timestamp";
/// Header with `sha256=<hex>`: HMAC-SHA256 of `"<timestamp>.<body>"` with the secret.
pub const SIGNATURE_HEADER: &str = "x-framebus-signature";

/// Where and how one endpoint is sent to.
pub struct Client {
    url: WebhookUrl,
    tls: Option<tokio_rustls::TlsConnector>,
    secret: Option<Vec<u8>>,
}

impl Client {
    /// The client of `url`; for https, a TLS set-up trusting the system's certificates and the
    /// `ca-file`'s. The error says what is missing.
    pub fn new(url: WebhookUrl, files: WebhookFiles) -> Result<Client, String> {
        let tls = if url.tls { Some(connector(files.ca_pem.as_deref())?) } else { None };
        Ok(Client { url, tls, secret: files.secret })
    }

    /// One POST of `body` (JSON) at Unix time `timestamp`; the answer's status.
    pub async fn post(&self, body: Bytes, timestamp: u64) -> Result<StatusCode, String> {
        let address = (self.url.host.as_str(), self.url.port);
        let stream = tokio::net::TcpStream::connect(address)
            .await
            .map_err(|e| format!("connecting to {}: {e}", self.url.authority))?;
        match &self.tls {
            None => self.exchange(stream, body, timestamp).await,
            Some(connector) => {
                let name = ServerName::try_from(self.url.host.clone())
                    .map_err(|e| format!("`{}` is not a TLS server name: {e}", self.url.host))?;
                let stream = connector
                    .connect(name, stream)
                    .await
                    .map_err(|e| format!("TLS with {}: {e}", self.url.authority))?;
                self.exchange(stream, body, timestamp).await
            }
        }
    }

    async fn exchange<S>(&self, io: S, body: Bytes, timestamp: u64) -> Result<StatusCode, String>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (mut sender, connection) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(io))
            .await
            .map_err(|e| format!("HTTP handshake: {e}"))?;
        let driver = tokio::spawn(connection);
        let mut request = Request::post(self.url.path.as_str())
            .header(HOST, self.url.authority.as_str())
            .header(CONTENT_TYPE, "application/json")
            .header(USER_AGENT, concat!("framebus/", env!("CARGO_PKG_VERSION")));
        if let Some(secret) = &self.secret {
            request = request
                .header(TIMESTAMP_HEADER, timestamp.to_string())
                .header(SIGNATURE_HEADER, signature(secret, timestamp, &body));
        }
        let request = request.body(Full::new(body)).map_err(|e| format!("building the request: {e}"))?;
        let response = sender.send_request(request).await.map_err(|e| format!("sending: {e}"));
        driver.abort();
        Ok(response?.status())
    }
}

/// `sha256=<hex>` of HMAC-SHA256(`secret`, `"<timestamp>.<body>"`).
pub fn signature(secret: &[u8], timestamp: u64, body: &[u8]) -> String {
    // HMAC takes a key of any length, so this cannot fail; an empty tag would fail every check.
    let Ok(mut mac) = Hmac::<sha2::Sha256>::new_from_slice(secret) else { return String::new() };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let tag = mac.finalize().into_bytes();
    let hex: String = tag.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

/// A TLS client set-up trusting the system's certificates and those of `ca_pem`.
fn connector(ca_pem: Option<&str>) -> Result<tokio_rustls::TlsConnector, String> {
    let mut roots = rustls::RootCertStore::empty();
    let system = rustls_native_certs::load_native_certs();
    for certificate in system.certs {
        // A system certificate rustls cannot use is skipped, as every TLS client does.
        let _ = roots.add(certificate);
    }
    if let Some(pem) = ca_pem {
        let certificates: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|e| format!("the CA file: {e}"))?;
        for certificate in certificates {
            roots.add(certificate).map_err(|e| format!("the CA file: {e}"))?;
        }
    }
    if roots.is_empty() {
        return Err(format!(
            "no trusted certificate: the system has none ({} errors loading them; install `ca-certificates`) and there is no `ca-file`",
            system.errors.len()
        ));
    }
    // ring, as the servers (crates/httpserve/src/tls.rs says why).
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS versions: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

#[cfg(test)]
mod tests {
    use super::signature;

    /// The signature is HMAC-SHA256 of "<timestamp>.<body>": the value is the one
    /// `printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac framebus-test-secret` prints,
    /// and any change of time, body or secret changes it.
    #[test]
    fn the_signature_covers_timestamp_and_body() {
        let a = signature(b"framebus-test-secret", 1_700_000_000, br#"{"a":1}"#);
        assert_eq!(a, "sha256=dec5a59ed3ed9c83ba4d9a15d004a58a7bc4a3cd1899fc1c87baf94114a1eb9e");
        assert_ne!(a, signature(b"framebus-test-secret", 1_700_000_001, br#"{"a":1}"#));
        assert_ne!(a, signature(b"framebus-test-secret", 1_700_000_000, br#"{"a":2}"#));
        assert_ne!(a, signature(b"another-secret-value", 1_700_000_000, br#"{"a":1}"#));
    }
}
