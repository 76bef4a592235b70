"""Results published from Python reach Rust readers (the `results` example, on
`Camera::results()`), and Python reads what Rust publishes."""

import json
import math

import framebus

from conftest import binary, synthetic_camera


def test_a_python_result_is_seen_by_a_rust_reader(deployment):
    d = deployment(synthetic_camera())
    capture = d.capture()
    rust = d.spawn("results", [binary("examples/results"), "--config", d.config, "--camera", "cam0"])
    rust.wait_json(lambda v: v.get("subscribed") == "cam0")
    reader = d.python("reader_proc.py", "--config", d.config, "--role", "pyalgo", "--publish", "--print-frames",
                      name="pyalgo")
    frame_id = reader.wait_json(lambda v: "frame" in v)["frame"]
    got = rust.wait_json(lambda v: v.get("producer") == "pyalgo" and v["frame_id"] >= frame_id)
    assert got["score"] == 0.5
    assert got["boxes"] == [{"x": 1.0, "y": 2.0, "w": 3.0, "h": 4.0, "label": "thing", "score": got["boxes"][0]["score"]}]
    assert math.isclose(got["boxes"][0]["score"], 0.9, rel_tol=1e-6)
    assert isinstance(got["data"]["mean"], float)
    assert got["run_id"] != 0 and got["capture_mono_ns"] > 0, "the frame's run and capture time travel along"
    reader.terminate()
    rust.terminate()
    capture.terminate()
    d.assert_no_leftovers()


def test_python_reads_results_and_checks_limits(deployment):
    d = deployment(synthetic_camera())
    capture = d.capture()
    with framebus.open_camera(d.config, "cam0", role="producer") as cam:
        assert cam.results() == []  # subscribes
        frame = cam.next_frame()
        cam.publish_result(frame, {"motion": 0.25}, score=0.25, boxes=[(10, 20, 30, 40, "person", 0.75)])
        cam.publish_result(frame.id, None)
        got = cam.results()
        assert [r["producer"] for r in got] == ["producer", "producer"]
        first, second = got
        assert first["frame_id"] == frame.id and first["run_id"] == frame.run_id
        assert first["capture_mono_ns"] == frame.capture_ns
        assert first["data"] == {"motion": 0.25} and first["score"] == 0.25
        assert first["boxes"][0]["label"] == "person" and first["boxes"][0]["w"] == 30.0
        assert second["data"] is None and second["score"] is None and second["boxes"] == []
        assert second["capture_mono_ns"] == frame.capture_ns, "a frame id finds its recent frame"
        import pytest

        with pytest.raises(ValueError, match="at most 16"):
            cam.publish_result(frame, boxes=[(0, 0, 1, 1)] * 17)
        with pytest.raises(ValueError, match="at most 1024"):
            cam.publish_result(frame, {"x": "y" * 2000})
        assert cam.results() == [], "refused results are not published"
    capture.terminate()
    d.assert_no_leftovers()


def test_a_python_result_triggers_a_clip_with_its_pre_and_post_roll(deployment):
    """A Python producer is a trigger source like any other: the recorder, armed with a 1 s
    pre-roll and a trigger on label `person` from producer `pydetector`, makes exactly one
    clip around the one result that matches (a `person` at 0.8), never on the ones that do
    not (a `person` at 0.3, a `cat`); `ctl events --json` names the clip and its frames."""
    recorder_table = (
        '[camera.recorder]\ndirectory = "rec"\nstats-interval-secs = 0.25\nmin-free-mb = 1\n'
        'pre-roll-secs = 1\npost-roll-secs = 1\n'
        '[[camera.recorder.trigger]]\nproducer = "pydetector"\nlabel = "person"\nmin-box-score = 0.5\n'
    )
    d = deployment(synthetic_camera(width=320, height=240, extra=recorder_table))
    capture = d.capture()
    recorder = d.spawn("recorder", [binary("recorder"), "--config", d.config, "--json"])
    recorder.wait_json(lambda v: v.get("state") == "armed" and (v.get("held_secs") or 0) >= 1.5)
    person = None
    with framebus.open_camera(d.config, "cam0", role="pydetector") as cam:
        for seen, frame in enumerate(cam.frames(), start=1):
            if seen == 31:
                person = frame.id
                boxes = [(10, 20, 30, 40, "person", 0.8), (0, 0, 5, 5, "cat", 0.9)]
            elif seen % 2 == 0:
                boxes = [(10, 20, 30, 40, "person", 0.3)]
            else:
                boxes = [(0, 0, 5, 5, "cat", 0.95)]
            cam.publish_result(frame, score=0.9, boxes=boxes)
            if seen == 91:
                break
    status = recorder.wait_json(lambda v: (v.get("clips") or 0) >= 1 and v.get("state") == "armed")
    assert status["clips"] == 1, status
    recorder.terminate()
    capture.terminate()
    code, out, err = d.ctl("events", "cam0", "--json")
    assert code == 0, err
    clips = [json.loads(line) for line in out.splitlines() if line.strip()]
    assert len(clips) == 1, out
    clip = clips[0]
    # The window is in capture time (1 s before and after the person's frame): about 30 frames
    # each side at 30 fps, fewer when a loaded machine makes capture late (its frames then
    # space out); the clip's duration says it either way.
    assert clip["first_frame_id"] < person < clip["last_frame_id"], (person, clip)
    assert abs(clip["first_frame_id"] - (person - 30)) <= 8, (person, clip)
    assert 1.85 <= clip["duration_secs"] <= 2.1, (person, clip)
    assert "pydetector" in json.dumps(clip), clip
    d.assert_no_leftovers()


def test_algo_scores_read_from_python_are_on_the_one_scale(deployment):
    """algo's results as Python reads them: the score, `data["motion"]` and every box's score
    are on the 0..1 scale (docs/results.md), and `data["motion"]` is the score itself (it was
    the mean level change on 0..255, far above 1 on the synthetic pattern)."""
    d = deployment(synthetic_camera(width=320, height=240, extra="[camera.algo]\n"))
    capture = d.capture()
    algo = d.spawn("algo", [binary("algo"), "--config", d.config])
    algo.wait_stderr("reading frames")
    checked = 0
    with framebus.open_camera(d.config, "cam0", role="pycheck") as cam:
        assert cam.results() == []  # subscribes
        for frame in cam.frames():
            for r in cam.results():
                if r.producer != "algo" or not r.boxes:
                    continue
                assert 0 < r.score <= 1, r
                assert math.isclose(r.data["motion"], r.score, abs_tol=1e-4), r
                assert 0 <= r.data["difference"] <= 1, r
                assert all(0 < b.score <= 1 for b in r.boxes), r
                checked += 1
            if checked >= 5:
                break
    algo.terminate()
    capture.terminate()
    d.assert_no_leftovers()
