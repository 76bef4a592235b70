//! The figures a process reports beyond the fixed status record: the streamer's encoder and
//! bitrate, the recorder's events, the media server's viewers per camera. Each is computed
//! once, where it is produced, and sent as a JSON object in the message of the reply to
//! [`crate::protocol::code::FIGURES`]; `ctl status` and the metrics endpoint only read them.
//! Being JSON, a field can be added without a new reply layout; removing or renaming one is a
//! breaking change (docs/metrics.md, docs/supervisor.md).
//!
//! A new process adds its figures here as a variant of [`Figures`]. The bridge's are per
//! camera, like the media server's: the deployment's bridge answers `figures <camera>` for
//! each camera it exports, and an importing `bridge --camera` (the remote camera's capture
//! role) answers for the camera it imports.

use serde::{Deserialize, Serialize};

use crate::protocol::MESSAGE_TEXT;

/// The figures of one process (or, for the media server, of one camera it serves), tagged by
/// `kind`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Figures {
    /// A camera's streamer.
    Streamer(StreamerFigures),
    /// A camera's recorder: its events.
    Recorder(RecorderEvents),
    /// The media server, for one camera.
    MediaServer(MediaServerCamera),
    /// The bridge, for one camera it exports or imports.
    Bridge(BridgeCamera),
}

/// What a streamer has encoded and published (counters since the process started).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StreamerFigures {
    /// The encoder in use (`x264`, `v4l2:/dev/video11`, `vaapi:vah264enc`).
    pub encoder: String,
    /// `streaming`, `starting` or `restarting`.
    pub state: String,
    /// The configured bitrate (`bitrate-kbps`), kbit/s.
    pub bitrate_kbps: u32,
    /// The bitrate of the access units published over the last second, kbit/s.
    pub measured_kbps: f64,
    /// Access units published per second over the last second.
    pub fps: f64,
    /// Bytes of access units published.
    pub bytes: u64,
    /// Key frames (IDR access units) published.
    pub key_frames: u64,
    /// Frames not encoded (the encoder was busy, stalled or restarting).
    pub skipped: u64,
    /// Access units published on the camera's encoded service.
    pub access_units: u64,
    /// Access units not published (queue full, too large, no sample).
    pub access_units_dropped: u64,
    /// Encoder runs started after the first.
    pub restarts: u64,
}

/// A recorder's events: the clips its triggers (or `ctl record on`) made, the pre-roll it
/// holds, its last event and its disk guard.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RecorderEvents {
    /// Clips completed since the process started.
    pub clips: u64,
    /// Results that matched a trigger.
    pub triggers: u64,
    /// Triggers whose frames were gone (the result came later than the pre-roll holds).
    pub missed_triggers: u64,
    /// Frames held in memory now (pre-roll, and frames waiting to be written).
    pub preroll_frames: u64,
    /// Bytes of those frames (JPEG).
    pub preroll_bytes: u64,
    /// The event that started the last clip, if any.
    pub last_event: Option<LastEvent>,
    /// The disk guard.
    pub disk_guard: DiskGuard,
}

/// The event that started a clip.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LastEvent {
    /// Capture time of the trigger frame, UTC, as the events journal writes it
    /// (`2026-12-06 17:30:30.123`).
    pub utc: String,
    /// Same, seconds since the Unix epoch.
    pub unix_secs: f64,
    /// `result` (a trigger matched), `manual` (`ctl record on`) or `continued` (after
    /// `max-clip-secs`).
    pub source: String,
    /// The first box label of the result that caused it, else its producer's name; `manual`
    /// or `continued` for the others.
    pub label: String,
}

/// The recorder's disk guard.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DiskGuard {
    /// `ok`, or `low` while free space or inodes are below the floor (nothing is written).
    pub state: String,
    /// Free bytes at the last check.
    pub free_bytes: u64,
    /// The floor (`min-free-mb`), bytes.
    pub min_free_bytes: u64,
}

