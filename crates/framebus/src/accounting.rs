//! Where every frame published since a reader attached went: processed, skipped by the policy,
//! or overwritten in the queue; plus the frames the driver dropped (never published).
//!
//! Frame ids rise by one per published frame within a capture run, so a gap between two frames
//! a reader received is frames it never saw: they were dropped from its queue because it was
//! full. For a `newest` or `max-fps` reader that is the policy at work (a newer frame replaced
//! an older one) and counts as skipped; for an `every` reader it is a loss and counts as
//! overwritten. Hence, over every frame published since the reader attached:
//! `processed + skipped + overwritten == published`, minus the frames still in its queue.

use framebus_common::{FrameHeader, ReaderPolicy};

/// The frame ids of one capture run as the reader saw them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RunIds {
    /// The capture run (its start time).
    pub run_id: u64,
    /// First frame id seen in this run (counted from here on).
    pub first_id: u64,
    /// Last frame id seen.
    pub last_id: u64,
    /// The source's cumulative drop count in the last header seen.
    pub source_drops: u64,
}

/// A reader's counters (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Accounting {
    /// The reader's policy (decides whether queue gaps are skipped or overwritten).
    pub policy: ReaderPolicy,
    /// Frames handed to the reader's code.
    pub processed: u64,
    /// Frames released unread by the policy, and (newest, max-fps) queue gaps.
    pub skipped: u64,
    /// Queue gaps of an `every` reader.
    pub overwritten: u64,
    /// Frames the source dropped while the reader was attached.
    pub driver_drops: u64,
    /// Times the frame ids started a new capture run while attached.
    pub capture_restarts: u64,
    /// Frames whose id was not above the previous one in the same run (must stay 0).
    pub out_of_order: u64,
    /// The current run, once a frame was seen.
    pub run: Option<RunIds>,
}

impl Accounting {
    /// Nothing seen yet.
    pub fn new(policy: ReaderPolicy) -> Accounting {
        Accounting {
            policy,
            processed: 0,
            skipped: 0,
            overwritten: 0,
            driver_drops: 0,
            capture_restarts: 0,
            out_of_order: 0,
            run: None,
        }
    }

    /// Counts a frame taken from the queue (before the policy decides on it): the frames
    /// between it and the previous one were lost in the queue.
    pub fn received(&mut self, header: &FrameHeader) {
        let id = header.frame_id;
        let lost = match &mut self.run {
            None => {
                // Attached mid-run: frames before this one were published before the reader.
                self.run = Some(RunIds {
                    run_id: header.run_id,
                    first_id: id,
                    last_id: id,
                    source_drops: header.source_drops,
                });
                0
            }
            Some(run) if run.run_id != header.run_id => {
                // Capture restarted while attached: its ids start at 1 again, and the new run's
                // frames before this one were published while the reader was attached.
                self.capture_restarts += 1;
                self.driver_drops += header.source_drops;
                *run = RunIds { run_id: header.run_id, first_id: 1, last_id: id, source_drops: header.source_drops };
                id.saturating_sub(1)
            }
            Some(run) if id > run.last_id => {
                let lost = id - run.last_id - 1;
                self.driver_drops += header.source_drops.saturating_sub(run.source_drops);
                run.last_id = id;
                run.source_drops = header.source_drops;
                lost
            }
            Some(_) => {
                self.out_of_order += 1;
                0
            }
        };
        match self.policy {
            ReaderPolicy::Every => self.overwritten += lost,
            ReaderPolicy::Newest | ReaderPolicy::MaxFps(_) => self.skipped += lost,
        }
    }

    /// The frame last received was handed to the reader's code.
    pub fn processed(&mut self) {
        self.processed += 1;
    }

    /// The frame last received was released unread by the policy.
    pub fn skipped(&mut self) {
        self.skipped += 1;
    }

    /// Frames accounted for since the reader attached: processed + skipped + overwritten.
    pub fn published(&self) -> u64 {
        self.processed + self.skipped + self.overwritten
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(run_id: u64, frame_id: u64, source_drops: u64) -> FrameHeader {
        FrameHeader { run_id, frame_id, source_drops, ..FrameHeader::default() }
    }

    /// An `every` reader: gaps are overwritten frames; the identity holds over the ids seen.
    #[test]
    fn gaps_of_an_every_reader_are_overwritten() {
        let mut acc = Accounting::new(ReaderPolicy::Every);
        for id in [100, 101, 105, 106] {
            acc.received(&header(7, id, 0));
            acc.processed();
        }
        assert_eq!((acc.processed, acc.skipped, acc.overwritten), (4, 0, 3));
        assert_eq!(acc.published(), 106 - 100 + 1);
    }

    /// A `newest` reader: gaps and drained frames are both skipped by its policy.
    #[test]
    fn gaps_and_drains_of_a_newest_reader_are_skipped() {
        let mut acc = Accounting::new(ReaderPolicy::Newest);
        acc.received(&header(1, 1, 0));
        acc.processed();
        acc.received(&header(1, 4, 0)); // 2, 3 overflowed
        acc.skipped(); // drained: a newer one was queued
        acc.received(&header(1, 5, 0));
        acc.processed();
        assert_eq!((acc.processed, acc.skipped, acc.overwritten), (2, 3, 0));
        assert_eq!(acc.published(), 5);
    }

    /// A capture restart counts the new run's earlier frames as lost and adds its drops.
    #[test]
    fn a_capture_restart_starts_a_new_run() {
        let mut acc = Accounting::new(ReaderPolicy::Every);
        acc.received(&header(1, 10, 2));
        acc.processed();
        acc.received(&header(1, 11, 5));
        acc.processed();
        acc.received(&header(2, 3, 1));
        acc.processed();
        assert_eq!(acc.capture_restarts, 1);
        assert_eq!(acc.driver_drops, 3 + 1);
        assert_eq!(acc.overwritten, 2);
        assert_eq!(acc.published(), 2 + 3);
        acc.received(&header(2, 3, 1));
        assert_eq!(acc.out_of_order, 1);
    }
}
