"""Type stubs of the compiled part of the package (crates/framebus-py): the Rust reader and
its types. Users import these names from `framebus`."""

from os import PathLike
from typing import Any, Literal, final, overload

import numpy as np
import numpy.typing as npt

_Array = npt.NDArray[np.uint8]

@final
class Policy:
    """A reader policy: `newest`, `every` or `max-fps=N` (`str()` gives that text)."""

    def __init__(self, name: str, max_fps: float | None = None) -> None: ...
    @staticmethod
    def parse(name: str, max_fps: float | None = None) -> Policy:
        """Parses `"newest"`, `"every"`, `"max-fps"` with `max_fps`, or `"max-fps=N"`; raises
        ValueError saying what is allowed."""
    @property
    def name(self) -> str:
        """`newest`, `every` or `max-fps`."""
    @property
    def fps(self) -> float | None:
        """Frames per second of `max-fps`, else None."""
    @property
    def code(self) -> int:
        """Wire code in status replies: 1 newest, 2 every, 3 max-fps."""

@final
class SlotLayout:
    """How a camera's frame slots are shared (`slots`, `max-readers`)."""

    frame_bytes: int
    max_readers: int
    max_queue_depth: int
    reader_borrows: int
    publisher_loans: int

@final
class CameraConfig:
    """One camera of a deployment config, validated by the Rust loader."""

    @property
    def name(self) -> str: ...
    @property
    def width(self) -> int: ...
    @property
    def height(self) -> int: ...
    @property
    def fps(self) -> float: ...
    @property
    def pixel_format(self) -> str: ...
    @property
    def slots(self) -> int: ...
    @property
    def max_readers(self) -> int: ...
    @property
    def frame_bytes(self) -> int: ...
    def slot_layout(self) -> SlotLayout: ...
    def roles(self) -> list[str]: ...

@final
class Deployment:
    """A deployment config file, loaded and validated by the Rust loader."""

    @property
    def name(self) -> str: ...
    @property
    def source_file(self) -> str: ...
    @property
    def state_dir(self) -> str: ...
    @property
    def cameras(self) -> list[CameraConfig]: ...
    def camera(self, name: str | None = None) -> CameraConfig:
        """The camera named `name`, or the only camera; raises ConfigError otherwise."""
    def reader_settings(
        self, camera: str | None, role: str, policy: Policy | None = None, queue_depth: int | None = None
    ) -> dict[str, Any]:
        """What a reader of `camera` with `role` would open with (the config's reader entry
        wins): camera, role, policy, queue_depth, width, height, fps, pixel_format, slots,
        max_readers, max_queue_depth, frame_bytes, service, iceoryx2_prefix, iceoryx2_root_path."""

@final
class FrameHeader:
    """A copy of a frame's header (`framebus::FrameHeader`, layout v1)."""

    layout_version: int
    header_size: int
    frame_id: int
    sequence: int
    capture_mono_ns: int
    capture_realtime_ns: int
    publish_mono_ns: int
    width: int
    height: int
    stride: int
    pixel_format: int
    payload_len: int
    flags: int
    source_drops: int
    run_id: int

