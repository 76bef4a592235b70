//! The network half of issue 17, attacked through the real binaries: WebRTC stays on the
//! configured addresses (no UPnP/SSDP, no mDNS, no socket elsewhere), WHEP sessions are random
//! and bound to their camera, WHEP answers only pages of the configured origins, and the three
//! HTTP servers (preview, metrics, media server) keep answering under a reconnecting slowloris.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::FromRawFd;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use framebus_e2e::{http_get, TestDeployment, DEADLINE};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

/// One HTTP request: (status, whole answer text).
pub(super) fn request(port: u16, method: &str, path: &str, headers: &str, body: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream.set_read_timeout(Some(DEADLINE)).expect("timeout");
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).expect("send head");
    let _ = stream.write_all(body.as_bytes());
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer).into_owned();
    let code = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (code, text)
}

pub(super) fn header<'a>(answer: &'a str, name: &str) -> Option<&'a str> {
    answer.lines().take_while(|l| !l.is_empty()).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// An offer as a browser makes it (ICE credentials, DTLS fingerprint, H.264 mode 1), with a
/// host candidate hidden behind an mDNS name, which the server must not try to resolve.
pub(super) const OFFER: &str = "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
a=group:BUNDLE 0\r\na=msid-semantic: WMS\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 106\r\nc=IN IP4 0.0.0.0\r\na=rtcp:9 IN IP4 0.0.0.0\r\n\
a=candidate:1 1 udp 2122260223 1f2e3d4c-5b6a-4978-8a9b-0c1d2e3f4a5b.local 51234 typ host generation 0\r\n\
a=ice-ufrag:Ab3d\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=ice-options:trickle\r\n\
a=fingerprint:sha-256 12:34:56:78:9A:BC:DE:F0:12:34:56:78:9A:BC:DE:F0:12:34:56:78:9A:BC:DE:F0:12:34:56:78:9A:BC:DE:F0\r\n\
a=setup:actpass\r\na=mid:0\r\na=recvonly\r\na=rtcp-mux\r\na=rtcp-rsize\r\n\
a=rtpmap:106 H264/90000\r\na=rtcp-fb:106 nack\r\na=rtcp-fb:106 nack pli\r\n\
a=fmtp:106 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n";

/// Local addresses of every socket of `pid` in `ss -<kind>anp` output (`u` UDP, `t` TCP).
fn sockets_of(pid: u32, kind: &str) -> Vec<String> {
    let out = Command::new("ss").arg(format!("-{kind}anp")).output().expect("ss (iproute2) is installed");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains(&format!("pid={pid},")))
        .filter_map(|l| l.split_whitespace().nth(3).map(str::to_string))
        .collect()
}

/// The media server's `/status.json` entry of `camera`.
fn server_camera(http: u16, camera: &str) -> serde_json::Value {
    let (code, _, body) = http_get(&format!("http://127.0.0.1:{http}/"), "/status.json");
    assert_eq!(code, 200);
    let status: serde_json::Value = serde_json::from_slice(&body).expect("status json");
    status["cameras"].as_array().into_iter().flatten().find(|c| c["camera"] == camera).cloned().unwrap_or_default()
}

