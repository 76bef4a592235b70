//! `[camera.preview]`: the live preview process (HTTP MJPEG, snapshot, optional window).

use std::net::SocketAddr;

use super::defaults;
use super::reader_table::reader_table;

reader_table! {
    /// `[camera.preview]`: what the preview process generates and where it serves it.
    pub struct PreviewConfig {
        /// Initial state: generate preview images (`true`) or only count frames (`false`).
        #[serde(default = "default_enabled")]
        pub enabled: bool,
        ..queue_depth("default_queue_depth"),
        ..policy,
        /// Preview images per second, independent of the camera's frame rate.
        #[serde(default = "default_fps")]
        pub fps: f64,
        /// Largest preview width in pixels; frames are downscaled (keeping their aspect) to fit.
        #[serde(default = "default_max_width")]
        pub max_width: u32,
        /// Largest preview height in pixels.
        #[serde(default = "default_max_height")]
        pub max_height: u32,
        /// JPEG quality of preview images, 1 to 100.
        #[serde(default = "default_jpeg_quality")]
        pub jpeg_quality: u32,
        /// Draw the overlay (camera, frame id, wall-clock time, fps, latency).
        #[serde(default = "default_overlay")]
        pub overlay: bool,
        /// Draw the results of the camera's producers (algo, user readers): boxes, labels, scores.
        #[serde(default = "default_overlay")]
        pub results: bool,
        /// Results about frames older than this (relative to the frame shown) are not drawn;
        /// younger ones fade as they age. Milliseconds.
        #[serde(default = "default_result_max_age_ms")]
        pub result_max_age_ms: f64,
        /// Address the HTTP server binds (`ip:port`; port 0 picks a free port, logged at start-up).
        #[serde(default = "default_listen")]
        pub listen: String,
        /// `/stream.mjpg` viewers served at once; more are answered 503.
        #[serde(default = "default_max_viewers")]
        pub max_viewers: u32,
        /// Other HTTP connections at once (requests being read, page, snapshot, status, idle
        /// kept-alive); more wait in the kernel's accept queue. Stream viewers do not count.
        #[serde(default = "default_max_connections")]
        pub max_connections: u32,
        /// Seconds a request head has to arrive whole, counted from the connection (or the
        /// previous response); slower connections are closed before they count as viewers.
        #[serde(default = "default_request_timeout")]
        pub request_timeout_secs: f64,
        /// Seconds between statistics reports.
        #[serde(default = "default_stats_interval")]
        pub stats_interval_secs: f64,
    }
}

impl Default for PreviewConfig {
    fn default() -> Self {
        PreviewConfig {
            enabled: default_enabled(),
            queue_depth: default_queue_depth(),
            policy: None,
            max_fps: None,
            fps: default_fps(),
            max_width: default_max_width(),
            max_height: default_max_height(),
            jpeg_quality: default_jpeg_quality(),
            overlay: default_overlay(),
            results: default_overlay(),
            result_max_age_ms: default_result_max_age_ms(),
            listen: default_listen(),
            max_viewers: default_max_viewers(),
            max_connections: default_max_connections(),
            request_timeout_secs: default_request_timeout(),
            stats_interval_secs: default_stats_interval(),
        }
    }
}

impl PreviewConfig {
    /// The validated listen address (validation guarantees it parses).
    pub fn listen_addr(&self) -> SocketAddr {
        self.listen.parse().unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], defaults::PREVIEW_PORT)))
    }
}

