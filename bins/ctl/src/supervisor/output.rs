//! The output of the supervisor's children: every line of their stdout and stderr is logged by
//! the supervisor with the child's deployment, camera, role and pid
//! ([`framebus_common::logging::relay`]), and the last [`KEPT_LINES`] lines of stderr of each
//! process are kept (across its restarts) for `ctl logs`.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::sync::{Arc, Mutex};

use framebus_common::logging::{self, Origin, Stream};
use serde_json::{json, Value};

/// Lines of stderr kept per process.
pub const KEPT_LINES: usize = 20;

/// Longest line kept or logged; the rest of a longer line is dropped (` [cut]` marks it).
const MAX_LINE: usize = 4096;

/// One kept line of stderr.
#[derive(Debug, Clone)]
struct KeptLine {
    /// Number of the line since the supervisor started (per process, from 1).
    seq: u64,
    /// The child that wrote it.
    pid: u32,
    text: String,
}

/// The last lines of stderr of one process, shared with the threads reading its pipes.
#[derive(Debug, Default)]
pub struct Kept {
    lines: VecDeque<KeptLine>,
    /// Number the next line gets.
    next: u64,
}

/// A process's kept lines, shared.
pub type SharedKept = Arc<Mutex<Kept>>;

impl Kept {
    fn push(&mut self, pid: u32, text: String) {
        self.next = self.next.max(1);
        if self.lines.len() == KEPT_LINES {
            self.lines.pop_front();
        }
        self.lines.push_back(KeptLine { seq: self.next, pid, text });
        self.next += 1;
    }

    /// The reply to `ctl logs`: the kept lines numbered `from` or later, as many as fit in
    /// `budget` bytes of ASCII JSON: `{"first": F, "end": E, "next": N, "lines": [{"seq",
    /// "pid", "text"}]}`, where F is the oldest kept line, E the number the next line will get
    /// and N the number to ask from next (N < E: ask again at once).
    pub fn reply(&self, from: u64, budget: usize) -> String {
        let end = self.next.max(1);
        let first = self.lines.front().map_or(end, |l| l.seq);
        let start = from.max(first);
        let mut next = start;
        let mut lines: Vec<Value> = Vec::new();
        for line in self.lines.iter().filter(|l| l.seq >= start) {
            let shown = |text: &str| ascii_json(&json!({ "seq": line.seq, "pid": line.pid, "text": text }));
            let mut entry = shown(&line.text);
            let used = ascii_json(&reply_json(first, end, line.seq + 1, &lines)).len();
            if used + entry.len() + 1 > budget {
                if !lines.is_empty() {
                    break;
                }
                // A single line longer than a reply: cut it (by characters) until it fits.
                let mut text: String = line.text.clone();
                while used + entry.len() + 1 > budget && !text.is_empty() {
                    let keep = text.chars().count() * 3 / 4;
                    text = text.chars().take(keep).collect();
                    entry = shown(&format!("{text} [cut]"));
                }
            }
            lines.push(serde_json::from_str(&entry).unwrap_or(Value::Null));
            next = line.seq + 1;
        }
        ascii_json(&reply_json(first, end, next, &lines))
    }
}

fn reply_json(first: u64, end: u64, next: u64, lines: &[Value]) -> Value {
    json!({ "first": first, "end": end, "next": next, "lines": lines })
}

/// JSON with every non-ASCII character escaped (`\uXXXX`), so it passes a control reply's
/// ASCII text unchanged.
pub fn ascii_json(value: &Value) -> String {
    let text = value.to_string();
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out
}

/// Who a child is, for its relayed lines.
#[derive(Debug, Clone)]
pub struct ChildIdentity {
    /// Deployment name.
    pub deployment: String,
    /// Camera name (`*` for the media server).
    pub camera: String,
    /// Role name.
    pub role: String,
    /// Process id.
    pub pid: u32,
}

