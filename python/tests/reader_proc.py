"""A Python reader process for the end-to-end tests: opens a camera through the framebus
package and works on each frame the way users' algorithms do (sleeping or burning CPU in pure
Python), printing JSON lines: `{"open": ...}` once serving, one `{"frame": ...}` per frame with
`--print-frames`, and `{"stopped": ..., "processed": ...}` when the loop has ended."""

import argparse
import json
import sys
import time

import framebus
from framebus import pattern


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--config", required=True)
    p.add_argument("--camera", default="cam0")
    p.add_argument("--role")
    p.add_argument("--policy")
    p.add_argument("--max-fps", type=float)
    p.add_argument("--work", choices=["none", "sleep", "busy"], default="none")
    p.add_argument("--seconds", type=float, default=0.0)
    p.add_argument("--verify", action="store_true", help="check the synthetic stamp of every frame")
    p.add_argument("--publish", action="store_true", help="publish a result about every frame")
    p.add_argument("--print-frames", action="store_true")
    args = p.parse_args()
    cam = framebus.open_camera(args.config, args.camera, role=args.role, policy=args.policy, max_fps=args.max_fps)
    with cam:
        print(json.dumps({"open": cam.role, "policy": str(cam.policy), "queue_depth": cam.queue_depth}), flush=True)
        torn = 0
        for frame in cam.frames():
            if args.print_frames:
                print(json.dumps({"frame": frame.id, "latency_us": frame.latency_ns // 1000}), flush=True)
            if args.verify:
                try:
                    pattern.verify(frame)
                except pattern.StampError as e:
                    torn += 1
                    print(json.dumps({"torn": frame.id, "error": str(e)}), flush=True)
            if args.publish:
                cam.publish_result(frame.id, {"mean": float(frame.image[::16, ::16].mean())}, score=0.5,
                                   boxes=[{"x": 1, "y": 2, "w": 3, "h": 4, "label": "thing", "score": 0.9}])
            if args.work == "sleep":
                time.sleep(args.seconds)
            elif args.work == "busy":
                until = time.monotonic() + args.seconds
                n = 0
                while time.monotonic() < until:  # pure Python: holds the GIL between switches
                    n += 1
        s = cam.stats()
        print(json.dumps({"stopped": cam.stop_reason, "processed": s["processed"], "torn": torn, "stats": s}),
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
