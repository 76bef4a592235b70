"""The Python examples run as users run them: the frame counter by hand, the motion detector
under `ctl up` (which starts it with FRAMEBUS_CONFIG/CAMERA/ROLE) publishing results that a Rust
reader sees."""

import sys

import pytest

from conftest import REPO, binary, process_status, synthetic_camera

EXAMPLES = REPO / "examples" / "python"


def test_the_frame_counter_is_short_and_counts_until_ctl_stop(deployment):
    source = (EXAMPLES / "count_frames.py").read_text()
    assert len(source.strip().splitlines()) < 15
    d = deployment(synthetic_camera())
    capture = d.capture()
    counter = d.python(EXAMPLES / "count_frames.py", env={"FRAMEBUS_CONFIG": str(d.config)}, name="count_frames")
    line = counter.wait_line(lambda l: "frames/s" in l)
    assert "640x480 BGR3" in line
    status = d.wait_status(lambda s: process_status(s, "cam0", "count_frames").get("frames", 0) > 0)
    assert process_status(status, "cam0", "count_frames")["user_reader"] is True
    code, out, err = d.ctl("stop", "cam0", "count_frames")
    assert code == 0, err
    assert counter.wait_exit() == 0
    capture.terminate()
    d.assert_no_leftovers()


def test_the_motion_detector_runs_under_ctl_up_and_publishes_results(deployment):
    try:
        import cv2  # noqa: F401
    except ImportError:
        pytest.fail("opencv-python-headless is missing from the venv: run scripts/bootstrap.sh")
    reader = (
        '[[camera.reader]]\nname = "motion"\n'
        f'command = ["{sys.executable}", "{EXAMPLES / "motion.py"}"]\n'
    )
    d = deployment(synthetic_camera(fps=15, extra=reader))
    up = d.spawn("ctl-up", [binary("ctl"), "--config", d.config, "up"])
    status = d.wait_status(lambda s: process_status(s, "cam0", "motion").get("frames", 0) > 2)
    assert process_status(status, "cam0", "motion")["message"].startswith("motion ")
    rust = d.spawn("results", [binary("examples/results"), "--config", d.config, "--camera", "cam0"])
    rust.wait_json(lambda v: v.get("subscribed") == "cam0")
    got = rust.wait_json(lambda v: v.get("producer") == "motion")
    # The synthetic pattern scrolls: something always moves.
    assert got["data"]["motion"] > 0 and got["score"] > 0 and got["boxes"], got
    assert all(b["label"] == "motion" for b in got["boxes"])
    rust.terminate()
    assert up.terminate() == 0
    d.assert_no_leftovers()
