//! Results across the link, without echoes: a process that publishes a result it received
//! from the link remembers it, and does not send it back when its own subscriber sees it.

use std::collections::VecDeque;

use framebus_common::results::ResultRecord;

/// Records this process published itself (by frame, run and publish time), the newest 256.
#[derive(Debug, Default)]
pub struct Echoes {
    recent: VecDeque<(u64, u64, u64)>,
}

impl Echoes {
    /// How many published records are remembered (the results queue is 64 deep).
    const KEPT: usize = 256;

    fn key(record: &ResultRecord) -> (u64, u64, u64) {
        (record.frame_id, record.run_id, record.publish_mono_ns)
    }

    /// Remembers a record about to be published.
    pub fn published(&mut self, record: &ResultRecord) {
        if self.recent.len() == Self::KEPT {
            self.recent.pop_front();
        }
        self.recent.push_back(Self::key(record));
    }

    /// Whether a received record is one this process published (then forgotten).
    pub fn is_echo(&mut self, record: &ResultRecord) -> bool {
        let key = Self::key(record);
        match self.recent.iter().position(|k| *k == key) {
            Some(i) => {
                self.recent.remove(i);
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record published here is recognised once; others are not.
    #[test]
    fn own_records_are_echoes_once() {
        let mut echoes = Echoes::default();
        let mine = ResultRecord { frame_id: 3, run_id: 1, publish_mono_ns: 99, ..ResultRecord::default() };
        let other = ResultRecord { frame_id: 3, run_id: 1, publish_mono_ns: 100, ..ResultRecord::default() };
        echoes.published(&mine);
        assert!(!echoes.is_echo(&other));
        assert!(echoes.is_echo(&mine));
        assert!(!echoes.is_echo(&mine));
    }
}
