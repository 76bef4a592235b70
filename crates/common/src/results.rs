//! Algorithm results on the bus: one fixed-size record per result, published on the camera's
//! results service (`framebus/<dep>/<cam>/results`) by any number of producers (algo, user
//! readers in Rust or Python) and read by the preview (overlays), the recorder (event
//! triggers) and `ctl events`.
//!
//! The record is `#[repr(C)]` plain data (integers, floats, byte arrays), so every byte pattern
//! is safe to read and other languages mirror it; see docs/results.md before
//! changing it, and bump [`RESULT_LAYOUT_VERSION`] and the type name together.

use iceoryx2::prelude::ZeroCopySend;
use serde::{Deserialize, Serialize};

use crate::protocol::{put_text, text_of};

/// Version of the [`ResultRecord`] layout.
pub const RESULT_LAYOUT_VERSION: u32 = 1;

/// Most boxes one record carries.
pub const MAX_BOXES: usize = 16;

/// Capacity of a box label.
pub const LABEL_TEXT: usize = 24;

/// Capacity of the producer name.
pub const PRODUCER_TEXT: usize = 32;

/// Capacity of the free-form JSON part.
pub const JSON_TEXT: usize = 1024;

/// The low end of **the** score scale: every score framebus produces, shows or compares (a
/// result's and a box's score, algo's `motion`, trigger thresholds, the preview, the events
/// page, webhooks, Python) is a number from [`SCORE_MIN`] (nothing) to [`SCORE_MAX`] (all of
/// the picture, full confidence).
pub const SCORE_MIN: f64 = 0.0;

/// The high end of the score scale (see [`SCORE_MIN`]).
pub const SCORE_MAX: f64 = 1.0;

/// Highest 8-bit level (grey levels, channel values).
const LEVEL_MAX: f64 = 255.0;

/// An 8-bit level or mean level difference (0..=255) on the score scale, clamped to it.
pub fn score_from_level(level: f64) -> f64 {
    if level.is_nan() {
        return SCORE_MIN;
    }
    (level / LEVEL_MAX).clamp(SCORE_MIN, SCORE_MAX)
}

/// Whether `value` lies on the score scale (`SCORE_MIN..=SCORE_MAX`).
pub fn on_score_scale(value: f64) -> bool {
    (SCORE_MIN..=SCORE_MAX).contains(&value)
}

/// One labelled box, in pixels of the frame (48 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, ZeroCopySend)]
#[type_name("framebus::ResultBox")]
pub struct ResultBox {
    /// Left edge, pixels (offset 0).
    pub x: f32,
    /// Top edge, pixels (4).
    pub y: f32,
    /// Width, pixels (8).
    pub w: f32,
    /// Height, pixels (12).
    pub h: f32,
    /// Confidence or strength on the [score scale](SCORE_MIN) 0..1 (16).
    pub score: f32,
    /// Bytes used in `label` (20).
    pub label_len: u32,
    /// Label, ASCII (24).
    pub label: [u8; LABEL_TEXT],
}

impl Default for ResultBox {
    fn default() -> Self {
        ResultBox { x: 0.0, y: 0.0, w: 0.0, h: 0.0, score: 0.0, label_len: 0, label: [0; LABEL_TEXT] }
    }
}

/// One result about one frame (1880 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy, ZeroCopySend)]
#[type_name("framebus::ResultRecordV1")]
pub struct ResultRecord {
    /// [`RESULT_LAYOUT_VERSION`] (offset 0).
    pub layout_version: u32,
    /// Boxes used in `boxes` (4).
    pub box_count: u32,
    /// Id of the frame the result is about (8).
    pub frame_id: u64,
    /// Capture run of that frame (16).
    pub run_id: u64,
    /// That frame's capture time, CLOCK_MONOTONIC ns (24).
    pub capture_mono_ns: u64,
    /// When the result was published, CLOCK_MONOTONIC ns (32).
    pub publish_mono_ns: u64,
    /// Overall score on the [score scale](SCORE_MIN) 0..1 (e.g. motion, best detection
    /// confidence); NaN = none (40).
    pub score: f64,
    /// Bytes used in `producer` (48).
    pub producer_len: u32,
    /// Bytes used in `json` (52).
    pub json_len: u32,
    /// Producer name (its role), ASCII (56).
    pub producer: [u8; PRODUCER_TEXT],
    /// Labelled boxes (88).
    pub boxes: [ResultBox; MAX_BOXES],
    /// Free-form JSON, UTF-8 (856).
    pub json: [u8; JSON_TEXT],
}

