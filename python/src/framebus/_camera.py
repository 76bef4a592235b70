"""`Camera`: one reader of one camera and its loop, mirroring the Rust reader loop
(crates/framebus/src/camera.rs): the same policies, accounting, control service and stop rules.
"""

from __future__ import annotations

import ctypes
import json
import logging
import math
import os
import sys
import threading
import time
from collections import OrderedDict
from pathlib import Path

import iceoryx2 as iox2

from . import _config, _ipc, _signals
from ._abi import (
    FRAME_HEADER_VERSION,
    JSON_TEXT,
    MAX_BOXES,
    RESULT_LAYOUT_VERSION,
    FrameHeader,
    ResultRecord,
    copy_from,
    put_text,
    text_of,
)
from ._config import Policy, fourcc_name
from ._control import STATES, ControlThread, Shared
from ._errors import FrameReleasedError, FramebusError, FrameStillReferencedError, IpcError
from ._image import FrameMemory, _Segments
from ._state import StateStore

log = logging.getLogger("framebus")

#: The longest the frame thread sleeps before it looks at the stop flag again.
FRAME_WAIT = 0.1
_HEADER_SIZE = ctypes.sizeof(FrameHeader)


def program_role() -> str:
    """The role of a program that names none: `FRAMEBUS_ROLE` when set (`ctl up` sets it for the
    readers it starts), else the program's file name made a valid role name, else `reader`."""
    role = os.environ.get("FRAMEBUS_ROLE")
    if role:
        return role
    stem = Path(sys.argv[0]).stem if sys.argv and sys.argv[0] not in ("", "-c", "-") else ""
    name = "".join(c if c.isascii() and (c.isalnum() or c in "-_") else "-" for c in stem.lower())
    name = name[: _config.MAX_ROLE_NAME]
    return name if _config.valid_role(name) else "reader"


def _sample_info(sample):
    """(payload elements, id of the publisher (capture instance) that sent it) of a sample."""
    header = sample.header
    return header.number_of_elements, header.publisher_id.value