fn wait_until(what: &str, mut ok: impl FnMut() -> bool) {
    let until = Instant::now() + DEADLINE;
    while !ok() {
        assert!(Instant::now() < until, "{what} did not happen within {DEADLINE:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn two_cameras(rtsp: u16, http: u16, server_keys: &str) -> TestDeployment {
    let camera = |name: &str| {
        format!(
            "[[camera]]\nname = \"{name}\"\nwidth = 320\nheight = 240\nfps = 15\n\n[camera.source]\nkind = \"synthetic\"\n\n\
             [camera.preview]\nlisten = \"127.0.0.1:0\"\nfps = 1\n\n\
             [camera.streamer]\nbitrate-kbps = 500\ngop = 15\nstats-interval-secs = 0.5\n\n"
        )
    };
    TestDeployment::new(&format!(
        "[media-server]\nrtsp = \"127.0.0.1:{rtsp}\"\nhttp = \"127.0.0.1:{http}\"\n{server_keys}\n{}{}",
        camera("cam0"),
        camera("cam1")
    ))
}

/// Issue 17, attacks 3 and 4. After a WHEP offer (with an mDNS candidate in it) the media
/// server holds UDP sockets on 127.0.0.1 only (no SSDP/UPnP on 1900, no mDNS on 5353, nothing
/// on another interface) and listens on TCP only at its two configured addresses. The session
/// id is 128 random bits; `DELETE` with a wrong id, or with the right id on another camera's
/// path, gets 404 and ends nothing; the right pair ends it. A page of an origin the config
/// does not name gets 403 and no CORS header; the configured origin gets its CORS headers.
#[test]
fn webrtc_stays_on_the_configured_addresses_and_whep_sessions_belong_to_their_camera() {
    let (rtsp, http) = (free_port(), free_port());
    let allowed = "http://127.0.0.1:9";
    let d = two_cameras(rtsp, http, &format!("allowed-origins = [\"{allowed}\"]\n"));
    let mut up = d.spawn("ctl", &["up"]);
    up.wait_stderr(DEADLINE, "media server ready");
    wait_until("cam0 and cam1 reach the media server", || {
        std::panic::catch_unwind(|| {
            server_camera(http, "cam0")["publishing"] == true && server_camera(http, "cam1")["publishing"] == true
        })
        .unwrap_or(false)
    });
    let server = child_named(up.child.id(), "mediaserver").expect("the media server runs under ctl up");

    let sdp = "Content-Type: application/sdp\r\n";
    let (code, answer) = request(http, "POST", "/cam0/whep", sdp, OFFER);
    assert_eq!(code, 201, "{answer}");
    let location = header(&answer, "location").expect("a Location").to_string();
    let id = location.strip_prefix("/cam0/whep/").expect("the session is under its camera's path").to_string();
    assert!(id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()), "not a 128-bit id: {id}");
    assert!(answer.contains("a=candidate"), "{answer}");
    for line in answer.lines().filter(|l| l.starts_with("a=candidate")) {
        assert!(line.contains(" 127.0.0.1 "), "a candidate outside the configured address: {line}");
        assert!(!line.to_ascii_lowercase().contains(" tcp "), "a TCP candidate: {line}");
    }
    let (code, second) = request(http, "POST", "/cam0/whep", sdp, OFFER);
    assert_eq!(code, 201, "{second}");
    let other = header(&second, "location").expect("a Location").to_string();
    assert_ne!(other, location, "two sessions share an id");
    wait_until("two WebRTC viewers on cam0", || server_camera(http, "cam0")["webrtc_viewers"] == 2);

    // Sockets after the offers: UDP on the configured address only, TCP listening only on the
    // two configured ports.
    let udp = sockets_of(server, "u");
    assert!(!udp.is_empty(), "no ICE socket at all: the check would be vacuous");
    for local in &udp {
        assert!(local.starts_with("127.0.0.1:"), "UDP socket outside the configured address: {local} (all: {udp:?})");
        assert!(!local.ends_with(":1900") && !local.ends_with(":5353"), "SSDP/mDNS socket: {local}");
    }
    let tcp = sockets_of(server, "t");
    for local in &tcp {
        let port: u16 = local.rsplit(':').next().and_then(|p| p.parse().ok()).unwrap_or(0);
        assert!(local.starts_with("127.0.0.1:"), "TCP socket outside the configured address: {local}");
        assert!(port == rtsp || port == http, "TCP socket on an unconfigured port: {local} (all: {tcp:?})");
    }

    // An offer that aborted webrtcbin (two session-level ICE credentials, found by the WHEP
    // fuzz test) is refused, and the server stays up.
    let hostile = OFFER
        .replace("a=group:BUNDLE 0\r\n", "a=group:BUNDLE 0\r\na=ice-ufrag:one1\r\na=ice-ufrag:two2\r\n")
        .replace("a=ice-ufrag:Ab3d\r\n", "");
    let (code, answer) = request(http, "POST", "/cam0/whep", sdp, &hostile);
    assert_eq!(code, 400, "{answer}");
    assert!(answer.contains("ice-ufrag"), "{answer}");
    assert_eq!(child_named(up.child.id(), "mediaserver"), Some(server), "the media server died");

    // DELETE: wrong id, another camera's path, a malformed id: 404, nothing ends.
    let wrong = format!("/cam0/whep/{}", "0".repeat(32));
    assert_eq!(request(http, "DELETE", &wrong, "", "").0, 404);
    assert_eq!(request(http, "DELETE", &format!("/cam1/whep/{id}"), "", "").0, 404);
    assert_eq!(request(http, "DELETE", &format!("/nope/whep/{id}"), "", "").0, 404);
    assert_eq!(request(http, "DELETE", "/cam0/whep/1", "", "").0, 404);
    assert_eq!(request(http, "DELETE", &format!("/cam0/whep/{}", id.to_uppercase()), "", "").0, 404);
    assert_eq!(server_camera(http, "cam0")["webrtc_viewers"], 2, "a wrong DELETE ended a session");
    assert_eq!(request(http, "DELETE", &location, "", "").0, 200);
    assert_eq!(request(http, "DELETE", &location, "", "").0, 404, "a session ended twice");
    assert_eq!(request(http, "DELETE", &other, "", "").0, 200);
    wait_until("no WebRTC viewer left", || server_camera(http, "cam0")["webrtc_viewers"] == 0);

    // CORS: another origin is refused before any work, the configured one is named back.
    let evil = "Origin: http://evil.example\r\n";
    let (code, answer) = request(http, "POST", "/cam0/whep", &format!("{evil}{sdp}"), OFFER);
    assert_eq!(code, 403, "{answer}");
    assert!(header(&answer, "access-control-allow-origin").is_none(), "{answer}");
    let preflight = "Access-Control-Request-Method: POST\r\n";
    let (code, answer) = request(http, "OPTIONS", "/cam0/whep", &format!("{evil}{preflight}"), "");
    assert_eq!(code, 403, "{answer}");
    assert!(header(&answer, "access-control-allow-origin").is_none(), "{answer}");
    let (code, answer) = request(http, "OPTIONS", "/cam0/whep", &format!("Origin: {allowed}\r\n{preflight}"), "");
    assert_eq!(code, 204, "{answer}");
    assert_eq!(header(&answer, "access-control-allow-origin"), Some(allowed), "{answer}");
    // The server's own page (same origin) needs no CORS and is served.
    let own = format!("Origin: http://127.0.0.1:{http}\r\n");
    let (code, answer) = request(http, "POST", "/cam1/whep", &format!("{own}{sdp}"), OFFER);
    assert_eq!(code, 201, "{answer}");
    assert!(header(&answer, "access-control-allow-origin").is_none(), "{answer}");

    assert_eq!(up.terminate(), Some(0), "{}", up.stderr_text());
    d.assert_no_leftovers();
}

/// The pid of the running child of `parent` named `name`.
fn child_named(parent: u32, name: &str) -> Option<u32> {
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|entry| {
        let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
        let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
        let comm = &stat[stat.find('(')? + 1..stat.rfind(')')?];
        let ppid: u32 = stat[stat.rfind(')')? + 2..].split_whitespace().nth(1)?.parse().ok()?;
        (ppid == parent && comm == name && !stat[stat.rfind(')')? + 2..].starts_with('Z')).then_some(pid)
    })
}

