//! **The** drawing of results on frames, shared by the preview (JPEG for browsers) and the
//! streamer (`[camera.streamer] overlay = true`, H.264 for RTSP and WebRTC viewers), so both
//! show the same boxes by the same rules:
//!
//! - [`ResultBoard`] keeps the newest results of each producer and picks, for a frame, the
//!   newest one about that frame or an earlier one of the same capture run, dropped once it is
//!   older than the maximum age relative to the frame (`[camera.preview] result-max-age-ms`);
//! - [`draw_results`] draws each box (frame pixels, scaled to the image) with its label and
//!   score, in a colour per producer dimmed as the result ages, and optionally one summary line
//!   per producer.
//!
//! Nothing here waits: a producer that publishes late or not at all only means fewer boxes.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;

use framebus_common::results::Outcome;
use framebus_common::FrameHeader;
use opencv::core::{Mat, Point, Rect, Scalar};
use opencv::imgproc;
use opencv::prelude::*;
use serde::Serialize;

/// Results kept per producer (enough to match a frame a few hundred ms old at 30 fps).
const PER_PRODUCER: usize = 32;

/// Producers kept at once; a new one beyond this replaces the one heard from least recently.
const MAX_PRODUCERS: usize = 8;

/// A result as drawn on one frame, with its age relative to that frame.
#[derive(Debug, Clone, Serialize)]
pub struct Shown {
    /// The result.
    #[serde(flatten)]
    pub outcome: Outcome,
    /// Frame shown capture time − result's frame capture time, milliseconds (0 = about this
    /// very frame).
    pub age_ms: f64,
    /// 1 for a fresh result, fading to 0 at the maximum age.
    pub strength: f64,
}

/// The recent results of every producer of a camera.
#[derive(Debug, Default)]
pub struct ResultBoard {
    producers: BTreeMap<String, VecDeque<Outcome>>,
}

impl ResultBoard {
    /// Adds results as they arrive (oldest first).
    pub fn add(&mut self, outcomes: impl IntoIterator<Item = Outcome>) {
        for outcome in outcomes {
            if !self.producers.contains_key(&outcome.producer) && self.producers.len() >= MAX_PRODUCERS {
                let stalest = self
                    .producers
                    .iter()
                    .min_by_key(|(_, q)| q.back().map_or(0, |o| o.publish_mono_ns))
                    .map(|(name, _)| name.clone());
                if let Some(name) = stalest {
                    self.producers.remove(&name);
                }
            }
            let queue = self.producers.entry(outcome.producer.clone()).or_default();
            if queue.len() >= PER_PRODUCER {
                queue.pop_front();
            }
            queue.push_back(outcome);
        }
    }

    /// Per producer, the result to show with `frame`: the newest one about this frame or an
    /// earlier one of the same capture run, no older than `max_age_ms`.
    pub fn for_frame(&self, frame: &FrameHeader, max_age_ms: f64) -> Vec<Shown> {
        self.producers
            .values()
            .filter_map(|queue| {
                let outcome = queue.iter().rev().find(|o| o.run_id == frame.run_id && o.frame_id <= frame.frame_id)?;
                let age_ms = frame.capture_mono_ns.saturating_sub(outcome.capture_mono_ns) as f64 / 1e6;
                (age_ms <= max_age_ms).then(|| Shown {
                    outcome: outcome.clone(),
                    age_ms,
                    strength: if max_age_ms > 0.0 { 1.0 - age_ms / max_age_ms } else { 1.0 },
                })
            })
            .collect()
    }
}

