"""Frames read from Python, against a real capture process: in order, integrity stamp on every
frame, read-only and zero-copy views into the shared-memory mapping, and images that never show
another frame's (recycled) memory."""

import ctypes
import gc
import os

import numpy as np
import pytest

import framebus
from framebus import pattern

from conftest import synthetic_camera

FRAMES = 60


def _mapping_of(address: int):
    """The /proc/self/maps line (start, end, perms, path) holding `address`."""
    with open("/proc/self/maps") as maps:
        for line in maps:
            parts = line.split(maxsplit=5)
            lo, hi = (int(x, 16) for x in parts[0].split("-"))
            if lo <= address < hi:
                return lo, hi, parts[1], parts[5].strip() if len(parts) > 5 else ""
    return None


@pytest.mark.parametrize("fmt", ["BGR3", "RGB3", "GREY", "YUYV", "NV12"])
def test_frames_arrive_in_order_and_every_stamp_checks_out(deployment, fmt):
    d = deployment(synthetic_camera(fmt=fmt, width=320, height=240, fps=60))
    capture = d.capture()
    with framebus.open_camera(d.config, "cam0", role="inorder", policy="every") as cam:
        assert cam.queue_depth == cam.config.slot_layout().max_queue_depth
        ids = []
        for frame in cam.frames():
            assert frame.pixel_format == fmt
            assert (frame.width, frame.height) == (320, 240)
            assert frame.flags & 1, "synthetic frames carry the stamp flag"
            pattern.verify(frame)  # raises on a torn or stale frame
            assert frame.publish_ns >= frame.capture_ns > 0
            ids.append(frame.id)
            if len(ids) == FRAMES:
                break
        stats = cam.stats()
    assert all(b > a for a, b in zip(ids, ids[1:])), ids
    # Every published frame since attaching is accounted for: processed or overwritten (every).
    assert stats["processed"] == FRAMES
    assert stats["processed"] + stats["overwritten"] == ids[-1] - ids[0] + 1
    assert stats["skipped"] == 0 and stats["out_of_order"] == 0
    capture.terminate()
    d.assert_no_leftovers()


def test_a_corrupted_frame_fails_the_stamp_check(deployment):
    """The check can fail: a frame with another frame's lower half, or a wrong id."""
    d = deployment(synthetic_camera())
    capture = d.capture()
    with framebus.open_camera(d.config, "cam0", role="torn") as cam:
        frames = cam.frames()
        first = next(frames)
        a = first.image.copy()
        second = next(frames)
        b = second.image.copy()
        p = pattern.pattern_for("BGR3", 640, 480)
        p.verify(second.id, b)
        torn = a.copy()
        torn[240:] = b[240:]
        with pytest.raises(pattern.StampError, match="bottom stamp"):
            p.verify(first.id, torn)
        with pytest.raises(pattern.StampError, match="top stamp"):
            p.verify(second.id + 1, b)
        frames.close()
    capture.terminate()
    d.assert_no_leftovers()


def test_images_are_read_only_zero_copy_views_into_shared_memory(deployment):
    d = deployment(synthetic_camera())
    capture = d.capture()
    prefix = framebus.iceoryx2_settings(d.name)["prefix"]
    with framebus.open_camera(d.config, "cam0", role="zerocopy") as cam:
        frame = cam.next_frame()
        img = frame.image
        assert img.shape == (480, 640, 3) and img.dtype == np.uint8
        assert not img.flags.writeable
        with pytest.raises(ValueError):
            img.flags.writeable = True
        with pytest.raises(ValueError):
            img[0, 0, 0] = 1
        # The pixels are where capture wrote them: a shared mapping of the deployment's
        # frame data segment in /dev/shm, not a private copy.
        address = img.__array_interface__["data"][0]
        lo, hi, perms, path = _mapping_of(address)
        assert path.startswith(f"/dev/shm/{prefix}") and path.endswith(".data"), path
        assert perms.startswith("r-") and perms.endswith("s"), perms
        assert address + img.nbytes <= hi
        # frame.data, planes and image are views of the same bytes.
        assert frame.data.__array_interface__["data"][0] == address
        assert frame.planes[0].__array_interface__["data"][0] == address
        assert frame.data.size == frame.header.payload_len == 640 * 480 * 3
        del img
        frame2 = cam.next_frame()
        assert frame2.id > frame.id
        assert cam.stats()["kept_image_copies"] == 0, "no array was kept: nothing was copied"
    capture.terminate()
    d.assert_no_leftovers()


def test_nv12_image_and_planes_have_the_documented_shapes(deployment):
    d = deployment(synthetic_camera(fmt="NV12"))
    capture = d.capture()
    with framebus.open_camera(d.config, "cam0", role="nv12") as cam:
        frame = cam.next_frame()
        assert frame.image.shape == (720, 640)
        y, uv = frame.planes
        assert y.shape == (480, 640) and uv.shape == (240, 320, 2)
        assert uv.__array_interface__["data"][0] == y.__array_interface__["data"][0] + 640 * 480
        assert np.array_equal(frame.image[480:].reshape(240, 320, 2), uv)
    capture.terminate()
    d.assert_no_leftovers()


