"""The errors the package raises (the compiled part raises these classes). Every one names what
it was about (file and key, camera and service) and, where there is one, what to do."""

from __future__ import annotations

from pathlib import Path


class FramebusError(Exception):
    """Base class of every framebus error."""


class ConfigError(FramebusError):
    """The deployment config cannot be used: names the file, the key and what is allowed
    (the Rust loader's message, with line and column where it has them)."""

    def __init__(self, file, key: str, message: str, text: str | None = None):
        self.file = Path(file)
        self.key = key
        self.message = message
        if text is None:
            text = f"{self.file}: `{key}`: {message}" if key else f"{self.file}: {message}"
        super().__init__(text)


class IpcError(FramebusError):
    """An iceoryx2 operation failed; the message says what framebus was doing (camera,
    service) and iceoryx2's error."""


class FrameReleasedError(FramebusError):
    """A frame was used after its loop iteration: it is valid only until the next frame is
    taken. Copy what you keep (`frame.image.copy()`)."""


class FrameStillReferencedError(FramebusError):
    """With `kept_images="raise"`: an image of the previous frame is still referenced when the
    next frame is taken."""
