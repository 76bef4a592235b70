//! `[camera.streamer]` (H.264 out to a media server) and `[media-server]` (the deployment's
//! RTSP + WebRTC server that fans the streams out to viewers).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use serde::Deserialize;

use super::reader_table::reader_table;

/// Defaults of the streamer and the media server.
pub mod defaults {
    /// Queue depth of the streamer reader: newest frame only.
    pub const QUEUE_DEPTH: u32 = 1;
    /// Target bitrate, kbit/s.
    pub const BITRATE_KBPS: u32 = 4000;
    /// Frames from one key frame to the next.
    pub const GOP: u32 = 30;
    /// RTSP address of the media server.
    pub const RTSP: &str = "127.0.0.1:8554";
    /// HTTP address (player page, WHEP) of the media server.
    pub const HTTP: &str = "127.0.0.1:8889";
    /// WebRTC viewers per camera at once.
    pub const WEBRTC_VIEWERS: u32 = 16;
    /// Seconds the encoder may output nothing while frames wait before the streamer restarts it.
    pub const STALL_SECS: f64 = 3.0;
}

/// Which H.264 encoder the streamer uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EncoderChoice {
    /// A hardware encoder when the machine has one (V4L2 M2M, then VAAPI), else x264.
    Auto,
    /// Software: x264 (GStreamer `x264enc`).
    X264,
    /// A V4L2 memory-to-memory H.264 encoder (Raspberry Pi, Rockchip, ...); an error when none.
    V4l2,
    /// VAAPI (Intel/AMD GPUs); an error when none.
    Vaapi,
}

impl EncoderChoice {
    /// The config spelling.
    pub fn name(self) -> &'static str {
        match self {
            EncoderChoice::Auto => "auto",
            EncoderChoice::X264 => "x264",
            EncoderChoice::V4l2 => "v4l2",
            EncoderChoice::Vaapi => "vaapi",
        }
    }
}

reader_table! {
    /// `[camera.streamer]`: encode the camera as H.264 and publish it on the camera's encoded
    /// service (`framebus/<dep>/<cam>/encoded`), where the media server and the recorder read it.
    pub struct StreamerConfig {
        ..queue_depth("default_queue_depth"),
        ..policy,
        /// `auto` (default), `x264`, `v4l2` or `vaapi`.
        #[serde(default = "default_encoder")]
        pub encoder: EncoderChoice,
        /// Target bitrate in kbit/s (constant bitrate where the encoder has it).
        #[serde(default = "default_bitrate")]
        pub bitrate_kbps: u32,
        /// Frames from one key frame to the next (a new viewer waits at most this long).
        #[serde(default = "default_gop")]
        pub gop: u32,
        /// Low latency: no B-frames, no look-ahead, zero-latency tuning, one frame in flight.
        #[serde(default = "default_true")]
        pub low_latency: bool,
        /// Seconds the encoder may output nothing while frames wait before the streamer restarts it
        /// (frames meanwhile are skipped, never queued without bound).
        #[serde(default = "default_stall")]
        pub stall_secs: f64,
        /// Draw the latest results of the camera's producers (boxes, labels: the preview's
        /// rules, `[camera.preview] result-max-age-ms`) into the frames it encodes, so RTSP and
        /// WebRTC viewers see them. The streamer never waits for a result and never writes into
        /// the shared frame: it draws into its own converted (BGR) copy.
        #[serde(default)]
        pub overlay: bool,
        /// Seconds between statistics reports.
        #[serde(default = "default_stats")]
        pub stats_interval_secs: f64,
    }
}

impl Default for StreamerConfig {
    fn default() -> Self {
        StreamerConfig {
            queue_depth: defaults::QUEUE_DEPTH,
            policy: None,
            max_fps: None,
            encoder: EncoderChoice::Auto,
            bitrate_kbps: defaults::BITRATE_KBPS,
            gop: defaults::GOP,
            low_latency: true,
            stall_secs: defaults::STALL_SECS,
            overlay: false,
            stats_interval_secs: super::defaults::STATS_INTERVAL_SECS,
        }
    }
}

/// `[media-server]`: the deployment's media server (RTSP for players and NVRs, WebRTC/WHEP and
/// a player page for browsers). It reads each streamer's encoded service and fans the stream
/// out; nothing is ever published to it over the network.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct MediaServerConfig {
    /// `ctl up` starts (and restarts) the `mediaserver` process; `false` = you run `mediaserver
    /// --config <this file>` yourself (it reads the streams from shared memory, on this host).
    #[serde(default = "default_true")]
    pub start: bool,
    /// RTSP address (`ip:port`): players use `rtsp://HOST:PORT/<camera>`.
    #[serde(default = "default_rtsp")]
    pub rtsp: String,
    /// HTTP address (`ip:port`): the player page `http://HOST:PORT/<camera>` and WHEP at
    /// `/<camera>/whep`.
    #[serde(default = "default_http")]
    pub http: String,
    /// WebRTC viewers per camera at once; more are answered 503.
    #[serde(default = "default_viewers")]
    pub webrtc_viewers: u32,
    /// Local addresses WebRTC may use for its media (ICE host candidates); default: the HTTP
    /// address's IP, or every interface when that is unspecified (`0.0.0.0`).
    #[serde(default)]
    pub webrtc_addresses: Vec<String>,
    /// Web origins (`http://host:port`) whose pages may use WHEP from a browser (CORS); default:
    /// the preview's own origin of every camera with a preview (its `listen` address). The
    /// media server's own pages are always allowed.
    #[serde(default)]
    pub allowed_origins: Vec<String>,
}

