//! Fuzzing on the stable toolchain (proptest): the control-request decoder and the config
//! loader never panic, whatever bytes or text they are given, and a config error always names
//! the file it is about.
//!
//! Inputs: random requests; the seed configs in `fuzz/corpus/config/` (the shipped configs and
//! broken ones) mutated at random (bytes flipped, tokens inserted, lines dropped or repeated);
//! and TOML documents generated from framebus's own tables and keys with values of every type.
//! Failures are shrunk and kept in `fuzz/regressions/` (replayed first on every run).
//!
//! `PROPTEST_CASES` sets the cases per property: CI runs the default below, `just fuzz` runs
//! many more (`just fuzz 200000`).

use std::path::{Path, PathBuf};

use framebus_common::control::{Command, ControlRequest, CONTROL_PROTOCOL_VERSION, REQUEST_TEXT};
use framebus_common::Deployment;
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence};

/// Cases per property when `PROPTEST_CASES` is not set (the short CI run).
const CI_CASES: u32 = 1000;

fn config() -> Config {
    Config {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(CI_CASES),
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../fuzz/regressions/fuzz.txt"
        )))),
        ..Config::default()
    }
}

/// The seed configs.
fn corpus() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/config");
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(&dir).expect("fuzz/corpus/config").flatten().map(|e| e.path()).collect();
    files.sort();
    let texts: Vec<String> = files.iter().filter_map(|f| std::fs::read_to_string(f).ok()).collect();
    assert!(texts.len() >= 5, "the corpus in {} is missing", dir.display());
    texts
}

const FILE: &str = "/fuzz/case.toml";

/// Loads `text` as a config: no panic, and an error names the file.
fn load_checked(text: &str) -> Result<(), TestCaseError> {
    match Deployment::from_toml(Path::new(FILE), text) {
        Ok(deployment) => {
            // A valid config's derived figures are computable.
            for camera in &deployment.camera {
                let layout = camera.slot_layout();
                let _ = layout.payload_bytes();
                let _ = camera.readers();
                let _ = camera.roles();
            }
            Ok(())
        }
        Err(e) => {
            prop_assert_eq!(e.file.as_path(), Path::new(FILE));
            prop_assert!(e.to_string().contains(FILE), "the error does not name the file: {}", e);
            Ok(())
        }
    }
}

/// Tokens that tend to break parsers and validators.
const TOKENS: &[&str] = &[
    "=",
    "[",
    "]",
    "[[",
    "]]",
    "\"",
    "'",
    "\n",
    ",",
    "{",
    "}",
    "-1",
    "0",
    "1e309",
    "nan",
    "inf",
    "-inf",
    "99999999999999999999",
    "4294967296",
    "18446744073709551616",
    "true",
    "\"\"",
    "\"a/b\"",
    "\\u0000",
    "camera",
    "kind",
    "synthetic",
    "v4l2",
    "file",
    "policy",
    "max-fps",
    "trigger",
    "reader",
    "#",
];

/// One edit of a seed text.
#[derive(Debug, Clone)]
enum Edit {
    FlipByte(usize, u8),
    Insert(usize, usize),
    DeleteLine(usize),
    RepeatLine(usize),
    Truncate(usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(at, b)| Edit::FlipByte(at, b)),
        (any::<usize>(), 0..TOKENS.len()).prop_map(|(at, t)| Edit::Insert(at, t)),
        any::<usize>().prop_map(Edit::DeleteLine),
        any::<usize>().prop_map(Edit::RepeatLine),
        any::<usize>().prop_map(Edit::Truncate),
    ]
}

