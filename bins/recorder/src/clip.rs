//! When frames belong to a clip: triggers (results that match a `[[camera.recorder.trigger]]`,
//! `ctl record on`) open a window of capture time; the recorder writes the frames whose capture
//! time falls in it.
//!
//! Everything is in capture time (the frames' CLOCK_MONOTONIC stamps), not in arrival time, so a
//! result that arrives late, or before the recorder has taken its frame, selects the same
//! frames. A window runs from `trigger − pre-roll` to `last trigger + post-roll` (or until
//! `record off` for a manual one). A trigger while the window still runs extends it (events
//! closer than the post-roll make one clip); a later one opens the next window, which starts
//! after the previous one's end (no frame is in two clips, so its pre-roll may be shorter).
//! Pure logic: the recorder feeds it triggers and frame times.

use framebus_common::journal::Trigger;

/// The capture-time span of one clip.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    /// Frames captured at or after this belong to it (CLOCK_MONOTONIC ns): the pre-roll start.
    pub start_ns: u64,
    /// Frames up to this belong to it: the last trigger + the post-roll (0 = none yet).
    pub until_ns: u64,
    /// A manual recording (`ctl record on`): it runs until `record off`.
    pub manual: bool,
    /// What opened it.
    pub trigger: Trigger,
    /// The pre-roll boundary: the first frame id received after the trigger.
    pub first_live_frame_id: u64,
    /// Triggers that opened or extended it.
    pub triggers: u64,
}

impl Window {
    /// Whether the frame captured at `t` belongs to this window.
    pub fn wants(&self, t: u64) -> bool {
        t >= self.start_ns && (self.manual || t <= self.until_ns)
    }

    /// Whether the window is over for a frame captured at `t` (and every later one).
    pub fn ended_before(&self, t: u64) -> bool {
        !self.manual && t > self.until_ns
    }

    /// Whether an event at `t` falls while the window runs (so it extends it).
    fn running_at(&self, t: u64) -> bool {
        self.manual || t <= self.until_ns
    }
}

/// What a trigger did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Triggered {
    /// It opened a new window.
    Opened,
    /// It extended the running window (or the next one).
    Extended,
    /// Its frames were all in the previous clip already (a late result).
    Recorded,
}

/// The current window and the one after it (when a trigger arrives for frames past the end of
/// the current one that the recorder has not reached yet).
#[derive(Debug, Clone)]
pub struct Windows {
    pre_ns: u64,
    post_ns: u64,
    current: Option<Window>,
    next: Option<Window>,
    /// Capture time of the last frame of the last closed window: the next one starts after it.
    last_end_ns: Option<u64>,
}

impl Windows {
    /// Windows with `pre_roll_ns` before and `post_roll_ns` after each trigger.
    pub fn new(pre_roll_ns: u64, post_roll_ns: u64) -> Windows {
        Windows { pre_ns: pre_roll_ns, post_ns: post_roll_ns, current: None, next: None, last_end_ns: None }
    }

    /// The window frames are being taken for, if any.
    pub fn current(&self) -> Option<&Window> {
        self.current.as_ref()
    }

    /// Whether a window is open or waiting.
    pub fn any(&self) -> bool {
        self.current.is_some() || self.next.is_some()
    }

    /// The start of a new window for an event at `t`: the pre-roll before it, but never before
    /// the end of the previous clip.
    fn start_for(&self, t: u64, after: Option<u64>) -> u64 {
        let start = t.saturating_sub(self.pre_ns);
        match after {
            Some(end) => start.max(end.saturating_add(1)),
            None => start,
        }
    }

    /// An event at capture time `t` (a matching result).
    pub fn trigger(&mut self, t: u64, trigger: Trigger, first_live_frame_id: u64) -> Triggered {
        let until = t.saturating_add(self.post_ns);
        if let Some(w) = self.current.as_mut().filter(|w| w.running_at(t)) {
            w.until_ns = w.until_ns.max(until);
            w.triggers += 1;
            return Triggered::Extended;
        }
        if self.current.is_none() && self.last_end_ns.is_some_and(|end| until <= end) {
            return Triggered::Recorded;
        }
        let after = self.current.as_ref().map_or(self.last_end_ns, |w| Some(w.until_ns));
        if self.current.is_some() {
            // Past the end of the window being taken: it becomes the next one (or extends it).
            if let Some(n) = self.next.as_mut() {
                n.until_ns = n.until_ns.max(until);
                n.triggers += 1;
                return Triggered::Extended;
            }
        }
        self.open(Window {
            start_ns: self.start_for(t, after),
            until_ns: until,
            manual: false,
            trigger,
            first_live_frame_id,
            triggers: 1,
        })
    }

    /// Takes a new window: the current one, or the next when one is being taken.
    fn open(&mut self, window: Window) -> Triggered {
        if self.current.is_some() {
            self.next = Some(window);
        } else {
            self.current = Some(window);
        }
        Triggered::Opened
    }

