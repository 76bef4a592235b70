//! What crosses the link: the fixed records framebus already defines (frame header, access-unit
//! header, result, control request and reply), sent as their documented little-endian byte
//! layouts, after an 8-byte message sequence number where the receiver counts lost messages.
//!
//! Frames: `seq (u64) | FrameHeader (88 bytes) | pixels`. Encoded video:
//! `seq | AccessUnitHeader (80) | access unit`. Results (both ways): `seq | ResultRecord (1880)`.
//! Events: `seq | one events-journal record as its JSON line (UTF-8)`.
//! Control (a Zenoh query): `role (NUL-terminated ASCII) | ControlRequest (280)`, the reply a
//! `ControlReply` (1432).

use framebus_common::encoded::AccessUnitHeader;
use framebus_common::protocol::{ControlReply, ControlRequest};
use framebus_common::results::ResultRecord;
use framebus_common::FrameHeader;

/// A `#[repr(C)]` record of integers, floats and byte arrays without implicit padding, whose
/// documented layout is checked by a test in `framebus-common`.
///
/// # Safety
/// Implement only for such types: every byte of the value is initialised (no padding) and every
/// byte pattern of the right length is a valid value.
pub unsafe trait Plain: Copy + 'static {}

// SAFETY: each type's layout test in framebus-common checks every field's documented offset and
// the total size, which leaves no room for padding; all fields are integers, floats or byte
// arrays, valid for any bit pattern.
unsafe impl Plain for FrameHeader {}
// SAFETY: as above (encoded.rs layout test).
unsafe impl Plain for AccessUnitHeader {}
// SAFETY: as above (results.rs layout test).
unsafe impl Plain for ResultRecord {}
// SAFETY: as above (protocol.rs layout tests).
unsafe impl Plain for ControlRequest {}
// SAFETY: as above (protocol.rs layout tests).
unsafe impl Plain for ControlReply {}

/// The bytes of a record.
pub fn bytes_of<T: Plain>(value: &T) -> &[u8] {
    // SAFETY: `T: Plain` has no padding, so all its `size_of::<T>()` bytes are initialised; the
    // slice borrows `value` and cannot outlive it.
    unsafe { core::slice::from_raw_parts((value as *const T).cast::<u8>(), core::mem::size_of::<T>()) }
}

/// A record read from the start of `bytes`, and the rest; `None` when `bytes` is too short.
pub fn read<T: Plain>(bytes: &[u8]) -> Option<(T, &[u8])> {
    let size = core::mem::size_of::<T>();
    if bytes.len() < size {
        return None;
    }
    // SAFETY: at least `size` bytes are readable; `read_unaligned` needs no alignment, and every
    // bit pattern is a valid `T` (`Plain`).
    let value = unsafe { core::ptr::read_unaligned(bytes.as_ptr().cast::<T>()) };
    Some((value, &bytes[size..]))
}

/// A message: its sequence number, then `record`, then `payload`.
pub fn message<T: Plain>(seq: u64, record: &T, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + core::mem::size_of::<T>() + payload.len());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(bytes_of(record));
    out.extend_from_slice(payload);
    out
}

/// A message carrying text (an events-journal record): its sequence number, then the text.
pub fn text_message(seq: u64, text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + text.len());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(text.as_bytes());
    out
}

/// A text message's sequence number and text; `None` when it is too short or not UTF-8.
pub fn parse_text(bytes: &[u8]) -> Option<(u64, &str)> {
    let seq = u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?);
    Some((seq, std::str::from_utf8(&bytes[8..]).ok()?))
}

/// A message's sequence number, record and payload; `None` when it is too short.
pub fn parse<T: Plain>(bytes: &[u8]) -> Option<(u64, T, &[u8])> {
    let seq = u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?);
    let (record, rest) = read::<T>(&bytes[8..])?;
    Some((seq, record, rest))
}

/// Counts messages lost between a sender's sequence numbers (a restarted sender starts again
/// at 1, which is not a loss).
#[derive(Debug, Default, Clone, Copy)]
pub struct LossCounter {
    last: Option<u64>,
    /// Messages lost so far.
    pub lost: u64,
}

impl LossCounter {
    /// The last sequence number seen.
    pub fn last(&self) -> Option<u64> {
        self.last
    }

    /// Counts `seq`; returns how many were lost just before it.
    pub fn see(&mut self, seq: u64) -> u64 {
        let gap = match self.last {
            Some(last) if seq > last => seq - last - 1,
            _ => 0,
        };
        self.last = Some(seq);
        self.lost += gap;
        gap
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A frame message round-trips; a short one is refused; gaps are counted, restarts not.
    #[test]
    fn messages_round_trip_and_losses_are_counted() {
        let header = FrameHeader { frame_id: 7, width: 4, height: 2, payload_len: 3, ..FrameHeader::default() };
        let bytes = message(42, &header, &[1, 2, 3]);
        let (seq, back, payload) = parse::<FrameHeader>(&bytes).expect("parses");
        assert_eq!((seq, back, payload), (42, header, &[1u8, 2, 3][..]));
        assert!(parse::<FrameHeader>(&bytes[..50]).is_none());
        let mut loss = LossCounter::default();
        assert_eq!([1, 2, 5, 6, 1, 2].map(|s| loss.see(s)), [0, 0, 2, 0, 0, 0]);
        assert_eq!(loss.lost, 2);
    }

    /// A text message round-trips; a short one or one that is not UTF-8 is refused.
    #[test]
    fn text_messages_round_trip_and_bad_ones_are_refused() {
        let bytes = text_message(9, r#"{"type":"clip-started"}"#);
        assert_eq!(parse_text(&bytes), Some((9, r#"{"type":"clip-started"}"#)));
        assert_eq!(parse_text(&bytes[..7]), None);
        let mut bad = text_message(1, "ok");
        bad.push(0xff);
        assert_eq!(parse_text(&bad), None);
    }
}