/// A TCP connection to 127.0.0.1:`port` from the local address `from` (another loopback
/// address stands for another client machine).
fn connect_from(from: [u8; 4], port: u16) -> std::io::Result<TcpStream> {
    let addr = |ip: [u8; 4], port: u16| libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr { s_addr: u32::from_ne_bytes(ip) },
        sin_zero: [0; 8],
    };
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: plain socket calls on a descriptor this function owns; the address structs live
    // across the calls and their length is given.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let stream = TcpStream::from_raw_fd(fd);
        let local = addr(from, 0);
        if libc::bind(fd, (&local as *const libc::sockaddr_in).cast(), len) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let remote = addr([127, 0, 0, 1], port);
        if libc::connect(fd, (&remote as *const libc::sockaddr_in).cast(), len) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(stream)
    }
}

/// A reconnecting slowloris against one port from 127.0.0.1: `n` connections, each sending one
/// more byte of an endless request head every 500 ms; one the server closed is opened again at
/// once (as an attacker would, to keep its hold).
struct Slowloris {
    stop: Arc<AtomicBool>,
    reopened: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Slowloris {
    fn start(port: u16, n: usize) -> Slowloris {
        let stop = Arc::new(AtomicBool::new(false));
        let reopened = Arc::new(AtomicU64::new(0));
        let (stop2, reopened2) = (Arc::clone(&stop), Arc::clone(&reopened));
        let head = b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ";
        let open = move || {
            let mut c = connect_from([127, 0, 0, 1], port).ok()?;
            c.set_nonblocking(true).ok()?;
            c.write_all(&head[..1]).ok()?;
            Some((c, 1usize))
        };
        let thread = std::thread::spawn(move || {
            let mut conns: Vec<Option<(TcpStream, usize)>> = (0..n).map(|_| open()).collect();
            while !stop2.load(Ordering::Relaxed) {
                for slot in &mut conns {
                    let alive = slot.as_mut().is_some_and(|(c, sent)| {
                        let byte = head.get(*sent).copied().unwrap_or(b'a');
                        let mut probe = [0u8; 256];
                        // EOF or an answer (408) means the server gave the connection up.
                        let closed = c.read(&mut probe).is_ok();
                        *sent += 1;
                        !closed && c.write_all(&[byte]).is_ok()
                    });
                    if !alive {
                        *slot = open();
                        reopened2.fetch_add(1, Ordering::Relaxed);
                    }
                }
                let until = Instant::now() + Duration::from_millis(500);
                while Instant::now() < until && !stop2.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        });
        Slowloris { stop, reopened, thread: Some(thread) }
    }
}

impl Drop for Slowloris {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One GET from 127.0.0.2 with a 10 s client timeout: the status, or the error.
fn get_from_other_client(port: u16, path: &str) -> Result<u16, String> {
    let mut stream = connect_from([127, 0, 0, 2], port).map_err(|e| format!("connect: {e}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(10))).map_err(|e| e.to_string())?;
    stream.set_write_timeout(Some(Duration::from_secs(10))).map_err(|e| e.to_string())?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n")
        .map_err(|e| format!("send: {e}"))?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).map_err(|e| format!("read: {e}"))?;
    let text = String::from_utf8_lossy(&answer[..answer.len().min(64)]).into_owned();
    text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).ok_or_else(|| format!("no status in {text:?}"))
}

/// Issue 17, attack 5: a reconnecting slowloris from 127.0.0.1 (300 connections on each of the
/// preview, the metrics endpoint and the media server's HTTP, every closed one opened again)
/// while another client (127.0.0.2) makes 50 requests over about 60 s, spread over the three
/// servers, each with a 10 s timeout: all 50 are answered 200.
#[test]
fn http_servers_answer_other_clients_under_a_reconnecting_slowloris() {
    let (rtsp, http, preview, metrics) = (free_port(), free_port(), free_port(), free_port());
    let d = TestDeployment::new(&format!(
        "metrics = \"127.0.0.1:{metrics}\"\n\n\
         [media-server]\nrtsp = \"127.0.0.1:{rtsp}\"\nhttp = \"127.0.0.1:{http}\"\n\n\
         [[camera]]\nname = \"cam0\"\nwidth = 320\nheight = 240\nfps = 10\n\n[camera.source]\nkind = \"synthetic\"\n\n\
         [camera.preview]\nlisten = \"127.0.0.1:{preview}\"\nfps = 1\n\n\
         [camera.streamer]\nbitrate-kbps = 300\ngop = 10\n"
    ));
    let mut up = d.spawn("ctl", &["up"]);
    up.wait_stderr(DEADLINE, "media server ready");
    let targets = [(preview, "/status.json"), (metrics, "/metrics"), (http, "/status.json")];
    for (port, path) in targets {
        wait_until(&format!("port {port} answers"), || get_from_other_client(port, path) == Ok(200));
    }

    let attacks: Vec<Slowloris> = targets.iter().map(|(port, _)| Slowloris::start(*port, 300)).collect();
    // The attack holds: connections are being closed by the servers and opened again.
    wait_until("the servers close slowloris connections", || {
        attacks.iter().all(|a| a.reopened.load(Ordering::Relaxed) >= 10)
    });
    let mut failures = Vec::new();
    let start = Instant::now();
    for i in 0..50u32 {
        let (port, path) = targets[i as usize % targets.len()];
        let asked = Instant::now();
        match get_from_other_client(port, path) {
            Ok(200) => {}
            other => failures.push(format!("request {i} to {port}{path}: {other:?} after {:?}", asked.elapsed())),
        }
        // About 60 s for the 50 requests.
        let next = start + Duration::from_millis(1150) * (i + 1);
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    let reopened: Vec<u64> = attacks.iter().map(|a| a.reopened.load(Ordering::Relaxed)).collect();
    drop(attacks);
    assert!(failures.is_empty(), "{} of 50 requests failed under the slowloris: {failures:#?}", failures.len());
    eprintln!("slowloris connections reopened per server (preview, metrics, media server): {reopened:?}");
    assert!(reopened.iter().all(|&n| n >= 50), "the attack did not keep its hold: {reopened:?}");
    assert_eq!(up.terminate(), Some(0), "{}", up.stderr_text());
    d.assert_no_leftovers();
}

/// Issue 17, attack 6: another process listens on the metrics address before `ctl up`. The
/// deployment starts anyway (capture and readers run), the log names the address and the
/// holder's pid, `ctl status` shows metrics `degraded` with that pid, and once the port is free
/// `ctl up` takes it by itself and serves the metrics. A camera's own required port (the
/// preview's) still fails loudly: the process exits 2 naming the address.
#[test]
fn a_taken_metrics_port_degrades_metrics_and_the_cameras_run() {
    let squatter = TcpListener::bind("127.0.0.1:0").expect("bind");
    let metrics = squatter.local_addr().expect("addr").port();
    let d = TestDeployment::new(&format!(
        "metrics = \"127.0.0.1:{metrics}\"\n\n\
         [[camera]]\nname = \"cam0\"\nwidth = 320\nheight = 240\nfps = 10\n\n[camera.source]\nkind = \"synthetic\"\n\n\
         [camera.preview]\nlisten = \"127.0.0.1:0\"\nfps = 1\n"
    ));
    let mut up = d.spawn("ctl", &["up"]);
    let line = up.wait_stderr(DEADLINE, "metrics are off");
    assert!(line.contains(&format!("127.0.0.1:{metrics}")), "{line}");
    assert!(line.contains(&format!("pid {}", std::process::id())), "the holder is not named: {line}");
    let status = d.wait_status(|s| {
        let running = |role: &str| framebus_e2e::process_status(s, "cam0", role)["state"] == "running";
        running("capture") && running("preview")
    });
    assert_eq!(status["metrics"]["state"], "degraded", "{status}");
    assert_eq!(status["metrics"]["address"], format!("127.0.0.1:{metrics}"), "{status}");
    assert_eq!(status["metrics"]["pid"].as_u64(), Some(u64::from(std::process::id())), "{status}");
    let (_, text, _) = d.ctl(&["status"]);
    assert!(text.contains("metrics: degraded"), "{text}");
    assert!(up.child.try_wait().expect("wait").is_none(), "ctl up ended: {}", up.stderr_text());

    // The port comes free: ctl up takes it within its retry period and serves the metrics.
    drop(squatter);
    wait_until("ctl up serves the metrics", || {
        try_get(metrics, "/metrics").is_some_and(|(code, body)| code == 200 && body.contains("framebus_up"))
    });
    let status = d.wait_status(|s| s["metrics"]["state"] == "running");
    assert_eq!(status["metrics"]["pid"].as_u64(), Some(u64::from(up.child.id())), "{status}");
    assert_eq!(up.terminate(), Some(0), "{}", up.stderr_text());
    d.assert_no_leftovers();

    // A camera's own port is required: taken, its process fails loudly.
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let d = TestDeployment::new(&format!(
        "[[camera]]\nname = \"cam0\"\nwidth = 320\nheight = 240\nfps = 10\n\n[camera.source]\nkind = \"synthetic\"\n\n\
         [camera.preview]\nlisten = \"127.0.0.1:{port}\"\nfps = 1\n"
    ));
    let mut capture = d.spawn("capture", &[]);
    capture.wait_stderr(DEADLINE, "publishing");
    let mut preview = d.spawn("preview", &[]);
    assert_eq!(preview.wait_exit(DEADLINE), Some(2), "{}", preview.stderr_text());
    assert!(preview.stderr_text().contains(&format!("cannot listen on 127.0.0.1:{port}")), "{}", preview.stderr_text());
    assert_eq!(capture.terminate(), Some(0));
    d.assert_no_leftovers();
}

/// One GET to 127.0.0.1:`port` (no panic when nothing listens): (status, whole answer).
fn try_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n").ok()?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).ok()?;
    let text = String::from_utf8_lossy(&answer).into_owned();
    let code = text.split_whitespace().nth(1)?.parse().ok()?;
    Some((code, text))
}

/// Issue 17 item 2: a listen address given on the command line follows the config's rule. With
/// no `[auth]`, `preview --listen 0.0.0.0:0` and `ctl metrics --listen 0.0.0.0:0` exit with an
/// error naming the file, the key and the fix, before listening; with `[auth] allow-anonymous
/// = true` the preview serves there.
#[test]
fn a_command_line_listen_beyond_loopback_needs_auth_too() {
    let camera =
        framebus_e2e::synthetic_camera("cam0", 320, 240, 15) + "\n[camera.preview]\nlisten = \"127.0.0.1:0\"\n";
    let d = TestDeployment::new(&camera);
    let config = d.config.to_str().expect("utf-8").to_string();
    let (code, _, err) =
        framebus_e2e::Proc::output("preview", &["--config", &config, "--camera", "cam0", "--listen", "0.0.0.0:0"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains(&config) && err.contains("`camera.preview.listen (--listen)`"), "{err}");
    assert!(err.contains("[auth] users-file") && err.contains("allow-anonymous = true"), "{err}");
    let (code, _, err) = d.ctl(&["metrics", "--listen", "0.0.0.0:0"]);
    assert_ne!(code, Some(0), "{err}");
    assert!(err.contains("`deployment.metrics (--listen)`") && err.contains("allow-anonymous = true"), "{err}");
    d.assert_no_leftovers();

    let open = TestDeployment::new(&format!("[auth]\nallow-anonymous = true\n\n{camera}"));
    let mut capture = open.spawn("capture", &[]);
    capture.wait_stderr(DEADLINE, "publishing");
    let mut preview = open.spawn("preview", &["--camera", "cam0", "--listen", "0.0.0.0:0", "--json"]);
    let listening = preview.wait_json(DEADLINE, |r| r["event"] == "listening");
    let url = listening["url"].as_str().expect("url").replace("0.0.0.0", "127.0.0.1");
    assert_eq!(http_get(&url, "/status.json").0, 200);
    assert_eq!(preview.terminate(), Some(0), "{}", preview.stderr_text());
    assert_eq!(capture.terminate(), Some(0), "{}", capture.stderr_text());
    open.assert_no_leftovers();
}
