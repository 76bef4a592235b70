"""The synthetic test pattern's integrity stamp, checked by the Rust check
(crates/common/src/pattern.rs), so a Python reader proves it got the whole, right frame.

The synthetic source renders eight colour bars whose brightness follows a triangle wave that
scrolls down a few rows per frame, and stamps the frame id twice as 64 black/white cells: a
band along the top rows and one along the bottom rows. A frame checks out when both stamps read
the header's frame id and 8 sampled rows between them equal the pattern for that id. A torn
frame (half of one frame, half of another) or a stale one (recycled memory) fails.

    from framebus import pattern
    pattern.verify(frame)          # raises pattern.StampError on a mismatch

A `kind = "scene"` camera stamps its frames the same way but draws a scene between the stamps
(header flag bit 1, `FLAG_SCENE`): `verify` then checks the stamps only.
"""

from __future__ import annotations

from . import _framebus

#: Header flag bit 0: the frame carries the synthetic integrity stamp.
FLAG_SYNTHETIC_STAMP = _framebus.FLAG_SYNTHETIC_STAMP
#: Header flag bit 1: a scene is drawn between the stamps (only the stamps are checked).
FLAG_SCENE = _framebus.FLAG_SCENE


class StampError(Exception):
    """A frame failed verification; the message says where."""


class Pattern:
    """The pattern of one format and size (Rust `SyntheticPattern`)."""

    def __init__(self, pixel_format: str, width: int, height: int):
        self.format = pixel_format
        self.width = width
        self.height = height
        self._rust = _framebus.Pattern(pixel_format, width, height)
        #: Bytes of one frame.
        self.frame_bytes = self._rust.frame_bytes

    def verify(self, frame_id: int, payload, stamps_only: bool = False) -> None:
        """Checks a frame's bytes (`payload`: a contiguous uint8 array or bytes) against
        `frame_id`; raises StampError saying what differs. `stamps_only`: a scene's frame (the
        rows between the stamps are not the pattern)."""
        problem = self._rust.check(frame_id, payload, stamps_only)
        if problem is not None:
            raise StampError(f"frame {frame_id}: {problem}")


_patterns: dict = {}


def pattern_for(pixel_format: str, width: int, height: int) -> Pattern:
    """The (cached) pattern of a format and size."""
    key = (pixel_format, width, height)
    found = _patterns.get(key)
    if found is None:
        found = _patterns[key] = Pattern(pixel_format, width, height)
    return found


def verify(frame) -> None:
    """Checks a framebus frame (from `Camera.frames()`) carrying the synthetic stamp; raises
    StampError when it is torn or not the frame its header says. A scene's frame (flag
    `FLAG_SCENE`) is checked by its stamps only."""
    stamps_only = bool(frame.flags & FLAG_SCENE)
    pattern_for(frame.pixel_format, frame.width, frame.height).verify(frame.id, frame.data, stamps_only)
