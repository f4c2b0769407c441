"""Stopping a build cleanly: SIGINT/SIGTERM become one exception, workers die with their parent.

- :func:`interruptible` turns SIGINT and SIGTERM into :class:`BuildInterrupted` in the main thread, so
  the build's ``finally`` blocks run (temporary files removed, workers stopped, lock released) and the
  CLI prints one line and exits ``128 + signal`` (130 for Ctrl-C, 143 for SIGTERM). Further signals
  during that cleanup are ignored (SIGKILL still ends the process at once). :func:`deferred` holds
  them back for the few renames of one commit step, so that a step is never cut in half by them.
- :func:`worker_init` is the initializer of every decoding worker: on Linux the kernel kills the worker
  when its parent dies, even by SIGKILL (``prctl(PR_SET_PDEATHSIG)``); elsewhere a watchdog thread
  exits it when its parent is gone. A worker started by a fork server (the ``forkserver`` start method,
  Python 3.14's default on Linux) is a child of that server, not of the build: it watches the build
  itself (a ``pidfd`` where Linux has one, else a poll of the build's PID). It also closes the worker's copy of the build lock, so no worker
  can ever keep ``OUT/.medmat/lock`` held.
- :func:`pause_point` is a test hook: with ``MEDMAT_PAUSE_AT=<stage>`` the build creates the file
  ``MEDMAT_PAUSE_FILE`` when it reaches ``stage`` and waits there, so a test can kill it at a known point.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

#: Stages :func:`pause_point` knows (where the build calls it).
PAUSE_STAGES = ("scan", "decode", "write", "swap")
_PR_SET_PDEATHSIG = 1
_defer = {"depth": 0, "pending": 0}  # deferred() blocks open, and the signal that arrived meanwhile


class BuildInterrupted(BaseException):
    """The build was stopped by a signal (a ``BaseException``, like ``KeyboardInterrupt``)."""

    def __init__(self, signum: int):
        self.signum = signum
        super().__init__(f"build stopped by {signal.Signals(signum).name}")

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_code(self) -> int:
        """The shell convention: ``128 + signal number`` (130 for SIGINT, 143 for SIGTERM)."""
        return 128 + self.signum


@contextmanager
def interruptible() -> Iterator[None]:
    """Raise :class:`BuildInterrupted` in the main thread on SIGINT or SIGTERM while the block runs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    signums = (signal.SIGINT, signal.SIGTERM)
    previous = {s: signal.getsignal(s) for s in signums}

    def handler(signum, frame):
        for s in signums:  # the cleanup that follows must not be interrupted in turn
            signal.signal(s, signal.SIG_IGN)
        if _defer["depth"]:
            _defer["pending"] = signum  # raised when the deferred block ends
            return
        raise BuildInterrupted(signum)

    for s in signums:
        signal.signal(s, handler)
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


@contextmanager
def deferred() -> Iterator[None]:
    """Hold SIGINT and SIGTERM back while the block runs (a rename pair of the commit); they act after it."""
    _defer["depth"] += 1
    try:
        yield
    finally:
        _defer["depth"] -= 1
    if _defer["depth"] == 0 and _defer["pending"]:
        signum, _defer["pending"] = _defer["pending"], 0
        raise BuildInterrupted(signum)


def _set_parent_death_signal(signum: int) -> bool:
    """Ask Linux to send ``signum`` to this process when its parent dies; False where unavailable."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return libc.prctl(_PR_SET_PDEATHSIG, signum, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _watch_parent(parent: int, every: float = 0.5) -> None:
    while os.getppid() == parent:
        time.sleep(every)
    os._exit(1)


def _alive(pid: int) -> bool:
    """Is process ``pid`` still there (signal 0: nothing is sent; POSIX only, on Windows ``os.kill`` would end it)?"""
    if os.name != "posix":
        return os.getppid() == pid  # a spawned worker's parent is the build
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # there, but not ours
        return True
    return True


def _open_pid(pid: int) -> int | None:
    """A ``pidfd`` of ``pid`` (Linux 5.3+; None elsewhere); exits this process if ``pid`` is gone."""
    try:
        return os.pidfd_open(pid)
    except ProcessLookupError:
        os._exit(1)
    except (AttributeError, OSError):  # no pidfd here: :func:`_watch_pid` polls
        if not _alive(pid):
            os._exit(1)
        return None


def _watch_pid(pid: int, handle: int | None, every: float = 0.5) -> None:
    """Exit this process once process ``pid`` has ended (its ``pidfd`` turns readable, or a poll)."""
    if handle is not None:
        import select

        select.select([handle], [], [])
        os._exit(1)
    while _alive(pid):
        time.sleep(every)
    os._exit(1)


def worker_init(parent: int) -> None:
    """Initializer of a decoding worker: die with ``parent`` (PID), leave signals and the lock to it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the parent decides
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the parent's handler inherited by fork
    from medmat_builder.safe_paths.owned import release_inherited_locks

    release_inherited_locks()
    if os.getppid() != parent:  # started by a fork server (or the build is already gone): watch the build
        handle = _open_pid(parent)  # exits now if the build is gone
        threading.Thread(target=_watch_pid, args=(parent, handle), daemon=True, name="medmat-watchdog").start()
        return
    if not _set_parent_death_signal(signal.SIGKILL):
        threading.Thread(target=_watch_parent, args=(parent,), daemon=True, name="medmat-watchdog").start()
    if os.getppid() != parent:  # the parent died before the death signal was armed
        os._exit(1)


def pause_point(stage: str) -> None:
    """Test hook: wait here forever when ``MEDMAT_PAUSE_AT`` names ``stage`` (see the module docstring)."""
    if os.environ.get("MEDMAT_PAUSE_AT") != stage:
        return
    flag = os.environ.get("MEDMAT_PAUSE_FILE")
    if flag:
        with open(flag, "w", encoding="utf-8") as fh:
            fh.write(str(os.getpid()))
    os.environ.pop("MEDMAT_PAUSE_AT", None)  # once per build
    while True:
        time.sleep(0.05)
