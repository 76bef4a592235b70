"""Zero-copy numpy views of a frame in shared memory that can never show another frame.

A received sample lives in iceoryx2's read-only mapping of capture's data segment, and goes back
to capture (to be overwritten by a later frame) when the reader releases it; a reader may hold
one sample at a time. numpy arrays cannot be invalidated, and a Python loop keeps the last
iteration's `img = frame.image` alive while it takes the next frame. So the arrays handed out do
not point into iceoryx2's mapping but into a mapping of their own of the same shared-memory
pages (same physical memory: no copy), read-only. When the frame is released:

- no array of it is alive any more: the mapping is kept for the next frame that lands in the
  same slot (its pages stay mapped, so reading that frame costs no page faults);
- an array is still referenced: its mapping is first replaced, in place and atomically, by a
  private copy of the same bytes (one memcpy into a reused buffer, only then), so the array
  keeps showing its own frame for as long as it lives, and the sample is released.

Views are read-only for numpy (`writeable` is False and cannot be set); the shared pages are
also mapped without write permission.
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
        self._cache = {}  # (inode, page offset, length) -> free shared _Mapping
        self.pool = _Pool()

    #: Free shared mappings kept for reuse (virtual address space only: the pages are capture's).
    CACHE = 64

    def mapping(self, address: int, length: int, publisher):
        """A read-only shared mapping covering `length` bytes at `address` of iceoryx2's mapping
        (reused when one for the same slot is free), and the offset of `address` in it."""
        fd, file_offset, inode = self.locate(address, length, publisher)
        base = file_offset - file_offset % PAGE
        delta = file_offset - base
        key = (inode, base, delta + length)
        with self._lock:
            found = self._cache.pop(key, None)
        if found is None:
            found = _Mapping(self, key, fd, base, delta + length)
        found.returned = False
        return found, delta

    def put_back(self, mapping: "_Mapping") -> None:
        """A shared mapping no array uses any more: kept for the next frame of its slot."""
        mapping.returned = True
        with self._lock:
            if mapping.key[0] in {r[4] for r in self._ranges} and len(self._cache) < self.CACHE:
                old = self._cache.get(mapping.key)
                self._cache[mapping.key] = mapping
                mapping = old
        if mapping is not None and mapping.address is not None:
            _libc.munmap(mapping.address, mapping.length)
            mapping.address = None

    def locate(self, address: int, length: int, publisher):
        """(fd, file offset of `address`) for a range inside one file mapping of `publisher`'s
        data segment."""
        with self._lock:
            if publisher != self._publisher:
                self._reload()
                self._publisher = publisher
                self._drop_stale()
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
            return entry[0], offset + (address - start), inode

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

    def _drop_stale(self):
        """Unmaps cached mappings of segments no longer mapped by iceoryx2 (capture restarted)."""
        mapped = {r[4] for r in self._ranges}
        for key in [k for k in self._cache if k[0] not in mapped]:
            m = self._cache.pop(key)
            _libc.munmap(m.address, m.length)
            m.address = None

    def close(self):
        with self._lock:
            for fd, _ in self._fds.values():
                os.close(fd)
            self._fds.clear()
            self._ranges = []
            self._publisher = None
            cached, self._cache = self._cache, {}
        for m in cached.values():
            if m.address is not None:
                _libc.munmap(m.address, m.length)
                m.address = None
        self.pool.close()


class _Pool:
    """Private, already-faulted page buffers for copies of kept frames, reused: a copy then
    costs one memcpy, not an allocation, page faults and zeroing (and its release no freeing).
    At most `KEEP` buffers per size are kept."""

    KEEP = 2

    def __init__(self):
        self._free = {}  # length -> [address]
        self._lock = threading.Lock()
        self._closed = False

    def take(self, length: int) -> int:
        with self._lock:
            free = self._free.get(length)
            address = free.pop() if free else None
        if address is None:
            return _check(
                _libc.mmap(
                    None,
                    length,
                    mmap.PROT_READ | mmap.PROT_WRITE,
                    mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | getattr(mmap, "MAP_POPULATE", 0),
                    -1,
                    0,
                ),
                "allocating a copy of a kept frame",
            )
        return address

    def give(self, address: int, length: int) -> None:
        """Takes back the private pages at `address` (no array uses them any more)."""
        with self._lock:
            if not self._closed and len(self._free.get(length, ())) < self.KEEP:
                self._free.setdefault(length, []).append(address)
                return
        _libc.munmap(address, length)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            free, self._free = self._free, {}
        for length, addresses in free.items():
            for address in addresses:
                _libc.munmap(address, length)


class _Mapping:
    """Our own read-only mapping of the pages of one sample (an alias of shared memory, then,
    if an array outlives its frame, a private copy in place). Shared aliases of a slot are
    reused from frame to frame (their pages stay mapped: no page faults); a private one goes
    back to the pool when its last array is gone."""

    def __init__(self, segments: "_Segments", key, fd: int, base: int, length: int):
        self.segments = segments
        self.key = key
        self.length = length
        self.address = _check(
            _libc.mmap(None, length, mmap.PROT_READ, mmap.MAP_SHARED, fd, base), "mapping a frame"
        )
        self.private = False
        self.returned = False

    def privatize(self) -> None:
        """Replaces the mapping in place, atomically (arrays over it may be read by other threads
        meanwhile), by a private, read-only copy of its bytes."""
        tmp = self.segments.pool.take(self.length)
        ctypes.memmove(tmp, self.address, self.length)
        # No mprotect to read-only (it costs as much as a third of the copy at 1080p): numpy
        # already refuses writes to these arrays (`writeable` False and not settable).
        moved = _libc.mremap(tmp, self.length, self.length, _MREMAP_MAYMOVE | _MREMAP_FIXED, self.address)
        if moved != self.address:
            err = ctypes.get_errno()
            _libc.munmap(tmp, self.length)
            raise OSError(err, f"moving a kept frame to private memory: {os.strerror(err)}")
        self.private = True

    def __del__(self):
        # Runs when the last array over a privatized mapping is gone (shared ones are handed
        # back to the cache by FrameMemory.release and marked returned).
        try:
            if self.returned or self.address is None:
                return
            if self.private:
                self.segments.pool.give(self.address, self.length)
            else:
                _libc.munmap(self.address, self.length)
            self.address = None
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
            "data": (mapping.address + offset, True),  # True: read-only
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
        self._delta = 0
        self._owners: list[weakref.ref] = []

    def array(self, offset: int, shape, strides=None) -> np.ndarray:
        """A read-only uint8 array over `shape`/`strides` at `offset` into the payload."""
        if self._mapping is None:
            self._mapping, self._delta = self._segments.mapping(self._address, self._length, self._publisher)
        owner = _Owner(self._mapping, self._delta + offset, shape, strides)
        self._owners.append(weakref.ref(owner))
        return np.asarray(owner)

    def alive(self) -> bool:
        """Whether an array of this frame is still referenced."""
        return any(ref() is not None for ref in self._owners)

    def release(self) -> bool:
        """Before the sample goes back to capture: move arrays still alive to a private copy,
        else hand the mapping back for the next frame in the same slot. Returns True when a
        kept array had to be copied."""
        mapping, self._mapping = self._mapping, None
        if mapping is None:
            return False
        if self.alive():
            mapping.privatize()
            return True
        self._segments.put_back(mapping)
        return False
