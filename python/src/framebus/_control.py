"""The reader's control thread (Rust crates/framebus/src/control.rs and
crates/common/src/control/server.rs): serves `framebus/<dep>/<cam>/<role>/control` on a node of
its own, off the frame path, so `ctl status` is answered in milliseconds while the reader's
code spends seconds on one frame, and `ctl stop` / SIGINT / SIGTERM are seen meanwhile.

The thread waits on the control event with the GIL released (iceoryx2 waits release it) and
needs the GIL only for the few microseconds of an answer, so pure-Python work on the frame
thread does not starve it (CPython hands the GIL over every 5 ms by default). A C extension
that holds the GIL for a long call delays status until it returns.
"""

from __future__ import annotations

import logging
import os
import threading
import time

import iceoryx2 as iox2

from . import _ipc, _signals
from ._abi import (
    CONTROL_PROTOCOL_VERSION,
    LATENCY_BUCKETS,
    LATENCY_BUCKETS_US,
    REQUEST_TEXT,
    ControlReply,
    ControlRequest,
    copy_from,
    copy_to,
    put_text,
)
from ._config import BUILTIN_ROLES
from ._errors import IpcError
from ._stats import Accounting, StatusWindow

log = logging.getLogger("framebus")

CONTROL_TICK = 0.05
U64_MAX = 2**64 - 1

# Command codes and reply values (Rust `control::code`, `ProcessState`, role codes).
STATUS, STOP, SET_PREVIEW, SET_SAVING, LIST_CONTROLS, SET_CONTROLS = 1, 2, 3, 4, 5, 6
RESULT_OK, RESULT_ERROR = 0, 1
STATES = {"running": 1, "waiting": 2, "degraded": 3, "stopping": 4}
USER_READER_CODE = 5


def role_code(role: str) -> int:
    """Wire code of a role: 1 capture, 2 algo, 3 preview, 4 recorder, 6 streamer, 5 a user reader."""
    return {"capture": 1, "algo": 2, "preview": 3, "recorder": 4, "streamer": 6}.get(role, USER_READER_CODE)


class Shared:
    """State the frame thread updates per frame and the control thread reports."""

    def __init__(self, policy, queue_depth: int, stats_interval: float):
        self.lock = threading.Lock()
        self.policy = policy
        self.accounting = Accounting(policy.name)
        self.window = StatusWindow(stats_interval)
        self.queue_depth = queue_depth
        self.format = None  # (width, height, fourcc)
        # Capture → delivery latency since the reader started, per bucket (not cumulative).
        self.histogram = [0] * LATENCY_BUCKETS
        self.histogram_sum_us = 0
        # Time frames were held by the reader's code, ns, smoothed (EWMA, α = 1/8).
        self.held_ns = 0.0
        self.message = ""
        self.state = None  # a state name to report instead of running/waiting
        self.stopping = False
        self._stop_reason = None

    def record_latency_us(self, us: int) -> None:
        """Adds one sample to the histogram (caller holds the lock)."""
        bucket = next((i for i, bound in enumerate(LATENCY_BUCKETS_US) if us <= bound), LATENCY_BUCKETS - 1)
        self.histogram[bucket] += 1
        self.histogram_sum_us += us

    def released(self, held_ns: int) -> None:
        """A frame handed out `held_ns` ago was released."""
        with self.lock:
            self.held_ns = float(held_ns) if self.held_ns == 0.0 else self.held_ns + (held_ns - self.held_ns) / 8.0

    def request_stop(self, reason: str) -> None:
        """Records why the reader stops (the first reason wins): signal, command, program.
        Takes no lock: it runs in signal handlers, which may interrupt the main thread while
        it holds `lock`."""
        if self._stop_reason is None:
            self._stop_reason = reason

    @property
    def stop_reason(self):
        return self._stop_reason

    def metrics(self) -> dict:
        with self.lock:
            acc = self.accounting
            self.window.roll(acc.processed)
            w = self.window
            state = self.state or ("running" if w.fps > 0 else "waiting")
            if self._stop_reason is not None:
                state = "stopping"
            return {
                "state": state,
                "frames": acc.processed,
                "fps": w.fps,
                "skipped": acc.skipped,
                "p50": w.p50_us,
                "p99": w.p99_us,
                "format": self.format,
                "target_fps": self.policy.fps if self.policy.name == "max-fps" else 0.0,
                "message": self.message,
                "policy": self.policy.code,
                "queue_depth": self.queue_depth,
                "overwritten": acc.overwritten,
                "driver_drops": acc.driver_drops,
                "first": acc.first_frame_id,
                "last": acc.last_frame_id,
                "histogram": list(self.histogram),
                "histogram_sum_us": self.histogram_sum_us,
                "cost_ns": int(self.held_ns),
            }


