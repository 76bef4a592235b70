//! The held frames' side of the recorder: frames kept in memory (pre-roll, or waiting for
//! the writer), written when a clip wants them, dropped when none can.

use std::time::{Duration, Instant};

use framebus_common::FrameHeader;
use framebus_vision::to_bgr;

use super::{Recorder, HELD_WARN_EVERY};
use crate::preroll::{front_action, FrontAction, PreRoll};
use crate::segment::SkipReason;
use crate::status::mib;

impl Recorder {
    /// Keeps a received frame (holding its sample): an MJPG frame is copied as it is (returns
    /// false: done); any other is converted to BGR (returns true: call
    /// [`Recorder::hold_converted`] once the sample is released).
    pub fn hold_received(&mut self, header: &FrameHeader, payload: &[u8]) -> bool {
        if PreRoll::is_jpeg(header) {
            let len = (header.payload_len as usize).min(payload.len());
            self.held.hold_jpeg(header, &payload[..len]);
            return false;
        }
        match to_bgr(header, payload, &mut self.bgr) {
            Ok(()) => true,
            Err(e) => {
                self.error("convert", format!("converting frame {} for the pre-roll: {e}", header.frame_id));
                false
            }
        }
    }

    /// Encodes the frame converted by [`Recorder::hold_received`] into the held frames.
    pub fn hold_converted(&mut self, header: &FrameHeader) {
        if let Err(e) = self.held.hold_bgr(header, &self.bgr) {
            self.error("pre-roll", format!("{e:#}"));
        }
    }

    /// Whether the loop is behind the camera (the frame just received was already two frame
    /// intervals old: the queue is filling).
    pub(super) fn behind(&self) -> bool {
        let interval = 2 * self.budget.as_nanos() as u64;
        self.newest.is_some_and(|n| n.received.elapsed().as_nanos() < u128::from(interval) && n.lag_ns > 2 * interval)
    }

    /// Writes held frames that a clip wants, oldest first, for at most `budget` (at least one
    /// frame; `None`: all of them), and lets go of held frames no clip can want any more
    /// (older than the pre-roll, before the clip, or beyond `pre-roll-max-mb`).
    pub fn pump(&mut self, budget: Option<Duration>) {
        let started = Instant::now();
        let mut wrote = 0u64;
        // Behind the camera: one held frame a turn, so the live frames come first.
        let budget = budget.map(|b| if self.behind() { Duration::ZERO } else { b });
        while let Some((t, action)) = self.front_action() {
            match action {
                FrontAction::ReachBack => self.clips.windows().reach_back(t),
                FrontAction::Write => {
                    // Over the memory limit the writer catches up whatever the budget.
                    let over = self.held.bytes() > self.limits.max_bytes;
                    if wrote > 0 && !over && budget.is_some_and(|b| started.elapsed() >= b) {
                        break;
                    }
                    self.write_held();
                    wrote += 1;
                }
                FrontAction::DropOverLimit => {
                    self.status.held_dropped += 1;
                    self.warn_over_limit();
                    self.drop_held();
                }
                FrontAction::DropBeforeClip | FrontAction::DropOld => self.drop_held(),
                FrontAction::Keep => break,
            }
        }
        if wrote > 0 || !self.held.is_empty() {
            self.update_state();
        }
        self.report_full_pre_roll();
    }

    pub(super) fn warn_over_limit(&mut self) {
        if self.limits.warned.is_some_and(|at| at.elapsed() < HELD_WARN_EVERY) {
            return;
        }
        self.limits.warned = Some(Instant::now());
        tracing::warn!(
            camera = self.camera,
            "pre-roll: {:.1} MiB held, over pre-roll-max-mb = {}: dropping the oldest frames (the pre-roll is {:.1} s instead of {:.1} s); lower pre-roll-secs (or jpeg-quality, or with video = \"stream\" the streamer's bitrate-kbps), or raise pre-roll-max-mb",
            mib(self.held.bytes()),
            self.limits.max_mb,
            self.held.span_ns() as f64 / 1e9,
            self.limits.keep_ns as f64 / 1e9
        );
    }

    /// Logs once what the full pre-roll measures against its estimate.
    pub(super) fn report_full_pre_roll(&mut self) {
        let keep_ns = self.limits.keep_ns;
        if self.limits.reported || keep_ns == 0 || self.held.span_ns() + (self.budget.as_nanos() as u64) < keep_ns {
            return;
        }
        self.limits.reported = true;
        tracing::info!(
            camera = self.camera,
            "pre-roll full: {} frames over {:.1} s hold {:.1} MiB measured ({:.0} KiB a frame; estimated {:.1} MiB)",
            self.held.len(),
            self.held.span_ns() as f64 / 1e9,
            mib(self.held.bytes()),
            self.held.bytes() as f64 / 1024.0 / self.held.len().max(1) as f64,
            mib(self.limits.estimate)
        );
    }

    /// The oldest held frame's capture time and what becomes of it (windows over by then
    /// are closed first).
    pub(super) fn front_action(&mut self) -> Option<(u64, FrontAction)> {
        let t = self.held.front()?.capture_mono_ns;
        self.settle(t);
        let over = self.held.bytes() > self.limits.max_bytes;
        let newest = self.newest.map_or(t, |n| n.mono_ns);
        let gop = self.held.front_gop();
        Some((t, front_action(t, self.clips.window(), over, newest, self.limits.keep_ns, gop)))
    }

    /// Lets go of the oldest held frame; an access unit's place in the stream still acts (a
    /// new run ends the segment, a loss waits for a key frame).
    pub(super) fn drop_held(&mut self) {
        let Some(held) = self.held.pop() else { return };
        if let Some(unit) = held.unit {
            self.apply_unit_event(unit.event);
            if self.writer.is_open() {
                // The units after it do not decode without it.
                self.writer.wait_key();
            }
        }
        self.held.recycle(held.jpeg);
    }

    /// Takes the oldest held frame into the clip: accounts it, decodes it (or takes the
    /// access unit as it is) and writes it.
    pub(super) fn write_held(&mut self) {
        let Some(held) = self.held.pop() else { return };
        let header = held.header;
        if let Some(unit) = held.unit {
            self.apply_unit_event(unit.event);
            self.unit_key = Some(unit.header.is_key_frame());
            if self.admit(&header) {
                self.save_unit(&header, &unit.header, &held.jpeg);
            }
            self.held.recycle(held.jpeg);
            return;
        }
        if self.admit(&header) {
            match PreRoll::decode(&held, &mut self.bgr) {
                Ok(()) => self.save(&header),
                Err(e) => {
                    self.error("decode", format!("{e:#}"));
                    self.skip(header.frame_id, header.frame_id, SkipReason::Error);
                }
            }
        }
        self.held.recycle(held.jpeg);
    }
}