/// The media server's figures for one camera (counters since the process started).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MediaServerCamera {
    /// The camera.
    pub camera: String,
    /// A streamer publishes its access units now.
    pub publishing: bool,
    /// Viewers now, per protocol.
    pub viewers: Viewers,
    /// Bytes sent to viewers (RTP packets, every viewer counted).
    pub bytes_out: u64,
    /// Access units read from the camera's encoded service.
    pub access_units_in: u64,
    /// Access units lost before the server read them (gaps in the sequence numbers: its queue
    /// on the encoded service overflowed).
    pub access_units_lost: u64,
    /// Access units viewers that fell behind skipped (they resume at the next key frame).
    pub access_units_skipped: u64,
}

/// Viewers per protocol. RTSP and RTSPS exclude each other: with `[tls]` the server speaks
/// RTSPS only.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Viewers {
    /// RTSP clients playing.
    pub rtsp: u32,
    /// RTSPS clients playing.
    pub rtsps: u32,
    /// WebRTC (WHEP) viewers.
    pub webrtc: u32,
}

impl Viewers {
    /// Every viewer.
    pub fn total(&self) -> u32 {
        self.rtsp + self.rtsps + self.webrtc
    }

    /// (protocol label, count) of each protocol, as the metrics label them.
    pub fn by_protocol(&self) -> [(&'static str, u32); 3] {
        [("rtsp", self.rtsp), ("rtsps", self.rtsps), ("webrtc", self.webrtc)]
    }
}

/// The bridge's figures for one camera in one direction (counters since the process started).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BridgeCamera {
    /// The camera, by its name in this deployment.
    pub camera: String,
    /// `export` (this host sends the camera) or `import` (a `[[remote-camera]]` received here).
    pub direction: String,
    /// Where an imported camera comes from, `site/deployment/camera`; empty (and left out of
    /// the JSON) for an export.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub origin: String,
    /// Zenoh peers and routers the bridge's session is connected to now.
    pub peers: u32,
    /// `up`; `degraded` (export: every peer gone; import: no frame for 2 s); `waiting` (export:
    /// no peer yet since the bridge started; import: no frame yet).
    pub link: String,
    /// When the link became `degraded` (RFC 3339 UTC), while it is.
    pub degraded_since: Option<String>,
    /// Same, seconds since the Unix epoch.
    pub degraded_since_unix_secs: Option<f64>,
    /// Times the link went from up to degraded.
    pub link_downs: u64,
    /// Per kind of message and direction.
    pub flows: Vec<BridgeFlow>,
}

/// One flow of a bridged camera: one kind of message in one direction.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BridgeFlow {
    /// `frames`, `encoded`, `results`, `results-back` or `control` (the Zenoh key's kind).
    pub flow: String,
    /// `out` (sent to Zenoh) or `in` (received from Zenoh and published here).
    pub dir: String,
    /// Messages sent (out) or received (in).
    pub messages: u64,
    /// Bytes of those messages.
    pub bytes: u64,
    /// Bytes per second over the last second.
    pub bytes_per_sec: u64,
    /// Messages lost: out, refused by the session or unreadable; in, missing from the sender's
    /// sequence numbers (dropped on the link or by a full queue), plus unreadable ones.
    pub drops: u64,
    /// Median latency over the last second, µs: out, capture → handed to Zenoh; in, capture at
    /// the origin → published here (through both hosts' wall clocks). Frames and encoded video
    /// only (left out of the JSON for the others).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_p50_us: Option<u64>,
}

/// Why figures could not be carried in a reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FiguresError {
    /// Their JSON is longer than a reply's message.
    #[error("the figures take {0} bytes of JSON, more than the {MESSAGE_TEXT} a reply holds")]
    TooLong(usize),
    /// They could not be encoded.
    #[error("encoding the figures: {0}")]
    Encode(String),
    /// The reply's message is not figures.
    #[error("unreadable figures `{text}`: {error}")]
    Decode {
        /// The message.
        text: String,
        /// The parser's complaint.
        error: String,
    },
}

