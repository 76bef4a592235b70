//! The frame header: the fixed, `#[repr(C)]` record carried with every frame as the iceoryx2
//! user header. Its byte layout is a contract with every reader, in any language; see
//! docs/frame-header.md before changing it, and bump [`FRAME_HEADER_VERSION`].

use iceoryx2::prelude::ZeroCopySend;

use crate::format::PixelFormat;

/// Version of the [`FrameHeader`] layout. Readers reject frames with another version.
pub const FRAME_HEADER_VERSION: u32 = 1;

/// Flag bit: the payload carries the synthetic integrity stamp (see [`crate::pattern`]).
pub const FLAG_SYNTHETIC_STAMP: u32 = 1 << 0;

/// Flag bit, set with [`FLAG_SYNTHETIC_STAMP`]: the picture between the stamps is a scene
/// (`kind = "scene"`, see [`crate::scene`]), not the test pattern, so readers check the stamps
/// only ([`crate::pattern::verify_stamps`]).
pub const FLAG_SCENE: u32 = 1 << 1;

/// Flag bit: frames of the source are missing just before this one (an imported camera's link
/// was cut, messages were lost on it, or its sender restarted). Readers report it as a gap
/// (`framebus::Event::Gap`) before handing out the frame.
pub const FLAG_GAP_BEFORE: u32 = 1 << 2;

/// Metadata of one frame, written by capture into the sample's user header.
///
/// All integers are little-endian (the host order of every supported target), the struct is
/// 88 bytes with 8-byte alignment and no implicit padding.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, ZeroCopySend)]
#[type_name("framebus::FrameHeader")]
pub struct FrameHeader {
    /// Layout version, always [`FRAME_HEADER_VERSION`] for this struct (offset 0).
    pub layout_version: u32,
    /// `size_of::<FrameHeader>()` as written by the producer (offset 4).
    pub header_size: u32,
    /// Frame id assigned by capture: starts at 1 and rises by one per published frame, across
    /// source reconnects (offset 8).
    pub frame_id: u64,
    /// Sequence number reported by the source (driver sequence for V4L2, frame index within the
    /// file for file sources, equal to a counter for synthetic) (offset 16).
    pub sequence: u64,
    /// Capture time on CLOCK_MONOTONIC in nanoseconds (offset 24).
    pub capture_mono_ns: u64,
    /// Capture time on CLOCK_REALTIME in nanoseconds since the Unix epoch (offset 32).
    pub capture_realtime_ns: u64,
    /// CLOCK_MONOTONIC nanoseconds right before the sample was sent (offset 40).
    pub publish_mono_ns: u64,
    /// Width in pixels (offset 48).
    pub width: u32,
    /// Height in pixels (offset 52).
    pub height: u32,
    /// Bytes per row of the first plane; 0 for compressed formats (offset 56).
    pub stride: u32,
    /// Pixel format as a V4L2-style fourcc, little-endian (`b"BGR3"` → 0x33524742) (offset 60).
    pub pixel_format: u32,
    /// Number of valid payload bytes in the sample (offset 64).
    pub payload_len: u32,
    /// Bit flags, see `FLAG_*` constants (offset 68).
    pub flags: u32,
    /// Frames the source itself dropped so far (driver sequence gaps), cumulative (offset 72).
    pub source_drops: u64,
    /// Identifies one run of the capture process (its start time on CLOCK_REALTIME in ns):
    /// when it changes, capture restarted and frame ids started again at 1 (offset 80).
    pub run_id: u64,
}

impl FrameHeader {
    /// The pixel format, if it is one framebus knows.
    pub fn format(&self) -> Option<PixelFormat> {
        PixelFormat::from_fourcc(self.pixel_format)
    }

    /// Whether this header was written with the layout this build understands.
    pub fn is_current_layout(&self) -> bool {
        self.layout_version == FRAME_HEADER_VERSION && self.header_size as usize == core::mem::size_of::<FrameHeader>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::{align_of, offset_of, size_of};

    /// The documented byte layout (docs/frame-header.md) is what the compiler produces.
    #[test]
    fn header_layout_matches_the_documented_offsets() {
        assert_eq!(size_of::<FrameHeader>(), 88);
        assert_eq!(align_of::<FrameHeader>(), 8);
        let offsets = [
            (offset_of!(FrameHeader, layout_version), 0),
            (offset_of!(FrameHeader, header_size), 4),
            (offset_of!(FrameHeader, frame_id), 8),
            (offset_of!(FrameHeader, sequence), 16),
            (offset_of!(FrameHeader, capture_mono_ns), 24),
            (offset_of!(FrameHeader, capture_realtime_ns), 32),
            (offset_of!(FrameHeader, publish_mono_ns), 40),
            (offset_of!(FrameHeader, width), 48),
            (offset_of!(FrameHeader, height), 52),
            (offset_of!(FrameHeader, stride), 56),
            (offset_of!(FrameHeader, pixel_format), 60),
            (offset_of!(FrameHeader, payload_len), 64),
            (offset_of!(FrameHeader, flags), 68),
            (offset_of!(FrameHeader, source_drops), 72),
            (offset_of!(FrameHeader, run_id), 80),
        ];
        for (actual, documented) in offsets {
            assert_eq!(actual, documented);
        }
    }

    /// The type name other languages must declare is stable, not a Rust module path.
    #[test]
    fn header_type_name_is_stable() {
        // SAFETY: type_name only returns a static string.
        assert_eq!(unsafe { <FrameHeader as ZeroCopySend>::type_name() }, "framebus::FrameHeader");
    }
}
