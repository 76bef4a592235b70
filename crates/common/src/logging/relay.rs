//! Lines another process wrote on its stdout or stderr (a child of `ctl up`), logged by this
//! process in its own format with who wrote them: `deployment`, `camera`, `role` and `pid` on
//! every line, as text and as JSON.
//!
//! A line the child logged through framebus's own set-up keeps its level and message: a text
//! line (`<timestamp> <LEVEL> <message>`) is logged again at its level without its timestamp;
//! a JSON line keeps its keys (its own identity fields win, the missing ones are added). Any
//! other line (a program's own output, a Python traceback) is logged as it is: `info` from
//! stdout, `warn` from stderr (`error` for a `<program>: error: ...` line).

use serde_json::Value;
use tracing::Level;

use super::{json, LogFormat};

/// Target of the relayed lines in text format (for `RUST_LOG` filters: `framebus_child=warn`).
pub const RELAY_TARGET: &str = "framebus_child";

/// Who wrote a relayed line.
#[derive(Debug, Clone, Copy)]
pub struct Origin<'a> {
    /// Deployment name.
    pub deployment: &'a str,
    /// Camera name (`*` for a process of the whole deployment, the media server).
    pub camera: &'a str,
    /// Role name.
    pub role: &'a str,
    /// Process id of the child.
    pub pid: u32,
}

/// Which output of the child a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