impl Figures {
    /// The JSON object for a reply's message (ASCII: other characters are escaped).
    pub fn to_message(&self) -> Result<String, FiguresError> {
        let json = serde_json::to_string(self).map_err(|e| FiguresError::Encode(e.to_string()))?;
        let mut ascii = String::with_capacity(json.len());
        for c in json.chars() {
            if c.is_ascii() {
                ascii.push(c);
            } else {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    ascii.push_str(&format!("\\u{unit:04x}"));
                }
            }
        }
        if ascii.len() > MESSAGE_TEXT {
            return Err(FiguresError::TooLong(ascii.len()));
        }
        Ok(ascii)
    }

    /// The figures in a reply's message.
    pub fn from_message(text: &str) -> Result<Figures, FiguresError> {
        serde_json::from_str(text).map_err(|e| FiguresError::Decode { text: text.to_string(), error: e.to_string() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every kind survives the reply's message, tagged by `kind`; a label outside ASCII is
    /// escaped, so the message stays ASCII and decodes to the same text.
    #[test]
    fn figures_round_trip_through_a_message() {
        let all = [
            Figures::Streamer(StreamerFigures { encoder: "x264".into(), bitrate_kbps: 2000, ..Default::default() }),
            Figures::Recorder(RecorderEvents {
                clips: 2,
                last_event: Some(LastEvent { label: "personne âgée".into(), ..Default::default() }),
                ..Default::default()
            }),
            Figures::MediaServer(MediaServerCamera {
                camera: "cam0".into(),
                viewers: Viewers { rtsp: 1, rtsps: 0, webrtc: 2 },
                ..Default::default()
            }),
            Figures::Bridge(BridgeCamera {
                camera: "site-cam0".into(),
                direction: "import".into(),
                flows: vec![BridgeFlow { flow: "frames".into(), latency_p50_us: Some(900), ..Default::default() }],
                ..Default::default()
            }),
        ];
        for figures in all {
            let message = figures.to_message().expect("fits");
            assert!(message.is_ascii(), "{message}");
            assert_eq!(Figures::from_message(&message), Ok(figures));
        }
        let text = Figures::Streamer(StreamerFigures::default()).to_message().expect("fits");
        assert!(text.starts_with("{\"kind\":\"streamer\""), "{text}");
    }

    /// The bridge's largest figures fit a reply: an export with all five flows and an import
    /// with its origin, names of 32 characters, after a year of 10^12 messages and 4 PB per
    /// flow (a saturated 1 Gbit/s link is 4 PB a year).
    #[test]
    fn the_largest_bridge_figures_fit_a_reply() {
        let flow = |name: &str| BridgeFlow {
            flow: name.into(),
            dir: "out".into(),
            messages: 10u64.pow(12),
            bytes: 4 * 10u64.pow(15),
            bytes_per_sec: 125_000_000,
            drops: 10u64.pow(12),
            latency_p50_us: ["frames", "encoded"].contains(&name).then_some(10u64.pow(9)),
        };
        let name = "c".repeat(32); // names are at most 32 characters (config::is_valid_name)
        let camera = |direction: &str, origin: String, flows: &[&str]| {
            Figures::Bridge(BridgeCamera {
                camera: name.clone(),
                direction: direction.into(),
                origin,
                peers: u32::MAX,
                link: "degraded".into(),
                degraded_since: Some("2026-12-06T20:30:00.123456789Z".into()),
                degraded_since_unix_secs: Some(1.796_588_200_123_456e9),
                link_downs: 10u64.pow(6),
                flows: flows.iter().map(|f| flow(f)).collect(),
            })
        };
        let export = camera("export", String::new(), &["frames", "encoded", "results", "results-back", "control"]);
        let origin = format!("{}/{}/{name}", "s".repeat(32), "d".repeat(32));
        let import = camera("import", origin, &["frames", "results", "results-back"]);
        for figures in [export, import] {
            let message = figures.to_message().expect("fits a reply");
            assert_eq!(Figures::from_message(&message), Ok(figures));
        }
    }

    /// Figures longer than a reply are refused, not cut into broken JSON.
    #[test]
    fn figures_longer_than_a_reply_are_refused() {
        let long = Figures::Streamer(StreamerFigures { encoder: "x".repeat(MESSAGE_TEXT), ..Default::default() });
        assert!(matches!(long.to_message(), Err(FiguresError::TooLong(_))));
    }
}
