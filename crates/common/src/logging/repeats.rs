//! The rate limiter for log lines that can repeat per frame or per request (unusable frames,
//! failed writes, malformed requests, refused connections): per call site (`key`), the first
//! [`REPEAT_BURST`] occurrences of a window of [`REPEAT_INTERVAL`] are logged; further ones are
//! counted and reported as one line, `N more like this in the last 10 s: <last message>`, when
//! the window ends. While a fault goes on, each later window gives only that one line; after a
//! whole quiet window the next occurrence is logged in full again.
//!
//! The summary is written by a small thread started at the first suppressed line, which sleeps
//! until a window with suppressed lines ends, so counts are reported even when the fault stops.

use std::fmt::Display;
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tracing::Level;

/// Lines logged per call site in a window before they are counted instead.
pub const REPEAT_BURST: u32 = 3;
/// Length of a window; also the most one summary line per call site can lag behind.
pub const REPEAT_INTERVAL: Duration = Duration::from_secs(10);

/// What to do with one occurrence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Log it.
    Log,
    /// Count it; a [`Summary`] reports it later.
    Suppressed,
}

/// Occurrences of one call site that were counted instead of logged during one window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// The call site.
    pub key: &'static str,
    /// Level of the suppressed lines.
    pub level: Level,
    /// How many were suppressed.
    pub count: u64,
    /// The last suppressed message.
    pub last: String,
    /// The window they fell in.
    pub window: Duration,
}

impl Summary {
    /// `N more like this in the last 10 s: <last message>`.
    pub fn text(&self) -> String {
        format!("{} more like this in the last {} s: {}", self.count, self.window.as_secs(), self.last)
    }
}

#[derive(Debug)]
struct Entry {
    key: &'static str,
    level: Level,
    window_start: Instant,
    logged: u32,
    suppressed: u64,
    last: String,
    /// The previous window had suppressed lines: this one logs none in full.
    hot: bool,
}

/// Per-call-site windows. [`repeated`] uses one for the whole process; tests make their own
/// and pass the time in.
#[derive(Debug)]
pub struct RepeatLimiter {
    burst: u32,
    interval: Duration,
    entries: Mutex<Vec<Entry>>,
}

impl RepeatLimiter {
    /// A limiter logging `burst` lines per call site and `interval`.
    pub const fn new(burst: u32, interval: Duration) -> RepeatLimiter {
        RepeatLimiter { burst, interval, entries: Mutex::new(Vec::new()) }
    }

    /// Decides about one occurrence of `key` at `now`; returns the summary of an earlier window
    /// that nobody reported yet (to be logged first), if any.
    pub fn check(&self, key: &'static str, level: Level, message: &str, now: Instant) -> (Verdict, Option<Summary>) {
        let Ok(mut entries) = self.entries.lock() else { return (Verdict::Log, None) };
        let index = match entries.iter().position(|e| e.key == key) {
            Some(index) => index,
            None => {
                entries.push(Entry {
                    key,
                    level,
                    window_start: now,
                    logged: 0,
                    suppressed: 0,
                    last: String::new(),
                    hot: false,
                });
                entries.len() - 1
            }
        };
        let entry = &mut entries[index];
        let summary = self.roll(entry, now);
        let allowance = if entry.hot { 0 } else { self.burst };
        if entry.logged < allowance {
            entry.logged += 1;
            (Verdict::Log, summary)
        } else {
            entry.suppressed += 1;
            entry.level = level;
            message.clone_into(&mut entry.last);
            (Verdict::Suppressed, summary)
        }
    }

    /// Summaries of every window that has ended by `now` with suppressed lines.
    pub fn due(&self, now: Instant) -> Vec<Summary> {
        let Ok(mut entries) = self.entries.lock() else { return Vec::new() };
        entries.iter_mut().filter_map(|entry| self.roll(entry, now)).collect()
    }

    /// When the next window with suppressed lines ends (None: nothing is pending).
    pub fn next_due(&self) -> Option<Instant> {
        let entries = self.entries.lock().ok()?;
        entries.iter().filter(|e| e.suppressed > 0).map(|e| e.window_start + self.interval).min()
    }

    /// Closes `entry`'s window if it has ended at `now`: its summary (if lines were suppressed)
    /// and a fresh window, hot after suppressions, cold after a whole quiet window.
    fn roll(&self, entry: &mut Entry, now: Instant) -> Option<Summary> {
        let elapsed = now.saturating_duration_since(entry.window_start);
        if elapsed < self.interval {
            return None;
        }
        let summary = (entry.suppressed > 0).then(|| Summary {
            key: entry.key,
            level: entry.level,
            count: entry.suppressed,
            last: std::mem::take(&mut entry.last),
            window: self.interval,
        });
        let quiet_window_passed = elapsed >= self.interval * 2;
        entry.hot = summary.is_some() && !quiet_window_passed;
        entry.window_start = if quiet_window_passed { now } else { entry.window_start + self.interval };
        entry.logged = 0;
        entry.suppressed = 0;
        summary
    }
}

static LIMITER: RepeatLimiter = RepeatLimiter::new(REPEAT_BURST, REPEAT_INTERVAL);
/// Wakes the summary thread when something was suppressed (it may need to wake earlier).
static WAKE: (Mutex<bool>, Condvar) = (Mutex::new(false), Condvar::new());
static FLUSHER: OnceLock<()> = OnceLock::new();

