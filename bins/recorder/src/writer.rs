//! The segment writer: the segment being written ([`Segment`]), the skipped ranges waiting for
//! the next one while none is open, when a segment rotates (`segment-secs`, a new frame size,
//! at a key frame with `video = "stream"`), the retry delay after a failed segment, the
//! cadence of still images, and, with `video = "stream"`, the wait for a key frame.
//!
//! It knows nothing of clips or the disk guard: the recorder opens a segment when its clip and
//! the guard allow, and reads back what [`SegmentWriter::finish`] did.

use std::time::{Duration, Instant};

use framebus_common::config::{ImageFormat, RecorderConfig};
use framebus_common::encoded::AccessUnitHeader;
use framebus_common::journal::ClipSegment;
use framebus_common::FrameHeader;
use framebus_vision::opencv::core::Mat;

use crate::segment::{Finished, Segment, SegmentSpec, Skip};

/// First wait after a failed segment before the next is started; doubles up to the maximum.
const RETRY_FIRST: Duration = Duration::from_secs(1);
/// Longest wait between attempts after write errors.
const RETRY_MAX: Duration = Duration::from_secs(60);
/// Most pending skip ranges kept; later ones merge into the last (the count stays exact).
const MAX_PENDING: usize = 4096;

/// A segment just finished, for the recorder to count, log and list in its clip.
#[derive(Debug)]
pub struct Closed {
    /// Its base name.
    pub base: String,
    /// Frames saved.
    pub frames: u64,
    /// Frames listed as skipped.
    pub skipped: u64,
    /// How it ended.
    pub finished: Finished,
    /// The clip's entry for it (none when it was discarded).
    pub entry: Option<ClipSegment>,
}

/// The segment writer of one recorder.
pub struct SegmentWriter {
    spec: SegmentSpec,
    segment: Option<Segment>,
    /// Ranges not saved while no segment was open (disk low, failed opens).
    pending: Vec<Skip>,
    /// After a failed segment: when the next may start.
    retry_at: Option<Instant>,
    /// The wait before the next retry; grows while segments keep failing.
    retry_wait: Duration,
    segment_secs: f64,
    image_every: u32,
    image_max_fps: f64,
    image_counter: u64,
    last_image: Option<Instant>,
    /// `video = "stream"`: access units were lost (or none came yet): nothing is written
    /// before the next key frame.
    need_key: bool,
}

impl SegmentWriter {
    /// A writer of segments as `spec` says, cut after `segment-secs` of `config`.
    pub fn new(spec: SegmentSpec, config: &RecorderConfig) -> SegmentWriter {
        SegmentWriter {
            spec,
            segment: None,
            pending: Vec::new(),
            retry_at: None,
            retry_wait: Duration::ZERO,
            segment_secs: config.segment_secs,
            image_every: config.image_every.max(1),
            image_max_fps: config.image_max_fps,
            image_counter: 0,
            last_image: None,
            need_key: true,
        }
    }

    /// What every segment shares.
    pub fn spec(&self) -> &SegmentSpec {
        &self.spec
    }

    /// Base name of the segment being written.
    pub fn base(&self) -> Option<&str> {
        self.segment.as_ref().map(Segment::base)
    }

    /// Whether a segment is open.
    pub fn is_open(&self) -> bool {
        self.segment.is_some()
    }

    /// Frames saved in the segment being written.
    pub fn frames(&self) -> u64 {
        self.segment.as_ref().map_or(0, |s| s.frames)
    }

    /// Lists frames not saved: in the open segment, or pending for the next one.
    pub fn skip(&mut self, skip: Skip) {
        if let Some(segment) = &mut self.segment {
            // A failed line fails the segment; the caller ends it (`failed`).
            let _ = segment.skip(skip);
            return;
        }
        self.push_pending(skip);
    }

