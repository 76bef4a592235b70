"""A motion detector in Python: compares each frame with the previous one (OpenCV), publishes
the moving fraction of the image and the boxes around what moved as a result of the camera
(the preview draws them, other readers and `ctl` see them), and reports it in `ctl status`.

    pip install opencv-python-headless          # in the venv `scripts/bootstrap.sh` made
    python examples/python/motion.py --config configs/default.toml --camera cam0

To develop against something to find, run the scene camera (`ctl up --config
configs/scene.toml`): shapes moving on known paths over a still background, so the boxes this
publishes should follow them (the synthetic test pattern of default.toml changes everywhere in
every frame). `framebus_common::scene::Scene::object_box` says where each object is in a frame.

    python examples/python/motion.py --config configs/scene.toml --camera cam0

Or let `ctl up` run it, in the config:

    [[camera.reader]]
    name = "motion"
    command = ["../.venv/bin/python", "../examples/python/motion.py"]

`ctl status` lists it as `motion`; Ctrl-C, SIGTERM or `ctl stop cam0 motion` end it.
"""

import argparse
import json
import time

import cv2
import numpy as np

import framebus

# Frames are compared at this width: motion detection needs no full resolution.
WORK_WIDTH = 320


def grey(frame) -> np.ndarray:
    """The frame as an 8-bit grey image (OpenCV reads the shared memory in place)."""
    img = frame.image
    conversions = {
        "BGR3": cv2.COLOR_BGR2GRAY,
        "RGB3": cv2.COLOR_RGB2GRAY,
        "YUYV": cv2.COLOR_YUV2GRAY_YUYV,
        "NV12": cv2.COLOR_YUV2GRAY_NV12,
    }
    if frame.pixel_format in conversions:
        return cv2.cvtColor(img, conversions[frame.pixel_format])
    if frame.pixel_format == "MJPG":
        return cv2.imdecode(frame.data, cv2.IMREAD_GRAYSCALE)
    return img  # GREY


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", help="deployment config (default: FRAMEBUS_CONFIG or configs/default.toml)")
    parser.add_argument("--camera", help="camera name (default: FRAMEBUS_CAMERA or the only camera)")
    parser.add_argument("--role", help="role name in `ctl status` (default: FRAMEBUS_ROLE or `motion`)")
    parser.add_argument("--threshold", type=int, default=25, help="grey-level change that counts as motion")
    parser.add_argument("--min-area", type=int, default=20, help="smallest moving blob, pixels at work size")
    args = parser.parse_args()

    with framebus.open_camera(args.config, args.camera, role=args.role) as cam:
        previous = None
        last_print = 0.0
        for frame in cam.frames():
            g = grey(frame)
            scale = min(1.0, WORK_WIDTH / g.shape[1])
            small = cv2.resize(g, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
            small = cv2.GaussianBlur(small, (5, 5), 0)
            del g  # the frame's pixels are not kept past this iteration
            if previous is not None:
                diff = cv2.absdiff(small, previous)
                _, mask = cv2.threshold(diff, args.threshold, 255, cv2.THRESH_BINARY)
                motion = float(np.count_nonzero(mask)) / mask.size
                contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
                blobs = sorted((c for c in contours if cv2.contourArea(c) >= args.min_area), key=cv2.contourArea)
                boxes = []
                for c in reversed(blobs[-16:]):
                    x, y, w, h = cv2.boundingRect(c)
                    boxes.append({"x": x / scale, "y": y / scale, "w": w / scale, "h": h / scale,
                                  "label": "motion", "score": min(1.0, cv2.contourArea(c) / mask.size * 20)})
                cam.publish_result(frame, {"motion": round(motion, 4), "blobs": len(blobs)}, score=motion, boxes=boxes)
                cam.report(message=f"motion {motion:.3f}, {len(blobs)} blobs")
                if time.monotonic() - last_print >= 1.0:
                    print(json.dumps({"frame": frame.id, "motion": round(motion, 4), "blobs": len(blobs)}), flush=True)
                    last_print = time.monotonic()
            previous = small
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