/// Draws `shown` onto `image` (BGR, the frame of `header` at any scale): each box (frame pixels,
/// scaled to the image) with its label and score; with `summary_top`, one line per producer
/// (`algo: score 0.031, 2 box(es), frame 120 (33 ms ago)`) below that row. Colours per
/// producer, dimmed as a result ages. `text` is a reusable buffer. Images under 32×32 are left
/// as they are.
pub fn draw_results(
    image: &mut Mat,
    text: &mut String,
    header: &FrameHeader,
    shown: &[Shown],
    summary_top: Option<i32>,
) -> crate::Result<()> {
    let (iw, ih) = (image.cols(), image.rows());
    if iw < 32 || ih < 32 || header.width == 0 || header.height == 0 {
        return Ok(());
    }
    let sx = f64::from(iw) / f64::from(header.width);
    let sy = f64::from(ih) / f64::from(header.height);
    let font = (f64::from(iw) / 1400.0).clamp(0.3, 0.8);
    let line = summary_line_height(iw);
    for (i, shown) in shown.iter().enumerate() {
        let colour = producer_colour(&shown.outcome.producer, shown.strength);
        for b in &shown.outcome.boxes {
            // Any producer may publish: a box far off the image, huge or NaN is bounded to
            // around the image (NaN → 0) before it reaches OpenCV's integer arithmetic.
            let (x, y) = (bound(f64::from(b.x) * sx, iw), bound(f64::from(b.y) * sy, ih));
            let (w, h) = (bound(f64::from(b.w) * sx, iw).max(1), bound(f64::from(b.h) * sy, ih).max(1));
            let rect = Rect::new(x, y, w, h);
            imgproc::rectangle(image, rect, colour, 2, imgproc::LINE_8, 0)?;
            text.clear();
            let _ = write!(text, "{} {:.2}", b.label, b.score);
            label(image, text, Point::new(rect.x + 2, (rect.y - 4).max(12)), font, colour)?;
        }
        if let Some(top) = summary_top {
            text.clear();
            let score = shown.outcome.score.map_or("-".to_string(), |s| format!("{s:.3}"));
            let _ = write!(
                text,
                "{}: score {score}, {} box(es), frame {} ({:.0} ms ago)",
                shown.outcome.producer,
                shown.outcome.boxes.len(),
                shown.outcome.frame_id,
                shown.age_ms
            );
            let y = top + (i as i32 + 1) * line;
            if y < ih - 4 {
                label(image, text, Point::new(4, y), font, colour)?;
            }
        }
    }
    Ok(())
}

/// `value` rounded into `-extent..=2 * extent`: off the image either side by at most its size.
fn bound(value: f64, extent: i32) -> i32 {
    let extent = f64::from(extent);
    if value.is_nan() {
        return 0;
    }
    value.round().clamp(-extent, 2.0 * extent) as i32
}

/// Rows per summary line of [`draw_results`] on an image `width` pixels wide.
fn summary_line_height(width: i32) -> i32 {
    let overlay_line = (30.0 * (f64::from(width) / 900.0).clamp(0.3, 1.2)).ceil() as i32;
    (overlay_line * 2 / 3).max(12)
}

/// One line of text in the results' font.
fn label(image: &mut Mat, text: &str, origin: Point, scale: f64, colour: Scalar) -> crate::Result<()> {
    imgproc::put_text(image, text, origin, imgproc::FONT_HERSHEY_SIMPLEX, scale, colour, 1, imgproc::LINE_AA, false)
}