impl MediaServerConfig {
    /// The validated RTSP address.
    pub fn rtsp_addr(&self) -> SocketAddr {
        self.rtsp.parse().unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 8554)))
    }

    /// The validated HTTP address.
    pub fn http_addr(&self) -> SocketAddr {
        self.http.parse().unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 8889)))
    }

    /// The address a local client connects to: the bound IP, or loopback when the server
    /// binds every interface.
    pub fn local(addr: SocketAddr) -> SocketAddr {
        if addr.ip().is_unspecified() {
            let ip = match addr.ip() {
                IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
            };
            SocketAddr::new(ip, addr.port())
        } else {
            addr
        }
    }

    /// ICE host addresses WebRTC may use (empty = every interface).
    pub fn ice_addresses(&self) -> Vec<String> {
        if !self.webrtc_addresses.is_empty() {
            return self.webrtc_addresses.clone();
        }
        let ip = self.http_addr().ip();
        if ip.is_unspecified() {
            Vec::new()
        } else {
            vec![ip.to_string()]
        }
    }
}

impl Default for MediaServerConfig {
    fn default() -> Self {
        MediaServerConfig {
            start: true,
            rtsp: default_rtsp(),
            http: default_http(),
            webrtc_viewers: defaults::WEBRTC_VIEWERS,
            webrtc_addresses: Vec::new(),
            allowed_origins: Vec::new(),
        }
    }
}

fn default_queue_depth() -> u32 {
    defaults::QUEUE_DEPTH
}
fn default_encoder() -> EncoderChoice {
    EncoderChoice::Auto
}
fn default_bitrate() -> u32 {
    defaults::BITRATE_KBPS
}
fn default_gop() -> u32 {
    defaults::GOP
}
fn default_true() -> bool {
    true
}
fn default_stall() -> f64 {
    defaults::STALL_SECS
}
fn default_stats() -> f64 {
    super::defaults::STATS_INTERVAL_SECS
}
fn default_rtsp() -> String {
    defaults::RTSP.to_string()
}
fn default_http() -> String {
    defaults::HTTP.to_string()
}
fn default_viewers() -> u32 {
    defaults::WEBRTC_VIEWERS
}

/// Checks `[camera.streamer]`; errors are (field, message).
pub(crate) fn validate_streamer(config: &StreamerConfig) -> Result<(), (String, String)> {
    let err = |field: &str, msg: String| Err((field.to_string(), msg));
    if let Some(policy) = config.policy.as_deref() {
        if policy == "every" {
            return err(
                "policy",
                "`every` is not allowed for the streamer: a live stream must not fall behind; use `newest` or `max-fps`"
                    .into(),
            );
        }
    }
    if !(64..=200_000).contains(&config.bitrate_kbps) {
        return err("bitrate-kbps", format!("invalid value {}: allowed 64 to 200000 kbit/s", config.bitrate_kbps));
    }
    if !(1..=1000).contains(&config.gop) {
        return err("gop", format!("invalid value {}: allowed 1 to 1000 frames", config.gop));
    }
    if !(config.stall_secs >= 0.5 && config.stall_secs <= 600.0) {
        return err("stall-secs", format!("invalid value {}: allowed 0.5 to 600", config.stall_secs));
    }
    if !(config.stats_interval_secs > 0.0 && config.stats_interval_secs <= 3600.0) {
        return err(
            "stats-interval-secs",
            format!("invalid value {}: allowed more than 0 up to 3600", config.stats_interval_secs),
        );
    }
    Ok(())
}

/// Whether `origin` is a web origin as browsers send it: `http[s]://host[:port]`, nothing more.
pub fn is_origin(origin: &str) -> bool {
    let Some(rest) = origin.strip_prefix("http://").or_else(|| origin.strip_prefix("https://")) else {
        return false;
    };
    !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b)) && !rest.ends_with(':')
}

/// Checks `[media-server]`; errors are (field, message).
pub(crate) fn validate_server(config: &MediaServerConfig) -> Result<(), (String, String)> {
    for (field, value) in [("rtsp", &config.rtsp), ("http", &config.http)] {
        if value.parse::<SocketAddr>().is_err() {
            return Err((field.into(), format!("invalid address `{value}`: use ip:port, e.g. `127.0.0.1:8554`")));
        }
    }
    if config.rtsp_addr().port() == 0 || config.http_addr().port() == 0 {
        return Err(("rtsp".into(), "port 0 is not allowed: streamers and viewers need a known port".into()));
    }
    if config.rtsp_addr() == config.http_addr() {
        return Err(("http".into(), format!("`{}` is also the RTSP address: use another port", config.http)));
    }
    if !(1..=256).contains(&config.webrtc_viewers) {
        return Err(("webrtc-viewers".into(), format!("invalid value {}: allowed 1 to 256", config.webrtc_viewers)));
    }
    for addr in &config.webrtc_addresses {
        if addr.parse::<IpAddr>().is_err() {
            return Err(("webrtc-addresses".into(), format!("invalid IP address `{addr}`")));
        }
    }
    for origin in &config.allowed_origins {
        if !is_origin(origin) {
            return Err((
                "allowed-origins".into(),
                format!("invalid origin `{origin}`: use scheme://host[:port] with http or https, no path, e.g. `http://127.0.0.1:8080`"),
            ));
        }
    }
    Ok(())
}