    fn push_pending(&mut self, skip: Skip) {
        let full = self.pending.len() >= MAX_PENDING;
        match self.pending.last_mut() {
            Some(prev) if full || (prev.reason == skip.reason && prev.last + 1 == skip.first) => {
                prev.last = prev.last.max(skip.last)
            }
            _ => self.pending.push(skip),
        }
    }

    /// Forgets the pending ranges (they belonged to a clip that ended).
    pub fn clear_pending(&mut self) {
        self.pending.clear();
    }

    /// Whether the segment must end before a frame captured at `t` of `header`'s size: it
    /// ran `segment-secs`, or the size changed. `key`: `Some(false)` for an access unit that is
    /// not a key frame, where a stream segment never ends.
    pub fn rotate_due(&self, header: &FrameHeader, key: Option<bool>) -> bool {
        let t = header.capture_mono_ns;
        key != Some(false)
            && self.segment.as_ref().is_some_and(|s| {
                s.size != (header.width, header.height)
                    || t.saturating_sub(s.first_mono_ns) as f64 >= self.segment_secs * 1e9
            })
    }

    /// Whether no segment may start yet (a failed one's retry delay runs).
    pub fn waiting_retry(&self) -> bool {
        self.segment.is_none() && self.retry_at.is_some_and(|at| Instant::now() < at)
    }

    /// Whether a retry delay runs at all.
    pub fn retrying(&self) -> bool {
        self.retry_at.is_some()
    }

    /// Time left before the retry.
    pub fn retry_in(&self) -> Option<Duration> {
        self.retry_at.map(|at| at.saturating_duration_since(Instant::now()))
    }

    /// Ends the retry delay if it is over (returns whether it was); `now`: whatever is left.
    pub fn end_retry(&mut self, now: bool) -> bool {
        let due = self.retry_at.is_some_and(|at| now || Instant::now() >= at);
        if due || now {
            self.retry_at = None;
        }
        due
    }

    /// No new segment before a delay that doubles while segments keep failing.
    pub fn retry_later(&mut self) {
        self.retry_wait = (self.retry_wait * 2).clamp(RETRY_FIRST, RETRY_MAX);
        self.retry_at = Some(Instant::now() + self.retry_wait);
    }

    /// `video = "stream"`: whether the access unit (`key`: a key frame) may be written: not
    /// before a key frame where a segment starts or after lost units.
    pub fn key_allows(&mut self, key: Option<bool>) -> bool {
        match key {
            Some(false) => !(self.need_key || self.segment.is_none()),
            Some(true) => {
                self.need_key = false;
                true
            }
            None => true,
        }
    }

    /// `video = "stream"`: nothing more is written before the next key frame.
    pub fn wait_key(&mut self) {
        self.need_key = true;
    }

    /// Opens a segment starting with `header` (its header line gets `extra`); the pending
    /// ranges go into it.
    pub fn open(
        &mut self,
        header: &FrameHeader,
        extra: Option<&serde_json::Map<String, serde_json::Value>>,
    ) -> anyhow::Result<&str> {
        let mut segment = Segment::open(&self.spec, header, extra)?;
        self.retry_at = None;
        for skip in std::mem::take(&mut self.pending) {
            let _ = segment.skip(skip);
        }
        Ok(self.segment.insert(segment).base())
    }

    /// Starts the image cadence again (saving went on).
    pub fn restart_images(&mut self) {
        self.image_counter = 0;
    }

    fn image_due(&mut self) -> bool {
        if self.spec.images == ImageFormat::Off {
            return false;
        }
        let n = self.image_counter;
        self.image_counter += 1;
        if !n.is_multiple_of(u64::from(self.image_every)) {
            return false;
        }
        if self.image_max_fps > 0.0 {
            if let Some(last) = self.last_image {
                return last.elapsed().as_secs_f64() >= 1.0 / self.image_max_fps;
            }
        }
        true
    }