/// The colour of `producer`'s boxes (stable across frames and processes), dimmed by
/// `strength` (1 fresh … 0 stale), as BGR.
pub fn producer_colour(producer: &str, strength: f64) -> Scalar {
    const PALETTE: [(f64, f64, f64); 6] = [
        (0.0, 255.0, 0.0),
        (0.0, 200.0, 255.0),
        (255.0, 128.0, 0.0),
        (255.0, 0.0, 255.0),
        (0.0, 0.0, 255.0),
        (255.0, 255.0, 0.0),
    ];
    let index = producer.bytes().fold(0usize, |h, b| h.wrapping_mul(31).wrapping_add(usize::from(b))) % PALETTE.len();
    let (b, g, r) = PALETTE[index];
    let strength = if strength.is_nan() { 0.0 } else { strength.clamp(0.0, 1.0) };
    let k = 0.35 + 0.65 * strength;
    Scalar::new(b * k, g * k, r * k, 0.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use framebus_common::results::Detection;
    use opencv::core::{Vec3b, CV_8UC3};

    fn outcome(producer: &str, run_id: u64, frame_id: u64) -> Outcome {
        Outcome {
            producer: producer.into(),
            frame_id,
            run_id,
            capture_mono_ns: frame_id * 10_000_000,
            publish_mono_ns: frame_id * 10_000_000 + 1,
            score: Some(0.5),
            boxes: Vec::new(),
            data: serde_json::Value::Null,
        }
    }

    /// The newest result at or before the frame is shown; later ones, other runs and stale
    /// ones are not.
    #[test]
    fn results_are_matched_to_the_frame_and_dropped_when_stale() {
        let mut board = ResultBoard::default();
        board.add([outcome("algo", 1, 10), outcome("algo", 1, 12), outcome("algo", 1, 15), outcome("plates", 2, 11)]);
        let frame =
            |id: u64| FrameHeader { run_id: 1, frame_id: id, capture_mono_ns: id * 10_000_000, ..Default::default() };
        let shown = board.for_frame(&frame(13), 1000.0);
        assert_eq!(shown.len(), 1, "the other producer's result is of another run");
        assert_eq!(shown[0].outcome.frame_id, 12);
        assert!((shown[0].age_ms - 10.0).abs() < 1e-9);
        assert!(board.for_frame(&frame(9), 1000.0).is_empty(), "nothing about this frame or before it");
        assert!(board.for_frame(&frame(200), 100.0).is_empty(), "1.85 s old: dropped");
        assert_eq!(board.for_frame(&frame(15), 100.0)[0].strength, 1.0);
    }

    /// A box of a 640×480 frame lands, scaled, on a 320×240 image in the producer's colour;
    /// the inside of the box and the rest of the image stay untouched.
    #[test]
    fn boxes_are_drawn_scaled_in_the_producer_colour() {
        let header = FrameHeader { width: 640, height: 480, run_id: 1, frame_id: 5, ..Default::default() };
        let mut shown_outcome = outcome("detector", 1, 5);
        shown_outcome.boxes =
            vec![Detection { x: 100.0, y: 200.0, w: 200.0, h: 100.0, label: "person".into(), score: 0.9 }];
        let shown = [Shown { outcome: shown_outcome, age_ms: 0.0, strength: 1.0 }];
        let mut image = Mat::new_rows_cols_with_default(240, 320, CV_8UC3, Scalar::all(0.0)).expect("image");
        draw_results(&mut image, &mut String::new(), &header, &shown, None).expect("draw");
        let colour = producer_colour("detector", 1.0);
        let at = |x: i32, y: i32| *image.at_2d::<Vec3b>(y, x).expect("pixel");
        // The bottom edge: (50..150, 150) in image pixels.
        let edge = at(100, 150);
        for c in 0..3 {
            assert!((f64::from(edge[c]) - colour[c]).abs() < 1.0, "edge {edge:?} vs {colour:?}");
        }
        assert_eq!(at(100, 125), Vec3b::from([0, 0, 0]), "inside the box");
        assert_eq!(at(250, 200), Vec3b::from([0, 0, 0]), "outside the box");
    }

    /// Boxes a hostile or broken producer may publish (NaN, infinite, huge, negative, far off
    /// the image) draw nothing harmful and never fail.
    #[test]
    fn absurd_boxes_are_bounded() {
        let header = FrameHeader { width: 320, height: 240, run_id: 1, frame_id: 5, ..Default::default() };
        let mut o = outcome("x", 1, 5);
        for (x, y, w, h) in [
            (f32::NAN, f32::NAN, f32::NAN, f32::NAN),
            (f32::INFINITY, 0.0, f32::INFINITY, 10.0),
            (f32::MAX, f32::MAX, f32::MAX, f32::MAX),
            (-1e30, -1e30, 1e30, 1e30),
            (2e9, 2e9, 2e9, 2e9),
            (-50.0, -50.0, -10.0, -10.0),
        ] {
            o.boxes.push(Detection { x, y, w, h, label: "z".repeat(24), score: f32::NAN });
        }
        let shown = [Shown { outcome: o, age_ms: f64::NAN, strength: f64::NAN }];
        let mut image = Mat::new_rows_cols_with_default(240, 320, CV_8UC3, Scalar::all(0.0)).expect("image");
        draw_results(&mut image, &mut String::new(), &header, &shown, Some(40)).expect("draw");
        assert_eq!(bound(f64::NAN, 100), 0);
        assert_eq!(bound(1e300, 100), 200);
        assert_eq!(bound(-1e300, 100), -100);
        assert_eq!(bound(42.4, 100), 42);
    }
}
