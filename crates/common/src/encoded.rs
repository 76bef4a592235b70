//! Encoded video on the bus: the H.264 access units a camera's streamer encodes, published with
//! the frame id they were encoded from on `framebus/<dep>/<cam>/encoded` (`[u8]` payload, one
//! Annex-B access unit, with an [`AccessUnitHeader`] user header). Every consumer of the H.264
//! reads it here, never over the network: the media server (one subscriber per camera, fanning
//! the stream out to RTSP and WebRTC viewers) and the recorder with `video = "stream"` (writing
//! it into its segments instead of encoding a second time). The streamer publishes it whenever
//! the camera has a `[camera.streamer]` table.
//!
//! The header is a fixed `#[repr(C)]` record (docs/streaming.md lists its layout); bump
//! [`ACCESS_UNIT_VERSION`] and the type name together when it changes.

use iceoryx2::prelude::ZeroCopySend;

/// Version of the [`AccessUnitHeader`] layout; readers skip records of another version.
pub const ACCESS_UNIT_VERSION: u32 = 1;

/// Flag bit: the access unit is a key frame (IDR, with SPS/PPS in front): a decoder and a
/// segment can start here.
pub const AU_FLAG_KEY_FRAME: u32 = 1 << 0;

/// Subscribers of the encoded service taken by the camera's recorder (`video = "stream"`).
pub const ENCODED_RECORDER_SUBSCRIBERS: usize = 1;
/// Subscribers taken by the deployment's media server (one per camera it serves).
pub const ENCODED_MEDIA_SERVER_SUBSCRIBERS: usize = 1;
/// Subscribers kept for a bridge to other hosts (not built yet; reserved so that adding it
/// does not change the service's settings).
pub const ENCODED_BRIDGE_SUBSCRIBERS: usize = 1;
/// Subscribers of a camera's encoded service: the one place this is derived (recorder + media
/// server + bridge). A consumer that restarts finds its dead predecessor's port removed when its
/// node is created (`ipc::create_node`), so no slot is kept for restart overlap.
pub const ENCODED_MAX_SUBSCRIBERS: usize =
    ENCODED_RECORDER_SUBSCRIBERS + ENCODED_MEDIA_SERVER_SUBSCRIBERS + ENCODED_BRIDGE_SUBSCRIBERS;
/// Nodes that may open a camera's encoded service: the streamer, each subscriber, and one more
/// for a process restarting while its dead predecessor is still registered.
pub const ENCODED_MAX_NODES: usize = 1 + ENCODED_MAX_SUBSCRIBERS + 1;

/// Metadata of one access unit (80 bytes, 8-byte aligned, no implicit padding).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, ZeroCopySend)]
#[type_name("framebus::AccessUnitHeaderV1")]
pub struct AccessUnitHeader {
    /// [`ACCESS_UNIT_VERSION`] (offset 0).
    pub layout_version: u32,
    /// [`AU_FLAG_KEY_FRAME`] (offset 4).
    pub flags: u32,
    /// Id of the frame this access unit encodes (offset 8).
    pub frame_id: u64,
    /// Capture time of that frame, CLOCK_MONOTONIC ns (offset 16).
    pub capture_mono_ns: u64,
    /// Presentation time in the encoder's clock, ns (offset 24).
    pub pts_ns: u64,
    /// Decoding time in the encoder's clock, ns; equals `pts_ns` without B-frames (offset 32).
    pub dts_ns: u64,
    /// Encoded picture size in pixels (offset 40, 44).
    pub width: u32,
    /// See `width`.
    pub height: u32,
    /// Encoder run: differs each time the streamer starts an encoder (a restart, a reconnect);
    /// a new run starts with a key frame, and the recorder starts a new segment (offset 48).
    pub run: u64,
    /// Index of this access unit within its run, from 0 and rising by one for every access
    /// unit the encoder produced, published or not: a gap means access units were lost and a
    /// decoder must wait for the next key frame. (Frame ids may skip where the streamer did not
    /// encode a frame; that breaks nothing.) (offset 56)
    pub sequence: u64,
    /// Bytes of the access unit in the payload (offset 64).
    pub payload_len: u32,
    /// Reserved, zero (offset 68).
    pub reserved: u32,
    /// Capture time of the frame, CLOCK_REALTIME ns (offset 72).
    pub capture_realtime_ns: u64,
}

impl AccessUnitHeader {
    /// Whether this access unit is a key frame.
    pub fn is_key_frame(&self) -> bool {
        self.flags & AU_FLAG_KEY_FRAME != 0
    }
}

/// How the encoded service of a camera is sized (derived from the config only, so the
/// streamer and the recorder open it alike).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncodedLayout {
    /// Largest access unit in bytes: half a byte per pixel, at least 256 KiB (a 1080p key
    /// frame at 4 Mbit/s is ~100 KiB); a larger one is not published and counted by the
    /// streamer. Samples start at [`EncodedLayout::initial_au_bytes`] and grow (power of two)
    /// up to this as larger access units come.
    pub max_au_bytes: usize,
    /// First sample size in bytes.
    pub initial_au_bytes: usize,
    /// Queue of the subscriber: one second of access units (the recorder drains it at every
    /// frame and timer).
    pub queue: usize,
}

impl EncodedLayout {
    /// The encoded-service layout of a camera of `width` x `height` pixels at `fps` (30 when
    /// not positive); a camera's is [`crate::config::CameraConfig::encoded_layout`].
    pub fn of(width: u32, height: u32, fps: f64) -> EncodedLayout {
        let pixels = width as usize * height as usize;
        let fps = if fps > 0.0 { fps.ceil() as usize } else { 30 };
        EncodedLayout {
            max_au_bytes: (pixels / 2).max(256 * 1024),
            initial_au_bytes: 64 * 1024,
            queue: fps.clamp(8, 128),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The layout is the documented one (docs/streaming.md).
    #[test]
    fn access_unit_layout_matches_the_documented_offsets() {
        use core::mem::{align_of, offset_of, size_of};
        assert_eq!(size_of::<AccessUnitHeader>(), 80);
        assert_eq!(align_of::<AccessUnitHeader>(), 8);
        assert_eq!(offset_of!(AccessUnitHeader, flags), 4);
        assert_eq!(offset_of!(AccessUnitHeader, frame_id), 8);
        assert_eq!(offset_of!(AccessUnitHeader, capture_mono_ns), 16);
        assert_eq!(offset_of!(AccessUnitHeader, pts_ns), 24);
        assert_eq!(offset_of!(AccessUnitHeader, dts_ns), 32);
        assert_eq!(offset_of!(AccessUnitHeader, width), 40);
        assert_eq!(offset_of!(AccessUnitHeader, height), 44);
        assert_eq!(offset_of!(AccessUnitHeader, run), 48);
        assert_eq!(offset_of!(AccessUnitHeader, sequence), 56);
        assert_eq!(offset_of!(AccessUnitHeader, payload_len), 64);
        assert_eq!(offset_of!(AccessUnitHeader, reserved), 68);
        assert_eq!(offset_of!(AccessUnitHeader, capture_realtime_ns), 72);
    }
}