@final
class Frame:
    """One frame, read in place in shared memory. Valid only inside its loop iteration; its
    header fields stay readable after, its pixels do not (FrameReleasedError). Arrays still
    referenced when the next frame is taken are moved to a private copy first."""

    @property
    def header(self) -> FrameHeader: ...
    @property
    def id(self) -> int: ...
    @property
    def width(self) -> int: ...
    @property
    def height(self) -> int: ...
    @property
    def stride(self) -> int: ...
    @property
    def fourcc(self) -> int: ...
    @property
    def pixel_format(self) -> str: ...
    @property
    def capture_ns(self) -> int: ...
    @property
    def capture_realtime_ns(self) -> int: ...
    @property
    def publish_ns(self) -> int: ...
    @property
    def sequence(self) -> int: ...
    @property
    def run_id(self) -> int: ...
    @property
    def source_drops(self) -> int: ...
    @property
    def flags(self) -> int: ...
    @property
    def latency_ns(self) -> int: ...
    @property
    def released(self) -> bool: ...
    @property
    def data(self) -> _Array:
        """The frame's bytes as a read-only 1-D uint8 array (MJPG: the JPEG)."""
    @property
    def image(self) -> _Array:
        """The frame as a read-only array shaped for OpenCV: BGR3/RGB3 (h, w, 3), GREY (h, w),
        YUYV (h, w, 2), NV12/NV21 (h * 3/2, w), NV16 (h * 2, w), MJPG the JPEG bytes."""
    @property
    def planes(self) -> tuple[_Array, ...]:
        """NV12/NV21/NV16: (Y, interleaved chroma); every other format (image,)."""

@final
class FrameBuffer:
    """A read-only buffer over part of a frame (what the arrays are made from)."""

@final
class Pattern:
    """The synthetic test pattern of one format and size (Rust `SyntheticPattern`)."""

    def __init__(self, pixel_format: str, width: int, height: int) -> None: ...
    @property
    def frame_bytes(self) -> int: ...
    def check(self, frame_id: int, payload: Any, stamps_only: bool = False) -> str | None:
        """None when `payload` is frame `frame_id` of the pattern (its stamps only, when
        `stamps_only`), else what differs."""

#: Header flag bit 0: the synthetic integrity stamp is present.
FLAG_SYNTHETIC_STAMP: int
#: Header flag bit 1: a scene is drawn between the stamps.
FLAG_SCENE: int
#: Header flag bit 2: frames of the source are missing just before this one.
FLAG_GAP_BEFORE: int

@final
class Gap:
    """Frames of the source missing before the next frame (`Camera.events()`)."""

    source_lost: int
    restarted: bool
    duration_ns: int
    @property
    def duration(self) -> float: ...

@final
class Reader:
    """The compiled reader behind `framebus.Camera`."""

    def __init__(
        self,
        config: str | None,
        camera: str | None,
        role: str,
        policy: Policy | None = None,
        queue_depth: int | None = None,
        stats_interval: float = 1.0,
        kept_images_raise: bool = False,
    ) -> None: ...
    @overload
    def next_frame(self, timeout: float | None = None, gaps: Literal[False] = False) -> Frame | None: ...
    @overload
    def next_frame(self, timeout: float | None, gaps: Literal[True]) -> Frame | Gap | None: ...
    def release_frame(self) -> bool: ...
    def request_stop(self) -> None: ...
    @property
    def stop_reason(self) -> str | None: ...
    def report(self, message: str | None = None, state: str | None = None) -> None: ...
    def stats(self) -> dict[str, Any]: ...
    def settings(self) -> dict[str, Any]: ...
    def publish_result(
        self,
        frame_id: int,
        json: str | None,
        score: float | None,
        boxes: list[tuple[float, float, float, float, str, float]],
        run_id: int | None = None,
        capture_ns: int | None = None,
    ) -> None: ...
    def results(self) -> list[tuple[Any, ...]]: ...
    def close(self) -> None: ...
    @property
    def closed(self) -> bool: ...
    @property
    def config(self) -> CameraConfig: ...
    @property
    def deployment(self) -> Deployment: ...
    @property
    def role(self) -> str: ...
    @property
    def policy(self) -> Policy: ...
    @property
    def queue_depth(self) -> int: ...
    @property
    def service(self) -> str: ...

def load_config(path: str | PathLike[str]) -> Deployment:
    """Loads and validates a deployment config; raises ConfigError naming the file and key."""

def iceoryx2_settings(deployment: str) -> dict[str, str]:
    """The deployment's iceoryx2 `prefix` and `root_path` (as `ctl iox2-config`)."""

def role_error(name: str) -> str | None: ...
def max_role_name() -> int: ...
def install_signals() -> None: ...