    /// Writes a converted frame (and an image when due) into the open segment: `Ok(Some(image
    /// written))`, `Ok(None)` without a segment; an error fails the segment.
    pub fn write_frame(&mut self, header: &FrameHeader, bgr: &Mat) -> anyhow::Result<Option<bool>> {
        let image_due = self.image_due();
        let Some(segment) = &mut self.segment else { return Ok(None) };
        let params = image_due.then_some(&self.spec.image_params);
        let wrote_image = segment.write(header, bgr, params)?;
        if wrote_image {
            self.last_image = Some(Instant::now());
        }
        Ok(Some(wrote_image))
    }

    /// Writes an access unit into the open segment (`Ok(false)` without one); an error fails
    /// the segment and waits for the next key frame.
    pub fn write_unit(&mut self, header: &FrameHeader, unit: &AccessUnitHeader, data: &[u8]) -> anyhow::Result<bool> {
        let Some(segment) = &mut self.segment else { return Ok(false) };
        if let Err(e) = segment.write_unit(header, unit, data) {
            self.need_key = true;
            return Err(e);
        }
        Ok(true)
    }

    /// Flushes the sidecar (a failure fails the segment).
    pub fn flush(&mut self) {
        if let Some(segment) = &mut self.segment {
            let _ = segment.flush();
        }
    }

    /// The error that failed the open segment, with its base name.
    pub fn failed(&self) -> Option<(String, String)> {
        let segment = self.segment.as_ref()?;
        segment.error().map(|e| (segment.base().to_string(), e.to_string()))
    }