def test_kept_images_never_show_another_frame(deployment):
    """Images kept past their iteration (in a list, and the loop variable) keep their own
    frame's pixels while capture recycles their slots; a released frame's pixels raise."""
    d = deployment(synthetic_camera(fps=100))
    capture = d.capture()
    kept = []
    with framebus.open_camera(d.config, "cam0", role="keeper", policy="every") as cam:
        n = 0
        for frame in cam.frames():
            img = frame.image  # the usual loop: `img` still refers to it when the next frame comes
            if n % 10 == 0:
                kept.append((frame.id, img, img[::2, ::2, 1]))
            n += 1
            if n == 120:
                break
        last = frame
        with pytest.raises(framebus.FrameReleasedError, match="copy what you keep"):
            last.image
        copies = cam.stats()["kept_image_copies"]
    # Capture has published far more frames than it has slots since the first kept one.
    p = pattern.pattern_for("BGR3", 640, 480)
    for fid, img, view in kept:
        p.verify(fid, img.reshape(-1))
        assert np.array_equal(view, img[::2, ::2, 1])
    assert copies >= len(kept)
    del kept, img, view
    gc.collect()
    capture.terminate()
    d.assert_no_leftovers()


def test_kept_images_raise_when_asked_to(deployment):
    d = deployment(synthetic_camera())
    capture = d.capture()
    with framebus.open_camera(d.config, "cam0", role="strict", kept_images="raise") as cam:
        frames = cam.frames()
        first = next(frames)
        keep = first.image
        with pytest.raises(framebus.FrameStillReferencedError, match=f"frame {first.id}'s image is still referenced"):
            next(frames)
        # It still shows its own frame, and the camera goes on.
        pattern.pattern_for("BGR3", 640, 480).verify(first.id, keep.reshape(-1))
        del keep
        frame = cam.next_frame()
        assert frame.id > first.id
    capture.terminate()
    d.assert_no_leftovers()


def test_newest_skips_and_max_fps_paces_like_the_rust_readers(deployment):
    d = deployment(synthetic_camera(fps=100))
    capture = d.capture()
    with framebus.open_camera(d.config, "cam0", role="newest") as cam:
        assert str(cam.policy) == "newest" and cam.queue_depth == 1
        previous = None
        for frame in cam.frames():
            # Slower than the camera: the newest frame each time, the ones in between skipped.
            until = frame.capture_ns + 50_000_000
            while __import__("time").monotonic_ns() < until:
                pass
            if previous is not None and frame.id - previous > 1:
                break
            previous = frame.id
        s = cam.stats()
        assert s["skipped"] > 0 and s["overwritten"] == 0
        assert s["processed"] + s["skipped"] == s["last_frame_id"] - s["first_frame_id"] + 1
    with framebus.open_camera(d.config, "cam0", role="capped", max_fps=10) as cam:
        assert str(cam.policy) == "max-fps=10"
        ids = [f.id for f, _ in zip(cam.frames(), range(5))]
        s = cam.stats()
        # 10 a second out of 100: the frames in between were skipped, not read.
        assert s["skipped"] >= len(ids) - 1, s
    capture.terminate()
    d.assert_no_leftovers()


def test_a_reader_started_before_capture_survives_a_capture_crash_and_restart(deployment):
    """Opened before capture exists, the reader waits; capture killed with -9 and restarted
    makes a new shared-memory segment and a new run: the reader goes on, every stamp checks
    out, and the restart is counted."""
    d = deployment(synthetic_camera(fps=60))
    with framebus.open_camera(d.config, "cam0", role="survivor", policy="every") as cam:
        assert cam.next_frame(timeout=0.3) is None, "no capture yet: no frame"
        first = d.capture()
        runs = set()
        for frame in cam.frames():
            pattern.verify(frame)
            runs.add(frame.run_id)
            if len(runs) == 1 and frame.id >= 20 and first.running():
                first.kill9()
                d.capture()
            if len(runs) == 2 and frame.id >= 20:
                break
        s = cam.stats()
    assert s["capture_restarts"] == 1 and s["out_of_order"] == 0, s
    d.procs[-1].terminate()
    d.assert_no_leftovers()


def test_images_read_by_a_worker_thread_stay_valid_while_the_loop_goes_on(deployment):
    """A common pattern: hand frames to a worker thread. The worker reads an image while the
    loop takes the next frame (which moves that image to a private copy): it always sees its
    own frame, and never faults."""
    import queue
    import threading

    d = deployment(synthetic_camera(fps=100))
    capture = d.capture()
    work: queue.Queue = queue.Queue(maxsize=4)
    checked, errors = [], []

    def worker():
        p = pattern.pattern_for("BGR3", 640, 480)
        while True:
            item = work.get()
            if item is None:
                return
            fid, img = item
            try:
                for _ in range(3):  # read it repeatedly, across the loop's releases
                    p.verify(fid, img.reshape(-1))
                checked.append(fid)
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(f"{fid}: {e}")

    thread = threading.Thread(target=worker)
    thread.start()
    with framebus.open_camera(d.config, "cam0", role="handoff", policy="every") as cam:
        for n, frame in enumerate(cam.frames()):
            work.put((frame.id, frame.image))
            if n == 150:
                break
    work.put(None)
    thread.join()
    assert not errors, errors[:3]
    assert len(checked) == 151
    capture.terminate()
    d.assert_no_leftovers()


def test_a_python_reader_that_outlives_capture_cleans_up_the_deployment(deployment):
    """The last process of a deployment to exit removes what iceoryx2 keeps between runs: here
    the Python reader, after capture has stopped."""
    d = deployment(synthetic_camera())
    capture = d.capture()
    with framebus.open_camera(d.config, "cam0", role="last") as cam:
        cam.next_frame()
        assert capture.terminate() == 0
        assert cam.next_frame(timeout=0.3) is None, "capture is gone: no more frames"
        assert d.leftovers(), "the reader's own node and the services are still there"
    d.assert_no_leftovers()