    /// `ctl record on` at capture time `now`: a window that runs until [`Windows::manual_off`];
    /// a running window becomes manual.
    pub fn manual_on(&mut self, now: u64, trigger: Trigger, first_live_frame_id: u64) -> Triggered {
        if let Some(w) = self.current.as_mut().filter(|w| w.running_at(now)) {
            w.manual = true;
            w.triggers += 1;
            return Triggered::Extended;
        }
        if let Some(n) = self.next.as_mut() {
            n.manual = true;
            n.triggers += 1;
            return Triggered::Extended;
        }
        let after = self.current.as_ref().map_or(self.last_end_ns, |w| Some(w.until_ns));
        self.open(Window {
            start_ns: self.start_for(now, after),
            until_ns: 0,
            manual: true,
            trigger,
            first_live_frame_id,
            triggers: 1,
        })
    }

    /// `ctl record off` at capture time `now`: manual windows end at `now`, or when the
    /// post-roll of their last event runs out if that is later.
    pub fn manual_off(&mut self, now: u64) {
        for w in self.current.iter_mut().chain(self.next.iter_mut()) {
            if w.manual {
                w.manual = false;
                w.until_ns = w.until_ns.max(now);
            }
        }
    }

    /// Closes the current window; `last_frame_ns` is the capture time of the last frame it
    /// took (the next window starts after it). The next window, if any, becomes current.
    pub fn close_current(&mut self, last_frame_ns: Option<u64>) -> Option<Window> {
        let closed = self.current.take()?;
        let end = last_frame_ns.unwrap_or(closed.until_ns);
        self.last_end_ns = Some(self.last_end_ns.map_or(end, |e| e.max(end)));
        self.current = self.next.take();
        if let (Some(n), Some(end)) = (self.current.as_mut(), self.last_end_ns) {
            n.start_ns = n.start_ns.max(end.saturating_add(1));
        }
        Some(closed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use framebus_common::journal::TriggerSource;

    const S: u64 = 1_000_000_000;

    fn trigger(frame_id: u64) -> Trigger {
        Trigger {
            source: TriggerSource::Result,
            rule: Some(0),
            frame_id,
            utc: String::new(),
            realtime_ns: 0,
            results: Vec::new(),
            continues: None,
        }
    }

    /// One event: the window covers pre-roll before and post-roll after it.
    #[test]
    fn a_trigger_opens_a_window_from_pre_roll_to_post_roll() {
        let mut w = Windows::new(5 * S, 3 * S);
        assert_eq!(w.trigger(100 * S, trigger(1), 7), Triggered::Opened);
        let cur = w.current().expect("window");
        assert!(!cur.wants(95 * S - 1) && cur.wants(95 * S) && cur.wants(103 * S) && !cur.wants(103 * S + 1));
        assert!(cur.ended_before(103 * S + 1) && !cur.ended_before(103 * S));
        assert_eq!(cur.first_live_frame_id, 7);
    }

    /// Events closer than the post-roll make one window; a later one opens the next, which
    /// never reaches back into the previous clip.
    #[test]
    fn close_events_merge_and_later_ones_start_after_the_previous_clip() {
        let mut w = Windows::new(5 * S, 3 * S);
        w.trigger(100 * S, trigger(1), 1);
        assert_eq!(w.trigger(102 * S, trigger(2), 2), Triggered::Extended);
        assert_eq!(w.current().map(|c| (c.until_ns, c.triggers)), Some((105 * S, 2)));
        // 106 s: after the window ends (105 s), but before the recorder took a frame past it.
        assert_eq!(w.trigger(106 * S, trigger(3), 3), Triggered::Opened);
        assert_eq!(w.current().map(|c| c.until_ns), Some(105 * S), "the current one is unchanged");
        let closed = w.close_current(Some(105 * S - 10)).expect("closed");
        assert_eq!(closed.triggers, 2);
        let next = w.current().expect("the next one is current");
        assert_eq!(next.start_ns, 105 * S + 1, "starts after the previous window, not at 101 s");
        assert_eq!(next.until_ns, 109 * S);
        w.close_current(Some(109 * S));
        // A late result about a frame the last clip already holds changes nothing.
        assert_eq!(w.trigger(104 * S, trigger(5), 5), Triggered::Recorded);
        assert!(!w.any());
        // Much later: a full pre-roll again.
        w.trigger(200 * S, trigger(4), 4);
        assert_eq!(w.current().map(|c| c.start_ns), Some(195 * S));
    }

    /// A manual window runs until `record off`, which ends it then unless an event's post-roll
    /// runs longer; events during it only extend it.
    #[test]
    fn a_manual_window_runs_until_off_and_events_keep_it_going() {
        let mut w = Windows::new(2 * S, 3 * S);
        assert_eq!(w.manual_on(50 * S, trigger(9), 9), Triggered::Opened);
        assert!(w.current().is_some_and(|c| c.wants(48 * S) && c.wants(10_000 * S) && !c.ended_before(10_000 * S)));
        assert_eq!(w.trigger(60 * S, trigger(10), 10), Triggered::Extended);
        w.manual_off(61 * S);
        let cur = w.current().expect("window");
        assert_eq!(cur.until_ns, 63 * S, "the event's post-roll outlives the command");
        assert!(cur.ended_before(63 * S + 1));
        w.close_current(None);
        w.manual_on(70 * S, trigger(11), 11);
        w.manual_off(72 * S);
        assert_eq!(w.current().map(|c| (c.start_ns, c.until_ns)), Some((68 * S, 72 * S)));
    }
}
