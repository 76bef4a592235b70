//! A webhook receiver for tests: a thread on 127.0.0.1 that reads each POST (over plain TCP or
//! TLS), answers 204 and hands the request to the test; and a self-signed certificate for it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// One POST as received.
#[derive(Debug, Clone)]
pub struct Delivered {
    /// Request line, e.g. `POST /hook HTTP/1.1`.
    pub request_line: String,
    /// Header names (lower case) and values, in order.
    pub headers: Vec<(String, String)>,
    /// The body as sent.
    pub raw: Vec<u8>,
    /// The body as JSON (`Null` when it is not).
    pub body: serde_json::Value,
}

impl Delivered {
    /// Value of header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// The running receiver; dropping it stops it (its port closes).
pub struct WebhookReceiver {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// Connections accepted, complete requests or not (a refused TLS handshake counts).
    pub connections: Arc<AtomicU64>,
}

impl WebhookReceiver {
    /// Listens on 127.0.0.1:`port`, over TLS when `tls` is given; every POST goes to `sink`.
    pub fn start(port: u16, tls: Option<Arc<rustls::ServerConfig>>, sink: mpsc::Sender<Delivered>) -> WebhookReceiver {
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind the receiver's port");
        listener.set_nonblocking(true).expect("nonblocking");
        let stop = Arc::new(AtomicBool::new(false));
        let connections = Arc::new(AtomicU64::new(0));
        let (stopped, counted) = (Arc::clone(&stop), Arc::clone(&connections));
        let thread = std::thread::spawn(move || {
            while !stopped.load(Ordering::Relaxed) {
                let Ok((stream, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                };
                counted.fetch_add(1, Ordering::Relaxed);
                let _ = stream.set_nonblocking(false);
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                let delivered = match &tls {
                    None => read_post(stream),
                    Some(config) => rustls::ServerConnection::new(Arc::clone(config))
                        .ok()
                        .and_then(|connection| read_post(rustls::StreamOwned::new(connection, stream))),
                };
                if let Some(delivered) = delivered {
                    let _ = sink.send(delivered);
                }
            }
        });
        WebhookReceiver { stop, thread: Some(thread), connections }
    }
}

impl Drop for WebhookReceiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Reads one POST (head, then `Content-Length` bytes) and answers 204.
fn read_post<S: Read + Write>(stream: S) -> Option<Delivered> {
    let mut reader = BufReader::new(stream);
    let mut request_line = String::new();
    reader.read_line(&mut request_line).ok()?;
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).ok()?;
        if line.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
    }
    let length: usize =
        headers.iter().find(|(n, _)| n == "content-length").and_then(|(_, v)| v.parse().ok()).unwrap_or(0);
    let mut raw = vec![0; length];
    reader.read_exact(&mut raw).ok()?;
    let stream = reader.get_mut();
    let _ = stream.write_all(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n");
    let _ = stream.flush();
    let body = serde_json::from_slice(&raw).unwrap_or(serde_json::Value::Null);
    Some(Delivered { request_line: request_line.trim_end().to_string(), headers, raw, body })
}

/// Runs `openssl` with `args` in `dir`; panics with its output when it fails.
fn openssl(dir: &Path, args: &[&str]) {
    let made = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("openssl is installed");
    assert!(made.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&made.stderr));
}

/// A key pair's OpenSSL arguments: EC P-256, no passphrase.
const NEW_KEY: [&str; 5] = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];

/// A self-signed certificate for 127.0.0.1 and its key (mode 0600), made by `openssl` in `dir`:
/// (certificate path, key path). TLS clients trust it only as its own authority.
pub fn self_signed_certificate(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let (certificate, key) = (format!("{name}.pem"), format!("{name}.key"));
    let mut args = vec!["req", "-x509", "-days", "1", "-subj", "/CN=127.0.0.1"];
    args.extend(NEW_KEY);
    args.extend(["-addext", "subjectAltName=IP:127.0.0.1", "-keyout", &key, "-out", &certificate]);
    openssl(dir, &args);
    std::fs::set_permissions(dir.join(&key), std::os::unix::fs::PermissionsExt::from_mode(0o600)).expect("chmod");
    (dir.join(certificate), dir.join(key))
}

/// A certificate authority made by `openssl` in `dir`: (its certificate `<name>-ca.pem`, its
/// key `<name>-ca.key`).
pub fn certificate_authority(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let (ca, ca_key) = (format!("{name}-ca.pem"), format!("{name}-ca.key"));
    let mut args = vec!["req", "-x509", "-days", "1", "-subj", "/CN=framebus test authority"];
    args.extend(NEW_KEY);
    args.extend(["-keyout", &ca_key, "-out", &ca]);
    openssl(dir, &args);
    (dir.join(ca), dir.join(ca_key))
}

/// A certificate for 127.0.0.1 (`<name>.pem`, common name `name`) that the authority `ca`
/// (with its key `ca_key`) signed, and its key (`<name>.key`, mode 0600), made by `openssl` in
/// `dir`: (certificate, key). Good for a server and for a client of mutual TLS.
pub fn certificate_signed_by(dir: &Path, ca: &Path, ca_key: &Path, name: &str) -> (PathBuf, PathBuf) {
    let (certificate, key, request) = (format!("{name}.pem"), format!("{name}.key"), format!("{name}.csr"));
    let extensions = format!("{name}.ext");
    std::fs::write(dir.join(&extensions), "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n")
        .expect("write the extensions");
    let subject = format!("/CN={name}");
    let mut args = vec!["req", "-subj", subject.as_str()];
    args.extend(NEW_KEY);
    args.extend(["-keyout", &key, "-out", &request]);
    openssl(dir, &args);
    let (ca, ca_key) = (ca.to_str().expect("utf-8"), ca_key.to_str().expect("utf-8"));
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-days",
            "1",
            "-in",
            &request,
            "-CA",
            ca,
            "-CAkey",
            ca_key,
            "-set_serial",
            "1",
            "-extfile",
            &extensions,
            "-out",
            &certificate,
        ],
    );
    std::fs::set_permissions(dir.join(&key), std::os::unix::fs::PermissionsExt::from_mode(0o600)).expect("chmod");
    (dir.join(certificate), dir.join(key))
}

/// A certificate authority (`<name>-ca.pem`) and a server certificate for 127.0.0.1 it signed,
/// with its key, made by `openssl` in `dir`: (authority's certificate, server certificate,
/// server key). A client that trusts the authority accepts the server, as with a site's own CA.
pub fn certificate_authority_and_server(dir: &Path, name: &str) -> (PathBuf, PathBuf, PathBuf) {
    let (ca, ca_key) = certificate_authority(dir, name);
    let (certificate, key) = certificate_signed_by(dir, &ca, &ca_key, name);
    (ca, certificate, key)
}

/// A TLS server set-up (rustls, ring) with `certificate` and `key` (PEM files).
pub fn tls_server(certificate: &Path, key: &Path) -> Arc<rustls::ServerConfig> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(certificate)
        .expect("certificate file")
        .collect::<Result<_, _>>()
        .expect("certificate PEM");
    let key = PrivateKeyDer::from_pem_file(key).expect("key PEM");
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .expect("certificate and key");
    Arc::new(config)
}