fn default_result_max_age_ms() -> f64 {
    defaults::PREVIEW_RESULT_MAX_AGE_MS
}
fn default_enabled() -> bool {
    defaults::PREVIEW_ENABLED
}
fn default_queue_depth() -> u32 {
    defaults::PREVIEW_QUEUE_DEPTH
}
fn default_fps() -> f64 {
    defaults::PREVIEW_FPS
}
fn default_max_width() -> u32 {
    defaults::PREVIEW_MAX_WIDTH
}
fn default_max_height() -> u32 {
    defaults::PREVIEW_MAX_HEIGHT
}
fn default_jpeg_quality() -> u32 {
    defaults::PREVIEW_JPEG_QUALITY
}
fn default_overlay() -> bool {
    true
}
fn default_listen() -> String {
    format!("127.0.0.1:{}", defaults::PREVIEW_PORT)
}
fn default_max_viewers() -> u32 {
    defaults::PREVIEW_MAX_VIEWERS
}
fn default_max_connections() -> u32 {
    defaults::PREVIEW_MAX_CONNECTIONS
}
fn default_request_timeout() -> f64 {
    defaults::PREVIEW_REQUEST_TIMEOUT_SECS
}
fn default_stats_interval() -> f64 {
    defaults::STATS_INTERVAL_SECS
}

/// Checks the values; returns the failing field (below `camera[i].preview.`) and the message.
pub(super) fn validate(cfg: &PreviewConfig) -> Result<(), (String, String)> {
    let fail = |field: &str, msg: String| Err((field.to_string(), msg));
    if !(cfg.fps.is_finite() && cfg.fps >= 0.1 && cfg.fps <= 60.0) {
        return fail("fps", format!("invalid value {}: allowed 0.1 to 60 preview images per second", cfg.fps));
    }
    for (field, value) in [("max-width", cfg.max_width), ("max-height", cfg.max_height)] {
        if !(16..=16384).contains(&value) {
            return fail(field, format!("invalid value {value}: allowed 16 to 16384 pixels"));
        }
    }
    if !(1..=100).contains(&cfg.jpeg_quality) {
        return fail("jpeg-quality", format!("invalid value {}: allowed 1 to 100", cfg.jpeg_quality));
    }
    if cfg.listen.parse::<SocketAddr>().is_err() {
        return fail(
            "listen",
            format!("invalid address `{}`: use ip:port, e.g. `127.0.0.1:8080` (port 0 picks a free port)", cfg.listen),
        );
    }
    if !(1..=256).contains(&cfg.max_viewers) {
        return fail("max-viewers", format!("invalid value {}: allowed 1 to 256", cfg.max_viewers));
    }
    if !(1..=4096).contains(&cfg.max_connections) {
        return fail("max-connections", format!("invalid value {}: allowed 1 to 4096", cfg.max_connections));
    }
    if !(cfg.request_timeout_secs.is_finite() && cfg.request_timeout_secs >= 0.1 && cfg.request_timeout_secs <= 300.0) {
        return fail(
            "request-timeout-secs",
            format!("invalid value {}: allowed 0.1 to 300 seconds", cfg.request_timeout_secs),
        );
    }
    if !(cfg.result_max_age_ms.is_finite() && (0.0..=60_000.0).contains(&cfg.result_max_age_ms)) {
        return fail(
            "result-max-age-ms",
            format!("invalid value {}: allowed 0 to 60000 milliseconds", cfg.result_max_age_ms),
        );
    }
    if !(cfg.stats_interval_secs > 0.0 && cfg.stats_interval_secs <= 3600.0) {
        return fail(
            "stats-interval-secs",
            format!("invalid value {}: allowed more than 0 up to 3600", cfg.stats_interval_secs),
        );
    }
    Ok(())
}

impl super::Deployment {
    /// Where the events page of `camera` is served, as `scheme://ip:port` (no trailing slash):
    /// the camera's own preview, else the first camera's that has one (every preview serves
    /// the events of the whole deployment). `None` when no camera has a preview or its port is
    /// picked at start-up (`:0`). A preview listening on every interface is named by loopback.
    pub fn events_page_base(&self, camera: &str) -> Option<String> {
        let own = self.camera.iter().find(|c| c.name == camera).and_then(|c| c.preview.as_ref());
        let preview = own.or_else(|| self.camera.iter().find_map(|c| c.preview.as_ref()))?;
        let addr = super::MediaServerConfig::local(preview.listen_addr());
        (addr.port() != 0).then(|| format!("{}://{addr}", self.http_scheme()))
    }
}