def _describe(command: int, argument: int) -> str:
    on = "on" if argument else "off"
    return {STATUS: "status", STOP: "stop", SET_PREVIEW: f"preview {on}", SET_SAVING: f"saving {on}"}.get(
        command, "control list" if command == LIST_CONTROLS else "control set"
    )


def _decode(request: ControlRequest):
    """None when the request is well formed, else the error message (Rust `DecodeError`)."""
    if request.version != CONTROL_PROTOCOL_VERSION:
        return (
            f"unsupported control protocol version {request.version} "
            f"(this process speaks {CONTROL_PROTOCOL_VERSION})"
        )
    if request.command in (STATUS, STOP, LIST_CONTROLS):
        return None
    if request.command in (SET_PREVIEW, SET_SAVING):
        if request.argument not in (0, 1):
            return (
                f"invalid argument {request.argument} for command code {request.command}: "
                "allowed 0 (off) or 1 (on)"
            )
        return None
    if request.command == SET_CONTROLS:
        if request.text_len > REQUEST_TEXT:
            return (
                f"invalid text argument: length {request.text_len} is more than the "
                f"{REQUEST_TEXT} bytes it may use"
            )
        if not all(32 <= b < 127 for b in bytes(request.text[: request.text_len])):
            return "invalid text argument: only printable ASCII is allowed"
        return None
    return f"unknown command code {request.command}"


