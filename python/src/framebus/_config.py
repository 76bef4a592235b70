"""The part of a framebus deployment config (TOML) a reader needs, read like the Rust side
(crates/common/src/config): the deployment name and state folder, the camera's size, format
and shared-memory budget, and the reader tables with their policies.

Capture validates the whole file; this module checks what a reader uses, with errors that
name the file, the key and what is allowed (`configs/x.toml: `camera[0].slots`: ...`).
"""

from __future__ import annotations

import math
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from ._errors import ConfigError

# Defaults, as in `config::defaults` of the Rust crate.
DEPLOYMENT_NAME = "default"
FPS = 30.0
PIXEL_FORMAT = "BGR3"
SLOTS = 26
MAX_READERS = 5
ALGO_QUEUE_DEPTH = 1
PREVIEW_QUEUE_DEPTH = 1
RECORDER_QUEUE_DEPTH = 4
STATE_ROOT = "/tmp/framebus"
PREVIEW_ON = True
SAVING_ON = False
PUBLISHER_LOANS = 1
READER_BORROWS = 1
MAX_ROLE_NAME = 24
BUILTIN_ROLES = ("capture", "algo", "preview", "recorder", "streamer")

_NAME_RULE = "1 to 32 characters of a-z, 0-9, `-` and `_`, starting with a letter or digit"
_ROLE_RE = re.compile(r"^[a-z][a-z0-9_-]*$")
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


def fourcc(name: str) -> int:
    """The little-endian fourcc code of a format name (`BGR3` -> 0x33524742)."""
    return int.from_bytes(name.encode("ascii"), "little")


def fourcc_name(code: int) -> str:
    """The four characters of a fourcc code, or its hex value when they are not printable."""
    raw = code.to_bytes(4, "little")
    if all(33 <= b < 127 for b in raw):
        return raw.decode("ascii")
    return f"0x{code:08x}"


