//! Frames held in memory, JPEG-encoded (or, with `video = "stream"`, the streamer's access
//! units as they are), in the order they arrived: the pre-roll (recent frames
//! a trigger may still want) and, while a clip is being written, the frames waiting for the
//! writer (so a trigger that brings in seconds of pre-roll never stalls the live frames).
//!
//! MJPG frames are kept as the camera's JPEG (no work); other formats are encoded from the BGR
//! frame the recorder converted anyway. Buffers are reused, so holding a frame allocates only
//! until the queue has reached its usual length.

use std::collections::VecDeque;

use anyhow::{bail, Context};
use framebus_common::encoded::AccessUnitHeader;
use framebus_common::{FrameHeader, PixelFormat};
use framebus_vision::opencv::core::{Mat, Vector};
use framebus_vision::opencv::imgcodecs;
use framebus_vision::opencv::prelude::*;

use crate::clip::Window;
use crate::stream::UnitEvent;

/// One frame held: its header and its JPEG (or access unit).
pub struct Held {
    /// The frame's header.
    pub header: FrameHeader,
    /// The frame as a JPEG, or the access unit's bytes.
    pub jpeg: Vec<u8>,
    /// `video = "stream"`: the access unit.
    pub unit: Option<HeldUnit>,
}

/// An access unit held (`video = "stream"`).
#[derive(Debug, Clone, Copy)]
pub struct HeldUnit {
    /// Its header.
    pub header: AccessUnitHeader,
    /// What its place in the stream says, acted on when it leaves the queue.
    pub event: UnitEvent,
}

/// The queue of held frames.
pub struct PreRoll {
    frames: VecDeque<Held>,
    bytes: u64,
    /// JPEG encoder parameters (quality).
    params: Vector<i32>,
    /// The encoder's output, reused.
    encoded: Vector<u8>,
    /// Buffers of frames that left the queue, for the next ones.
    spare: Vec<Vec<u8>>,
    /// Capture times of the key frames held (access units), oldest first.
    keys: VecDeque<u64>,
}

/// Buffers kept for reuse at most (beyond that they are freed).
const MAX_SPARE: usize = 8;

impl PreRoll {
    /// An empty queue encoding at `jpeg_quality`.
    pub fn new(jpeg_quality: u32) -> PreRoll {
        PreRoll {
            frames: VecDeque::new(),
            bytes: 0,
            params: Vector::from_slice(&[imgcodecs::IMWRITE_JPEG_QUALITY, jpeg_quality as i32]),
            encoded: Vector::new(),
            spare: Vec::new(),
            keys: VecDeque::new(),
        }
    }

    /// Whether `header`'s payload is a JPEG already (held as it is).
    pub fn is_jpeg(header: &FrameHeader) -> bool {
        header.format() == Some(PixelFormat::Mjpg)
    }

    /// Holds a copy of `jpeg` for `header` in a reused buffer.
    fn hold_copy(&mut self, header: &FrameHeader, bytes: &[u8], unit: Option<HeldUnit>) {
        let mut jpeg = self.spare.pop().unwrap_or_default();
        jpeg.clear();
        jpeg.extend_from_slice(bytes);
        self.bytes += jpeg.len() as u64;
        if unit.is_some_and(|u| u.header.is_key_frame()) {
            self.keys.push_back(header.capture_mono_ns);
        }
        self.frames.push_back(Held { header: *header, jpeg, unit });
    }

    /// Holds a copy of an access unit (`video = "stream"`).
    pub fn hold_unit(&mut self, header: &FrameHeader, unit: HeldUnit, data: &[u8]) {
        self.hold_copy(header, data, Some(unit));
    }

    /// The oldest held access unit's place in the GOPs: whether it is a key frame, and the
    /// capture time of the next key frame held after it. `None` for JPEG frames.
    pub fn front_gop(&self) -> Option<StreamFront> {
        let unit = self.frames.front()?.unit?;
        let key = unit.header.is_key_frame();
        Some(StreamFront { key, next_key_ns: self.keys.get(usize::from(key)).copied() })
    }

    /// Holds a frame whose payload is a JPEG (an MJPG camera): copies it.
    pub fn hold_jpeg(&mut self, header: &FrameHeader, payload: &[u8]) {
        self.hold_copy(header, payload, None);
    }

    /// Holds a frame converted to BGR: encodes it as JPEG.
    pub fn hold_bgr(&mut self, header: &FrameHeader, bgr: &Mat) -> anyhow::Result<()> {
        let encoded = imgcodecs::imencode(".jpg", bgr, &mut self.encoded, &self.params)
            .with_context(|| format!("encoding frame {} for the pre-roll", header.frame_id))?;
        if !encoded {
            bail!("OpenCV could not encode frame {} for the pre-roll", header.frame_id);
        }
        let encoded = std::mem::take(&mut self.encoded);
        self.hold_copy(header, encoded.as_slice(), None);
        self.encoded = encoded;
        Ok(())
    }

    /// The oldest held frame.
    pub fn front(&self) -> Option<&FrameHeader> {
        self.frames.front().map(|h| &h.header)
    }

