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
//!
//! [`Clips`] is the clip state machine on top of the windows: the clip being written (its id,
//! trigger, first and last frames, counts and segments), when it starts, when `max-clip-secs`
//! splits it into a continuation, frame-id gaps within it, and the journal records of its start
//! and end and of missed triggers. The recorder finishes segments and writes the journal; this
//! module decides. Pure logic: the recorder feeds it triggers and frame times.

use std::time::{Duration, Instant};

use framebus_common::clock;
use framebus_common::journal::{ClipSegment, JournalRecord, Trigger, TriggerSource};
use framebus_common::FrameHeader;

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

    /// Lets the current window start as early as `t` (a stream clip starts at the key frame
    /// at or before its start).
    pub fn reach_back(&mut self, t: u64) {
        if let Some(w) = self.current.as_mut() {
            w.start_ns = w.start_ns.min(t);
        }
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

/// Results kept per trigger in the journal and the sidecar.
pub const TRIGGER_RESULTS: usize = 4;
/// Most missed triggers journaled: one per this period, with a count of the others.
const MISSED_EVERY: Duration = Duration::from_secs(10);

/// The clip being written: from its first frame to its end (post-roll over, saving off,
/// `max-clip-secs`, stop).
#[derive(Debug)]
pub struct Clip {
    /// `<camera>_<UTC of its first frame>_<first frame id>`.
    pub id: String,
    /// What opened it.
    pub trigger: Trigger,
    /// The pre-roll boundary.
    pub first_live_frame_id: u64,
    /// Its first frame.
    pub first_frame_id: u64,
    /// Capture time of its first frame.
    pub first_mono_ns: u64,
    /// Its last frame (saved or skipped).
    pub last_frame_id: u64,
    /// Capture time of its last frame.
    pub last_mono_ns: u64,
    /// Frames saved.
    pub frames: u64,
    /// Frames listed as skipped.
    pub skipped: u64,
    /// Triggers its window had counted before this clip began (a continued clip's window
    /// started earlier).
    triggers_before: u64,
    /// Its finished segments.
    pub segments: Vec<ClipSegment>,
    /// Segments opened for it.
    parts: u32,
    /// The segment whose header carries the trigger (none yet, or it was discarded).
    trigger_in: Option<String>,
}

/// Where a frame its window wants stands ([`Clips::entry`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// No clip runs: it starts one.
    Start,
    /// The clip ran `max-clip-secs`: it ends and this frame starts its continuation.
    Split(String),
    /// It goes into the running clip.
    Within,
}

/// Frames missing before a frame of the clip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gap {
    /// None.
    None,
    /// Capture restarted (a new run, ids begin again at 1): frames `1..id` were not seen.
    Restart,
    /// Frames `first..=last` were dropped.
    Dropped(u64, u64),
}

/// The clip state machine: windows and the clip being written.
#[derive(Debug)]
pub struct Clips {
    camera: String,
    windows: Windows,
    clip: Option<Clip>,
    /// Last frame taken into the current clip (run id, frame id): gaps are listed as skipped.
    last: Option<(u64, u64)>,
    max_clip_ns: u64,
    /// One frame interval of the video, ns (a clip's duration counts its last frame).
    frame_ns: f64,
    missed_at: Option<Instant>,
    missed_since: u64,
}

impl Clips {
    /// Clips of `camera` with `pre_ns` of pre-roll, `post_ns` of post-roll, at most
    /// `max_clip_ns` long, in a video of `video_fps`.
    pub fn new(camera: &str, pre_ns: u64, post_ns: u64, max_clip_ns: u64, video_fps: f64) -> Clips {
        Clips {
            camera: camera.to_string(),
            windows: Windows::new(pre_ns, post_ns),
            clip: None,
            last: None,
            max_clip_ns,
            frame_ns: 1e9 / video_fps.max(1.0),
            missed_at: None,
            missed_since: 0,
        }
    }

    /// The windows (triggers and `ctl record` go there).
    pub fn windows(&mut self) -> &mut Windows {
        &mut self.windows
    }

    /// The window frames are being taken for.
    pub fn window(&self) -> Option<&Window> {
        self.windows.current()
    }

