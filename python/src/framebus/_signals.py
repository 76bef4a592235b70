"""SIGINT and SIGTERM for the readers of this process (Rust `framebus_common::signals`): they end
every open camera's loop after the frame in progress; a second SIGINT exits at once with status
130 (the way out of a frame that never ends). SIGTERM never does that, so supervisors may
repeat it.

Python runs signal handlers on the main thread between bytecodes, which a long C call (OpenCV,
numpy) delays. So the handlers are paired with a wake-up pipe (`signal.set_wakeup_fd`) that
the control thread reads: it sees the signal at once, reports `stopping`, and counts the second
SIGINT even while the frame thread is stuck. Installed only when a camera is opened on the main
thread (Python allows nothing else); the previous handlers come back when the last camera
closes.
"""

from __future__ import annotations

import os
import signal
import threading

_lock = threading.Lock()
_cameras = set()  # Shared objects of the open cameras
_installed = None  # (old SIGINT handler, old SIGTERM handler, old wakeup fd, read fd, write fd)
_seen = 0  # SIGINT/SIGTERM seen so far (through the handler or the pipe)
_pipe_active = False


def _stop_all():
    for shared in list(_cameras):
        shared.request_stop("signal")


def _handler(signum, _frame):
    global _seen
    if not _pipe_active:
        # Without the pipe the handler counts: a second SIGINT exits.
        if signum == signal.SIGINT and _seen > 0:
            os.write(2, b"framebus: second interrupt, exiting now\n")
            os._exit(130)
        _seen += 1
    _stop_all()


def dispatch(data: bytes) -> None:
    """Signal numbers read from the wake-up pipe (called by a control thread)."""
    global _seen
    for signum in data:
        if signum not in (signal.SIGINT, signal.SIGTERM):
            continue
        if signum == signal.SIGINT and _seen > 0:
            os.write(2, b"framebus: second interrupt, exiting now\n")
            os._exit(130)
        _seen += 1
        _stop_all()


def wakeup_fd():
    """The read end of the wake-up pipe, when this module owns it."""
    return _installed[3] if _installed and _pipe_active else None


def register(shared) -> None:
    """Adds an open camera; installs the handlers with the first one (main thread only)."""
    global _installed, _pipe_active
    with _lock:
        _cameras.add(shared)
        if _installed is not None or threading.current_thread() is not threading.main_thread():
            return
        read_fd, write_fd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        old_fd = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
        if old_fd != -1:
            # The program has its own wake-up fd (asyncio): keep it; the handler counts alone.
            signal.set_wakeup_fd(old_fd)
            os.close(read_fd)
            os.close(write_fd)
            read_fd = write_fd = None
            _pipe_active = False
        else:
            _pipe_active = True
        old_int = signal.signal(signal.SIGINT, _handler)
        old_term = signal.signal(signal.SIGTERM, _handler)
        _installed = (old_int, old_term, old_fd, read_fd, write_fd)


def unregister(shared) -> None:
    """Removes a closed camera; restores the previous handlers after the last one."""
    global _installed, _pipe_active
    with _lock:
        _cameras.discard(shared)
        if _cameras or _installed is None or threading.current_thread() is not threading.main_thread():
            return
        old_int, old_term, old_fd, read_fd, write_fd = _installed
        signal.signal(signal.SIGINT, old_int)
        signal.signal(signal.SIGTERM, old_term)
        if _pipe_active:
            signal.set_wakeup_fd(old_fd)
            os.close(read_fd)
            os.close(write_fd)
        _installed = None
        _pipe_active = False
