//! Frames held in memory, JPEG-encoded, in the order they arrived: the pre-roll (recent frames
//! a trigger may still want) and, while a clip is being written, the frames waiting for the
//! writer (so a trigger that brings in seconds of pre-roll never stalls the live frames).
//!
//! MJPG frames are kept as the camera's JPEG (no work); other formats are encoded from the BGR
//! frame the recorder converted anyway. Buffers are reused, so holding a frame allocates only
//! until the queue has reached its usual length.

use std::collections::VecDeque;

use anyhow::{bail, Context};
use framebus_common::{FrameHeader, PixelFormat};
use framebus_vision::opencv::core::{Mat, Vector};
use framebus_vision::opencv::imgcodecs;
use framebus_vision::opencv::prelude::*;

/// One frame held: its header and its JPEG.
pub struct Held {
    /// The frame's header.
    pub header: FrameHeader,
    /// The frame as a JPEG.
    pub jpeg: Vec<u8>,
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
        }
    }

    /// Whether `header`'s payload is a JPEG already (held as it is).
    pub fn is_jpeg(header: &FrameHeader) -> bool {
        header.format() == Some(PixelFormat::Mjpg)
    }

    /// Holds a copy of `jpeg` for `header` in a reused buffer.
    fn hold_copy(&mut self, header: &FrameHeader, bytes: &[u8]) {
        let mut jpeg = self.spare.pop().unwrap_or_default();
        jpeg.clear();
        jpeg.extend_from_slice(bytes);
        self.bytes += jpeg.len() as u64;
        self.frames.push_back(Held { header: *header, jpeg });
    }

    /// Holds a frame whose payload is a JPEG (an MJPG camera): copies it.
    pub fn hold_jpeg(&mut self, header: &FrameHeader, payload: &[u8]) {
        self.hold_copy(header, payload);
    }

    /// Holds a frame converted to BGR: encodes it as JPEG.
    pub fn hold_bgr(&mut self, header: &FrameHeader, bgr: &Mat) -> anyhow::Result<()> {
        let encoded = imgcodecs::imencode(".jpg", bgr, &mut self.encoded, &self.params)
            .with_context(|| format!("encoding frame {} for the pre-roll", header.frame_id))?;
        if !encoded {
            bail!("OpenCV could not encode frame {} for the pre-roll", header.frame_id);
        }
        let encoded = std::mem::take(&mut self.encoded);
        self.hold_copy(header, encoded.as_slice());
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
        let mut broken = Held { header: header(9), jpeg: b"not a jpeg".to_vec() };
        assert!(PreRoll::decode(&broken, &mut bgr).is_err());
        let mut cut = Held { header: header(10), jpeg: held.jpeg.clone() };
        cut.jpeg.truncate(20);
        PreRoll::decode(&held, &mut bgr).expect("decode");
        assert!(PreRoll::decode(&cut, &mut bgr).is_err(), "a truncated JPEG is an error");
        broken.jpeg.clear();
        assert!(PreRoll::decode(&broken, &mut bgr).is_err());
        q.recycle(held.jpeg);
    }
}
