"""The README's Python example runs exactly as written, against configs/default.toml, from the
repository root (as a user pastes it into a file): it opens the camera, takes frames and
publishes results until `ctl stop`."""

import re
from conftest import REPO, DEADLINE, Proc, binary, process_status

import time
import json
import subprocess
import sys

DEFAULT = REPO / "configs" / "default.toml"


def readme_example() -> str:
    text = (REPO / "README.md").read_text()
    section = text[text.index("\n## Python\n"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def _status(role: str) -> dict:
    done = subprocess.run([str(binary("ctl")), "--config", str(DEFAULT), "status", "--json", "--timeout", "2"],
                          capture_output=True, text=True, timeout=DEADLINE)
    try:
        return process_status(json.loads(done.stdout), "cam0", role)
    except ValueError:
        return {}


def test_the_readme_python_example_runs_as_written(tmp_path):
    code = readme_example()
    assert 'framebus.open_camera("configs/default.toml", "cam0"' in code
    script = tmp_path / "readme_example.py"
    script.write_text(code)
    capture = Proc("capture", [binary("capture"), "--config", DEFAULT], cwd=REPO)
    example = None
    try:
        capture.wait_stderr("capturing")
        example = Proc("readme_example", [sys.executable, script], cwd=REPO)
        until = time.monotonic() + DEADLINE
        status = {}
        while time.monotonic() < until:
            status = _status("readme_example")
            if status.get("frames", 0) >= 10:
                break
            assert example.running(), example.stderr_text()
            time.sleep(0.2)
        assert status.get("frames", 0) >= 10, (status, example.stderr_text())
        stop = subprocess.run([str(binary("ctl")), "--config", str(DEFAULT), "stop", "cam0", "readme_example"],
                              capture_output=True, text=True, timeout=DEADLINE)
        assert stop.returncode == 0, stop.stderr
        assert example.wait_exit() == 0, example.stderr_text()
        assert capture.terminate() == 0
        _assert_no_leftovers("default")
    finally:
        for proc in (example, capture):
            if proc is not None and proc.running():
                proc.kill9()


def _assert_no_leftovers(name: str, timeout: float = 5.0):
    import os

    import framebus

    settings = framebus.iceoryx2_settings(name)
    until = time.monotonic() + timeout
    while True:
        left = [n for n in os.listdir("/dev/shm") if n.startswith(settings["prefix"])]
        if os.path.exists(settings["root_path"]):
            left.append(settings["root_path"])
        if not left:
            return
        assert time.monotonic() < until, f"left behind: {left}"
        time.sleep(0.05)
