//! The writing side of the recorder: windows that close, clips that start and end, frames
//! admitted into a clip and written into a segment (converted frames or access units), and
//! the disk guard and retention around it.

use framebus_common::encoded::AccessUnitHeader;
use framebus_common::journal::JournalRecord;
use framebus_common::{clock, FrameHeader};
use framebus_vision::to_bgr;

use super::{Disposition, Recorder};
use crate::clip::{Entry, Gap};
use crate::disk;
use crate::guard::{Change, GuardEvent};
use crate::preroll::HeldUnit;
use crate::segment::{Finished, SkipReason};
use crate::stream::{self, UnitEvent};
use crate::writer::Closed;

impl Recorder {
    /// Closes every window that is over for a frame captured at `t` (frames arrive in order,
    /// so no later frame can want it).
    pub(super) fn settle(&mut self, t: u64) {
        while self.clips.window().is_some_and(|w| w.ended_before(t)) {
            self.close_window("post-roll");
        }
    }

    /// Ends the current window: its clip (if a frame started one) completes with `reason`; a
    /// window that never got a frame is a missed trigger.
    pub(super) fn close_window(&mut self, reason: &str) {
        let last = self.clips.clip().map(|c| c.last_mono_ns);
        if self.clips.clip().is_some() {
            self.end_clip(reason);
        } else if self.clips.window().is_some() {
            self.status.missed_triggers += 1;
        }
        if let Some(record) = self.clips.close_window(last, self.limits.keep_ns) {
            self.journal.write(&record);
        }
        self.update_state();
    }

    /// Starts a clip at `header`; `continues` names the clip it continues.
    pub(super) fn start_clip(&mut self, header: &FrameHeader, continues: Option<String>) {
        let record = self.clips.start(header, continues);
        self.status.last_event = self.clips.clip().map(|c| crate::status::last_event(&c.trigger));
        self.journal.write(&record);
        self.update_state();
    }

    /// Ends the current clip: finishes its segment and journals the clip with its files.
    pub(super) fn end_clip(&mut self, reason: &str) {
        self.finish_segment(reason);
        // Frames not saved while no segment was open belong to this clip only.
        self.writer.clear_pending();
        if let Some(record) = self.clips.end(reason) {
            self.status.clips += 1;
            self.journal.write(&record);
        }
        self.update_state();
    }

    /// Takes a frame its clip wants (live or held, in order): starts the clip or splits it at
    /// `max-clip-secs`, lists frames missing since the last one as skipped, then the disk guard
    /// and the segment. Returns whether to write it.
    pub(super) fn admit(&mut self, header: &FrameHeader) -> bool {
        self.enter_clip(header);
        self.ready_to_write(header)
    }

    /// The clip side of [`Recorder::admit`].
    pub(super) fn enter_clip(&mut self, header: &FrameHeader) {
        match self.clips.entry(header.capture_mono_ns) {
            Entry::Start => self.start_clip(header, None),
            Entry::Split(previous) => {
                self.end_clip("max-clip");
                self.start_clip(header, Some(previous));
            }
            Entry::Within => {}
        }
        let id = header.frame_id;
        match self.clips.advance(header) {
            Gap::Restart => {
                // Capture restarted (a new run, ids begin again at 1): the segment ends here.
                self.finish_segment("capture-restart");
                self.writer.clear_pending();
                if id > 1 {
                    self.skip(1, id - 1, SkipReason::Dropped);
                }
            }
            Gap::Dropped(first, last) => self.skip(first, last, SkipReason::Dropped),
            Gap::None => {}
        }
    }

    /// The writing side of [`Recorder::admit`]: a failed segment, the disk guard, rotation,
    /// the retry delay, key frames, and a segment to write into.
    pub(super) fn ready_to_write(&mut self, header: &FrameHeader) -> bool {
        let id = header.frame_id;
        self.end_failed_segment();
        if self.guard.is_low() {
            self.skip(id, id, SkipReason::DiskLow);
            return false;
        }
        // Stream video: a segment ends (and the next starts) only at a key frame.
        if self.writer.rotate_due(header, self.unit_key) {
            self.finish_segment("segment-length");
        }
        // After a failed segment (this one or an earlier one), wait for the retry.
        if self.writer.waiting_retry() {
            self.skip(id, id, SkipReason::Error);
            return false;
        }
        // The disk guard before every frame written (a statvfs, about a microsecond): below the
        // floor plus the reserve the segment is finished while there is still room to close it.
        self.guard.set_frame_size(header.width, header.height);
        self.check_disk();
        if self.guard.is_low() {
            self.skip(id, id, SkipReason::DiskLow);
            return false;
        }
        if !self.writer.key_allows(self.unit_key) {
            self.skip(id, id, SkipReason::KeyFrame);
            return false;
        }
        self.writer.is_open() || self.open_segment(header)
    }

