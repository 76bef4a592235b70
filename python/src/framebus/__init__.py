"""Read framebus cameras from Python: frames as read-only numpy arrays in shared memory (zero
copies), under the same policies as the Rust readers, with `ctl status` and `ctl stop`
answered for you, and results published for the preview, the recorder and other readers.

    import framebus

    with framebus.open_camera("configs/default.toml", "cam0", policy="newest") as cam:
        for frame in cam.frames():         # ends on SIGINT/SIGTERM or `ctl stop cam0 <role>`
            img = frame.image              # (h, w, 3) uint8 for BGR3, read-only, no copy
            cam.publish_result(frame, {"mean": float(img.mean())})

A frame is valid only inside its loop iteration. An image still referenced when the next frame
is taken keeps showing its own frame (it is moved to a private copy first, never recycled
memory); `frame.image.copy()` says so explicitly. Built on the official iceoryx2 bindings
(PyPI `iceoryx2`) and numpy; no compiled code of its own.
"""

from ._abi import ControlReply, ControlRequest, FrameHeader, ResultBox, ResultRecord
from ._camera import Camera, Frame, decode_result, open_camera, program_role
from ._config import Deployment, Policy, load as load_config
from ._errors import (
    ConfigError,
    FramebusError,
    FrameReleasedError,
    FrameStillReferencedError,
    IpcError,
)
from ._ipc import iceoryx2_settings, iceoryx_config

__all__ = [
    "Camera",
    "ConfigError",
    "ControlReply",
    "ControlRequest",
    "Deployment",
    "Frame",
    "FrameHeader",
    "FrameReleasedError",
    "FrameStillReferencedError",
    "FramebusError",
    "IpcError",
    "Policy",
    "ResultBox",
    "ResultRecord",
    "decode_result",
    "iceoryx2_settings",
    "iceoryx_config",
    "load_config",
    "open_camera",
    "program_role",
]

__version__ = "0.1.0"