    /// Takes the oldest held frame out (give its buffer back with [`PreRoll::recycle`]).
    pub fn pop(&mut self) -> Option<Held> {
        let held = self.frames.pop_front()?;
        self.bytes -= held.jpeg.len() as u64;
        if held.unit.is_some_and(|u| u.header.is_key_frame()) {
            self.keys.pop_front();
        }
        Some(held)
    }

    /// Drops the oldest held frame.
    pub fn drop_front(&mut self) {
        if let Some(held) = self.pop() {
            self.recycle(held.jpeg);
        }
    }

    /// Gives a buffer back for reuse.
    pub fn recycle(&mut self, jpeg: Vec<u8>) {
        if self.spare.len() < MAX_SPARE {
            self.spare.push(jpeg);
        }
    }

    /// Decodes a held frame into `bgr` (reusing its memory).
    pub fn decode(held: &Held, bgr: &mut Mat) -> anyhow::Result<()> {
        if held.jpeg.is_empty() {
            bail!("held frame {} is empty", held.header.frame_id);
        }
        let bytes = Mat::from_slice(&held.jpeg)?;
        // A new Mat each time: decoding into one that holds a picture leaves that picture in
        // place when the data is not a JPEG (OpenCV 4.6), which would pass off the previous
        // frame as this one. glibc serves the same-sized buffer again without new page faults.
        *bgr = imgcodecs::imdecode(&bytes, imgcodecs::IMREAD_COLOR)
            .with_context(|| format!("decoding held frame {}", held.header.frame_id))?;
        if bgr.empty() {
            bail!("held frame {} does not decode", held.header.frame_id);
        }
        Ok(())
    }

    /// Frames held.
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// Whether no frame is held.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Bytes of JPEG held.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Capture time from the oldest to the newest held frame, ns.
    pub fn span_ns(&self) -> u64 {
        match (self.frames.front(), self.frames.back()) {
            (Some(a), Some(b)) => b.header.capture_mono_ns.saturating_sub(a.header.capture_mono_ns),
            _ => 0,
        }
    }

    /// Drops every held frame.
    pub fn clear(&mut self) {
        while !self.frames.is_empty() {
            self.drop_front();
        }
    }
}

/// The oldest held access unit's place in the GOPs ([`PreRoll::front_gop`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamFront {
    /// It is a key frame.
    pub key: bool,
    /// Capture time of the next key frame held after it.
    pub next_key_ns: Option<u64>,
}

/// What becomes of the oldest held frame ([`front_action`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrontAction {
    /// The current clip wants it: write it.
    Write,
    /// A key frame before the clip's start with none later before it: the clip reaches back
    /// to it (a stream clip starts at a key frame at or before its start).
    ReachBack,
    /// It was captured before the current clip starts: no clip will want it.
    DropBeforeClip,
    /// The held frames are over `pre-roll-max-mb`: it goes to make room.
    DropOverLimit,
    /// Older than the pre-roll keeps frames (access units: its GOP is followed by one that
    /// starts early enough for any clip).
    DropOld,
    /// Keep it (and every later one).
    Keep,
}

