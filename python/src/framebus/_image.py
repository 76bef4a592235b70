"""Zero-copy numpy views of a frame in shared memory that can never show another frame.

A received sample lives in iceoryx2's read-only mapping of capture's data segment, and goes back
to capture (to be overwritten by a later frame) when the reader releases it; a reader may hold
one sample at a time. numpy arrays cannot be invalidated, and a Python loop keeps the last
iteration's `img = frame.image` alive while it takes the next frame. So the arrays handed out do
not point into iceoryx2's mapping but into a mapping of their own of the same shared-memory
pages (same physical memory: no copy), read-only. When the frame is released:

- no array of it is alive any more: the mapping is removed (the common case, no copy);
- an array is still referenced: its mapping is first replaced, in place, by a private copy of
  the same bytes (one copy, only then), so the array keeps showing its own frame for as long as
  it lives, and the sample is released.

Views are read-only for numpy (`writeable` is False and cannot be set): the memory is mapped
without write permission.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import threading
import weakref

import numpy as np

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
_libc.munmap.restype = ctypes.c_int
_libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_libc.mremap.restype = ctypes.c_void_p
_libc.mremap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t, ctypes.c_int, ctypes.c_void_p]
_libc.mprotect.restype = ctypes.c_int
_libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]

_MAP_FAILED = ctypes.c_void_p(-1).value
_MREMAP_MAYMOVE = 1
_MREMAP_FIXED = 2
PAGE = mmap.PAGESIZE


def _check(result, what: str):
    if result is None or result == _MAP_FAILED:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return result


class _Segments:
    """Which file backs an address of iceoryx2's mappings (from /proc/self/maps), and an open
    read-only descriptor per file, reused from frame to frame.

    The table is re-read whenever the sending publisher changes: a restarted capture has a new
    data segment, which iceoryx2 may map at the very address range of the old one (a stale
    table would map the dead capture's file: old frames)."""

    def __init__(self):
        self._ranges = []  # (start, end, file offset, path, inode)
        self._fds = {}  # inode -> (fd, path)
        self._publisher = None
        self._lock = threading.Lock()

    def locate(self, address: int, length: int, publisher):
        """(fd, file offset of `address`) for a range inside one file mapping of `publisher`'s
        data segment."""
        with self._lock:
            if publisher != self._publisher:
                self._reload()
                self._publisher = publisher
            found = self._find(address, length)
            if found is None:
                self._reload()
                found = self._find(address, length)
            if found is None:
                raise OSError(f"no shared-memory file mapping holds address 0x{address:x}")
            start, _end, offset, path, inode = found
            entry = self._fds.get(inode)
            if entry is None:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
                if os.fstat(fd).st_ino != inode:
                    os.close(fd)
                    raise OSError(f"{path} was replaced while mapped")
                # Capture restarts make new segments: keep only the descriptors still mapped.
                mapped = {r[4] for r in self._ranges}
                for stale in [i for i in self._fds if i not in mapped]:
                    os.close(self._fds.pop(stale)[0])
                self._fds[inode] = entry = (fd, path)
            return entry[0], offset + (address - start)

    def _find(self, address, length):
        for r in self._ranges:
            if r[0] <= address and address + length <= r[1]:
                return r
        return None

    def _reload(self):
        ranges = []
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            for line in maps:
                parts = line.split(maxsplit=5)
                if len(parts) < 6 or not parts[5].startswith("/dev/shm/"):
                    continue
                path = parts[5].rstrip("\n")
                if path.endswith(" (deleted)"):
                    continue
                lo, hi = (int(x, 16) for x in parts[0].split("-"))
                ranges.append((lo, hi, int(parts[2], 16), path, int(parts[4])))
        self._ranges = ranges

    def close(self):
        with self._lock:
            for fd, _ in self._fds.values():
                os.close(fd)
            self._fds.clear()
            self._ranges = []
            self._publisher = None


class _Mapping:
    """Our own read-only mapping of the pages of one sample; unmapped when the last array over
    it is gone (or when the frame is released with no array alive)."""

    def __init__(self, fd: int, file_offset: int, length: int):
        base = file_offset - file_offset % PAGE
        self.delta = file_offset - base
        self.length = self.delta + length
        self.address = _check(
            _libc.mmap(None, self.length, mmap.PROT_READ, mmap.MAP_SHARED, fd, base), "mapping a frame"
        )
        self.private = False
        self._lock = threading.Lock()

    @property
    def data(self) -> int:
        return self.address + self.delta

    def privatize(self) -> None:
        """Replaces the mapping in place by a private, read-only copy of its bytes."""
        with self._lock:
            if self.private or self.address is None:
                return
            tmp = _check(
                _libc.mmap(
                    None,
                    self.length,
                    mmap.PROT_READ | mmap.PROT_WRITE,
                    mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | getattr(mmap, "MAP_POPULATE", 0),
                    -1,
                    0,
                ),
                "allocating a copy of a kept frame",
            )
            ctypes.memmove(tmp, self.address, self.length)
            _libc.mprotect(tmp, self.length, mmap.PROT_READ)
            moved = _libc.mremap(tmp, self.length, self.length, _MREMAP_MAYMOVE | _MREMAP_FIXED, self.address)
            if moved != self.address:
                err = ctypes.get_errno()
                _libc.munmap(tmp, self.length)
                raise OSError(err, f"moving a kept frame to private memory: {os.strerror(err)}")
            self.private = True

    def unmap(self) -> None:
        with self._lock:
            if self.address is not None:
                _libc.munmap(self.address, self.length)
                self.address = None

    def __del__(self):
        try:
            self.unmap()
        except Exception:
            pass


class _Owner:
    """What a numpy array's `base` points to: keeps the mapping alive while the array lives."""

    __slots__ = ("mapping", "__array_interface__", "__weakref__")

    def __init__(self, mapping: _Mapping, offset: int, shape, strides):
        self.mapping = mapping
        self.__array_interface__ = {
            "version": 3,
            "shape": tuple(shape),
            "typestr": "|u1",
            "data": (mapping.data + offset, True),  # True: read-only
            "strides": None if strides is None else tuple(strides),
        }


class FrameMemory:
    """The arrays of one frame: made on demand over one mapping, tracked until release."""

    def __init__(self, segments: _Segments, address: int, length: int, publisher):
        self._segments = segments
        self._address = address
        self._length = length
        self._publisher = publisher
        self._mapping: _Mapping | None = None
        self._owners: list[weakref.ref] = []
        self.copied = False

    def array(self, offset: int, shape, strides=None) -> np.ndarray:
        """A read-only uint8 array over `shape`/`strides` at `offset` into the payload."""
        if self._mapping is None:
            fd, file_offset = self._segments.locate(self._address, self._length, self._publisher)
            self._mapping = _Mapping(fd, file_offset, self._length)
        owner = _Owner(self._mapping, offset, shape, strides)
        self._owners.append(weakref.ref(owner))
        array = np.asarray(owner)
        return array

    def alive(self) -> bool:
        """Whether an array of this frame is still referenced."""
        return any(ref() is not None for ref in self._owners)

    def release(self) -> bool:
        """Before the sample goes back to capture: privatize the arrays still alive, unmap
        otherwise. Returns True when a kept array had to be copied."""
        mapping, self._mapping = self._mapping, None
        if mapping is None:
            return False
        if self.alive():
            mapping.privatize()
            self.copied = True
            return True
        mapping.unmap()
        return False