/// Logs `message` at `level` for the call site `key` (e.g. `"capture.bad-frame"`), rate-limited
/// per call site by the process's one [`RepeatLimiter`]; lines carry the field `repeat = key`,
/// summaries also `suppressed = N`.
pub fn repeated(level: Level, key: &'static str, message: impl Display) {
    let text = message.to_string();
    let (verdict, summary) = LIMITER.check(key, level, &text, Instant::now());
    if let Some(summary) = summary {
        emit_summary(&summary);
    }
    match verdict {
        Verdict::Log => emit(level, key, &text),
        Verdict::Suppressed => {
            FLUSHER.get_or_init(start_flusher);
            let (flag, condvar) = &WAKE;
            if let Ok(mut woken) = flag.lock() {
                *woken = true;
                condvar.notify_one();
            }
        }
    }
}

fn emit(level: Level, key: &'static str, text: &str) {
    match level {
        Level::ERROR => tracing::error!(repeat = key, "{text}"),
        Level::WARN => tracing::warn!(repeat = key, "{text}"),
        Level::INFO => tracing::info!(repeat = key, "{text}"),
        Level::DEBUG => tracing::debug!(repeat = key, "{text}"),
        _ => tracing::trace!(repeat = key, "{text}"),
    }
}

fn emit_summary(summary: &Summary) {
    let (key, count, text) = (summary.key, summary.count, summary.text());
    match summary.level {
        Level::ERROR => tracing::error!(repeat = key, suppressed = count, "{text}"),
        Level::WARN => tracing::warn!(repeat = key, suppressed = count, "{text}"),
        Level::INFO => tracing::info!(repeat = key, suppressed = count, "{text}"),
        Level::DEBUG => tracing::debug!(repeat = key, suppressed = count, "{text}"),
        _ => tracing::trace!(repeat = key, suppressed = count, "{text}"),
    }
}

/// Starts the thread that writes summaries when windows end; it sleeps while nothing is
/// pending. Without a thread (spawning failed) summaries come with the next occurrence.
fn start_flusher() {
    let spawned = std::thread::Builder::new().name("log-repeats".into()).spawn(|| {
        let (flag, condvar) = &WAKE;
        loop {
            for summary in LIMITER.due(Instant::now()) {
                emit_summary(&summary);
            }
            let Ok(mut woken) = flag.lock() else { return };
            if !*woken {
                let wait = LIMITER.next_due().map(|at| at.saturating_duration_since(Instant::now()));
                woken = match wait {
                    Some(wait) => match condvar.wait_timeout(woken, wait) {
                        Ok((guard, _)) => guard,
                        Err(_) => return,
                    },
                    None => match condvar.wait(woken) {
                        Ok(guard) => guard,
                        Err(_) => return,
                    },
                };
            }
            *woken = false;
        }
    });
    if let Err(e) = spawned {
        tracing::debug!("no thread for repeated-line summaries: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn the_first_few_are_logged_then_counted_and_summarised_once_per_window() {
        let limiter = RepeatLimiter::new(3, 10 * SECOND);
        let t0 = Instant::now();
        let verdicts: Vec<Verdict> =
            (0..50).map(|i| limiter.check("k", Level::WARN, &format!("bad {i}"), t0 + SECOND / 10 * i).0).collect();
        assert_eq!(verdicts.iter().filter(|v| **v == Verdict::Log).count(), 3);
        assert!(verdicts[..3].iter().all(|v| *v == Verdict::Log));
        assert_eq!(limiter.next_due(), Some(t0 + 10 * SECOND));
        assert!(limiter.due(t0 + 9 * SECOND).is_empty(), "not before the window ends");
        let summaries = limiter.due(t0 + 10 * SECOND);
        assert_eq!(summaries.len(), 1);
        assert_eq!(summaries[0].count, 47);
        assert_eq!(summaries[0].last, "bad 49");
        assert_eq!(summaries[0].text(), "47 more like this in the last 10 s: bad 49");
        assert!(limiter.due(t0 + 10 * SECOND).is_empty(), "reported once");
        assert_eq!(limiter.next_due(), None);

        // The fault goes on: the next window logs nothing in full, one summary only.
        for i in 0..20 {
            let at = t0 + 10 * SECOND + SECOND / 4 * i;
            assert_eq!(limiter.check("k", Level::WARN, "still bad", at).0, Verdict::Suppressed);
        }
        let summaries = limiter.due(t0 + 20 * SECOND);
        assert_eq!(summaries.iter().map(|s| s.count).collect::<Vec<_>>(), vec![20]);

        // After a whole quiet window, the next occurrences are logged in full again.
        let later = t0 + 45 * SECOND;
        assert_eq!(limiter.check("k", Level::WARN, "again", later).0, Verdict::Log);
    }

    #[test]
    fn call_sites_are_limited_separately() {
        let limiter = RepeatLimiter::new(1, 10 * SECOND);
        let t0 = Instant::now();
        assert_eq!(limiter.check("a", Level::ERROR, "a", t0).0, Verdict::Log);
        assert_eq!(limiter.check("b", Level::ERROR, "b", t0).0, Verdict::Log);
        assert_eq!(limiter.check("a", Level::ERROR, "a", t0).0, Verdict::Suppressed);
        assert_eq!(limiter.check("b", Level::ERROR, "b", t0).0, Verdict::Suppressed);
        assert_eq!(limiter.due(t0 + 10 * SECOND).len(), 2);
    }

    #[test]
    fn a_late_occurrence_carries_the_unreported_summary() {
        let limiter = RepeatLimiter::new(1, 10 * SECOND);
        let t0 = Instant::now();
        limiter.check("k", Level::ERROR, "one", t0);
        limiter.check("k", Level::ERROR, "two", t0 + SECOND);
        let (verdict, summary) = limiter.check("k", Level::ERROR, "three", t0 + 11 * SECOND);
        assert_eq!(summary.map(|s| (s.count, s.last)), Some((1, "two".to_string())));
        // The window after suppressions is hot.
        assert_eq!(verdict, Verdict::Suppressed);
    }
}
