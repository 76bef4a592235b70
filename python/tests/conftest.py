"""Test kit for the Python package's end-to-end tests: every test gets its own deployment
(unique name, so its own iceoryx2 prefix and folder), starts the real binaries built by cargo
(`target/<profile>/capture`, `ctl`, examples), waits on their output with deadlines (never
fixed sleeps), kills what it started and checks that nothing of the deployment is left in
/dev/shm or iceoryx2's folder."""

from __future__ import annotations

import itertools
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import framebus

REPO = Path(__file__).resolve().parents[2]
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
PROFILE = os.environ.get("FRAMEBUS_PROFILE", "debug")
DEADLINE = 30.0
HERE = Path(__file__).resolve().parent
_counter = itertools.count()


def binary(name: str) -> Path:
    """A workspace binary (`capture`, `ctl`) or example (`examples/results`) built by cargo."""
    path = TARGET / PROFILE / name
    if not path.is_file():
        pytest.fail(f"{path} is not built: run `cargo build --workspace --bins --examples` first")
    return path


def synthetic_camera(name="cam0", width=640, height=480, fps=30, fmt="BGR3", extra="") -> str:
    return (
        f'[[camera]]\nname = "{name}"\nwidth = {width}\nheight = {height}\nfps = {fps}\n'
        f'pixel-format = "{fmt}"\n\n[camera.source]\nkind = "synthetic"\n\n{extra}'
    )


class Proc:
    """A started process; its stdout lines are collected by a thread, stderr kept."""

    def __init__(self, name: str, argv, env=None, cwd=None):
        self.name = name
        full_env = dict(os.environ)
        full_env.update({"NO_COLOR": "1", "RUST_LOG": os.environ.get("RUST_LOG", "info"), "PYTHONUNBUFFERED": "1"})
        full_env.update(env or {})
        self.popen = subprocess.Popen(
            [str(a) for a in argv],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=full_env,
            cwd=cwd,
            text=True,
        )
        self.lines: queue.Queue = queue.Queue()
        self.stderr: list[str] = []
        threading.Thread(target=self._pump_out, daemon=True).start()
        threading.Thread(target=self._pump_err, daemon=True).start()

    def _pump_out(self):
        for line in self.popen.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def _pump_err(self):
        for line in self.popen.stderr:
            self.stderr.append(line.rstrip("\n"))

    @property
    def pid(self) -> int:
        return self.popen.pid

    def stderr_text(self) -> str:
        return "\n".join(self.stderr)

    def wait_line(self, pred, timeout=DEADLINE) -> str:
        """The next stdout line for which `pred` holds; fails after `timeout`."""
        until = time.monotonic() + timeout
        while True:
            left = until - time.monotonic()
            if left <= 0:
                pytest.fail(f"{self.name}: no matching stdout line within {timeout}s; stderr:\n{self.stderr_text()}")
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                self.popen.wait(timeout=5)
                pytest.fail(
                    f"{self.name}: exited ({self.popen.returncode}) before a matching line; stderr:\n{self.stderr_text()}"
                )
            if pred(line):
                return line

    def wait_json(self, pred, timeout=DEADLINE) -> dict:
        def matches(line):
            try:
                return pred(json.loads(line))
            except (ValueError, TypeError, KeyError):
                return False

        return json.loads(self.wait_line(matches, timeout))

    def wait_stderr(self, needle: str, timeout=DEADLINE) -> str:
        until = time.monotonic() + timeout
        while time.monotonic() < until:
            for line in list(self.stderr):
                if needle in line:
                    return line
            time.sleep(0.01)
        pytest.fail(f"{self.name}: no stderr line with `{needle}`; stderr:\n{self.stderr_text()}")

    def signal(self, signum: int):
        self.popen.send_signal(signum)

    def wait_exit(self, timeout=DEADLINE):
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{self.name} did not exit within {timeout}s; stderr:\n{self.stderr_text()}")

    def terminate(self):
        self.signal(signal.SIGTERM)
        return self.wait_exit()

    def kill9(self):
        self.popen.kill()
        self.popen.wait()

    def running(self) -> bool:
        return self.popen.poll() is None