/// Starts a thread that relays every line of `pipe` (one of the child's outputs) until it
/// closes; lines of stderr are kept in `kept` too. `None` when no thread could be started.
pub fn follow(
    pipe: impl Read + Send + 'static,
    stream: Stream,
    who: ChildIdentity,
    kept: SharedKept,
) -> Option<std::thread::JoinHandle<()>> {
    let name = format!("{}-{}-{}", who.role, who.pid, stream.as_str());
    let spawned = std::thread::Builder::new().name(name).spawn(move || {
        let origin = Origin { deployment: &who.deployment, camera: &who.camera, role: &who.role, pid: who.pid };
        let mut reader = BufReader::new(pipe);
        let mut buf = Vec::new();
        loop {
            match read_line_capped(&mut reader, &mut buf, MAX_LINE) {
                Ok(false) => break,
                Ok(true) => {}
                Err(e) => {
                    tracing::debug!(
                        camera = who.camera,
                        role = who.role,
                        pid = who.pid,
                        "reading its {}: {e}",
                        stream.as_str()
                    );
                    break;
                }
            }
            let line = String::from_utf8_lossy(&buf);
            let line = line.trim_end_matches(['\n', '\r']);
            logging::relay(&origin, stream, line);
            if stream == Stream::Stderr && !line.trim().is_empty() {
                if let Ok(mut kept) = kept.lock() {
                    kept.push(who.pid, line.to_string());
                }
            }
        }
    });
    spawned.map_err(|e| tracing::warn!("cannot start the thread that relays a child's {}: {e}", stream.as_str())).ok()
}

/// Reads one line (up to and without its newline) into `buf`, keeping at most `cap` bytes of it
/// (a longer line ends with ` [cut]`). `Ok(false)` at the end of the input.
fn read_line_capped(reader: &mut impl BufRead, buf: &mut Vec<u8>, cap: usize) -> std::io::Result<bool> {
    buf.clear();
    let mut cut = false;
    let mut any = false;
    loop {
        let available = match reader.fill_buf() {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            break;
        }
        any = true;
        let (chunk, done) = match available.iter().position(|b| *b == b'\n') {
            Some(at) => (&available[..at], Some(at + 1)),
            None => (available, None),
        };
        let room = cap.saturating_sub(buf.len());
        if chunk.len() > room {
            cut = true;
        }
        buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
        let consumed = done.unwrap_or(available.len());
        reader.consume(consumed);
        if done.is_some() {
            break;
        }
    }
    if cut {
        buf.extend_from_slice(b" [cut]");
    }
    Ok(any)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_capped_and_split() {
        let mut input = BufReader::with_capacity(8, "short\nthis one is far too long\n\nlast".as_bytes());
        let mut buf = Vec::new();
        let mut lines = Vec::new();
        while read_line_capped(&mut input, &mut buf, 10).expect("read") {
            lines.push(String::from_utf8_lossy(&buf).into_owned());
        }
        assert_eq!(lines, ["short", "this one i [cut]", "", "last"]);
    }

    #[test]
    fn only_the_last_lines_are_kept_and_replies_fit() {
        let mut kept = Kept::default();
        for i in 0..30 {
            kept.push(7, format!("line {i} µs"));
        }
        let all: Value = serde_json::from_str(&kept.reply(0, 1024)).expect("JSON");
        assert_eq!(all["first"], 11);
        assert_eq!(all["end"], 31);
        let lines = all["lines"].as_array().expect("lines");
        assert_eq!(lines[0]["text"], "line 10 µs");
        assert!(kept.reply(0, 1024).len() <= 1024 && kept.reply(0, 1024).is_ascii());
        // Paging: ask from `next` until it reaches `end`.
        let (mut from, mut seen) = (0, 0);
        loop {
            let page: Value = serde_json::from_str(&kept.reply(from, 200)).expect("JSON");
            seen += page["lines"].as_array().map_or(0, Vec::len);
            from = page["next"].as_u64().expect("next");
            if from >= page["end"].as_u64().expect("end") {
                break;
            }
        }
        assert_eq!(seen, KEPT_LINES);
        kept.push(7, "x".repeat(3000));
        let long = kept.reply(31, 1024);
        assert!(long.len() <= 1024, "{}", long.len());
        assert!(long.contains("[cut]"));
        let empty: Value = serde_json::from_str(&Kept::default().reply(0, 1024)).expect("JSON");
        assert_eq!(empty["lines"].as_array().map(Vec::len), Some(0));
    }
}
