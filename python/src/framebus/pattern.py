"""The synthetic test pattern's integrity stamp, checked in Python exactly as the Rust readers
check it (crates/common/src/pattern.rs), so a Python reader proves it got the whole, right
frame.

The synthetic source renders eight colour bars whose brightness follows a triangle wave that
scrolls down a few rows per frame, and stamps the frame id twice as 64 black/white cells (MSB
first, cells `width/64` px wide, even, 2..16): a band along the top rows and one along the
bottom rows. A frame checks out when both stamps read the header's frame id and 8 sampled rows
between them equal the pattern for that id. A torn frame (half of one frame, half of another)
or a stale one (recycled memory) fails.

    from framebus import pattern
    pattern.verify(frame)          # raises pattern.StampError on a mismatch

A `kind = "scene"` camera stamps its frames the same way but draws a scene between the stamps
(header flag bit 1, `FLAG_SCENE`): `verify` then checks the stamps only.
"""

from __future__ import annotations

import numpy as np

from ._config import FORMATS, fourcc_name

STAMP_BITS = 64
FLAG_SYNTHETIC_STAMP = 1 << 0
FLAG_SCENE = 1 << 1
VERIFIED_ROWS = 8
MIN_SIZE = (128, 64)

_BARS = np.array(
    [
        [235, 235, 235],
        [235, 235, 16],
        [16, 235, 235],
        [16, 235, 16],
        [235, 16, 235],
        [235, 16, 16],
        [16, 16, 235],
        [60, 60, 60],
    ],
    dtype=np.uint32,
)


class StampError(Exception):
    """A frame failed verification; the message says where."""


def stamp_cell(width: int) -> int:
    """Side of one stamp cell in pixels for a frame `width` wide (even, 2..16)."""
    return max(min(width // STAMP_BITS, 16) & ~1, 2)


def _round_half_away(x: np.ndarray) -> np.ndarray:
    """f32::round: half away from zero (values here are never negative)."""
    t = np.trunc(x)
    return t + (x - t >= np.float32(0.5))


class Pattern:
    """The precomputed pattern of one format and size (Rust `SyntheticPattern`)."""

    def __init__(self, pixel_format: str, width: int, height: int):
        if pixel_format not in FORMATS or pixel_format == "MJPG":
            raise ValueError(f"no synthetic pattern for {pixel_format}")
        if width < MIN_SIZE[0] or height < MIN_SIZE[1]:
            raise ValueError(f"no synthetic pattern below {MIN_SIZE[0]}x{MIN_SIZE[1]}")
        if pixel_format in ("YUYV", "NV12") and (width % 2 or height % 2):
            raise ValueError(f"{pixel_format} needs an even width and height")
        self.format = pixel_format
        self.width = width
        self.height = height
        self.cell = stamp_cell(width)
        self.stride = FORMATS[pixel_format][0](width)
        self.frame_bytes = FORMATS[pixel_format][1](width, height)
        self.bytes_per_px = {"BGR3": 3, "RGB3": 3, "YUYV": 2}.get(pixel_format, 1)
        self.row_bytes = width * self.bytes_per_px
        x = np.arange(width)
        self._bar = _BARS[(x % width) * 8 // width]  # (w, 3) RGB of each column's bar
        self._rows = {}
        # Where each stamp bit is sampled within a row (the green channel for BGR/RGB).
        bits = np.arange(STAMP_BITS)
        xs = bits * self.cell + self.cell // 2
        channel = 1 if self.bytes_per_px == 3 else 0
        self._stamp_x = xs * self.bytes_per_px + channel
        self._weights = np.array([1 << (63 - b) for b in range(STAMP_BITS)], dtype=object)

    def _row(self, y: int) -> np.ndarray:
        """Row `y` of the first plane of the double-height template."""
        key = y % self.height
        row = self._rows.get(key)
        if row is not None:
            return row
        h = max(self.height, 2)
        phase = (key % h) * 256 // h
        shade = 96 + (phase if phase < 128 else 255 - phase) * 159 // 128
        rgb = (self._bar * shade) // 255  # (w, 3)
        if self.format == "BGR3":
            row = rgb[:, ::-1].astype(np.uint8).reshape(-1)
        elif self.format == "RGB3":
            row = rgb.astype(np.uint8).reshape(-1)
        else:
            r, g, b = (rgb[:, i].astype(np.float32) for i in range(3))
            f = np.float32
            luma = np.clip(_round_half_away(f(0.299) * r + f(0.587) * g + f(0.114) * b), 0, 255).astype(np.uint8)
            if self.format in ("GREY", "NV12"):
                row = luma
            else:  # YUYV: Y U Y V ...
                u = np.clip(_round_half_away(f(128.0) - f(0.168736) * r - f(0.331264) * g + f(0.5) * b), 0, 255)
                v = np.clip(_round_half_away(f(128.0) + f(0.5) * r - f(0.418688) * g - f(0.081312) * b), 0, 255)
                chroma = np.where(np.arange(self.width) % 2 == 0, u, v).astype(np.uint8)
                row = np.empty(self.width * 2, dtype=np.uint8)
                row[0::2] = luma
                row[1::2] = chroma
        row.setflags(write=False)
        self._rows[key] = row
        return row

    def scroll(self, frame_id: int) -> int:
        """Scroll offset in rows of frame `frame_id` (even)."""
        step = max(self.height // 120, 1) * 2
        return (((frame_id % self.height) * step) % self.height) & ~1

    def read_stamp(self, payload: np.ndarray, y0: int) -> int:
        """The 64-bit value stamped in the band starting at row `y0`."""
        y = y0 + self.cell // 2
        at = y * self.stride + self._stamp_x
        values = payload[at] if at[-1] < payload.size else np.array(
            [payload[i] if i < payload.size else 0 for i in at]
        )
        bits = values >= 128
        return int(sum(int(w) for w, on in zip(self._weights, bits) if on))

    def verify(self, frame_id: int, payload, stamps_only: bool = False) -> None:
        """Checks a frame's bytes (`payload`: a 1-D uint8 array or bytes) against `frame_id`;
        raises StampError saying what differs. `stamps_only`: a scene's frame (the rows between
        the stamps are not the pattern)."""
        data = np.frombuffer(payload, dtype=np.uint8) if not isinstance(payload, np.ndarray) else payload.reshape(-1)
        if data.size < self.frame_bytes:
            raise StampError(f"payload has {data.size} bytes, the frame needs {self.frame_bytes}")
        top = self.read_stamp(data, 0)
        if top != frame_id:
            raise StampError(f"frame {frame_id}: top stamp reads {top}")
        bottom = self.read_stamp(data, self.height - self.cell)
        if bottom != frame_id:
            raise StampError(f"frame {frame_id}: bottom stamp reads {bottom}")
        if stamps_only:
            return
        first = self.cell
        span = self.height - 2 * self.cell
        scroll = self.scroll(frame_id)
        for i in range(VERIFIED_ROWS):
            row = first + i * span // VERIFIED_ROWS
            at = row * self.row_bytes
            if not np.array_equal(data[at : at + self.row_bytes], self._row(scroll + row)):
                raise StampError(f"frame {frame_id}: row {row} differs from the pattern")


_patterns = {}


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
    fmt = fourcc_name(frame.fourcc)
    stamps_only = bool(frame.flags & FLAG_SCENE)
    pattern_for(fmt, frame.width, frame.height).verify(frame.id, frame.data, stamps_only=stamps_only)
