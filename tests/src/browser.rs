//! Headless Chromium for end-to-end tests: a page server of the test's own that hands the
//! page's `/result` requests back, and a browser whose profile and TMPDIR are in the test's
//! folder and whose process group (helpers included) is always killed whole.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use crate::{Proc, TestDeployment};

/// How long a browser run may take before it is killed.
pub const BROWSER_DEADLINE: Duration = Duration::from_secs(60);

/// Serves `page` (HTML) at every path on `listener`, and with `clip` an MP4 at `/clip.mp4`
/// (with HTTP range requests, as a `<video>` asks); returns the query of each `/result`
/// request the page makes, in order.
pub fn serve_page(listener: TcpListener, page: String, clip: Option<Vec<u8>>) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut stream: TcpStream = stream;
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let Some((path, range)) = read_request(&stream) else { continue };
            let (status, kind, body, extra) = if path.starts_with("/result") {
                let _ = tx.send(path.split_once('?').map(|(_, q)| q.to_string()).unwrap_or_default());
                ("200 OK", "text/plain", Vec::new(), String::new())
            } else if let (Some(clip), "/clip.mp4") = (&clip, path.as_str()) {
                let len = clip.len();
                match range {
                    Some((a, b)) if a < len => {
                        let end = b.unwrap_or(len - 1).min(len - 1);
                        let part = clip[a..=end].to_vec();
                        ("206 Partial Content", "video/mp4", part, format!("Content-Range: bytes {a}-{end}/{len}\r\n"))
                    }
                    _ => ("200 OK", "video/mp4", clip.clone(), "Accept-Ranges: bytes\r\n".to_string()),
                }
            } else {
                ("200 OK", "text/html", page.as_bytes().to_vec(), String::new())
            };
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes()).and_then(|()| stream.write_all(&body));
        }
    });
    rx
}

/// A request's path and its `Range: bytes=a-[b]`, if any.
type Request = (String, Option<(usize, Option<usize>)>);

/// Reads one request's line and headers.
fn read_request(stream: &TcpStream) -> Option<Request> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut range = None;
    let mut header = String::new();
    while reader.read_line(&mut header).is_ok_and(|n| n > 2) {
        if let Some(value) = header.to_ascii_lowercase().strip_prefix("range: bytes=") {
            let (a, b) = value.trim().split_once('-').unwrap_or(("0", ""));
            range = Some((a.parse::<usize>().unwrap_or(0), b.parse::<usize>().ok()));
        }
        header.clear();
    }
    Some((line.split_whitespace().nth(1).unwrap_or("/").to_string(), range))
}

/// Headless Chromium with its profile `name` and TMPDIR in the test's folder (its singleton
/// socket folder goes there, not to /tmp), in a process group of its own (its helper
/// processes are killed with it); `flags` come on top of the common ones.
pub fn chromium(d: &TestDeployment, name: &str, flags: &[&str]) -> Command {
    let mut command = Command::new("chromium");
    command
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"])
        .args(["--disable-background-networking", "--disable-component-update", "--disable-sync"])
        .arg("--autoplay-policy=no-user-gesture-required")
        .args(flags)
        .arg(format!("--user-data-dir={}", d.dir.path().join(name).display()))
        .env("TMPDIR", d.dir.path())
        .process_group(0);
    command
}

/// Kills a browser's whole process group, then the browser.
fn kill_browser(browser: &mut Proc) {
    // SAFETY: kill has no memory-safety preconditions; the group is the browser's own.
    unsafe { libc::kill(-(browser.child.id() as i32), libc::SIGKILL) };
    browser.kill9();
}

/// Opens `url` in Chromium (`name`, `flags` as for [`chromium`]) and returns the first
/// `/result` query its page sends to `results` within [`BROWSER_DEADLINE`]; the browser is
/// killed either way. Without a result, panics with `failure` and the browser's log.
pub fn chromium_result(
    d: &TestDeployment,
    (name, flags): (&str, &[&str]),
    url: &str,
    results: &Receiver<String>,
    failure: &str,
) -> String {
    let mut command = chromium(d, name, flags);
    command.arg(url);
    let mut browser = Proc::spawn_command("chromium", &mut command);
    let result = results.recv_timeout(BROWSER_DEADLINE);
    kill_browser(&mut browser);
    result.unwrap_or_else(|_| panic!("{failure}; its log:\n{}", browser.stderr_text()))
}

/// Runs Chromium (`name`, `args` after the common flags) to completion, as `--dump-dom` or
/// `--screenshot` do, and returns its stdout; killed after [`BROWSER_DEADLINE`] (a failure).
pub fn chromium_output(d: &TestDeployment, name: &str, args: &[String]) -> String {
    let mut child = chromium(d, name, &["--mute-audio"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromium is installed (scripts/bootstrap.sh)");
    let mut stdout = child.stdout.take().expect("piped stdout");
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        let _ = stdout.read_to_string(&mut out);
        out
    });
    let until = Instant::now() + BROWSER_DEADLINE;
    let mut finished = false;
    while Instant::now() < until {
        if child.try_wait().ok().flatten().is_some() {
            finished = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // SAFETY: kill has no memory-safety preconditions; the group is the browser's own.
    unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
    let _ = child.wait();
    assert!(finished, "chromium did not finish within {BROWSER_DEADLINE:?}");
    reader.join().unwrap_or_default()
}