/// What becomes of the oldest held frame, captured at `t`: `window` is the clip's window,
/// `over` whether the held frames exceed their memory limit, `newest_ns` the capture time of
/// the newest frame received, `keep_ns` how long a frame stays eligible for a pre-roll, and
/// `gop` its place in the GOPs when it is an access unit.
pub fn front_action(
    t: u64,
    window: Option<&Window>,
    over: bool,
    newest_ns: u64,
    keep_ns: u64,
    gop: Option<StreamFront>,
) -> FrontAction {
    match window {
        Some(w) if w.wants(t) => return FrontAction::Write,
        Some(w) if t < w.start_ns => {
            return match gop {
                Some(g) if g.key && g.next_key_ns.is_none_or(|k| k > w.start_ns) => FrontAction::ReachBack,
                _ => FrontAction::DropBeforeClip,
            };
        }
        _ => {}
    }
    if over {
        return FrontAction::DropOverLimit;
    }
    let old = match gop {
        Some(g) => g.next_key_ns.is_some_and(|k| newest_ns.saturating_sub(k) > keep_ns),
        None => newest_ns.saturating_sub(t) > keep_ns,
    };
    if old {
        FrontAction::DropOld
    } else {
        FrontAction::Keep
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use framebus_vision::opencv::core::{Scalar, CV_8UC3};

    fn header(id: u64) -> FrameHeader {
        FrameHeader { frame_id: id, capture_mono_ns: id * 1000, width: 64, height: 48, ..FrameHeader::default() }
    }

    /// Held frames come back in order, decode to the picture held, and their bytes are counted
    /// and released.
    #[test]
    fn frames_are_held_in_order_and_decode_back() {
        let mut q = PreRoll::new(90);
        let grey = Mat::new_rows_cols_with_default(48, 64, CV_8UC3, Scalar::all(120.0)).expect("mat");
        for id in 1..=3 {
            q.hold_bgr(&header(id), &grey).expect("hold");
        }
        assert_eq!((q.len(), q.span_ns()), (3, 2000));
        assert!(q.bytes() > 0);
        let held = q.pop().expect("front");
        assert_eq!(held.header.frame_id, 1);
        let mut bgr = Mat::default();
        PreRoll::decode(&held, &mut bgr).expect("decode");
        assert_eq!((bgr.cols(), bgr.rows()), (64, 48));
        let pixel = bgr.at_2d::<framebus_vision::opencv::core::Vec3b>(10, 10).expect("pixel");
        assert!((i32::from(pixel[0]) - 120).abs() <= 2, "{pixel:?}");
        q.clear();
        assert_eq!((q.len(), q.bytes()), (0, 0));
        // Into a Mat that holds a picture already: the failure must not pass off the old one.
        let mut broken = Held { header: header(9), jpeg: b"not a jpeg".to_vec(), unit: None };
        assert!(PreRoll::decode(&broken, &mut bgr).is_err());
        let mut cut = Held { header: header(10), jpeg: held.jpeg.clone(), unit: None };
        cut.jpeg.truncate(20);
        PreRoll::decode(&held, &mut bgr).expect("decode");
        assert!(PreRoll::decode(&cut, &mut bgr).is_err(), "a truncated JPEG is an error");
        broken.jpeg.clear();
        assert!(PreRoll::decode(&broken, &mut bgr).is_err());
        q.recycle(held.jpeg);
    }

    /// The oldest held frame is written when its clip wants it, dropped before the clip,
    /// beyond the memory limit or the pre-roll, and kept otherwise.
    #[test]
    fn the_oldest_frame_is_written_dropped_or_kept() {
        use framebus_common::journal::{Trigger, TriggerSource};
        let trigger = Trigger {
            source: TriggerSource::Manual,
            rule: None,
            frame_id: 1,
            utc: String::new(),
            realtime_ns: 0,
            results: Vec::new(),
            continues: None,
        };
        let w = Window { start_ns: 100, until_ns: 200, manual: false, trigger, first_live_frame_id: 1, triggers: 1 };
        assert_eq!(front_action(150, Some(&w), true, 300, 10, None), FrontAction::Write);
        assert_eq!(front_action(50, Some(&w), false, 300, 1000, None), FrontAction::DropBeforeClip);
        assert_eq!(front_action(250, Some(&w), true, 300, 1000, None), FrontAction::DropOverLimit);
        assert_eq!(front_action(250, None, false, 300, 10, None), FrontAction::DropOld);
        assert_eq!(front_action(295, None, false, 300, 10, None), FrontAction::Keep);
        // Access units: a clip reaches back to the last key frame at or before its start.
        let key = |next_key_ns| Some(StreamFront { key: true, next_key_ns });
        let delta = |next_key_ns| Some(StreamFront { key: false, next_key_ns });
        assert_eq!(front_action(80, Some(&w), false, 300, 10, key(Some(110))), FrontAction::ReachBack);
        assert_eq!(front_action(80, Some(&w), false, 300, 10, key(None)), FrontAction::ReachBack);
        assert_eq!(front_action(70, Some(&w), false, 300, 10, key(Some(90))), FrontAction::DropBeforeClip);
        assert_eq!(front_action(85, Some(&w), false, 300, 10, delta(Some(110))), FrontAction::DropBeforeClip);
        // A GOP goes only when the next one is old enough to start any clip.
        assert_eq!(front_action(100, None, false, 300, 150, key(Some(160))), FrontAction::Keep);
        assert_eq!(front_action(100, None, false, 300, 150, key(Some(140))), FrontAction::DropOld);
        assert_eq!(front_action(100, None, false, 300, 150, delta(None)), FrontAction::Keep);
    }

    /// Held access units know their GOPs: the next key frame after the front, as units come
    /// and go.
    #[test]
    fn held_units_know_their_gops() {
        let mut q = PreRoll::new(90);
        for id in 1..=7u64 {
            let flags = if id % 3 == 1 { framebus_common::encoded::AU_FLAG_KEY_FRAME } else { 0 };
            let unit = HeldUnit {
                header: AccessUnitHeader { flags, frame_id: id, ..Default::default() },
                event: UnitEvent::None,
            };
            q.hold_unit(&header(id), unit, &[0, 0, 0, 1, id as u8]);
        }
        // Key frames 1, 4, 7 (captured at 1000, 4000, 7000).
        assert_eq!(q.front_gop(), Some(StreamFront { key: true, next_key_ns: Some(4000) }));
        q.drop_front();
        assert_eq!(q.front_gop(), Some(StreamFront { key: false, next_key_ns: Some(4000) }));
        q.drop_front();
        q.drop_front();
        assert_eq!(q.front_gop(), Some(StreamFront { key: true, next_key_ns: Some(7000) }));
        assert_eq!(q.pop().map(|h| h.jpeg), Some(vec![0, 0, 0, 1, 4]));
        q.clear();
        assert_eq!(q.front_gop(), None);
        let grey = Mat::new_rows_cols_with_default(48, 64, CV_8UC3, Scalar::all(120.0)).expect("mat");
        q.hold_bgr(&header(1), &grey).expect("hold");
        assert_eq!(q.front_gop(), None, "a JPEG frame");
    }
}
