//! Latency and rate statistics shared by readers and the benchmark.

/// A bounded window of latency samples (microseconds) with percentiles.
#[derive(Debug, Clone, Default)]
pub struct LatencyWindow {
    samples_us: Vec<u64>,
    sorted: Vec<u64>,
}

/// Most samples a window keeps; older ones are replaced round-robin.
const WINDOW_CAPACITY: usize = 4096;

impl LatencyWindow {
    /// An empty window (allocates its full capacity once, so recording never allocates).
    pub fn new() -> LatencyWindow {
        LatencyWindow { samples_us: Vec::with_capacity(WINDOW_CAPACITY), sorted: Vec::with_capacity(WINDOW_CAPACITY) }
    }

    /// Records one latency in nanoseconds.
    pub fn record_ns(&mut self, latency_ns: u64) {
        let us = latency_ns / 1000;
        if self.samples_us.len() < WINDOW_CAPACITY {
            self.samples_us.push(us);
        } else {
            let at = (us as usize ^ self.sorted.len()) % WINDOW_CAPACITY;
            self.samples_us[at] = us;
        }
    }

    /// Number of samples held.
    pub fn len(&self) -> usize {
        self.samples_us.len()
    }

    /// Whether no sample was recorded.
    pub fn is_empty(&self) -> bool {
        self.samples_us.is_empty()
    }

    /// Percentile `p` (0..=100) in microseconds, `None` when empty.
    pub fn percentile_us(&mut self, p: f64) -> Option<u64> {
        if self.samples_us.is_empty() {
            return None;
        }
        self.sorted.clear();
        self.sorted.extend_from_slice(&self.samples_us);
        self.sorted.sort_unstable();
        let rank = ((p / 100.0) * (self.sorted.len() - 1) as f64).round() as usize;
        self.sorted.get(rank.min(self.sorted.len() - 1)).copied()
    }

    /// Forgets every sample.
    pub fn clear(&mut self) {
        self.samples_us.clear();
    }
}

/// Frame rate and latency percentiles over consecutive fixed windows, for status replies: the
/// figures of the last complete window are what a status request reports.
#[derive(Debug, Clone)]
pub struct StatusWindow {
    period: std::time::Duration,
    since: std::time::Instant,
    frames_at_start: u64,
    latency: LatencyWindow,
    /// Frames per second over the last complete window.
    pub fps: f64,
    /// Latency p50 (µs) over the last complete window.
    pub p50_us: Option<u64>,
    /// Latency p99 (µs) over the last complete window.
    pub p99_us: Option<u64>,
}

impl StatusWindow {
    /// Windows of `period`; allocates once.
    pub fn new(period: std::time::Duration) -> StatusWindow {
        StatusWindow {
            period,
            since: std::time::Instant::now(),
            frames_at_start: 0,
            latency: LatencyWindow::new(),
            fps: 0.0,
            p50_us: None,
            p99_us: None,
        }
    }

    /// Records one frame's latency.
    pub fn record_ns(&mut self, latency_ns: u64) {
        self.latency.record_ns(latency_ns);
    }

    /// Frames counted in the window still open (`frames` is the running total): a process
    /// whose first window has not closed yet is already running when this is above 0.
    pub fn frames_in_open_window(&self, frames: u64) -> u64 {
        frames.saturating_sub(self.frames_at_start)
    }

    /// Closes the window when its period is over; `frames` is the running total. Call it every
    /// loop iteration, frames or not, so an idle process reports 0 fps. Whether it closed.
    pub fn roll(&mut self, frames: u64) -> bool {
        let over = self.since.elapsed() >= self.period;
        if over {
            self.close(frames);
        }
        over
    }

    /// Closes the window now, whatever its length (a process that reports on a timer of its
    /// own); `frames` is the running total.
    pub fn close(&mut self, frames: u64) {
        let elapsed = self.since.elapsed().as_secs_f64();
        let counted = frames.saturating_sub(self.frames_at_start) as f64;
        self.fps = if elapsed > 0.0 { counted / elapsed } else { 0.0 };
        self.p50_us = self.latency.percentile_us(50.0);
        self.p99_us = self.latency.percentile_us(99.0);
        self.latency.clear();
        self.frames_at_start = frames;
        self.since = std::time::Instant::now();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_known_distribution() {
        let mut w = LatencyWindow::new();
        for us in 1..=100u64 {
            w.record_ns(us * 1000);
        }
        assert_eq!(w.percentile_us(50.0), Some(51));
        assert_eq!(w.percentile_us(99.0), Some(99));
        assert_eq!(w.percentile_us(0.0), Some(1));
    }

    /// A window closed by its caller reports the latencies recorded since the last close and
    /// starts counting again; `roll` closes only after its period.
    #[test]
    fn a_window_closes_on_request_or_after_its_period() {
        let mut w = StatusWindow::new(std::time::Duration::MAX);
        for us in [10u64, 20, 30] {
            w.record_ns(us * 1000);
        }
        assert!(!w.roll(3), "the period is not over");
        w.close(3);
        assert_eq!((w.p50_us, w.p99_us), (Some(20), Some(30)));
        assert!(w.fps > 0.0);
        assert_eq!(w.frames_in_open_window(5), 2);
        w.close(5);
        assert_eq!(w.p50_us, None, "no latency recorded since the last close");
        let mut rolling = StatusWindow::new(std::time::Duration::ZERO);
        assert!(rolling.roll(1));
    }
}
