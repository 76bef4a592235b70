"""The camera's command state (preview and saving flags) as the Rust side keeps it
(crates/common/src/state.rs): `<state-dir>/<camera>.state`, a small TOML file replaced
atomically under an exclusive flock on `<camera>.lock`. A Python reader reports the flags in
its status and records a flag command it receives, like every framebus process."""

from __future__ import annotations

import fcntl
import os
import tomllib
from pathlib import Path


class StateStore:
    """The state files of one deployment."""

    def __init__(self, directory: Path):
        self.dir = Path(directory)

    def path(self, camera: str) -> Path:
        """The state file of `camera`."""
        return self.dir / f"{camera}.state"

    def recorded(self, camera: str) -> dict:
        """The flags commands have set: {'preview': bool|None, 'saving': bool|None}. Raises
        ValueError naming the file when it is malformed, OSError when unreadable."""
        path = self.path(camera)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {"preview": None, "saving": None}
        try:
            raw = tomllib.loads(text)
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise ValueError(f"state file `{path}` is malformed: {e}; delete it to reset the camera's flags") from None
        out = {}
        for key in ("preview", "saving"):
            value = raw.get(key)
            if value is not None and not isinstance(value, bool):
                raise ValueError(f"state file `{path}` is malformed: `{key}` is not true or false")
            out[key] = value
        return out

    def effective(self, camera: str, initial: tuple[bool, bool]) -> tuple[bool, bool]:
        """(preview, saving): recorded flags over `initial`; a broken file gives `initial`."""
        try:
            recorded = self.recorded(camera)
        except (ValueError, OSError):
            return initial
        preview = initial[0] if recorded["preview"] is None else recorded["preview"]
        saving = initial[1] if recorded["saving"] is None else recorded["saving"]
        return preview, saving

    def update(self, camera: str, key: str, on: bool) -> None:
        """Records `key` (preview or saving) as `on`, atomically, under the camera's lock."""
        self.dir.mkdir(parents=True, exist_ok=True)
        lock_path = self.dir / f"{camera}.lock"
        with open(lock_path, "a") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            try:
                state = self.recorded(camera)
            except (ValueError, OSError):
                # A malformed file is replaced: the command being recorded is what the operator wants now.
                state = {"preview": None, "saving": None}
            state[key] = on
            text = (
                f"# framebus command state of camera `{camera}` (written by ctl and the camera's processes);\n"
                "# a flag listed here wins over the config's `enabled`, delete the file to start from the config\n"
            )
            for name in ("preview", "saving"):
                if state[name] is not None:
                    text += f"{name} = {'true' if state[name] else 'false'}\n"
            tmp = self.dir / f".{camera}.state.{os.getpid()}"
            try:
                with open(tmp, "w", encoding="utf-8") as f:
                    f.write(text)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, self.path(camera))
            except OSError:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
                raise