    /// Opens a segment at `header` for the current clip.
    pub(super) fn open_segment(&mut self, header: &FrameHeader) -> bool {
        let extra = self.clips.header_fields();
        match self.writer.open(header, extra.as_ref()) {
            Ok(base) => {
                let base = base.to_string();
                tracing::info!(camera = self.camera, segment = base, "segment started");
                self.clips.segment_opened(&base);
                self.update_state();
                true
            }
            Err(e) => {
                let dir = self.writer.spec().directory.display().to_string();
                self.error("open", format!("starting a segment in `{dir}`: {e:#}"));
                self.skip(header.frame_id, header.frame_id, SkipReason::Error);
                self.writer.retry_later();
                self.update_state();
                false
            }
        }
    }

    /// Converts the frame to BGR into the recorder's own buffer (the only step that reads the
    /// sample).
    pub fn convert(&mut self, header: &FrameHeader, payload: &[u8]) -> bool {
        match to_bgr(header, payload, &mut self.bgr) {
            Ok(()) => true,
            Err(e) => {
                self.error("convert", format!("converting frame {}: {e}", header.frame_id));
                self.skip(header.frame_id, header.frame_id, SkipReason::Error);
                false
            }
        }
    }

    /// Counts a frame written.
    pub(super) fn saved(&mut self, header: &FrameHeader) {
        self.status.written += 1;
        self.clips.count_saved();
        self.rates.record_written_ns(clock::monotonic_ns().saturating_sub(header.capture_mono_ns));
    }

    /// Writes the converted frame into the current segment (image when due, video, sidecar).
    /// A write error ends the segment (it is finished as `.failed`, see docs/recorder.md).
    pub fn save(&mut self, header: &FrameHeader) {
        match self.writer.write_frame(header, &self.bgr) {
            Ok(None) => {}
            Ok(Some(wrote_image)) => {
                self.saved(header);
                if wrote_image {
                    self.status.images += 1;
                }
            }
            Err(_) => {
                // Not in the video nor the sidecar: listed as skipped, then the segment ends.
                self.skip(header.frame_id, header.frame_id, SkipReason::Error);
                self.end_failed_segment();
            }
        }
    }

    /// `video = "stream"`: takes one access unit of the streamer (see [`stream`]): decides
    /// whether it is recorded (saving on, triggers, disk, key frames), writes it into the
    /// segment or holds it (pre-roll). A new encoder run (the streamer restarted or
    /// reconnected) or a capture restart ends the segment; lost access units make the recorder
    /// wait for the next key frame (acted on in the order units are taken: at once when none
    /// is held, else when it leaves the held queue).
    pub fn on_unit(&mut self, unit: &AccessUnitHeader, data: &[u8]) {
        let header = stream::frame_header(unit);
        let event = stream::unit_event(self.unit_last, unit);
        match event {
            UnitEvent::NewRun => tracing::info!(
                camera = self.camera,
                "the streamer started a new encoder run: new segment at its first key frame"
            ),
            UnitEvent::CaptureRestart => {
                tracing::info!(camera = self.camera, "capture restarted (frame ids begin again at {})", unit.frame_id)
            }
            UnitEvent::Lost => tracing::debug!(
                camera = self.camera,
                "access units lost before frame {}: waiting for a key frame",
                unit.frame_id
            ),
            UnitEvent::None => {}
        }
        self.unit_last = Some((unit.run, unit.sequence, unit.frame_id));
        let queued = !self.held.is_empty();
        if !queued {
            self.apply_unit_event(event);
        }
        self.unit_key = Some(unit.is_key_frame());
        match self.on_frame(&header) {
            Disposition::Write => self.save_unit(&header, unit, data),
            Disposition::Hold => {
                let event = if queued { event } else { UnitEvent::None };
                self.held.hold_unit(&header, HeldUnit { header: *unit, event }, data);
            }
            Disposition::Ignore => {}
        }
    }

    /// Acts on what an access unit's place in the stream says.
    pub(super) fn apply_unit_event(&mut self, event: UnitEvent) {
        match event {
            UnitEvent::NewRun => {
                self.finish_segment("stream-restart");
                self.writer.wait_key();
            }
            UnitEvent::CaptureRestart => {
                self.finish_segment("capture-restart");
                self.clips.forget_last();
                self.writer.wait_key();
            }
            UnitEvent::Lost => self.writer.wait_key(),
            UnitEvent::None => {}
        }
    }

    /// Writes an admitted access unit into the current segment.
    pub(super) fn save_unit(&mut self, header: &FrameHeader, unit: &AccessUnitHeader, data: &[u8]) {
        match self.writer.write_unit(header, unit, data) {
            Ok(true) => self.saved(header),
            Ok(false) => {}
            Err(_) => {
                self.skip(header.frame_id, header.frame_id, SkipReason::Error);
                self.end_failed_segment();
            }
        }
    }