    /// Whether the current window wants a frame captured at `t`.
    pub fn wants(&self, t: u64) -> bool {
        self.windows.current().is_some_and(|w| w.wants(t))
    }

    /// The clip being written.
    pub fn clip(&self) -> Option<&Clip> {
        self.clip.as_ref()
    }

    /// Where a frame captured at `t` that its window wants stands.
    pub fn entry(&self, t: u64) -> Entry {
        match &self.clip {
            None => Entry::Start,
            Some(clip) if t.saturating_sub(clip.first_mono_ns) >= self.max_clip_ns => Entry::Split(clip.id.clone()),
            Some(_) => Entry::Within,
        }
    }

    /// Starts a clip at `header` (the first frame its window wants); `continues` names the
    /// clip it continues after `max-clip-secs`. Returns its journal record.
    pub fn start(&mut self, header: &FrameHeader, continues: Option<String>) -> JournalRecord {
        let (mut trigger, mut first_live, triggers_before) = match self.windows.current() {
            Some(w) => (w.trigger.clone(), w.first_live_frame_id, w.triggers.saturating_sub(1)),
            None => (trigger_at(TriggerSource::Manual, header, None), header.frame_id, 0),
        };
        if let Some(previous) = continues {
            trigger = trigger_at(TriggerSource::Continued, header, Some(previous));
            first_live = first_live.max(header.frame_id);
        }
        let id = format!(
            "{}_{}_{:010}",
            self.camera,
            clock::format_utc_compact(header.capture_realtime_ns),
            header.frame_id
        );
        tracing::info!(
            camera = self.camera,
            clip = id,
            first_frame = header.frame_id,
            first_live_frame = first_live,
            "clip started ({:?} trigger, frame {}; {} frame(s) from before it)",
            trigger.source,
            trigger.frame_id,
            first_live.saturating_sub(header.frame_id)
        );
        let record = JournalRecord::ClipStarted {
            clip: id.clone(),
            camera: self.camera.clone(),
            utc: clock::format_utc(clock::realtime_ns()),
            first_frame_id: header.frame_id,
            first_frame_utc: clock::format_utc(header.capture_realtime_ns),
            first_live_frame_id: first_live,
            run_id: header.run_id,
            trigger: trigger.clone(),
        };
        self.clip = Some(Clip {
            id,
            trigger,
            first_live_frame_id: first_live,
            first_frame_id: header.frame_id,
            first_mono_ns: header.capture_mono_ns,
            last_frame_id: header.frame_id,
            last_mono_ns: header.capture_mono_ns,
            frames: 0,
            skipped: 0,
            triggers_before,
            segments: Vec::new(),
            parts: 0,
            trigger_in: None,
        });
        self.last = None;
        record
    }

    /// Takes frame `header` into the clip: returns the frames missing since the last one.
    pub fn advance(&mut self, header: &FrameHeader) -> Gap {
        let (run, id) = (header.run_id, header.frame_id);
        let gap = match self.last.replace((run, id)) {
            Some((last_run, _)) if last_run != run => Gap::Restart,
            Some((_, last)) if id > last + 1 => Gap::Dropped(last + 1, id - 1),
            _ => Gap::None,
        };
        if let Some(clip) = &mut self.clip {
            clip.last_frame_id = clip.last_frame_id.max(id);
            clip.last_mono_ns = header.capture_mono_ns;
        }
        gap
    }

    /// The stream began again (a capture restart seen in the access units): no gap is
    /// counted to the next frame.
    pub fn forget_last(&mut self) {
        self.last = None;
    }

    /// Counts `count` frames up to `last` as skipped in the clip.
    pub fn count_skipped(&mut self, count: u64, last: u64) {
        if let Some(clip) = &mut self.clip {
            clip.skipped += count;
            clip.last_frame_id = clip.last_frame_id.max(last);
        }
    }

    /// Counts a frame saved in the clip.
    pub fn count_saved(&mut self) {
        if let Some(clip) = &mut self.clip {
            clip.frames += 1;
        }
    }

