"""`python -m framebus._bench <config> <frames> [policy]`: the Python reader of `just bench`
(bins/bench). Reads through the package's reader loop (policy `every` unless given), records
publish → frame-in-hand latency, verifies every frame's integrity stamp (torn) and that ids only
rise (stale), measures its CPU from the first frame on, and prints one JSON line, as the Rust
bench reader does."""

import json
import os
import resource
import sys
import time

from . import open_camera, pattern


def _cpu_secs() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _percentile(sorted_values, p):
    if not sorted_values:
        return 0
    rank = int((p / 100.0) * (len(sorted_values) - 1) + 0.5)
    return sorted_values[min(rank, len(sorted_values) - 1)]


def main(argv) -> int:
    config, frames = argv[0], int(argv[1])
    policy = argv[2] if len(argv) > 2 else "every"
    with open_camera(config, "bench", role=f"pybench-{os.getpid()}", policy=policy) as cam:
        check = pattern.pattern_for(cam.config.pixel_format, cam.config.width, cam.config.height)
        latencies = []
        seen = torn = stale = last = 0
        cpu0 = wall0 = None
        deadline = time.monotonic() + 120
        while last < frames and time.monotonic() < deadline:
            frame = cam.next_frame(timeout=0.5)
            if frame is None:
                if cam.stop_reason is not None:
                    break
                continue
            in_hand = time.monotonic_ns()
            if cpu0 is None:
                cpu0, wall0 = _cpu_secs(), time.monotonic()
            latencies.append((in_hand - frame.publish_ns) // 1000)
            if frame.id <= last:
                stale += 1
            last = frame.id
            try:
                check.verify(frame.id, frame.data)
            except pattern.StampError:
                torn += 1
            seen += 1
        cpu = _cpu_secs() - cpu0 if cpu0 is not None else 0.0
        wall = time.monotonic() - wall0 if wall0 is not None else 0.0
        stats = cam.stats()
    latencies.sort()
    print(
        json.dumps(
            {
                "frames": seen,
                "last_id": last,
                "torn": torn,
                "stale": stale,
                "skipped": stats["skipped"],
                "overwritten": stats["overwritten"],
                "latency_p50_us": _percentile(latencies, 50),
                "latency_p99_us": _percentile(latencies, 99),
                "cpu_secs": cpu,
                "cpu_percent": 100.0 * cpu / wall if wall > 0 else 0.0,
            }
        ),
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