fn apply(text: &str, edits: &[Edit]) -> String {
    let mut bytes = text.as_bytes().to_vec();
    for edit in edits {
        let len = bytes.len().max(1);
        match edit {
            Edit::FlipByte(at, b) => {
                if !bytes.is_empty() {
                    bytes[at % len] = *b;
                }
            }
            Edit::Insert(at, token) => {
                let at = at % (bytes.len() + 1);
                bytes.splice(at..at, TOKENS[*token].bytes());
            }
            Edit::DeleteLine(n) | Edit::RepeatLine(n) => {
                let text = String::from_utf8_lossy(&bytes).into_owned();
                let mut lines: Vec<&str> = text.lines().collect();
                if !lines.is_empty() {
                    let i = n % lines.len();
                    if matches!(edit, Edit::DeleteLine(_)) {
                        lines.remove(i);
                    } else {
                        lines.insert(i, lines[i]);
                    }
                }
                bytes = lines.join("\n").into_bytes();
            }
            Edit::Truncate(at) => bytes.truncate(at % len),
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// A TOML value of any type, sometimes absurd.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|v| v.to_string()),
        (0u32..70000).prop_map(|v| v.to_string()),
        any::<f64>().prop_map(|v| if v.is_finite() { format!("{v:?}") } else { "nan".into() }),
        any::<bool>().prop_map(|v| v.to_string()),
        "[a-z0-9_./:-]{0,40}".prop_map(|s| format!("\"{s}\"")),
        Just("\"127.0.0.1:0\"".to_string()),
        Just("\"BGR3\"".to_string()),
        Just("[\"a\", 1]".to_string()),
        Just("{ a = 1 }".to_string()),
    ]
}

const TABLES: &[&str] = &[
    "[deployment]",
    "[[camera]]",
    "[camera.source]",
    "[camera.algo]",
    "[camera.preview]",
    "[camera.recorder]",
    "[[camera.reader]]",
    "[camera.source.controls]",
    "[camera.source.media-pipeline]",
    "[[camera.recorder.trigger]]",
    "[media-server]",
    "[auth]",
    "[tls]",
];

const KEYS: &[&str] = &[
    "users-file",
    "allow-anonymous",
    "certificate",
    "key",
    "rtsp",
    "http",
    "name",
    "state-dir",
    "metrics",
    "kind",
    "width",
    "height",
    "fps",
    "pixel-format",
    "slots",
    "max-readers",
    "path",
    "pace",
    "loop",
    "device",
    "format",
    "buffers",
    "strict",
    "queue-depth",
    "policy",
    "max-fps",
    "stats-interval-secs",
    "enabled",
    "listen",
    "max-viewers",
    "jpeg-quality",
    "directory",
    "video",
    "images",
    "segment-secs",
    "min-free-mb",
    "delete-oldest",
    "command",
    "producer",
    "min-score",
    "label",
];

/// A document of framebus's tables and keys with random values, in random order.
fn document() -> impl Strategy<Value = String> {
    prop::collection::vec((0..TABLES.len(), prop::collection::vec((0..KEYS.len(), value()), 0..6)), 0..8).prop_map(
        |tables| {
            let mut text = String::new();
            for (table, keys) in tables {
                text.push_str(TABLES[table]);
                text.push('\n');
                for (key, value) in keys {
                    text.push_str(&format!("{} = {value}\n", KEYS[key]));
                }
            }
            text
        },
    )
}

proptest! {
    #![proptest_config(config())]

    /// Any 280 bytes decode to a command or an error; valid commands survive a round trip.
    #[test]
    fn control_requests_never_panic(bytes in prop::collection::vec(any::<u8>(), core::mem::size_of::<ControlRequest>()), versioned in any::<bool>()) {
        let mut request = ControlRequest::default();
        // SAFETY: ControlRequest is repr(C) plain data of integers and bytes, every bit pattern
        // is a valid value, and `bytes` has exactly its size.
        unsafe {
            core::ptr::copy_nonoverlapping(bytes.as_ptr(), (&mut request as *mut ControlRequest).cast::<u8>(), bytes.len());
        }
        if versioned {
            request.version = CONTROL_PROTOCOL_VERSION;
            request.command %= 8;
            request.text_len %= (REQUEST_TEXT + 8) as u32;
        }
        if let Ok(command) = request.decode() {
            prop_assert_eq!(command.to_request(request.nonce).decode(), Ok(command.clone()));
            let _ = command.describe();
        }
    }

    /// `set controls` text of any printable ASCII up to the field's size round-trips.
    #[test]
    fn control_texts_round_trip(text in "[ -~]{0,256}") {
        let command = Command::SetControls(text);
        prop_assert_eq!(command.to_request(1).decode(), Ok(command));
    }

    /// The seed configs, mutated: no panic, errors name the file.
    #[test]
    fn mutated_configs_never_panic(seed in any::<prop::sample::Index>(), edits in prop::collection::vec(edit(), 1..6)) {
        let corpus = corpus();
        let text = apply(&corpus[seed.index(corpus.len())], &edits);
        load_checked(&text)?;
    }

    /// Generated documents of framebus's tables and keys: no panic, errors name the file.
    #[test]
    fn generated_configs_never_panic(text in document()) {
        load_checked(&text)?;
    }
}

/// The seeds themselves load as their names say (the shipped ones are valid, the broken ones
/// are errors), so the corpus stays meaningful.
#[test]
fn the_corpus_seeds_are_what_they_say() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/config");
    for entry in std::fs::read_dir(&dir).expect("corpus").flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(entry.path()).expect("seed");
        let loaded = Deployment::from_toml(&entry.path(), &text);
        assert_eq!(loaded.is_ok(), !name.starts_with("broken-"), "{name}: {:?}", loaded.err());
    }
}
