"""Counts a camera's frames: one line a second. `python examples/python/count_frames.py`"""
import time

import framebus

with framebus.open_camera() as cam:  # FRAMEBUS_CONFIG or configs/default.toml, the only camera
    count, since = 0, time.monotonic()
    for frame in cam.frames():  # until Ctrl-C or `ctl stop cam0 count_frames`
        count += 1
        if time.monotonic() - since >= 1.0:
            print(f"{count} frames/s, frame {frame.id} {frame.width}x{frame.height} {frame.pixel_format}", flush=True)
            count, since = 0, time.monotonic()
