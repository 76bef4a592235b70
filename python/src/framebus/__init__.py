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
memory); `frame.image.copy()` says so explicitly. The reader itself is the Rust crate
`framebus` (config, policies, accounting, control, signals, results), compiled into
`framebus._framebus`.
"""

from ._camera import Camera, open_camera, program_role
from ._errors import (
    ConfigError,
    FramebusError,
    FrameReleasedError,
    FrameStillReferencedError,
    IpcError,
)
from ._framebus import (
    CameraConfig,
    Deployment,
    Frame,
    FrameHeader,
    Gap,
    Policy,
    SlotLayout,
    iceoryx2_settings,
    load_config,
)
from ._results import Box, Result

__all__ = [
    "Box",
    "Camera",
    "CameraConfig",
    "ConfigError",
    "Deployment",
    "Frame",
    "FrameHeader",
    "FrameReleasedError",
    "FrameStillReferencedError",
    "FramebusError",
    "Gap",
    "IpcError",
    "Policy",
    "Result",
    "SlotLayout",
    "iceoryx2_settings",
    "load_config",
    "open_camera",
    "program_role",
]

__version__ = "0.1.0"
