"""The spool: accepted image bytes wait in one temporary file while a config is selected (flat memory).

The file is unlinked right after it is created and used through its descriptor only, so nothing is
left in ``$TMPDIR`` whatever ends the build (SIGKILL included): the kernel frees the space when the
descriptor closes. Its name carries the PID (``medmat-spool-<pid>-*.bin``); the only window in which
it is visible is between creation and unlink, and :func:`sweep_stale_spools` removes a file left there
by a process that is gone.

Worker processes can append to the spool themselves (:class:`SpoolRef`, Linux): they reach the file
through ``/proc/<pid>/fd/<fd>`` of the process that holds it, so the image bytes never travel through
the pool's pipes. Every write is an append (``O_APPEND``) and its offset is read back from the
writer's own file position, so the main process and the workers can add to the file side by side.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from medmat_builder.safe_paths import pid_alive

PREFIX = "medmat-spool-"
_NAME = re.compile(rf"^{PREFIX}(\d+)-[^-]*\.bin$")
logger = logging.getLogger(__name__)


class Spool:
    """Append-only temporary file holding accepted image bytes; the builder reads them back by offset."""

    def __init__(self, directory: str | None = None):
        fd, path = tempfile.mkstemp(prefix=f"{PREFIX}{os.getpid()}-", suffix=".bin", dir=directory)
        self._fd: int | None = fd
        self.path: str | None = path
        try:
            os.unlink(path)  # reachable by the descriptor only from now on
            self.path = None
        except OSError:  # a system that cannot unlink an open file: removed by close()
            pass
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_APPEND)  # see SpoolRef
        stat = os.fstat(fd)
        self.ref = SpoolRef(os.getpid(), fd, stat.st_dev, stat.st_ino)

    @property
    def _size(self) -> int:
        assert self._fd is not None, "spool is closed"
        return os.fstat(self._fd).st_size

    def put(self, data: bytes) -> tuple[int, int]:
        """Append ``data``; return its ``(offset, length)``."""
        assert self._fd is not None, "spool is closed"
        place = append(self._fd, data)
        if place is None:  # a short write: another writer may have appended in between, so write it whole again
            place = append(self._fd, data)
        if place is None:
            raise OSError(f"the image spool took only part of {len(data)} bytes (is {tempfile.gettempdir()} full?)")
        return place

    def get(self, offset: int, length: int) -> bytes:
        """The ``length`` bytes stored at ``offset``."""
        assert self._fd is not None, "spool is closed"
        parts: list[bytes] = []
        got = 0
        while got < length:
            chunk = os.pread(self._fd, length - got, offset + got)
            if not chunk:
                raise OSError(f"spool read past its end ({offset}+{length} > {self._size})")
            parts.append(chunk)
            got += len(chunk)
        return b"".join(parts)

    def read_into(self, offset: int, view: memoryview) -> None:
        """Fill ``view`` (a writable slice of a larger buffer) with the bytes at ``offset``: read straight
        into it, with no intermediate ``bytes`` object (the builder reads into Arrow buffers this way)."""
        assert self._fd is not None, "spool is closed"
        got, length = 0, len(view)
        while got < length:
            n = os.preadv(self._fd, [view[got:]], offset + got)
            if not n:
                raise OSError(f"spool read past its end ({offset}+{length} > {self._size})")
            got += n

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self.path is not None:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
            self.path = None


def append(fd: int, data: bytes) -> tuple[int, int] | None:
    """Append ``data`` to the ``O_APPEND`` file ``fd`` in one write; return its ``(offset, length)``, or None
    when the write was short (the bytes may then not be contiguous).

    The offset comes from the file position the write leaves in ``fd``'s own open file: concurrent
    appends by other processes through other open files land before or after, never inside."""
    if not data:
        return os.lseek(fd, 0, os.SEEK_END), 0
    if os.write(fd, data) != len(data):
        return None
    return os.lseek(fd, 0, os.SEEK_CUR) - len(data), len(data)


@dataclass(frozen=True)
class SpoolRef:
    """How a worker process reaches a :class:`Spool` to append to it: the holder's pid and descriptor, and
    the file's identity (device, inode), checked after opening so a reused descriptor is never written."""

    pid: int
    fd: int
    dev: int
    ino: int

    def open(self) -> int | None:
        """A new ``O_APPEND`` descriptor of the spool (close it after use), or None where it cannot be
        reached this way (no ``/proc``, another file at that descriptor): the caller returns its bytes instead."""
        try:
            fd = os.open(f"/proc/{self.pid}/fd/{self.fd}", os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
        except OSError:
            return None
        stat = os.fstat(fd)
        if (stat.st_dev, stat.st_ino) != (self.dev, self.ino):
            os.close(fd)
            return None
        return fd


def sweep_stale_spools(directory: str | os.PathLike | None = None) -> list[Path]:
    """Remove spool files in ``directory`` (default: the temporary folder) whose process is gone; say so."""
    folder = Path(directory or tempfile.gettempdir())
    removed: list[Path] = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return removed
    for entry in entries:
        m = _NAME.match(entry.name)
        if not m or pid_alive(int(m.group(1))) or not entry.is_file() or entry.is_symlink():
            continue
        try:
            size = entry.stat().st_size
            entry.unlink()
        except OSError:
            continue
        logger.warning("removed %s (%d bytes), a spool left by process %s, which is no longer running",
                       entry, size, m.group(1))
        removed.append(entry)
    return removed