class Deployment:
    """One test's deployment: a config file with a unique deployment name in a temporary
    folder, and the processes the test started (killed at the end)."""

    def __init__(self, tmp_path: Path, body: str):
        self.name = f"py{os.getpid()}-{next(_counter)}"
        self.dir = tmp_path
        self.dir.mkdir(parents=True, exist_ok=True)
        self.config = tmp_path / "deployment.toml"
        self.config.write_text(f'[deployment]\nname = "{self.name}"\nstate-dir = "state"\n\n{body}')
        self.procs: list[Proc] = []

    def ctl(self, *args, timeout=DEADLINE):
        """Runs `ctl --config <config> args...`: (exit code, stdout, stderr)."""
        done = subprocess.run(
            [str(binary("ctl")), "--config", str(self.config), *map(str, args)],
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, "NO_COLOR": "1"},
        )
        return done.returncode, done.stdout, done.stderr

    def status(self, timeout="2"):
        """`ctl status --json`: (exit code, parsed output or None, stderr)."""
        code, out, err = self.ctl("status", "--json", "--timeout", timeout)
        try:
            return code, json.loads(out), err
        except ValueError:
            return code, None, err

    def wait_status(self, pred, timeout=DEADLINE) -> dict:
        """Polls `ctl status --json` (bounded) until `pred` holds for it."""
        until = time.monotonic() + timeout
        last = None
        while time.monotonic() < until:
            _, value, err = self.status()
            last = (value, err)
            if value is not None and pred(value):
                return value
            time.sleep(0.1)
        pytest.fail(f"ctl status never matched within {timeout}s; last: {last}")

    def spawn(self, name: str, argv, env=None, cwd=None) -> Proc:
        proc = Proc(name, argv, env=env, cwd=cwd)
        self.procs.append(proc)
        return proc

    def capture(self, *args) -> Proc:
        """Starts capture and waits until it publishes."""
        proc = self.spawn("capture", [binary("capture"), "--config", self.config, *args])
        proc.wait_stderr("capturing")
        return proc

    def python(self, script, *args, name=None, env=None, cwd=None) -> Proc:
        """Starts a Python program of the test suite (or any path) with this interpreter."""
        script = Path(script)
        if not script.is_absolute():
            script = HERE / script
        return self.spawn(name or script.stem, [sys.executable, script, *args], env=env, cwd=cwd)

    def leftovers(self) -> list[str]:
        settings = framebus.iceoryx2_settings(self.name)
        found = [f"/dev/shm/{n}" for n in os.listdir("/dev/shm") if n.startswith(settings["prefix"])]
        if os.path.exists(settings["root_path"]):
            found.append(settings["root_path"])
        return found

    def assert_no_leftovers(self, timeout=5.0):
        until = time.monotonic() + timeout
        while True:
            left = self.leftovers()
            if not left:
                return
            if time.monotonic() > until:
                pytest.fail(f"left behind: {left}")
            time.sleep(0.02)

    def cleanup(self):
        """Kills what the test left running; a test that failed half-way then leaves no shared
        memory either: one `ctl status` removes the dead processes' resources, as the
        deployment's last process would (the Rust testkit does the same on drop)."""
        for proc in self.procs:
            if proc.running():
                proc.kill9()
        if self.leftovers():
            self.ctl("status", "--timeout", "0.5")


@pytest.fixture
def deployment(tmp_path):
    """A factory: `deployment(body)` writes a config with a unique deployment name."""
    made = []

    def make(body: str = None) -> Deployment:
        d = Deployment(tmp_path / f"d{len(made)}", body or synthetic_camera())
        made.append(d)
        return d

    yield make
    for d in made:
        d.cleanup()


def process_status(status: dict, camera: str, role: str) -> dict:
    """The entry of `role` of `camera` in `ctl status --json` output ({} when absent)."""
    for p in status.get("processes", []):
        if p.get("camera") == camera and p.get("role") == role:
            return p
    return {}