class Frame:
    """One frame, read in place in shared memory (zero copies). Valid only inside its loop
    iteration: taking the next frame releases it (its header fields stay readable; its pixels
    do not). Copy what you keep: `frame.image.copy()`."""

    __slots__ = (
        "_camera", "header", "latency_ns", "_memory", "_released", "_image", "_data", "_planes", "_length",
        "_received_ns",
    )

    def __init__(self, camera: "Camera", header: FrameHeader, memory: FrameMemory, length: int, received_ns: int):
        self._camera = camera
        #: A copy of the frame header (`framebus::FrameHeader` fields).
        self.header = header
        #: Capture (CLOCK_MONOTONIC) → handed to this reader, in nanoseconds.
        self.latency_ns = max(received_ns - header.capture_mono_ns, 0)
        self._received_ns = received_ns
        self._memory = memory
        self._length = length
        self._released = False
        self._image = None
        self._data = None
        self._planes = None

    def __repr__(self) -> str:
        state = " released" if self._released else ""
        return f"<framebus.Frame {self.id} {self.width}x{self.height} {self.pixel_format}{state}>"

    @property
    def id(self) -> int:
        """Frame id: 1, 2, 3, ... per capture run (a gap = frames this reader did not get)."""
        return self.header.frame_id

    @property
    def width(self) -> int:
        return self.header.width

    @property
    def height(self) -> int:
        return self.header.height

    @property
    def stride(self) -> int:
        """Bytes per row of the first plane (0 for MJPG)."""
        return self.header.stride

    @property
    def fourcc(self) -> int:
        """The pixel format as its little-endian fourcc code."""
        return self.header.pixel_format

    @property
    def pixel_format(self) -> str:
        """`BGR3`, `RGB3`, `GREY`, `YUYV`, `NV12` or `MJPG`."""
        return fourcc_name(self.header.pixel_format)

    @property
    def capture_ns(self) -> int:
        """Capture time, CLOCK_MONOTONIC ns (`time.monotonic_ns()` in this process)."""
        return self.header.capture_mono_ns

    @property
    def capture_realtime_ns(self) -> int:
        """Capture time, CLOCK_REALTIME ns since the epoch (`time.time_ns()`)."""
        return self.header.capture_realtime_ns

    @property
    def publish_ns(self) -> int:
        """CLOCK_MONOTONIC ns just before capture sent the frame."""
        return self.header.publish_mono_ns

    @property
    def sequence(self) -> int:
        """The source's own sequence number (driver sequence, file frame index)."""
        return self.header.sequence

    @property
    def run_id(self) -> int:
        """The capture run; changes when capture restarts (and ids start again at 1)."""
        return self.header.run_id

    @property
    def source_drops(self) -> int:
        """Frames the camera's driver dropped so far in this run."""
        return self.header.source_drops

    @property
    def flags(self) -> int:
        """Header flags; bit 0: the synthetic integrity stamp is present."""
        return self.header.flags

    @property
    def released(self) -> bool:
        """Whether the next frame was taken (pixels no longer readable through this object)."""
        return self._released

    def _check(self):
        if self._released:
            raise FrameReleasedError(
                f"frame {self.id} was released when the next frame was taken (a frame is valid only "
                "inside its loop iteration): copy what you keep, e.g. frame.image.copy()"
            )

    def _need(self, needed: int):
        if self._length < needed:
            raise FramebusError(
                f"frame {self.id}: payload has {self._length} bytes, a {self.width}x{self.height} "
                f"{self.pixel_format} frame needs {needed}"
            )

    @property
    def data(self):
        """The frame's bytes (`payload_len` of them) as a read-only 1-D uint8 numpy array, in
        shared memory (MJPG: the JPEG, for `cv2.imdecode`)."""
        self._check()
        if self._data is None:
            self._data = self._memory.array(0, (self._length,))
        return self._data

    @property
    def image(self):
        """The frame as a read-only numpy array in shared memory (no copy), shaped for OpenCV:
        BGR3/RGB3 (h, w, 3); GREY (h, w); YUYV (h, w, 2) (`cv2.COLOR_YUV2BGR_YUYV`); NV12
        (h * 3/2, w) (`cv2.COLOR_YUV2BGR_NV12`); MJPG the JPEG bytes. `frame.planes` has the
        planes separately."""
        self._check()
        if self._image is None:
            w, h, s, fmt = self.width, self.height, self.stride, self.pixel_format
            if fmt in ("BGR3", "RGB3"):
                self._need(s * (h - 1) + w * 3)
                self._image = self._memory.array(0, (h, w, 3), (s, 3, 1))
            elif fmt == "GREY":
                self._need(s * (h - 1) + w)
                self._image = self._memory.array(0, (h, w), (s, 1))
            elif fmt == "YUYV":
                self._need(s * (h - 1) + w * 2)
                self._image = self._memory.array(0, (h, w, 2), (s, 2, 1))
            elif fmt == "NV12":
                self._need(w * h * 3 // 2)
                self._image = self._memory.array(0, (h * 3 // 2, w), (w, 1))
            else:
                self._image = self.data
        return self._image

    @property
    def planes(self):
        """The planes as read-only arrays: NV12 (Y (h, w), UV (h/2, w/2, 2)); every other format
        one plane, as `image`."""
        self._check()
        if self._planes is None:
            if self.pixel_format == "NV12":
                w, h = self.width, self.height
                self._need(w * h * 3 // 2)
                y = self._memory.array(0, (h, w), (w, 1))
                uv = self._memory.array(w * h, (h // 2, w // 2, 2), (w, 2, 1))
                self._planes = (y, uv)
            else:
                self._planes = (self.image,)
        return self._planes

    def _release(self):
        self._released = True
        self._image = self._data = self._planes = None


class Camera:
    """One reader of one camera: its subscription (queue and policy), its control service
    (answered on a thread of its own) and its loop. Open with `framebus.open_camera()`; use as a
    context manager (or call `close()`)."""

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
        self._closed = True  # until fully opened: close() and __del__ do nothing
        if not stats_interval > 0:
            raise ValueError(f"stats_interval={stats_interval!r}: use a number of seconds above 0")
        if kept_images not in ("copy", "raise"):
            raise ValueError(f'kept_images={kept_images!r}: allowed "copy" or "raise"')
        self._kept_images = kept_images
        config = _config.env_default(None if config is None else str(config), "FRAMEBUS_CONFIG") or "configs/default.toml"
        self.deployment = _config.load(config)
        self.config = self.deployment.camera(_config.env_default(camera, "FRAMEBUS_CAMERA"))
        role = role if role is not None else program_role()
        if not _config.valid_role(role):
            raise FramebusError(_config.role_error(role))
        self.role = role
        wanted = None
        if policy is not None or max_fps is not None:
            if isinstance(policy, Policy):
                wanted = policy
            else:
                try:
                    wanted = Policy.parse(policy if policy is not None else "max-fps", max_fps)
                except ValueError as e:
                    raise ValueError(f"policy: {e}") from None
        configured = self.config.reader_spec(role)
        self.policy = configured.policy if configured else (wanted or Policy("newest"))
        if configured and wanted and configured.policy != wanted:
            log.info(
                "camera %s: %s: the config's policy %s wins over %s", self.config.name, role, configured.policy, wanted
            )
        layout = self.config.slot_layout()
        default_depth = layout.max_queue_depth if self.policy.name == "every" else 1
        if configured:
            depth = configured.queue_depth
        else:
            depth = queue_depth if queue_depth is not None else default_depth
        if not (isinstance(depth, int) and 1 <= depth <= layout.max_queue_depth):
            raise FramebusError(
                f"camera `{self.config.name}`: queue depth {depth} is not possible: allowed 1 to "
                f"{layout.max_queue_depth} with the `slots` and `max-readers` of "
                f"{self.deployment.source_file} (raise `slots` for deeper queues)"
            )
        self.queue_depth = depth
        self._shared = Shared(self.policy, depth, stats_interval)
        self._segments = _Segments()
        self._current = None  # (frame, sample, memory) handed out and not yet released
        self._recent = OrderedDict()  # frame id -> (run id, capture ns) of recent frames
        self._next_due = time.monotonic()
        self._publisher = None
        self._results = None
        self._copies = 0
        self._control = None
        self._subscriber = self._listener = self._node = None
        dep, cam = self.deployment.name, self.config.name
        try:
            self._node = _ipc.create_node(dep, f"{role}-{cam}")
            frames, ready, self.service = _ipc.open_frame_bus(self._node, dep, self.config)
            try:
                self._subscriber = frames.subscriber_builder().buffer_size(depth).create()
            except Exception as e:
                if "ExceedsMaxSupportedSubscribers" in str(getattr(e, "args", e)):
                    more = (layout.max_queue_depth + layout.reader_borrows) * layout.frame_bytes
                    raise IpcError(
                        f"camera `{cam}`: all {layout.max_readers} reader slots of `{self.service}` are taken: "
                        f"raise `max-readers` of camera `{cam}` in {self.deployment.source_file} to "
                        f"{layout.max_readers + 1} and `slots` to "
                        f"{layout.slots() + layout.max_queue_depth + layout.reader_borrows} (another reader "
                        f"costs {more / (1024 * 1024):.1f} MiB of shared memory: "
                        f"{layout.max_queue_depth + layout.reader_borrows} slots of {layout.frame_bytes} bytes)",
                        e,
                    ) from None
                raise IpcError(f"camera `{cam}`: subscribing to `{self.service}` with queue depth {depth}", e) from None
            try:
                self._listener = ready.listener_builder().create()
            except Exception as e:
                raise IpcError(f"camera `{cam}`: creating the frame-ready listener", e) from None
            del frames, ready
            _signals.register(self._shared)
            self._control = ControlThread(
                self.deployment, self.config, role, self._shared, StateStore(self.deployment.state_dir)
            )
            self._control.start()
        except BaseException:
            self._closed = False
            self.close()
            raise
        self._closed = False
        log.info(
            "camera %s: %s reading frames (policy %s, queue depth %d, service %s)",
            cam, role, self.policy, depth, self.service,
        )

    # -- the loop -------------------------------------------------------------------------

    def frames(self):
        """Frames, one per iteration, until stop: SIGINT/SIGTERM, `ctl stop <camera> <role>`
        or `request_stop()`. Each frame is released when the next one is taken (or the loop
        ends): it is valid only inside its iteration."""
        try:
            while True:
                frame = self.next_frame()
                if frame is None:
                    return
                yield frame
        finally:
            if not self._closed:
                self._release_current()

    def next_frame(self, timeout: float | None = None):
        """The next frame under the policy, releasing the previous one; None on stop (or when
        `timeout` seconds pass without a frame)."""
        self._ensure_open()
        self._release_current()
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if self._shared.stop_reason is not None:
                return None
            now = time.monotonic()
            wait = FRAME_WAIT if deadline is None else max(min(FRAME_WAIT, deadline - now), 0.0)
            if self.policy.name == "max-fps" and now < self._next_due:
                # Not due: sleep without waking for frames (they are skipped in the queue).
                time.sleep(min(self._next_due - now, wait if wait > 0 else FRAME_WAIT))
                if deadline is not None and time.monotonic() >= deadline:
                    return None
                continue
            taken = self._take()
            if taken is not None:
                return self._hand_out(*taken)
            if deadline is not None and now >= deadline:
                return None
            try:
                self._listener.timed_wait(iox2.Duration.from_secs_f64(wait))
            except Exception as e:
                if not _ipc.wait_interrupted(e):
                    raise IpcError(f"camera `{self.config.name}`: waiting for frames", e) from None

    def _take(self):
        """The frame the policy wants, if one is queued; counts the others."""
        newest_only = self.policy.name != "every"
        while True:
            try:
                sample = self._subscriber.receive()
            except Exception as e:
                raise IpcError(f"camera `{self.config.name}`: receiving from `{self.service}`", e) from None
            if sample is None:
                return None
            header = copy_from(FrameHeader, sample.user_header_ptr)
            with self._shared.lock:
                self._shared.accounting.received(header.run_id, header.frame_id, header.source_drops)
                newer = newest_only and self._subscriber.has_samples()
                if newer:
                    # A newer frame is queued: release this one unread.
                    self._shared.accounting.skipped += 1
            if newer:
                sample.delete()
                continue
            return sample, header

    def _hand_out(self, sample, header: FrameHeader) -> Frame:
        now_ns = time.monotonic_ns()
        with self._shared.lock:
            self._shared.accounting.processed += 1
            latency_ns = max(now_ns - header.capture_mono_ns, 0)
            self._shared.window.record_ns(latency_ns)
            self._shared.record_latency_us(latency_ns // 1000)
            self._shared.format = (header.width, header.height, header.pixel_format)
        if self.policy.name == "max-fps":
            # Even spacing without catching up a backlog.
            self._next_due = max(self._next_due + 1.0 / self.policy.fps, time.monotonic())
        if header.layout_version != FRAME_HEADER_VERSION or header.header_size != _HEADER_SIZE:
            sample.delete()
            raise FramebusError(
                f"camera `{self.config.name}`: frame header layout {header.layout_version} of "
                f"{header.header_size} bytes; this package reads layout {FRAME_HEADER_VERSION} of "
                f"{_HEADER_SIZE} bytes (update the framebus package)"
            )
        elements, publisher = _sample_info(sample)
        length = min(header.payload_len, elements)
        memory = FrameMemory(self._segments, sample.payload_ptr, length, publisher)
        frame = Frame(self, header, memory, length, now_ns)
        self._current = (frame, sample, memory)
        self._recent[header.frame_id] = (header.run_id, header.capture_mono_ns)
        while len(self._recent) > 64:
            self._recent.popitem(last=False)
        return frame

    def _release_current(self):
        current, self._current = self._current, None
        if current is None:
            return
        frame, sample, memory = current
        frame._release()
        self._shared.released(time.monotonic_ns() - frame._received_ns)
        copied = False
        try:
            copied = memory.release()
        finally:
            sample.delete()
        if copied:
            self._copies += 1
            if self._kept_images == "raise":
                raise FrameStillReferencedError(
                    f"frame {frame.id}'s image is still referenced after its iteration; use "
                    "frame.image.copy() to keep it (it was moved to a private copy, so it stays valid)"
                )

    # -- status and control ---------------------------------------------------------------

    def request_stop(self):
        """Ends the loop: the next `next_frame()` returns None."""
        self._shared.request_stop("program")

    @property
    def stop_reason(self):
        """Why the loop ends, once it should: `signal`, `command` (`ctl stop`) or `program`."""
        return self._shared.stop_reason

    def report(self, message: str | None = None, state: str | None = None):
        """What `ctl status` says beyond the reader figures: a one-line `message` (up to 1024
        ASCII characters) and a `state` to report instead of running/waiting (`degraded`, or
        None for the default)."""
        if state is not None and state not in STATES:
            raise ValueError(f"state {state!r}: allowed {', '.join(STATES)} or None")
        with self._shared.lock:
            if message is not None:
                self._shared.message = str(message)
            self._shared.state = state

    def stats(self) -> dict:
        """The reader's figures now: processed, skipped, overwritten, driver_drops,
        capture_restarts, out_of_order, first/last_frame_id, fps, latency_p50_us/p99_us (last
        window), kept_image_copies."""
        with self._shared.lock:
            acc, w = self._shared.accounting, self._shared.window
            return {
                "processed": acc.processed,
                "skipped": acc.skipped,
                "overwritten": acc.overwritten,
                "driver_drops": acc.driver_drops,
                "capture_restarts": acc.capture_restarts,
                "out_of_order": acc.out_of_order,
                "first_frame_id": acc.first_frame_id,
                "last_frame_id": acc.last_frame_id,
                "published": acc.published(),
                "fps": w.fps,
                "latency_p50_us": w.p50_us,
                "latency_p99_us": w.p99_us,
                "kept_image_copies": self._copies,
            }

    # -- results --------------------------------------------------------------------------

    def publish_result(self, frame, data=None, *, score=None, boxes=None):
        """Publishes a result about `frame` (a Frame or a frame id) on the camera's results
        service, as this reader's role: free-form `data` (JSON-serialisable, up to 1 KiB
        encoded), an overall `score` and labelled `boxes` (up to 16, pixels: dicts with x, y, w,
        h, label, score, or tuples (x, y, w, h[, label[, score]])). The preview draws it, the
        recorder's triggers and `ctl` read it."""
        self._ensure_open()
        if isinstance(frame, Frame):
            frame_id, run_id, capture_ns = frame.id, frame.run_id, frame.capture_ns
        else:
            frame_id = int(frame)
            run_id, capture_ns = self._recent.get(frame_id, (self._current_run(), 0))
        text = "" if data is None else json.dumps(data, separators=(",", ":"), allow_nan=False)
        encoded = text.encode("utf-8")
        if len(encoded) > JSON_TEXT:
            raise ValueError(f"the JSON part is {len(encoded)} bytes: at most {JSON_TEXT}")
        boxes = list(boxes or [])
        if len(boxes) > MAX_BOXES:
            raise ValueError(f"{len(boxes)} boxes: a result carries at most {MAX_BOXES}")
        record = ResultRecord()
        record.layout_version = RESULT_LAYOUT_VERSION
        record.frame_id = frame_id
        record.run_id = run_id
        record.capture_mono_ns = capture_ns
        record.publish_mono_ns = time.monotonic_ns()
        record.score = math.nan if score is None else float(score)
        record.box_count = len(boxes)
        record.producer_len = put_text(record.producer, self.role)
        for slot, item in zip(record.boxes, boxes):
            if isinstance(item, dict):
                x, y, w, h = (float(item[k]) for k in ("x", "y", "w", "h"))
                label, box_score = str(item.get("label", "")), float(item.get("score", 0.0))
            else:
                x, y, w, h = (float(v) for v in item[:4])
                label = str(item[4]) if len(item) > 4 else ""
                box_score = float(item[5]) if len(item) > 5 else 0.0
            slot.x, slot.y, slot.w, slot.h, slot.score = x, y, w, h, box_score
            slot.label_len = put_text(slot.label, label)
        (ctypes.c_char * JSON_TEXT).from_buffer(record.json)[: len(encoded)] = encoded
        record.json_len = len(encoded)
        if self._publisher is None:
            service = _ipc.open_results(self._node, self.deployment.name, self.config.name)
            try:
                self._publisher = service.publisher_builder().create()
            except Exception as e:
                raise IpcError(f"camera `{self.config.name}`: creating a results publisher", e) from None
        try:
            self._publisher.send_copy(record)
        except Exception as e:
            raise IpcError(f"camera `{self.config.name}`: publishing a result", e) from None

    def results(self) -> list:
        """Results published on the camera since the last call (by any producer, this one
        included), oldest first, as dicts. The first call subscribes: earlier results are not
        seen."""
        self._ensure_open()
        if self._results is None:
            service = _ipc.open_results(self._node, self.deployment.name, self.config.name)
            try:
                self._results = service.subscriber_builder().create()
            except Exception as e:
                raise IpcError(f"camera `{self.config.name}`: subscribing to results", e) from None
        found = []
        while True:
            try:
                sample = self._results.receive()
            except Exception as e:
                raise IpcError(f"camera `{self.config.name}`: receiving results", e) from None
            if sample is None:
                return found
            record = copy_from(ResultRecord, sample.payload_ptr)
            sample.delete()
            decoded = decode_result(record)
            if decoded is not None:
                found.append(decoded)

    def _current_run(self) -> int:
        run = self._shared.accounting.run
        return run[0] if run else 0

    # -- lifetime -------------------------------------------------------------------------

    def _ensure_open(self):
        if self._closed:
            raise FramebusError(f"camera `{self.config.name}` of {self.role} is closed")

    def close(self):
        """Stops serving control, releases the frame in progress (arrays still referenced
        keep a private copy), unsubscribes and removes the deployment's leftovers if this was
        its last process. Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._current is not None:
                frame, sample, memory = self._current
                self._current = None
                frame._release()
                try:
                    if memory.release():
                        self._copies += 1
                finally:
                    sample.delete()
        finally:
            if self._control is not None:
                self._control.close()
                self._control = None
            _signals.unregister(self._shared)
            for port in (self._publisher, self._results, self._subscriber, self._listener):
                if port is not None:
                    try:
                        port.delete()
                    except Exception:
                        pass
            self._publisher = self._results = self._subscriber = self._listener = None
            self._node = None
            self._segments.close()
            _ipc.release_if_last(self.deployment.name)
            s = self.stats()
            log.info(
                "camera %s: %s stopped: processed=%d skipped=%d overwritten=%d driver_drops=%d published=%d",
                self.config.name, self.role, s["processed"], s["skipped"], s["overwritten"],
                s["driver_drops"], s["published"],
            )

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def __repr__(self) -> str:
        return f"<framebus.Camera {self.deployment.name}/{self.config.name} role={self.role} policy={self.policy}>"


def decode_result(record: ResultRecord):
    """A results record as a dict (Rust `Outcome`); None for another layout version."""
    if record.layout_version != RESULT_LAYOUT_VERSION:
        return None
    boxes = []
    for b in list(record.boxes)[: min(record.box_count, MAX_BOXES)]:
        boxes.append({"x": b.x, "y": b.y, "w": b.w, "h": b.h, "score": b.score, "label": text_of(b.label, b.label_len)})
    raw = bytes(record.json[: record.json_len]) if record.json_len <= JSON_TEXT else b""
    try:
        data = json.loads(raw) if raw else None
    except ValueError:
        data = None
    return {
        "producer": text_of(record.producer, record.producer_len),
        "frame_id": record.frame_id,
        "run_id": record.run_id,
        "capture_mono_ns": record.capture_mono_ns,
        "publish_mono_ns": record.publish_mono_ns,
        "score": None if math.isnan(record.score) else record.score,
        "boxes": boxes,
        "data": data,
    }


def open_camera(config=None, camera=None, *, role=None, policy=None, max_fps=None, queue_depth=None,
                stats_interval: float = 1.0, kept_images: str = "copy") -> Camera:
    """Opens `camera` of the deployment in `config` (a framebus TOML file) as a reader.

    - config: default `FRAMEBUS_CONFIG`, else `configs/default.toml`.
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
