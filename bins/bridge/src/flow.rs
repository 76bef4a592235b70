//! The bridge's counters: per camera and direction, one [`Flow`] per kind of message (messages,
//! bytes, drops, bytes per second and latency over the last second), and the [`Link`] state.
//! They become the `figures` reply ([`framebus_common::figures::BridgeCamera`]) that `ctl
//! status` and the metrics read.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Instant, SystemTime};

use framebus_common::figures::{BridgeCamera, BridgeFlow};
use framebus_common::stats::LatencyWindow;

/// Counters of one kind of message in one direction (shared between the thread that sends or
/// receives and the one that reports).
#[derive(Debug, Default)]
pub struct Flow {
    /// Messages sent (out) or received (in).
    pub messages: AtomicU64,
    /// Bytes of those messages.
    pub bytes: AtomicU64,
    /// Messages lost (see [`BridgeFlow::drops`]).
    pub drops: AtomicU64,
    window: Mutex<Window>,
}

/// The figures of the last second.
#[derive(Debug, Default)]
struct Window {
    latency: Option<LatencyWindow>,
    since: Option<Instant>,
    bytes_at_start: u64,
    bytes_per_sec: u64,
    p50_us: Option<u64>,
}

impl Flow {
    /// Counts one message of `bytes`.
    pub fn count(&self, bytes: usize) {
        self.messages.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// Counts one message of `bytes` and its latency.
    pub fn count_with_latency(&self, bytes: usize, latency_ns: u64) {
        self.count(bytes);
        self.record_latency(latency_ns);
    }

    /// Records the latency of a message already counted.
    pub fn record_latency(&self, latency_ns: u64) {
        if let Ok(mut window) = self.window.lock() {
            window.latency.get_or_insert_with(LatencyWindow::new).record_ns(latency_ns);
        }
    }

    /// Counts one lost message.
    pub fn drop_one(&self) {
        self.add_drops(1);
    }

    /// Counts `n` lost messages.
    pub fn add_drops(&self, n: u64) {
        self.drops.fetch_add(n, Ordering::Relaxed);
    }

    /// (messages, bytes, drops) now.
    pub fn read(&self) -> (u64, u64, u64) {
        (self.messages.load(Ordering::Relaxed), self.bytes.load(Ordering::Relaxed), self.drops.load(Ordering::Relaxed))
    }

    /// Closes the window of the last second (call it about once a second): bytes per second
    /// and latency p50 of what it counted.
    pub fn roll(&self) {
        let bytes = self.bytes.load(Ordering::Relaxed);
        let Ok(mut window) = self.window.lock() else { return };
        let now = Instant::now();
        if let Some(since) = window.since {
            let secs = now.duration_since(since).as_secs_f64();
            window.bytes_per_sec =
                if secs > 0.0 { (bytes.saturating_sub(window.bytes_at_start) as f64 / secs).round() as u64 } else { 0 };
        }
        window.since = Some(now);
        window.bytes_at_start = bytes;
        window.p50_us = window.latency.as_mut().and_then(|l| l.percentile_us(50.0));
        if let Some(latency) = window.latency.as_mut() {
            latency.clear();
        }
    }

    /// Its figures, as `kind` in direction `dir` (`out`, `in`).
    pub fn figures(&self, kind: &str, dir: &str) -> BridgeFlow {
        let (messages, bytes, drops) = self.read();
        let (bytes_per_sec, latency_p50_us) = match self.window.lock() {
            Ok(w) => (w.bytes_per_sec, w.p50_us),
            Err(_) => (0, None),
        };
        BridgeFlow { flow: kind.into(), dir: dir.into(), messages, bytes, bytes_per_sec, drops, latency_p50_us }
    }
}

/// Whether the link works, since when it does not, and how often it went down.
#[derive(Debug, Clone, Default)]
pub struct Link {
    up: bool,
    ever_up: bool,
    down_since: Option<SystemTime>,
    downs: u64,
}

impl Link {
    /// Records the state now: `up` (export: a peer is connected; import: frames arrive).
    /// Returns `Some(since)` when the link just came back after being down since `since`.
    pub fn set(&mut self, up: bool) -> Option<SystemTime> {
        let mut came_back = None;
        if up && !self.up {
            came_back = self.down_since.take();
            self.ever_up = true;
        } else if !up && self.up {
            self.down_since = Some(SystemTime::now());
            self.downs += 1;
        }
        self.up = up;
        came_back
    }

    /// Whether it went down after having been up (and is still down).
    pub fn degraded(&self) -> bool {
        self.down_since.is_some()
    }

    /// Since when it is down, if it is `degraded`.
    pub fn down_since(&self) -> Option<SystemTime> {
        self.down_since
    }

    /// `up`, `degraded` or `waiting` (never up yet).
    pub fn state(&self) -> &'static str {
        match (self.up, self.ever_up) {
            (true, _) => "up",
            (false, true) => "degraded",
            (false, false) => "waiting",
        }
    }

    /// The camera's figures with this link state.
    pub fn camera(
        &self,
        camera: &str,
        direction: &str,
        origin: String,
        peers: usize,
        flows: Vec<BridgeFlow>,
    ) -> BridgeCamera {
        let since = self.down_since;
        BridgeCamera {
            camera: camera.into(),
            direction: direction.into(),
            origin,
            peers: u32::try_from(peers).unwrap_or(u32::MAX),
            link: self.state().into(),
            degraded_since: since.map(crate::wall_time),
            degraded_since_unix_secs: since
                .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
                .map(|d| d.as_secs_f64()),
            link_downs: self.downs,
            flows,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Waiting until first up; a drop after that is degraded with a time and counted; back up
    /// tells since when it was down.
    #[test]
    fn the_link_is_waiting_then_up_then_degraded_and_back() {
        let mut link = Link::default();
        assert_eq!((link.state(), link.set(false)), ("waiting", None));
        assert_eq!(link.set(true), None);
        assert_eq!(link.state(), "up");
        assert_eq!(link.set(false), None);
        assert!(link.degraded());
        let since = link.down_since().expect("down since");
        let figures = link.camera("cam0", "export", "hq/lab/cam0".into(), 0, Vec::new());
        assert_eq!((figures.link.as_str(), figures.link_downs), ("degraded", 1));
        assert!(figures.degraded_since.is_some());
        assert_eq!(link.set(true), Some(since));
        assert_eq!((link.state(), link.degraded()), ("up", false));
    }

    /// Bytes per second and the latency median come from the last window.
    #[test]
    fn a_flow_reports_its_last_window() {
        let flow = Flow::default();
        flow.roll();
        flow.count_with_latency(1000, 2_000_000);
        flow.count_with_latency(1000, 4_000_000);
        flow.count_with_latency(1000, 3_000_000);
        flow.drop_one();
        flow.roll();
        let f = flow.figures("frames", "out");
        assert_eq!((f.messages, f.bytes, f.drops, f.latency_p50_us), (3, 3000, 1, Some(3000)));
        assert!(f.bytes_per_sec > 0);
        flow.roll();
        assert_eq!(flow.figures("frames", "out").latency_p50_us, None, "nothing counted in the next window");
    }
}