    /// Finishes the open segment (see [`Segment::finish`]): a completed one ends the retry
    /// back-off, a failed one starts a retry delay, a discarded one hands its skipped ranges
    /// to the next.
    pub fn finish(&mut self, reason: &str) -> Option<Closed> {
        let segment = self.segment.take()?;
        let base = segment.base().to_string();
        let (frames, skipped) = (segment.frames, segment.skipped);
        let (first_frame_id, last_frame_id, ext) = (segment.first_frame_id, segment.last_frame_id, segment.video_ext());
        let entry = |status: &str, failed: bool| {
            let name = |e: &str| if failed { format!("{base}.failed.{e}") } else { format!("{base}.{e}") };
            ClipSegment {
                segment: base.clone(),
                video: ext.map(name),
                sidecar: name("jsonl"),
                frames,
                first_frame_id,
                last_frame_id,
                status: status.to_string(),
            }
        };
        let finished = segment.finish(reason);
        let entry = match &finished {
            Finished::Completed { error, .. } => {
                if error.is_none() {
                    self.retry_wait = Duration::ZERO;
                }
                Some(entry("completed", false))
            }
            Finished::Failed { sidecar, .. } => {
                if self.retry_at.is_none() {
                    self.retry_later();
                }
                Some(entry("failed", sidecar.to_string_lossy().contains(".failed.")))
            }
            Finished::Discarded { skips, .. } => {
                for skip in skips.clone() {
                    self.push_pending(skip);
                }
                None
            }
        };
        Some(Closed { base, frames, skipped, finished, entry })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::segment::SkipReason;
    use framebus_common::config::VideoFormat;
    use framebus_common::PixelFormat;
    use framebus_vision::opencv::core::{Scalar, Vector, CV_8UC3};

    fn writer(dir: &std::path::Path, images: ImageFormat) -> SegmentWriter {
        let spec = SegmentSpec {
            camera: "cam".into(),
            directory: dir.to_path_buf(),
            video: VideoFormat::MjpgAvi,
            video_fps: 30.0,
            images,
            image_params: Vector::new(),
        };
        let config = RecorderConfig { segment_secs: 1.0, image_every: 2, ..RecorderConfig::default() };
        SegmentWriter::new(spec, &config)
    }

    fn header(id: u64, width: u32) -> FrameHeader {
        FrameHeader {
            frame_id: id,
            capture_mono_ns: id * 100_000_000,
            capture_realtime_ns: 1_700_000_000_000_000_000 + id * 100_000_000,
            width,
            height: 48,
            pixel_format: PixelFormat::Bgr3.fourcc(),
            ..FrameHeader::default()
        }
    }

    /// Ranges skipped while no segment is open merge and go into the next segment; a segment
    /// rotates after `segment-secs` or at a new size; finishing lists it for its clip.
    #[test]
    fn pending_skips_go_into_the_next_segment_which_rotates_by_time_and_size() {
        let dir = tempfile::tempdir().expect("dir");
        let mut w = writer(dir.path(), ImageFormat::Jpeg);
        w.skip(Skip { first: 1, last: 1, reason: SkipReason::DiskLow });
        w.skip(Skip { first: 2, last: 3, reason: SkipReason::DiskLow });
        let bgr = Mat::new_rows_cols_with_default(48, 64, CV_8UC3, Scalar::all(90.0)).expect("mat");
        assert_eq!(w.write_frame(&header(4, 64), &bgr).expect("no segment"), None);
        w.open(&header(4, 64), None).expect("open");
        assert!(w.is_open());
        let mut images = 0;
        for id in 4..=9 {
            assert!(!w.rotate_due(&header(id, 64), None), "{id}");
            images += u32::from(w.write_frame(&header(id, 64), &bgr).expect("write").expect("open"));
        }
        assert_eq!(images, 3, "every 2nd frame an image");
        assert!(w.rotate_due(&header(14, 64), None), "1 s after the first frame");
        assert!(w.rotate_due(&header(10, 80), None), "a new size");
        assert!(!w.rotate_due(&header(14, 64), Some(false)), "never before a delta unit");
        let closed = w.finish("stop").expect("a segment");
        assert!(matches!(closed.finished, Finished::Completed { .. }), "{:?}", closed.finished);
        let entry = closed.entry.expect("listed");
        assert_eq!((entry.frames, entry.first_frame_id, entry.last_frame_id), (6, 4, 9));
        let sidecar = std::fs::read_to_string(dir.path().join(&entry.sidecar)).expect("sidecar");
        assert!(sidecar.contains("\"first_frame_id\":1") && sidecar.contains("\"last_frame_id\":3"), "{sidecar}");
        assert!(w.finish("again").is_none());
    }

    /// A segment that saved nothing is discarded and its skipped ranges carry over; the retry
    /// delay doubles while segments fail and ends on demand.
    #[test]
    fn a_discarded_segment_hands_its_skips_on_and_retries_back_off() {
        let dir = tempfile::tempdir().expect("dir");
        let mut w = writer(dir.path(), ImageFormat::Off);
        w.open(&header(1, 64), None).expect("open");
        w.skip(Skip { first: 1, last: 2, reason: SkipReason::Error });
        let closed = w.finish("stop").expect("closed");
        assert!(matches!(closed.finished, Finished::Discarded { .. }) && closed.entry.is_none());
        assert_eq!(w.pending.len(), 1);
        assert!(!w.retrying());
        w.retry_later();
        w.retry_later();
        assert!(w.waiting_retry() && w.retry_in().is_some_and(|d| d > RETRY_FIRST));
        assert!(!w.end_retry(false), "not due yet");
        w.end_retry(true);
        assert!(!w.retrying());
    }

    /// Stream units: nothing before the first key frame, nor after a loss until the next.
    #[test]
    fn stream_units_wait_for_a_key_frame() {
        let dir = tempfile::tempdir().expect("dir");
        let mut w = writer(dir.path(), ImageFormat::Off);
        assert!(!w.key_allows(Some(false)), "no segment, no key frame yet");
        assert!(w.key_allows(Some(true)));
        w.open(&header(1, 64), None).expect("open");
        assert!(w.key_allows(Some(false)));
        w.wait_key();
        assert!(!w.key_allows(Some(false)));
        assert!(w.key_allows(None), "frames encoded here need no key frame");
        drop(w.finish("stop"));
    }
}