    /// Ends the current segment if a write into it failed: it is finished (kept as `.failed`
    /// unless its video still checks out), and no new segment starts before a retry delay,
    /// or before free space is back when the disk is low.
    pub(super) fn end_failed_segment(&mut self) {
        let Some((base, error)) = self.writer.failed() else { return };
        self.error("write", format!("writing segment `{base}`: {error}"));
        self.finish_segment("write-error");
        if !self.writer.retrying() {
            self.writer.retry_later();
            self.update_state();
        }
        // A full disk shows here and the guard takes over (resuming when space is back).
        self.check_disk();
    }

    /// Finishes the current segment: completed (the video checks out against the sidecar),
    /// failed (kept as `.failed`, a retry delay starts) or discarded (no frame saved; its
    /// skipped ranges go to the next segment). A finished segment is listed in its clip, and
    /// retention runs.
    pub(super) fn finish_segment(&mut self, reason: &str) {
        let Some(Closed { base, frames, skipped, finished, entry }) = self.writer.finish(reason) else {
            self.update_state();
            return;
        };
        let path = self.writer.spec().directory.join(&base);
        let bytes = || disk::segment_bytes(&path);
        match finished {
            Finished::Completed { sidecar, .. } => {
                self.status.segments += 1;
                self.status.bytes_written += bytes();
                tracing::info!(
                    camera = self.camera,
                    segment = base,
                    frames,
                    skipped,
                    reason,
                    "segment completed: {}",
                    sidecar.display()
                );
            }
            Finished::Failed { error, sidecar } => {
                self.status.failed_segments += 1;
                self.status.bytes_written += bytes();
                let kept = sidecar.display();
                self.error(
                    "finish",
                    format!("segment `{base}` is incomplete ({frames} frames listed) and kept as `{kept}`: {error}"),
                );
            }
            Finished::Discarded { error: Some(error), .. } => {
                self.status.failed_segments += 1;
                self.error("finish", format!("segment `{base}` saved no frame and was deleted: {error}"));
            }
            Finished::Discarded { error: None, .. } => {}
        }
        self.clips.segment_finished(&base, entry);
        self.update_state();
        self.apply_retention();
    }

    /// Bytes kept free on top of `min-free-mb`: the room the recorder needs to finish the
    /// current segment cleanly (its index grows with its frames) and to write the next frame.
    pub fn reserve_bytes(&self) -> u64 {
        self.guard.reserve_bytes(self.writer.frames())
    }

    /// Counts, logs and journals what the disk guard or retention did.
    pub(super) fn guard_events(&mut self, events: Vec<GuardEvent>) {
        for event in events {
            match event {
                GuardEvent::Deleted { base, reason, bytes } => {
                    self.status.deletions += 1;
                    if reason == "disk-floor" {
                        tracing::warn!(
                            camera = self.camera,
                            freed = bytes,
                            "deleted the oldest segment `{}` to free space",
                            base.display()
                        );
                    } else {
                        tracing::info!(
                            camera = self.camera,
                            freed = bytes,
                            "retention ({reason}): deleted segment `{}`",
                            base.display()
                        );
                    }
                    let segment = base.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                    self.journal.write(&JournalRecord::SegmentDeleted {
                        utc: clock::format_utc(clock::realtime_ns()),
                        segment,
                        reason: reason.to_string(),
                        bytes,
                    });
                }
                GuardEvent::Error { kind, message } => self.error(kind, message),
            }
        }
    }

    /// The disk guard (see [`crate::guard::DiskGuard::check`]): below the floor plus the reserve the segment
    /// is finished (there is still room to close it) and nothing is written until space is
    /// back. Runs before every frame written and on the housekeeping timer.
    pub fn check_disk(&mut self) {
        let reserve = self.reserve_bytes();
        let check = self.guard.check(self.active(), reserve);
        self.guard_events(check.events);
        if let Some(space) = self.guard.space() {
            self.status.free_bytes = space.bytes;
            self.status.free_inodes = space.inodes;
        }
        self.status.reserve_bytes = reserve;
        match check.change {
            Some(Change::Low(why)) => {
                self.finish_segment("disk-low");
                self.error("disk-low", format!("{why}: stopped writing until space is back"));
                self.update_state();
            }
            Some(Change::Back) => {
                // Space is back: whatever failed for want of it may be tried again now.
                self.writer.end_retry(true);
                tracing::info!(
                    camera = self.camera,
                    free_mib = self.status.free_bytes / (1024 * 1024),
                    free_inodes = self.status.free_inodes,
                    "free space is back above the floor: writing again"
                );
                self.update_state();
            }
            None => {}
        }
    }

    /// Retention (see [`crate::guard::DiskGuard::apply_retention`]): every deletion is logged, counted and
    /// journaled.
    pub fn apply_retention(&mut self) {
        let events = self.guard.apply_retention(self.writer.base());
        self.guard_events(events);
    }
}
