"""`Camera`: one reader of one camera, on the compiled Rust reader (`framebus._framebus`). What
is here is only what is Python-shaped: defaults from the environment and the program name,
iteration, the context manager, JSON and result objects. The rules (config, policies,
accounting, control, status, signals, results, iceoryx2) are the Rust crate's."""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Iterator

# Loaded with the package, not on the first frame: the arrays are numpy's.
import numpy  # noqa: F401

from . import _framebus
from ._framebus import Frame, Gap, Policy
from ._results import Result, box_tuple, from_binding

log = logging.getLogger("framebus")

_signals_lock = threading.Lock()
_signals_installed = False


def program_role() -> str:
    """The role of a program that names none: `FRAMEBUS_ROLE` when set (`ctl up` sets it for the
    readers it starts), else the program's file name made a valid role name, else `reader`."""
    role = os.environ.get("FRAMEBUS_ROLE")
    if role:
        return role
    stem = Path(sys.argv[0]).stem if sys.argv and sys.argv[0] not in ("", "-c", "-") else ""
    name = "".join(c if c.isascii() and (c.isalnum() or c in "-_") else "-" for c in stem.lower())
    name = name[: _framebus.max_role_name()]
    return name if name and _framebus.role_error(name) is None else "reader"


def _install_signals() -> None:
    """Hands SIGINT and SIGTERM to the Rust side (once per process): they end every open
    camera's loop after the frame in progress; a second SIGINT exits at once with status 130.
    Python's default SIGINT handler is taken off first (it would raise KeyboardInterrupt in the
    middle of a frame); a handler of the program's own keeps running as well."""
    global _signals_installed
    with _signals_lock:
        if _signals_installed:
            return
        if threading.current_thread() is threading.main_thread():
            if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
                signal.signal(signal.SIGINT, signal.SIG_DFL)
        _framebus.install_signals()
        _signals_installed = True


