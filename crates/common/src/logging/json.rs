//! The JSON line format: one object per event, built with serde_json.

use std::fmt;

use serde_json::Value;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// Formats each event as `{"timestamp", "level", "deployment", "camera", "role", "pid",
/// "thread", "target", "message", <the event's fields>}`. A field of the event named like an identity
/// field (`camera`, `role`, ... — the supervisor's lines about one of its children) wins over
/// the process's own value: the line is about that process.
pub(super) struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, _ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let line = to_line(&fields, event.metadata().level(), event.metadata().target());
        writeln!(writer, "{line}")
    }
}

/// Serialises one event; separate from the tracing plumbing so it can be tested directly.
/// Keys keep this order (serde_json's map would sort them).
fn to_line(fields: &Fields, level: &tracing::Level, target: &str) -> String {
    let context = super::context();
    let mut entries: Vec<(&str, Value)> = vec![
        ("timestamp", Value::String(format!("{:.6}", jiff::Timestamp::now()))),
        ("level", Value::String(level.as_str().to_ascii_lowercase())),
        ("deployment", context.deployment.map_or(Value::Null, Value::String)),
        ("camera", context.camera.map_or(Value::Null, Value::String)),
        ("role", context.role.map_or(Value::Null, Value::String)),
        ("pid", Value::from(std::process::id())),
        ("thread", std::thread::current().name().map_or(Value::Null, |n| Value::String(n.to_string()))),
        ("target", Value::String(target.to_string())),
        ("message", Value::String(fields.message.clone().unwrap_or_default())),
    ];
    for (key, value) in &fields.rest {
        match entries.iter_mut().find(|(k, _)| k == key) {
            Some(entry) => entry.1 = value.clone(),
            None => entries.push((key, value.clone())),
        }
    }
    render(&entries)
}

/// One JSON object of `entries`, keys in their order. serde_json escapes every string (control
/// characters and newlines included), so a message can never break the one-object-per-line
/// framing.
pub(super) fn render(entries: &[(&str, Value)]) -> String {
    let mut line = String::from("{");
    for (i, (key, value)) in entries.iter().enumerate() {
        if i > 0 {
            line.push(',');
        }
        line.push_str(&Value::String((*key).to_string()).to_string());
        line.push(':');
        line.push_str(&value.to_string());
    }
    line.push('}');
    line
}

/// An event's message and fields, in the order they were recorded.
#[derive(Default)]
struct Fields {
    message: Option<String>,
    rest: Vec<(&'static str, Value)>,
}

impl Fields {
    fn put(&mut self, field: &Field, value: Value) {
        if field.name() == "message" {
            self.message = Some(match value {
                Value::String(s) => s,
                other => other.to_string(),
            });
        } else {
            self.rest.push((field.name(), value));
        }
    }
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, Value::String(format!("{value:?}")));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, Value::String(value.to_string()));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, Value::from(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, Value::from(value));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        // JSON has no NaN or infinity: those become null.
        self.put(field, Value::from(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, Value::Bool(value));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, Value::String(value.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A subscriber that formats every event with [`JsonLines`] into a shared buffer.
    fn capture_lines(f: impl FnOnce()) -> Vec<(String, Value)> {
        use std::sync::{Arc, Mutex};
        #[derive(Clone, Default)]
        struct Buffer(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Buffer {
            fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
                self.0.lock().map_err(|_| std::io::Error::other("poisoned"))?.extend_from_slice(bytes);
                Ok(bytes.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buffer = Buffer::default();
        let sink = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || sink.clone())
            .with_ansi(false)
            .event_format(JsonLines)
            .finish();
        tracing::subscriber::with_default(subscriber, f);
        let bytes = buffer.0.lock().map(|b| b.clone()).unwrap_or_default();
        String::from_utf8(bytes)
            .unwrap_or_default()
            .lines()
            .map(|line| {
                let value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
                (line.to_string(), value)
            })
            .collect()
    }

    #[test]
    fn every_line_is_one_object_with_identity_and_fields() {
        super::super::set_context("dep", Some("cam0"), "capture");
        let lines = capture_lines(|| {
            tracing::warn!(frame = 7u64, ratio = 0.5, ok = true, "bad\nframe \"quoted\" {}", 3);
            tracing::info!(camera = "cam1", role = %"algo", "started");
        });
        assert_eq!(lines.len(), 2, "{lines:?}");
        let first = &lines[0].1;
        assert!(lines[0].0.starts_with("{\"timestamp\":"), "{}", lines[0].0);
        assert_eq!(first["level"], "warn");
        assert_eq!(first["deployment"], "dep");
        assert_eq!(first["camera"], "cam0");
        assert_eq!(first["role"], "capture");
        assert_eq!(first["message"], "bad\nframe \"quoted\" 3");
        assert_eq!(first["frame"], 7);
        assert_eq!(first["ratio"], 0.5);
        assert_eq!(first["ok"], true);
        assert_eq!(first["pid"], std::process::id());
        let stamp = first["timestamp"].as_str().unwrap_or_default();
        assert!(stamp.parse::<jiff::Timestamp>().is_ok(), "{stamp}");
        // A line about another process names that process.
        let (raw, second) = &lines[1];
        assert_eq!(second["camera"], "cam1");
        assert_eq!(second["role"], "algo");
        assert_eq!(second["deployment"], "dep");
        assert_eq!(raw.matches("\"camera\":").count(), 1, "no key twice: {raw}");
    }
}