class ControlThread:
    """Serves the process's control service until closed; see the module documentation."""

    def __init__(self, deployment, camera, role: str, shared: Shared, store):
        self.deployment = deployment
        self.camera = camera
        self.role = role
        self.shared = shared
        self.store = store
        self.initial = camera.initial_flags()
        self.flags = store.effective(camera.name, self.initial)
        self._state_key = None
        self._shutdown = threading.Event()
        self._ready = threading.Event()
        self._error = None
        self._started = time.monotonic()
        self._thread = threading.Thread(target=self._run, name=f"control-{role}", daemon=True)
        self.service_name = _ipc.service_name(deployment.name, camera.name, "control", role)

    def start(self) -> None:
        """Starts the thread and waits until it serves; raises what made it fail."""
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            self._thread.join()
            raise self._error

    def close(self) -> None:
        self._shutdown.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()

    def _setup(self):
        node = _ipc.create_node(self.deployment.name, f"{self.role}-{self.camera.name}-control")
        requests, ready, name = _ipc.serve_control(node, self.deployment.name, self.camera.name, self.role)
        # The listener before the server: a client that sees the server notifies after sending,
        # and that wake-up must find a listener.
        try:
            listener = ready.listener_builder().create()
        except Exception as e:
            raise IpcError(f"creating the control listener of `{name}`", e) from None
        try:
            server = requests.server_builder().create()
        except Exception as e:
            if "ExceedsMaxSupportedServers" in str(getattr(e, "args", e)):
                raise IpcError(
                    f"serving `{name}`: another {self.role} process of camera `{self.camera.name}` "
                    "is already running (stop it first)",
                    e,
                ) from None
            raise IpcError(f"serving `{name}`", e) from None
        return node, requests, ready, listener, server

    def _run(self):
        try:
            node, requests, ready, listener, server = self._setup()
        except Exception as e:  # reported to the opener
            self._error = e
            self._ready.set()
            return
        log.info(
            "camera %s: serving control requests on %s (preview %s, saving %s)",
            self.camera.name, self.service_name,
            "on" if self.flags[0] else "off", "on" if self.flags[1] else "off",
        )
        self._ready.set()
        tick = iox2.Duration.from_secs_f64(CONTROL_TICK)
        last_roll = time.monotonic()
        try:
            while not self._shutdown.is_set():
                self._poll(listener, server)
                self._read_signals()
                self._refresh_flags()
                if time.monotonic() - last_roll >= CONTROL_TICK:
                    with self.shared.lock:
                        self.shared.window.roll(self.shared.accounting.processed)
                    last_roll = time.monotonic()
                try:
                    listener.timed_wait(tick)
                except Exception as e:
                    if not _ipc.wait_interrupted(e):
                        log.debug("control listener: %s", e)
                        time.sleep(CONTROL_TICK)
        finally:
            # Ports before their services, services before the node.
            for port in (server, listener):
                try:
                    port.delete()
                except Exception:
                    pass
            del requests, ready, server, listener, node

    def _refresh_flags(self) -> None:
        """Re-reads the camera's state file when it changed (another process or ctl recorded
        a flag), so every process of the camera reports the same flags."""
        try:
            st = os.stat(self.store.path(self.camera.name))
            key = (st.st_ino, st.st_mtime_ns, st.st_size)
        except OSError:
            key = None
        if key != self._state_key:
            self._state_key = key
            self.flags = self.store.effective(self.camera.name, self.initial)

    def _read_signals(self) -> None:
        """SIGINT/SIGTERM seen through the signal wake-up pipe: they reach this thread even while
        the frame thread is stuck in a long C call (see `_signals`)."""
        fd = _signals.wakeup_fd()
        if fd is None:
            return
        try:
            data = os.read(fd, 64)
        except OSError:
            return
        _signals.dispatch(data)

    def _poll(self, listener, server) -> None:
        try:
            listener.try_wait()
        except Exception:
            pass
        while True:
            try:
                active = server.receive()
            except Exception as e:
                log.warning("%s: receiving control requests: %s", self.service_name, e)
                return
            if active is None:
                return
            if not active.is_connected:
                # Its client is gone (gave up at its deadline): not carried out, only released
                # (the same rule as the Rust server; see `enable_fire_and_forget_requests`).
                active.delete()
                continue
            try:
                # No call here gives up the GIL (no ctypes foreign call, no I/O): with the frame
                # thread busy in Python, every hand-over could cost a 5 ms switch interval.
                request = copy_from(ControlRequest, active.payload_ptr)
                reply = self._answer(request)
                response = active.loan_uninit()
                copy_to(reply, response.payload_ptr)
                response.assume_init().send()
            except Exception as e:
                log.debug("%s: sending a control reply: %s", self.service_name, e)
            finally:
                try:
                    active.delete()
                except Exception:
                    pass

    def _base_reply(self, request: ControlRequest) -> ControlReply:
        reply = ControlReply()
        reply.version = CONTROL_PROTOCOL_VERSION
        reply.result = RESULT_OK
        reply.command = request.command
        reply.nonce = request.nonce
        reply.role = role_code(self.role)
        reply.role_name_len = put_text(reply.role_name, self.role)
        reply.pid = os.getpid()
        reply.state = STATES["running"]
        reply.preview, reply.saving = int(self.flags[0]), int(self.flags[1])
        reply.uptime_ms = int((time.monotonic() - self._started) * 1000)
        reply.camera_len = put_text(reply.camera, self.camera.name)
        reply.latency_p50_us = U64_MAX
        reply.latency_p99_us = U64_MAX
        return reply

    def _error_reply(self, reply: ControlReply, message: str) -> ControlReply:
        reply.result = RESULT_ERROR
        reply.message_len = put_text(reply.message, message)
        return reply

    def _answer(self, request: ControlRequest) -> ControlReply:
        reply = self._base_reply(request)
        problem = _decode(request)
        if problem is not None:
            log.warning("camera %s: malformed control request: %s", self.camera.name, problem)
            return self._error_reply(reply, problem)
        command = request.command
        if command == STATUS:
            # Flags recorded by another process or ctl are picked up by `_refresh_flags` on
            # the control thread's tick (file I/O would give up the GIL mid-answer).
            m = self.shared.metrics()
            reply.state = STATES[m["state"]]
            reply.preview, reply.saving = int(self.flags[0]), int(self.flags[1])
            reply.frames = m["frames"]
            reply.fps = m["fps"]
            reply.latency_p50_us = U64_MAX if m["p50"] is None else m["p50"]
            reply.latency_p99_us = U64_MAX if m["p99"] is None else m["p99"]
            if m["format"] is not None:
                reply.width, reply.height, reply.pixel_format = m["format"]
            reply.target_fps = m["target_fps"]
            reply.policy = m["policy"]
            reply.queue_depth = m["queue_depth"]
            reply.skipped = m["skipped"]
            reply.overwritten = m["overwritten"]
            reply.driver_drops = m["driver_drops"]
            reply.first_frame_id = m["first"]
            reply.last_frame_id = m["last"]
            reply.message_len = put_text(reply.message, m["message"])
            total = 0
            for i, count in enumerate(m["histogram"]):
                total += count
                reply.latency_buckets[i] = total
            reply.latency_sum_us = m["histogram_sum_us"]
            reply.latency_count = total
            reply.cost_ns = m["cost_ns"]
            return reply
        if command == STOP:
            log.info("camera %s: %s: stop requested", self.camera.name, self.role)
            self.shared.request_stop("command")
            reply.message_len = put_text(reply.message, "stopping after the frame in progress")
            return reply
        if command in (LIST_CONTROLS, SET_CONTROLS):
            return self._error_reply(
                reply, f"{self.role} has no camera controls: send control commands to capture"
            )
        # Preview and saving: a Python reader does not act on them; recorded like every process.
        describe = _describe(command, request.argument)
        key = "preview" if command == SET_PREVIEW else "saving"
        on = bool(request.argument)
        log.info("camera %s: %s: %s (control request)", self.camera.name, self.role, describe)
        text = f"{describe} recorded ({self.role} does not act on it)"
        self.flags = (on, self.flags[1]) if key == "preview" else (self.flags[0], on)
        try:
            self.store.update(self.camera.name, key, on)
        except OSError as e:
            text += f" (not persisted: {e})"
        reply.preview, reply.saving = int(self.flags[0]), int(self.flags[1])
        reply.message_len = put_text(reply.message, text)
        return reply
