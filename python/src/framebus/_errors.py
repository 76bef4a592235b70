"""The errors the package raises. Every one names what it was about (file and key, camera and
service) and, where there is one, what to do."""

from __future__ import annotations

from pathlib import Path


class FramebusError(Exception):
    """Base class of every framebus error."""


class ConfigError(FramebusError):
    """The deployment config cannot be used: names the file, the key and what is allowed."""

    def __init__(self, file, key: str, message: str):
        self.file = Path(file)
        self.key = key
        self.message = message
        where = f"{self.file}: `{key}`" if key else str(self.file)
        super().__init__(f"{where}: {message}")


class IpcError(FramebusError):
    """An iceoryx2 operation failed; the message says what framebus was doing (camera,
    service) and iceoryx2's error."""

    def __init__(self, context: str, cause=None):
        self.context = context
        self.cause = cause
        text = context if cause is None else f"{context}: {_describe(cause)}"
        super().__init__(text)


class FrameReleasedError(FramebusError):
    """A frame was used after its loop iteration: it is valid only until the next frame is
    taken. Copy what you keep (`frame.image.copy()`)."""


class FrameStillReferencedError(FramebusError):
    """With `kept_images="raise"`: an image of the previous frame is still referenced when the
    next frame is taken."""


def _describe(cause) -> str:
    """iceoryx2's Python errors carry their variant name as the first argument."""
    name = type(cause).__name__
    args = getattr(cause, "args", ())
    detail = ", ".join(str(a) for a in args) if args else str(cause)
    return f"{name}({detail})" if detail else name