class Camera:
    """One reader of one camera: its subscription (queue and policy), its control service
    (answered on a thread of the Rust reader) and its loop. Open with `framebus.open_camera()`;
    use as a context manager (or call `close()`). Used by the thread that opened it."""

    def __init__(
        self,
        config=None,
        camera=None,
        *,
        role=None,
        policy=None,
        max_fps=None,
        queue_depth=None,
        stats_interval: float = 1.0,
        kept_images: str = "copy",
    ):
        self._reader = None
        if kept_images not in ("copy", "raise"):
            raise ValueError(f'kept_images={kept_images!r}: allowed "copy" or "raise"')
        if camera is None:
            camera = os.environ.get("FRAMEBUS_CAMERA") or None
        wanted = None
        if policy is not None or max_fps is not None:
            if isinstance(policy, Policy):
                wanted = policy
            else:
                try:
                    wanted = Policy.parse(policy if policy is not None else "max-fps", max_fps)
                except ValueError as e:
                    raise ValueError(f"policy: {e}") from None
        _install_signals()
        self._reader = _framebus.Reader(
            None if config is None else str(config),
            camera,
            role if role is not None else program_role(),
            wanted,
            queue_depth,
            stats_interval,
            kept_images == "raise",
        )
        r = self._reader
        #: The deployment's config (`framebus.Deployment`).
        self.deployment = r.deployment
        #: The camera's config (`framebus.CameraConfig`).
        self.config = r.config
        #: This reader's role (what `ctl status` lists, `ctl stop <camera> <role>` takes).
        self.role = r.role
        #: The policy in force (the config's `[[camera.reader]]` entry wins over the argument).
        self.policy = r.policy
        #: Frames queued for this reader.
        self.queue_depth = r.queue_depth
        #: Name of the frames service.
        self.service = r.service

    def next_frame(self, timeout: float | None = None) -> Frame | None:
        """The next frame the policy gives, or None once the reader should stop (SIGINT,
        SIGTERM, `ctl stop`, `request_stop()`) or after `timeout` seconds without a frame.
        Releases the previous frame first. Waits without holding the GIL."""
        return self._reader.next_frame(timeout)

    def frames(self) -> Iterator[Frame]:
        """Frames, one per iteration, until the reader should stop (SIGINT/SIGTERM, `ctl stop`,
        `request_stop()`): the loop ends after the frame in progress. Leaving the loop early
        releases the frame in progress."""
        next_frame = self._reader.next_frame
        try:
            while True:
                frame = next_frame()
                if frame is None:
                    return
                yield frame
        finally:
            # Left early (break, an exception): the frame in progress is released now.
            if not self.closed:
                self._reader.release_frame()

    def next_event(self, timeout: float | None = None) -> Frame | Gap | None:
        """Like `next_frame()`, but a gap in the camera's frames comes as a `Gap` first (frames
        of the source missing before the next frame: an imported camera's link was cut or lost
        messages, the source dropped frames, or capture restarted)."""
        return self._reader.next_frame(timeout, gaps=True)

    def events(self) -> Iterator[Frame | Gap]:
        """Frames and gaps (`Gap`, just before the first frame after it), one per iteration,
        until the reader should stop; `frames()` is the same without the gaps."""
        next_frame = self._reader.next_frame
        try:
            while True:
                event = next_frame(None, gaps=True)
                if event is None:
                    return
                yield event
        finally:
            if not self.closed:
                self._reader.release_frame()

    def request_stop(self) -> None:
        """Ends the loop: the next `next_frame()` returns None."""
        self._reader.request_stop()

    @property
    def stop_reason(self) -> str | None:
        """Why the loop ends, once it should: `signal`, `command` (`ctl stop`) or `program`."""
        return self._reader.stop_reason

    def report(self, message: str | None = None, state: str | None = None) -> None:
        """What `ctl status` says beyond the reader figures: a one-line `message` (up to 1024
        ASCII characters) and a `state` to report instead of running/waiting (`degraded`, or
        None for the default)."""
        self._reader.report(None if message is None else str(message), state)

    def stats(self) -> dict:
        """The reader's figures now: processed, skipped, overwritten, driver_drops,
        capture_restarts, out_of_order, first/last_frame_id, published, fps,
        latency_p50_us/p99_us (last window), kept_image_copies."""
        return self._reader.stats()

    def settings(self) -> dict:
        """The settings the reader was opened with, as the Rust reader resolved them (camera,
        role, policy, queue depth, geometry, slots, service, iceoryx2 prefix and folder)."""
        return self._reader.settings()

    def publish_result(self, frame, data=None, *, score=None, boxes=None) -> None:
        """Publishes a result about `frame` (a Frame or a frame id) on the camera's results
        service, as this reader's role: free-form `data` (JSON-serialisable, up to 1 KiB
        encoded), an overall `score` and labelled `boxes` (up to 16, pixels: `framebus.Box`,
        dicts with x, y, w, h, label, score, or tuples (x, y, w, h[, label[, score]])). The
        preview draws it, the recorder's triggers and `ctl` read it."""
        text = None if data is None else json.dumps(data, separators=(",", ":"), allow_nan=False)
        boxes = [box_tuple(b) for b in (boxes or ())]
        score = None if score is None else float(score)
        if isinstance(frame, Frame):
            self._reader.publish_result(frame.id, text, score, boxes, frame.run_id, frame.capture_ns)
        else:
            self._reader.publish_result(int(frame), text, score, boxes)

    def results(self) -> list[Result]:
        """Results published on the camera since the last call (by any producer, this one
        included), oldest first. The first call subscribes: earlier results are not seen."""
        return [from_binding(raw) for raw in self._reader.results()]

    def close(self) -> None:
        """Stops serving control, releases the frame in progress (arrays still referenced
        keep a private copy), unsubscribes and removes the deployment's leftovers if this was
        its last process. Idempotent."""
        if self._reader is None or self._reader.closed:
            return
        s = self._reader.stats()
        self._reader.close()
        log.info(
            "camera %s: %s stopped: processed=%d skipped=%d overwritten=%d driver_drops=%d published=%d",
            self.config.name, self.role, s["processed"], s["skipped"], s["overwritten"], s["driver_drops"],
            s["published"],
        )

    @property
    def closed(self) -> bool:
        """Whether `close()` ran."""
        return self._reader is None or self._reader.closed

    def __enter__(self) -> Camera:
        return self

    def __exit__(self, *exc) -> bool:
        self.close()
        return False

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def __repr__(self) -> str:
        return f"<framebus.Camera {self.deployment.name}/{self.config.name} role={self.role} policy={self.policy}>"


def open_camera(config=None, camera=None, *, role=None, policy=None, max_fps=None, queue_depth=None,
                stats_interval: float = 1.0, kept_images: str = "copy") -> Camera:
    """Opens `camera` of the deployment in `config` (a framebus TOML file) as a reader.

    - config: default `FRAMEBUS_CONFIG`, else `./framebus.toml`, else `configs/default.toml`
      (the search `ctl` makes).
    - camera: default `FRAMEBUS_CAMERA`, else the only camera of the config.
    - role: the name `ctl status` lists and `ctl stop <camera> <role>` takes; default
      `FRAMEBUS_ROLE`, else the program's file name (`motion.py` → `motion`).
    - policy: `"newest"` (default), `"every"` or `"max-fps"` with `max_fps=N` (or just
      `max_fps=N`), used when the config has no `[[camera.reader]] name = "<role>"` entry (the
      config wins).
    - queue_depth: frames queued for this reader when the config has none (default 1; `every`:
      the camera's largest).
    - kept_images: an image still referenced when the next frame is taken is moved to a private
      copy (`"copy"`, default) or, in addition, raises FrameStillReferencedError (`"raise"`).

    Fails (FramebusError) when the config is invalid, the camera unknown, all reader slots are
    taken (the message names the keys to raise) or another process serves this role.
    """
    return Camera(config, camera, role=role, policy=policy, max_fps=max_fps, queue_depth=queue_depth,
                  stats_interval=stats_interval, kept_images=kept_images)