    /// A segment named `base` was opened for the clip.
    pub fn segment_opened(&mut self, base: &str) {
        if let Some(clip) = &mut self.clip {
            clip.parts += 1;
            if clip.trigger_in.is_none() {
                clip.trigger_in = Some(base.to_string());
            }
        }
    }

    /// A finished segment: listed in the clip, or (`None`: discarded) the next segment
    /// carries the trigger instead of `base`.
    pub fn segment_finished(&mut self, base: &str, entry: Option<ClipSegment>) {
        let Some(clip) = &mut self.clip else { return };
        match entry {
            Some(entry) => clip.segments.push(entry),
            None if clip.trigger_in.as_deref() == Some(base) => clip.trigger_in = None,
            None => {}
        }
    }

    /// What a new segment's header line says about its clip: the clip id and part, and in the
    /// first segment kept the trigger (time, results) and the pre-roll boundary.
    pub fn header_fields(&self) -> Option<serde_json::Map<String, serde_json::Value>> {
        let clip = self.clip.as_ref()?;
        let mut fields = serde_json::Map::new();
        fields.insert("clip".into(), clip.id.clone().into());
        fields.insert("clip_part".into(), (clip.parts + 1).into());
        if clip.trigger_in.is_none() {
            fields.insert("trigger".into(), serde_json::to_value(&clip.trigger).unwrap_or_default());
            fields.insert("clip_first_frame_id".into(), clip.first_frame_id.into());
            fields.insert("first_live_frame_id".into(), clip.first_live_frame_id.into());
        }
        Some(fields)
    }

    /// Ends the clip (its segment already finished): returns its journal record.
    pub fn end(&mut self, reason: &str) -> Option<JournalRecord> {
        let clip = self.clip.take()?;
        // The trigger that opened the window (or, continued, the clip's start) and those since.
        let triggers = self.windows.current().map_or(1, |w| w.triggers.saturating_sub(clip.triggers_before));
        self.last = None;
        let duration_secs = (clip.last_mono_ns.saturating_sub(clip.first_mono_ns) as f64 + self.frame_ns) / 1e9;
        tracing::info!(
            camera = self.camera,
            clip = clip.id,
            frames = clip.frames,
            skipped = clip.skipped,
            reason,
            "clip completed: frames {} to {}, {duration_secs:.1} s, {} segment(s)",
            clip.first_frame_id,
            clip.last_frame_id,
            clip.segments.len()
        );
        Some(JournalRecord::ClipCompleted {
            clip: clip.id,
            utc: clock::format_utc(clock::realtime_ns()),
            first_frame_id: clip.first_frame_id,
            last_frame_id: clip.last_frame_id,
            frames: clip.frames,
            skipped: clip.skipped,
            duration_secs: (duration_secs * 1000.0).round() / 1000.0,
            triggers,
            reason: reason.to_string(),
            segments: clip.segments,
        })
    }

    /// Closes the current window (its clip, if any, ended already; `last_frame_ns` is the
    /// capture time of its last frame, `None` when it took none): a window that never got a
    /// frame is a missed trigger, journaled at most once per 10 s (a producer whose results
    /// always come late would otherwise fill the journal); `keep_ns` explains why.
    pub fn close_window(&mut self, last_frame_ns: Option<u64>, keep_ns: u64) -> Option<JournalRecord> {
        let missed = match (last_frame_ns, self.windows.current()) {
            (None, Some(window)) => self.missed(&window.clone(), keep_ns),
            _ => None,
        };
        self.windows.close_current(last_frame_ns);
        missed
    }

    fn missed(&mut self, window: &Window, keep_ns: u64) -> Option<JournalRecord> {
        if self.missed_at.is_some_and(|at| at.elapsed() < MISSED_EVERY) {
            self.missed_since += 1;
            return None;
        }
        let reason = if window.trigger.source == TriggerSource::Manual {
            "no frame arrived while saving was on".to_string()
        } else {
            format!(
                "no frame of its clip was held any more: the result came later than the pre-roll keeps frames ({:.1} s: pre-roll-secs + result-delay-secs)",
                keep_ns as f64 / 1e9
            )
        };
        tracing::warn!(camera = self.camera, frame = window.trigger.frame_id, "trigger missed: {reason}");
        self.missed_at = Some(Instant::now());
        Some(JournalRecord::TriggerMissed {
            utc: clock::format_utc(clock::realtime_ns()),
            reason,
            trigger: window.trigger.clone(),
            also_missed: std::mem::take(&mut self.missed_since),
        })
    }