#: Bytes per row of the first plane, and bytes of a whole frame, per format.
FORMATS = {
    "BGR3": (lambda w: w * 3, lambda w, h: w * h * 3),
    "RGB3": (lambda w: w * 3, lambda w, h: w * h * 3),
    "GREY": (lambda w: w, lambda w, h: w * h),
    "YUYV": (lambda w: w * 2, lambda w, h: w * h * 2),
    "NV12": (lambda w: w, lambda w, h: w * h + w * h // 2),
    "MJPG": (lambda w: 0, lambda w, h: w * h * 2),
}


def valid_role(name: str) -> bool:
    """Whether `name` is a valid role name (1 to 24 of a-z, 0-9, `-`, `_`, starting with a letter)."""
    return 0 < len(name) <= MAX_ROLE_NAME and _ROLE_RE.match(name) is not None


def role_error(name: str) -> str:
    return (
        f"invalid reader role name `{name}`: use 1 to {MAX_ROLE_NAME} characters of a-z, 0-9, "
        "`-` and `_`, starting with a letter"
    )


@dataclass(frozen=True)
class Policy:
    """Which frames a reader takes: `newest`, `every` or `max-fps` (with `fps`)."""

    name: str
    fps: float | None = None

    @property
    def code(self) -> int:
        """Wire code in control replies: 1 newest, 2 every, 3 max-fps."""
        return {"newest": 1, "every": 2, "max-fps": 3}[self.name]

    def __str__(self) -> str:
        if self.name == "max-fps":
            return f"max-fps={_rust_float(self.fps)}"
        return self.name

    @staticmethod
    def parse(name: str, max_fps: float | None = None) -> "Policy":
        """Parses a policy like the Rust `ReaderPolicy::parse`: `newest`, `every`, `max-fps`
        with `max_fps`, or `max-fps=N`. Raises ValueError saying what is allowed."""
        inline = None
        if "=" in name:
            name, value = name.split("=", 1)
            try:
                inline = float(value.strip())
            except ValueError:
                raise ValueError(f"`{value}` is not a number of frames per second") from None
        name = name.strip()
        fps = inline if inline is not None else max_fps
        if name in ("newest", "every"):
            if fps is not None:
                raise ValueError(f'`max-fps` goes only with policy "max-fps", not with "{name}"')
            return Policy(name)
        if name == "max-fps":
            if fps is None:
                raise ValueError('policy "max-fps" needs `max-fps = <frames per second>`')
            if not (math.isfinite(fps) and 0 < fps <= 1000):
                raise ValueError(f"invalid max-fps {_rust_float(fps)}: allowed more than 0 up to 1000")
            return Policy("max-fps", float(fps))
        raise ValueError(f'unknown policy `{name}`: allowed "newest", "every", "max-fps"')


def _rust_float(value) -> str:
    """A float printed like Rust's `Display` (`2` for 2.0, `2.5`)."""
    if value is None:
        return "?"
    value = float(value)
    return str(int(value)) if value.is_integer() else repr(value)


@dataclass(frozen=True)
class ReaderSpec:
    """One configured reader of a camera."""

    role: str
    queue_depth: int
    policy: Policy
    key: str


@dataclass(frozen=True)
class SlotLayout:
    """How a camera's frame service is laid out in shared memory (Rust `SlotLayout`)."""

    frame_bytes: int
    max_readers: int
    max_queue_depth: int
    reader_borrows: int
    publisher_loans: int

    def slots(self) -> int:
        """Slots iceoryx2 reserves: readers x (queue + borrowed) + publisher loans."""
        return self.max_readers * (self.max_queue_depth + self.reader_borrows) + self.publisher_loans


@dataclass
class CameraConfig:
    """One `[[camera]]` as a reader sees it."""

    name: str
    width: int
    height: int
    fps: float
    pixel_format: str
    slots: int
    max_readers: int
    readers: list[ReaderSpec] = field(default_factory=list)
    preview_enabled: bool | None = None
    recorder_enabled: bool | None = None

    def frame_bytes(self) -> int:
        """Bytes of one frame slot."""
        return FORMATS[self.pixel_format][1](self.width, self.height)

    def slot_layout(self) -> SlotLayout:
        """The shared-memory layout of this camera's frame service."""
        per_reader = max(self.slots - PUBLISHER_LOANS, 0) // max(self.max_readers, 1)
        return SlotLayout(
            frame_bytes=self.frame_bytes(),
            max_readers=self.max_readers,
            max_queue_depth=max(per_reader - READER_BORROWS, 1),
            reader_borrows=READER_BORROWS,
            publisher_loans=PUBLISHER_LOANS,
        )

    def reader_spec(self, role: str) -> ReaderSpec | None:
        """The reader `role` as configured, if it is."""
        return next((r for r in self.readers if r.role == role), None)

    def initial_flags(self) -> tuple[bool, bool]:
        """(preview, saving) when no command has set them: the tables' `enabled`, else defaults."""
        preview = PREVIEW_ON if self.preview_enabled is None else self.preview_enabled
        saving = SAVING_ON if self.recorder_enabled is None else self.recorder_enabled
        return preview, saving


@dataclass
class Deployment:
    """A deployment as loaded from one file."""

    name: str
    source_file: Path
    state_dir_setting: str | None
    cameras: list[CameraConfig]

    @property
    def state_dir(self) -> Path:
        """Folder of the command state (Rust `Deployment::state_dir`)."""
        if self.state_dir_setting is not None:
            return self.resolve_path(self.state_dir_setting)
        return Path(STATE_ROOT) / self.name

    def resolve_path(self, path: str) -> Path:
        """A path from the config, relative to the config file's folder."""
        p = Path(path)
        if p.is_absolute():
            return p
        return self.source_file.parent / p

    def camera(self, name: str | None) -> CameraConfig:
        """A camera by name; with None the only camera of a one-camera deployment."""
        names = ", ".join(f"`{c.name}`" for c in self.cameras)
        if name is None:
            if len(self.cameras) == 1:
                return self.cameras[0]
            raise ConfigError(
                self.source_file,
                "camera",
                f"{len(self.cameras)} cameras are configured, choose one (cameras: {names})",
            )
        for cam in self.cameras:
            if cam.name == name:
                return cam
        raise ConfigError(self.source_file, "camera", f"no camera named `{name}` (cameras: {names})")


_TOP_KEYS = {"deployment", "camera", "media-server"}
_DEPLOYMENT_KEYS = {"name", "state-dir"}
_CAMERA_KEYS = {
    "name", "source", "width", "height", "fps", "pixel-format", "slots", "max-readers",
    "algo", "preview", "recorder", "streamer", "reader",
}
_READER_KEYS = {"name", "policy", "max-fps", "queue-depth", "command"}


def load(path) -> Deployment:
    """Reads a deployment file; raises ConfigError naming the file, key and what is allowed."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(path, "", f"cannot read the file: {e.strerror or e}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(path, "", f"not UTF-8 text: {e}") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(path, "", f"invalid TOML: {e}") from None
    return _parse(path, raw)


def _parse(path: Path, raw: dict) -> Deployment:
    def err(key: str, message: str):
        return ConfigError(path, key, message)

    def check_keys(table, allowed, where: str):
        if not isinstance(table, dict):
            raise err(where, f"expected a table, found {_toml_type(table)}")
        for key in table:
            if key not in allowed:
                listed = ", ".join(f"`{k}`" for k in sorted(allowed))
                raise err(f"{where}.{key}" if where else key, f"unknown field `{key}`, expected one of {listed}")

    def get(table, key, kind, where, default=None, required=False):
        if key not in table:
            if required:
                raise err(where, f"missing field `{key}`")
            return default
        value = table[key]
        full = f"{where}.{key}" if where else key
        if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
            raise err(full, f"invalid type: {_toml_type(value)}, expected an integer")
        if kind is float:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise err(full, f"invalid type: {_toml_type(value)}, expected a number")
            value = float(value)
        if kind is str and not isinstance(value, str):
            raise err(full, f"invalid type: {_toml_type(value)}, expected a string")
        if kind is bool and not isinstance(value, bool):
            raise err(full, f"invalid type: {_toml_type(value)}, expected a boolean")
        if kind is int and not (0 <= value < 2**32):
            raise err(full, f"invalid value {value}: out of range")
        return value

    check_keys(raw, _TOP_KEYS, "")
    section = raw.get("deployment", {})
    check_keys(section, _DEPLOYMENT_KEYS, "deployment")
    name = get(section, "name", str, "deployment", DEPLOYMENT_NAME)
    if not (0 < len(name) <= 32 and _NAME_RE.match(name)):
        raise err("deployment.name", f"invalid name `{name}`: use {_NAME_RULE}")
    state_dir = get(section, "state-dir", str, "deployment")
    cams_raw = raw.get("camera", [])
    if not isinstance(cams_raw, list):
        raise err("camera", "expected an array of tables `[[camera]]`")
    if not cams_raw:
        raise err("camera", "no camera configured: add at least one `[[camera]]` table")
    cameras = []
    seen = set()
    for i, cam in enumerate(cams_raw):
        where = f"camera[{i}]"
        check_keys(cam, _CAMERA_KEYS, where)
        cam_name = get(cam, "name", str, where, required=True)
        if not (0 < len(cam_name) <= 32 and _NAME_RE.match(cam_name)):
            raise err(f"{where}.name", f"invalid name `{cam_name}`: use {_NAME_RULE}")
        if cam_name in seen:
            raise err(f"{where}.name", f"duplicate camera name `{cam_name}`: names must be unique")
        seen.add(cam_name)
        width = get(cam, "width", int, where, required=True)
        height = get(cam, "height", int, where, required=True)
        for key, value in (("width", width), ("height", height)):
            if not 16 <= value <= 16384:
                raise err(f"{where}.{key}", f"invalid value {value}: allowed 16 to 16384 pixels")
        fmt = get(cam, "pixel-format", str, where, PIXEL_FORMAT)
        if fmt not in FORMATS:
            raise err(f"{where}.pixel-format", f"unknown pixel format `{fmt}` (allowed: {', '.join(FORMATS)})")
        if fmt in ("YUYV", "NV12") and (width % 2 or height % 2):
            raise err(f"{where}.width", f"{fmt} needs an even width and height, got {width}x{height}")
        fps = get(cam, "fps", float, where, FPS)
        slots = get(cam, "slots", int, where, SLOTS)
        max_readers = get(cam, "max-readers", int, where, MAX_READERS)
        if not 1 <= max_readers <= 64:
            raise err(f"{where}.max-readers", f"invalid value {max_readers}: allowed 1 to 64")
        min_slots = max_readers * (1 + READER_BORROWS) + PUBLISHER_LOANS
        if slots < min_slots:
            raise err(
                f"{where}.slots",
                f"{slots} slots cannot serve {max_readers} readers: each needs a queue of at least 1 "
                f"frame plus {READER_BORROWS} it works on, and capture needs {PUBLISHER_LOANS}; "
                f"use at least {min_slots}",
            )
        camera = CameraConfig(cam_name, width, height, fps, fmt, slots, max_readers)
        readers = []
        for role, default_depth, default_policy in (
            ("algo", ALGO_QUEUE_DEPTH, "newest"),
            ("preview", PREVIEW_QUEUE_DEPTH, "newest"),
            ("recorder", RECORDER_QUEUE_DEPTH, "every"),
            ("streamer", 1, "newest"),
        ):
            if role not in cam:
                continue
            table = cam[role]
            if not isinstance(table, dict):
                raise err(f"{where}.{role}", f"expected a table, found {_toml_type(table)}")
            readers.append(_reader(err, get, table, role, f"{where}.{role}", role, default_depth, default_policy))
            if role in ("preview", "recorder"):
                enabled = get(table, "enabled", bool, f"{where}.{role}")
                if role == "preview":
                    camera.preview_enabled = enabled
                else:
                    camera.recorder_enabled = enabled
        users = cam.get("reader", [])
        if not isinstance(users, list):
            raise err(f"{where}.reader", "expected an array of tables `[[camera.reader]]`")
        names = set()
        for j, user in enumerate(users):
            key = f"{where}.reader[{j}]"
            check_keys(user, _READER_KEYS, key)
            role = get(user, "name", str, key, required=True)
            if not valid_role(role):
                raise err(f"{key}.name", role_error(role))
            if role in BUILTIN_ROLES:
                raise err(
                    f"{key}.name",
                    f"`{role}` is a built-in role: configure it in [camera.{role}], or name your reader differently",
                )
            if role in names:
                raise err(f"{key}.name", f"duplicate reader name `{role}`: names must be unique per camera")
            names.add(role)
            readers.append(_reader(err, get, user, role, key, f"reader[{j}]", ALGO_QUEUE_DEPTH, "newest"))
        if len(readers) > max_readers:
            listed = ", ".join(r.role for r in readers)
            raise err(
                f"{where}.max-readers",
                f"{len(readers)} readers are configured ({listed}), more than max-readers = {max_readers}",
            )
        layout = camera.slot_layout()
        for r in readers:
            if not 1 <= r.queue_depth <= layout.max_queue_depth:
                raise err(
                    f"{where}.{r.key}.queue-depth",
                    f"invalid value {r.queue_depth}: allowed 1 to {layout.max_queue_depth} with slots = "
                    f"{slots} and max-readers = {max_readers} (raise slots for deeper queues)",
                )
        camera.readers = readers
        cameras.append(camera)
    return Deployment(name=name, source_file=path, state_dir_setting=state_dir, cameras=cameras)


def _reader(err, get, table, role, where, key, default_depth, default_policy) -> ReaderSpec:
    depth = get(table, "queue-depth", int, where, default_depth)
    policy_name = get(table, "policy", str, where)
    max_fps = get(table, "max-fps", float, where)
    try:
        if policy_name is not None:
            policy = Policy.parse(policy_name, max_fps)
        elif max_fps is not None:
            policy = Policy.parse("max-fps", max_fps)
        else:
            policy = Policy(default_policy)
    except ValueError as e:
        raise err(f"{where}.policy", str(e)) from None
    return ReaderSpec(role=role, queue_depth=depth, policy=policy, key=key)


def _toml_type(value) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return f'string "{value}"'
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "table"
    return type(value).__name__


def env_default(value, variable: str):
    """`value`, else the environment variable `variable`, else None."""
    if value is not None:
        return value
    found = os.environ.get(variable)
    return found if found else None