impl Default for ResultRecord {
    fn default() -> Self {
        ResultRecord {
            layout_version: RESULT_LAYOUT_VERSION,
            box_count: 0,
            frame_id: 0,
            run_id: 0,
            capture_mono_ns: 0,
            publish_mono_ns: 0,
            score: f64::NAN,
            producer_len: 0,
            json_len: 0,
            producer: [0; PRODUCER_TEXT],
            boxes: [ResultBox::default(); MAX_BOXES],
            json: [0; JSON_TEXT],
        }
    }
}

/// Why a result could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResultError {
    /// More boxes than a record holds.
    #[error("{0} boxes: a result carries at most {MAX_BOXES}")]
    TooManyBoxes(usize),
    /// The JSON part is too long.
    #[error("the JSON part is {0} bytes: at most {JSON_TEXT}")]
    JsonTooLong(usize),
}

/// A labelled box as a producer gives it and a reader gets it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Detection {
    /// Left edge, pixels.
    pub x: f32,
    /// Top edge, pixels.
    pub y: f32,
    /// Width, pixels.
    pub w: f32,
    /// Height, pixels.
    pub h: f32,
    /// Label (cut to 24 ASCII characters on the wire).
    pub label: String,
    /// Confidence or strength, 0..1 ([`SCORE_MIN`]).
    pub score: f32,
}

/// A decoded result (what readers work with; `ctl events --json` prints it).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Outcome {
    /// Producer name.
    pub producer: String,
    /// Frame id the result is about.
    pub frame_id: u64,
    /// Capture run of that frame.
    pub run_id: u64,
    /// That frame's capture time, CLOCK_MONOTONIC ns.
    pub capture_mono_ns: u64,
    /// Publish time, CLOCK_MONOTONIC ns.
    pub publish_mono_ns: u64,
    /// Overall score, if any, 0..1 ([`SCORE_MIN`]).
    pub score: Option<f64>,
    /// Labelled boxes.
    pub boxes: Vec<Detection>,
    /// The free-form JSON part, parsed (`null` when empty or not JSON).
    pub data: serde_json::Value,
}

impl ResultRecord {
    /// A record about the frame `(run_id, frame_id, capture_mono_ns)` from `producer`.
    pub fn new(
        producer: &str,
        frame: (u64, u64, u64),
        score: Option<f64>,
        boxes: &[Detection],
        json: &str,
    ) -> Result<ResultRecord, ResultError> {
        if boxes.len() > MAX_BOXES {
            return Err(ResultError::TooManyBoxes(boxes.len()));
        }
        if json.len() > JSON_TEXT {
            return Err(ResultError::JsonTooLong(json.len()));
        }
        let (run_id, frame_id, capture_mono_ns) = frame;
        let mut record = ResultRecord {
            run_id,
            frame_id,
            capture_mono_ns,
            publish_mono_ns: crate::clock::monotonic_ns(),
            score: score.unwrap_or(f64::NAN),
            box_count: boxes.len() as u32,
            ..ResultRecord::default()
        };
        record.producer_len = put_text(&mut record.producer, producer) as u32;
        for (slot, d) in record.boxes.iter_mut().zip(boxes) {
            *slot = ResultBox { x: d.x, y: d.y, w: d.w, h: d.h, score: d.score, ..ResultBox::default() };
            slot.label_len = put_text(&mut slot.label, &d.label) as u32;
        }
        record.json[..json.len()].copy_from_slice(json.as_bytes());
        record.json_len = json.len() as u32;
        Ok(record)
    }

