"""A reader's accounting and status statistics, mirroring the Rust reader loop exactly
(crates/framebus/src/accounting.rs, crates/common/src/stats.rs), so `ctl status` means the
same for a Python reader as for a Rust one.

Over every frame published since the reader attached:
`processed + skipped + overwritten == published`, up to the frames still in its queue.
"""

from __future__ import annotations

import math
import time

WINDOW_CAPACITY = 4096


def _round_half_away(x: float) -> int:
    """Rust's `f64::round` (half away from zero) for non-negative x."""
    return int(math.floor(x + 0.5))


class LatencyWindow:
    """A bounded window of latency samples (µs) with percentiles (Rust `LatencyWindow`)."""

    def __init__(self):
        self.samples_us: list[int] = []
        self._sorted_len = 0

    def record_ns(self, latency_ns: int) -> None:
        us = latency_ns // 1000
        if len(self.samples_us) < WINDOW_CAPACITY:
            self.samples_us.append(us)
        else:
            self.samples_us[(us ^ self._sorted_len) % WINDOW_CAPACITY] = us

    def percentile_us(self, p: float):
        if not self.samples_us:
            return None
        ordered = sorted(self.samples_us)
        self._sorted_len = len(ordered)
        rank = _round_half_away((p / 100.0) * (len(ordered) - 1))
        return ordered[min(rank, len(ordered) - 1)]

    def clear(self) -> None:
        self.samples_us.clear()


class StatusWindow:
    """Frame rate and latency percentiles over consecutive windows (Rust `StatusWindow`): a
    status request reports the last complete window."""

    def __init__(self, period: float):
        self.period = period
        self.since = time.monotonic()
        self.frames_at_start = 0
        self.latency = LatencyWindow()
        self.fps = 0.0
        self.p50_us = None
        self.p99_us = None

    def record_ns(self, latency_ns: int) -> None:
        self.latency.record_ns(latency_ns)

    def roll(self, frames: int) -> None:
        elapsed = time.monotonic() - self.since
        if elapsed < self.period:
            return
        self.fps = max(frames - self.frames_at_start, 0) / elapsed
        self.p50_us = self.latency.percentile_us(50.0)
        self.p99_us = self.latency.percentile_us(99.0)
        self.latency.clear()
        self.frames_at_start = frames
        self.since = time.monotonic()


class Accounting:
    """Where every frame published since the reader attached went (Rust `Accounting`)."""

    def __init__(self, policy_name: str):
        self.policy_name = policy_name
        self.processed = 0
        self.skipped = 0
        self.overwritten = 0
        self.driver_drops = 0
        self.capture_restarts = 0
        self.out_of_order = 0
        # (run_id, first_id, last_id, source_drops) of the current capture run, once seen.
        self.run = None

    def received(self, run_id: int, frame_id: int, source_drops: int) -> None:
        """Counts a frame taken from the queue, before the policy decides on it."""
        if self.run is None:
            # Attached mid-run: frames before this one were published before the reader.
            self.run = [run_id, frame_id, frame_id, source_drops]
            lost = 0
        elif self.run[0] != run_id:
            # Capture restarted: ids start at 1 again; the new run's earlier frames were lost.
            self.capture_restarts += 1
            self.driver_drops += source_drops
            self.run = [run_id, 1, frame_id, source_drops]
            lost = max(frame_id - 1, 0)
        elif frame_id > self.run[2]:
            lost = frame_id - self.run[2] - 1
            self.driver_drops += max(source_drops - self.run[3], 0)
            self.run[2] = frame_id
            self.run[3] = source_drops
        else:
            self.out_of_order += 1
            lost = 0
        if self.policy_name == "every":
            self.overwritten += lost
        else:
            self.skipped += lost

    def published(self) -> int:
        return self.processed + self.skipped + self.overwritten

    @property
    def first_frame_id(self) -> int:
        return self.run[1] if self.run else 0

    @property
    def last_frame_id(self) -> int:
        return self.run[2] if self.run else 0
