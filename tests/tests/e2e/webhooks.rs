//! Webhooks over https, signed: under `ctl up`, a clip's `start` and `end` reach a TLS
//! receiver whose certificate a site's own authority signed (the endpoint's `ca-file`), each
//! POST signed with the endpoint's secret (checked here with `openssl dgst -hmac`, an
//! implementation of its own). An endpoint whose certificate nobody trusts is never sent the
//! event (the TLS handshake fails, counted as retries); a secret file others may read stops
//! `ctl up` with the key named.

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use framebus_e2e::webhook::{
    certificate_authority_and_server, self_signed_certificate, tls_server, Delivered, WebhookReceiver,
};
use framebus_e2e::{http_get, process_status, TestDeployment, DEADLINE};

const SECRET: &str = "0f3c9a7e5b2d4c6e8a1b3d5f7091a2b4";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

/// `sha256=<hex>` as `openssl dgst -sha256 -hmac` computes it over "<timestamp>.<body>".
fn openssl_signature(timestamp: &str, body: &[u8]) -> String {
    use std::io::Write;
    let mut openssl = Command::new("openssl")
        .args(["dgst", "-sha256", "-hmac", SECRET])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("openssl is installed");
    let mut input = openssl.stdin.take().expect("stdin");
    input.write_all(timestamp.as_bytes()).and_then(|()| input.write_all(b".")).expect("write");
    input.write_all(body).expect("write");
    drop(input);
    let out = openssl.wait_with_output().expect("openssl");
    let text = String::from_utf8_lossy(&out.stdout);
    format!("sha256={}", text.rsplit(' ').next().unwrap_or_default().trim())
}

/// A webhook metric of the endpoint whose URL contains `port`.
fn metric(metrics: u16, name: &str, port: u16) -> f64 {
    let (_, _, body) = http_get(&format!("http://127.0.0.1:{metrics}/"), "/metrics");
    String::from_utf8_lossy(&body)
        .lines()
        .find(|l| l.starts_with(&format!("{name}{{")) && l.contains(&format!(":{port}/")))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// The next delivery of `event`, within the deadline.
fn next(deliveries: &mpsc::Receiver<Delivered>, event: &str) -> Delivered {
    let until = Instant::now() + DEADLINE;
    loop {
        let left = until.saturating_duration_since(Instant::now());
        let delivered =
            deliveries.recv_timeout(left).unwrap_or_else(|_| panic!("no webhook `{event}` within {DEADLINE:?}"));
        if delivered.body["event"] == event {
            return delivered;
        }
    }
}

#[test]
fn https_webhooks_are_signed_and_untrusted_certificates_get_nothing() {
    let (metrics, trusted, untrusted) = (free_port(), free_port(), free_port());
    let d = TestDeployment::new(&format!(
        "metrics = \"127.0.0.1:{metrics}\"\n\n\
         [[deployment.webhook]]\nurl = \"https://127.0.0.1:{trusted}/hook\"\nca-file = \"receiver-ca.pem\"\n\
         secret-file = \"webhook.secret\"\ntimeout-secs = 2\n\n\
         [[deployment.webhook]]\nurl = \"https://127.0.0.1:{untrusted}/hook\"\ntimeout-secs = 2\n\n\
         [[camera]]\nname = \"cam0\"\nwidth = 320\nheight = 240\nfps = 30\n\n\
         [camera.source]\nkind = \"synthetic\"\n\n\
         [camera.recorder]\ndirectory = \"rec\"\nmin-free-mb = 1\nstats-interval-secs = 0.5\n"
    ));
    let dir = d.dir.path();
    let (_, certificate, key) = certificate_authority_and_server(dir, "receiver");
    let (other_certificate, other_key) = self_signed_certificate(dir, "other");
    let secret = dir.join("webhook.secret");
    std::fs::write(&secret, format!("{SECRET}\n")).expect("write the secret");

    // A secret others may read: `ctl up` refuses to start and names the key.
    std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o644)).expect("chmod");
    let (code, _, err) = d.ctl(&["up"]);
    assert_ne!(code, Some(0), "ctl up started with a readable secret");
    assert!(err.contains("deployment.webhook[0].secret-file") && err.contains("chmod 600"), "{err}");
    std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o600)).expect("chmod");

    let (tx, deliveries) = mpsc::channel();
    let _receiver = WebhookReceiver::start(trusted, Some(tls_server(&certificate, &key)), tx.clone());
    let (stray_tx, stray) = mpsc::channel();
    let impostor = WebhookReceiver::start(untrusted, Some(tls_server(&other_certificate, &other_key)), stray_tx);
    let mut up = d.spawn("ctl", &["up"]);
    d.wait_status(|s| process_status(s, "cam0", "recorder")["message"].as_str().is_some_and(|m| m.starts_with("off")));

    let (code, _, err) = d.ctl(&["record", "on", "cam0"]);
    assert_eq!(code, Some(0), "{err}");
    let start = next(&deliveries, "start");
    let (code, _, err) = d.ctl(&["record", "off", "cam0"]);
    assert_eq!(code, Some(0), "{err}");
    let end = next(&deliveries, "end");
    assert_eq!(end.body["clip"], start.body["clip"], "{:?}", end.body);
    for delivered in [&start, &end] {
        assert!(delivered.request_line.starts_with("POST /hook "), "{}", delivered.request_line);
        let timestamp = delivered.header("x-framebus-timestamp").expect("timestamp header");
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs();
        let sent: u64 = timestamp.parse().expect("unix seconds");
        assert!(sent <= now && now - sent < 600, "timestamp {sent}, now {now}");
        assert_eq!(
            delivered.header("x-framebus-signature"),
            Some(openssl_signature(timestamp, &delivered.raw).as_str()),
            "signature of {:?}",
            delivered.body
        );
    }

    // The endpoint with an untrusted certificate: connections come, TLS fails, nothing is
    // POSTed, and the attempts are counted as retries.
    let until = Instant::now() + DEADLINE;
    while metric(metrics, "framebus_webhook_retries_total", untrusted) < 1.0 {
        assert!(Instant::now() < until, "no retry counted for the untrusted endpoint within {DEADLINE:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(impostor.connections.load(Ordering::Relaxed) >= 1);
    assert!(stray.try_recv().is_err(), "an event was POSTed to a server whose certificate is not trusted");
    assert_eq!(metric(metrics, "framebus_webhook_sent_total", untrusted), 0.0);
    assert!(metric(metrics, "framebus_webhook_sent_total", trusted) >= 2.0);

    assert_eq!(up.terminate(), Some(0), "ctl up: {}", up.stderr_text());
    d.assert_no_leftovers();
}