    /// Decodes the record; `None` for another layout version. Lengths are checked, so a
    /// malformed record cannot make this read out of bounds.
    pub fn decode(&self) -> Option<Outcome> {
        if self.layout_version != RESULT_LAYOUT_VERSION {
            return None;
        }
        let boxes = self
            .boxes
            .iter()
            .take((self.box_count as usize).min(MAX_BOXES))
            .map(|b| Detection {
                x: b.x,
                y: b.y,
                w: b.w,
                h: b.h,
                score: b.score,
                label: text_of(&b.label, b.label_len),
            })
            .collect();
        let json = self.json.get(..self.json_len as usize).unwrap_or_default();
        Some(Outcome {
            producer: text_of(&self.producer, self.producer_len),
            frame_id: self.frame_id,
            run_id: self.run_id,
            capture_mono_ns: self.capture_mono_ns,
            publish_mono_ns: self.publish_mono_ns,
            score: (!self.score.is_nan()).then_some(self.score),
            boxes,
            data: serde_json::from_slice(json).unwrap_or(serde_json::Value::Null),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Levels map onto the score scale, clamped; NaN is no score (0).
    #[test]
    fn levels_map_onto_the_score_scale() {
        assert_eq!(score_from_level(0.0), 0.0);
        assert_eq!(score_from_level(255.0), 1.0);
        assert!((score_from_level(51.0) - 0.2).abs() < 1e-12);
        assert_eq!(score_from_level(300.0), 1.0);
        assert_eq!(score_from_level(-3.0), 0.0);
        assert_eq!(score_from_level(f64::NAN), 0.0);
        assert!(on_score_scale(0.0) && on_score_scale(1.0) && on_score_scale(0.5));
        assert!(!on_score_scale(1.01) && !on_score_scale(-0.01) && !on_score_scale(f64::NAN) && !on_score_scale(25.0));
    }

    /// The layout is the documented one (docs/results.md); Python mirrors it.
    #[test]
    fn result_layout_matches_the_documented_offsets() {
        use core::mem::{offset_of, size_of};
        assert_eq!(size_of::<ResultBox>(), 48);
        assert_eq!(offset_of!(ResultBox, label), 24);
        assert_eq!(size_of::<ResultRecord>(), 1880);
        assert_eq!(offset_of!(ResultRecord, frame_id), 8);
        assert_eq!(offset_of!(ResultRecord, score), 40);
        assert_eq!(offset_of!(ResultRecord, producer), 56);
        assert_eq!(offset_of!(ResultRecord, boxes), 88);
        assert_eq!(offset_of!(ResultRecord, json), 856);
    }

    /// A record round-trips; limits are errors; a malformed length reads as empty, not out of
    /// bounds.
    #[test]
    fn records_round_trip_and_limits_hold() {
        let person = Detection { x: 1.0, y: 2.0, w: 30.0, h: 40.0, label: "person".into(), score: 0.9 };
        let record =
            ResultRecord::new("algo", (7, 42, 1000), Some(0.25), std::slice::from_ref(&person), r#"{"motion":0.25}"#)
                .expect("record");
        let outcome = record.decode().expect("decodes");
        assert_eq!(outcome.producer, "algo");
        assert_eq!((outcome.run_id, outcome.frame_id), (7, 42));
        assert_eq!(outcome.score, Some(0.25));
        assert_eq!(outcome.boxes, vec![person.clone()]);
        assert_eq!(outcome.data["motion"], 0.25);
        let many = vec![person; MAX_BOXES + 1];
        assert_eq!(ResultRecord::new("a", (0, 0, 0), None, &many, "").err(), Some(ResultError::TooManyBoxes(17)));
        let mut bad = record;
        bad.json_len = 60_000;
        bad.box_count = 9_999;
        bad.producer_len = 99;
        let outcome = bad.decode().expect("decodes");
        assert_eq!(outcome.data, serde_json::Value::Null);
        assert_eq!(outcome.boxes.len(), MAX_BOXES);
        assert_eq!(outcome.producer, "<malformed text>");
    }
}