impl Stream {
    /// `stdout` or `stderr`.
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// Logs one line of a child's output (without its newline) in this process's log format.
pub fn relay(origin: &Origin<'_>, stream: Stream, line: &str) {
    let line = line.trim_end_matches(['\r', '\n']);
    if line.trim().is_empty() {
        return;
    }
    let object = match serde_json::from_str::<Value>(line) {
        Ok(Value::Object(map)) => Some(map),
        _ => None,
    };
    match (super::format(), object) {
        (LogFormat::Json, Some(map)) => write_stderr(&json_of_object(origin, map)),
        (LogFormat::Json, None) => {
            let (level, message) = level_and_message(stream, line);
            write_stderr(&json_of_text(origin, stream, level, message));
        }
        (LogFormat::Text, object) => {
            let (level, message) = match &object {
                Some(map) => (level_of_json(map).unwrap_or(default_level(stream, line)), line),
                None => level_and_message(stream, line),
            };
            text_event(origin, stream, level, message);
        }
    }
}

/// One JSON line, written at once (whole lines never interleave with the subscriber's).
fn write_stderr(line: &str) {
    use std::io::Write as _;
    let mut stderr = std::io::stderr().lock();
    let _ = stderr.write_all(format!("{line}\n").as_bytes());
}

fn text_event(origin: &Origin<'_>, stream: Stream, level: Level, message: &str) {
    let (deployment, camera, role, pid, stream) =
        (origin.deployment, origin.camera, origin.role, origin.pid, stream.as_str());
    macro_rules! at {
        ($macro:ident) => {
            tracing::$macro!(target: RELAY_TARGET, deployment, camera, role, pid, stream, "{message}")
        };
    }
    match level {
        Level::ERROR => at!(error),
        Level::WARN => at!(warn),
        Level::INFO => at!(info),
        Level::DEBUG => at!(debug),
        _ => at!(trace),
    }
}

/// A child's JSON line: its keys, the identity fields it lacks added, in the usual key order.
fn json_of_object(origin: &Origin<'_>, mut map: serde_json::Map<String, Value>) -> String {
    let mut take = |key: &str, fallback: Value| match map.remove(key) {
        Some(Value::Null) | None => fallback,
        Some(value) => value,
    };
    let head: Vec<(&str, Value)> = vec![
        ("timestamp", take("timestamp", Value::String(now()))),
        ("level", take("level", Value::String("info".into()))),
        ("deployment", take("deployment", Value::String(origin.deployment.into()))),
        ("camera", take("camera", Value::String(origin.camera.into()))),
        ("role", take("role", Value::String(origin.role.into()))),
        ("pid", take("pid", Value::from(origin.pid))),
        ("thread", take("thread", Value::Null)),
        ("target", take("target", Value::Null)),
        ("message", take("message", Value::String(String::new()))),
    ];
    let mut entries = head;
    entries.extend(map.iter().map(|(k, v)| (k.as_str(), v.clone())));
    json::render(&entries)
}

/// Any other line as a JSON line of its own.
fn json_of_text(origin: &Origin<'_>, stream: Stream, level: Level, message: &str) -> String {
    json::render(&[
        ("timestamp", Value::String(now())),
        ("level", Value::String(level.as_str().to_ascii_lowercase())),
        ("deployment", Value::String(origin.deployment.into())),
        ("camera", Value::String(origin.camera.into())),
        ("role", Value::String(origin.role.into())),
        ("pid", Value::from(origin.pid)),
        ("thread", Value::Null),
        ("target", Value::String(RELAY_TARGET.into())),
        ("message", Value::String(message.into())),
        ("stream", Value::String(stream.as_str().into())),
    ])
}

fn now() -> String {
    format!("{:.6}", jiff::Timestamp::now())
}

fn level_of_json(map: &serde_json::Map<String, Value>) -> Option<Level> {
    map.get("level").and_then(Value::as_str).and_then(|l| l.parse().ok())
}

/// The level and message of a text line: framebus's own `<timestamp> <LEVEL> <message>`, else
/// the whole line at the stream's default level.
fn level_and_message(stream: Stream, line: &str) -> (Level, &str) {
    split_text_line(line).unwrap_or_else(|| (default_level(stream, line), line))
}

fn default_level(stream: Stream, line: &str) -> Level {
    match stream {
        Stream::Stdout => Level::INFO,
        // `<program>: error: ...`, how a framebus binary reports the error that ends it.
        Stream::Stderr if line.split_once(": error: ").is_some_and(|(p, _)| !p.contains(' ')) => Level::ERROR,
        Stream::Stderr => Level::WARN,
    }
}

/// `2026-12-06T14:02:11.123456Z  WARN message` → (WARN, `message`).
fn split_text_line(line: &str) -> Option<(Level, &str)> {
    let (stamp, rest) = line.trim_start().split_once(' ')?;
    let looks_like_time = stamp.len() >= 20 && stamp.as_bytes()[0].is_ascii_digit() && stamp.contains('T');
    if !looks_like_time {
        return None;
    }
    let rest = rest.trim_start();
    let (word, message) = rest.split_once(' ').unwrap_or((rest, ""));
    let level = match word {
        "ERROR" => Level::ERROR,
        "WARN" => Level::WARN,
        "INFO" => Level::INFO,
        "DEBUG" => Level::DEBUG,
        "TRACE" => Level::TRACE,
        _ => return None,
    };
    Some((level, message.trim_start()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORIGIN: Origin<'static> = Origin { deployment: "dep", camera: "cam0", role: "algo", pid: 42 };

    #[test]
    fn framebus_text_lines_keep_their_level_and_lose_their_timestamp() {
        let line = "2026-12-06T14:02:11.123456Z  WARN skipping a frame frame=7";
        assert_eq!(split_text_line(line), Some((Level::WARN, "skipping a frame frame=7")));
        assert_eq!(level_and_message(Stream::Stderr, "Traceback (most recent call last):").0, Level::WARN);
        assert_eq!(level_and_message(Stream::Stdout, "hello").0, Level::INFO);
        assert_eq!(level_and_message(Stream::Stderr, "algo: error: bad argument").0, Level::ERROR);
        assert_eq!(level_and_message(Stream::Stderr, "it said: error: x").0, Level::WARN);
    }

    #[test]
    fn json_lines_keep_their_keys_and_gain_the_missing_identity() {
        let own = r#"{"timestamp":"t","level":"warn","deployment":"dep","camera":"cam0","role":"algo","pid":41,"thread":"main","target":"x","message":"m","frames":3}"#;
        let Ok(Value::Object(map)) = serde_json::from_str::<Value>(own) else { panic!("object") };
        let out: Value = serde_json::from_str(&json_of_object(&ORIGIN, map)).expect("JSON");
        assert_eq!(out["pid"], 41, "the child's own pid wins");
        assert_eq!(out["frames"], 3);
        assert_eq!(out["level"], "warn");
        let Ok(Value::Object(map)) = serde_json::from_str::<Value>(r#"{"event":"x"}"#) else { panic!("object") };
        let out: Value = serde_json::from_str(&json_of_object(&ORIGIN, map)).expect("JSON");
        assert_eq!(
            (&out["deployment"], &out["camera"], &out["role"], &out["pid"]),
            (&"dep".into(), &"cam0".into(), &"algo".into(), &42.into())
        );
        let out: Value =
            serde_json::from_str(&json_of_text(&ORIGIN, Stream::Stderr, Level::WARN, "oops \"x\"")).expect("JSON");
        assert_eq!(out["message"], "oops \"x\"");
        assert_eq!(out["stream"], "stderr");
        assert_eq!(out["pid"], 42);
    }
}