    /// Forgets every window (the clip ended already).
    pub fn close_all(&mut self) {
        while self.windows.any() {
            self.windows.close_current(None);
        }
    }
}

/// A trigger of `source` at the frame `header` (`ctl record on` with no window, a continuation).
fn trigger_at(source: TriggerSource, header: &FrameHeader, continues: Option<String>) -> Trigger {
    Trigger {
        source,
        rule: None,
        frame_id: header.frame_id,
        utc: clock::format_utc(header.capture_realtime_ns),
        realtime_ns: header.capture_realtime_ns,
        results: Vec::new(),
        continues,
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

    fn header(id: u64, run: u64) -> FrameHeader {
        FrameHeader { frame_id: id, run_id: run, capture_mono_ns: id * S / 10, ..FrameHeader::default() }
    }

    /// A clip starts at the first frame its window wants, counts gaps, splits at
    /// `max-clip-secs` into a continuation that names it, and its end is journaled with its
    /// segments and the triggers of its window.
    #[test]
    fn a_clip_starts_counts_gaps_splits_and_ends() {
        let mut c = Clips::new("cam", S, S, 2 * S, 10.0);
        c.windows().trigger(5 * S, trigger(50), 51);
        assert!(c.wants(4 * S) && !c.wants(4 * S - 1));
        assert_eq!(c.entry(4 * S), Entry::Start);
        let started = c.start(&header(40, 1), None);
        assert!(matches!(&started, JournalRecord::ClipStarted { first_frame_id: 40, first_live_frame_id: 51, .. }));
        assert_eq!(c.advance(&header(40, 1)), Gap::None);
        assert_eq!(c.advance(&header(43, 1)), Gap::Dropped(41, 42));
        c.count_skipped(2, 42);
        c.count_saved();
        let fields = c.header_fields().expect("fields");
        c.segment_opened("seg1");
        assert_eq!((fields["clip_part"].as_u64(), fields["first_live_frame_id"].as_u64()), (Some(1), Some(51)));
        assert_eq!(c.advance(&header(44, 2)), Gap::Restart, "a new capture run");
        let Entry::Split(previous) = c.entry(6 * S) else { panic!("2 s after its first frame it splits") };
        c.segment_finished("seg1", None);
        assert!(
            c.header_fields().is_some_and(|f| f.contains_key("trigger")),
            "a discarded segment hands the trigger on"
        );
        let ended = c.end("max-clip").expect("ended");
        assert!(matches!(ended, JournalRecord::ClipCompleted { frames: 1, skipped: 2, triggers: 1, .. }), "{ended:?}");
        let continued = c.start(&header(60, 2), Some(previous.clone()));
        let JournalRecord::ClipStarted { trigger, .. } = continued else { panic!("a start") };
        assert_eq!((trigger.source, trigger.continues), (TriggerSource::Continued, Some(previous)));
    }

    /// A window that took no frame is a missed trigger, journaled at most once per period
    /// with a count of the others.
    #[test]
    fn missed_triggers_are_journaled_rate_limited() {
        let mut c = Clips::new("cam", S, S, 100 * S, 10.0);
        c.windows().trigger(5 * S, trigger(50), 51);
        assert!(matches!(c.close_window(None, S), Some(JournalRecord::TriggerMissed { also_missed: 0, .. })));
        c.windows().trigger(50 * S, trigger(500), 501);
        assert!(c.close_window(None, S).is_none(), "within the period");
        c.windows().trigger(90 * S, trigger(900), 901);
        c.start(&header(890, 1), None);
        assert!(c.end("post-roll").is_some());
        assert!(c.close_window(Some(90 * S), S).is_none(), "a window that made a clip is not missed");
        assert!(!c.windows().any());
    }
}
