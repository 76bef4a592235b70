//! The results the preview draws: the newest results of each producer, matched to the frame
//! shown (the latest result about that frame or an earlier one of the same capture run), and
//! dropped once they are older than `result-max-age-ms` relative to the frame.

use std::collections::{BTreeMap, VecDeque};

use framebus::Outcome;
use framebus_common::FrameHeader;
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
