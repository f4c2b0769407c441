"""The spool: accepted image bytes wait in one temporary file while a config is selected (flat memory).

The file is unlinked right after it is created and used through its descriptor only, so nothing is
left in ``$TMPDIR`` whatever ends the build (SIGKILL included): the kernel frees the space when the
descriptor closes. Its name carries the PID (``medmat-spool-<pid>-*.bin``); the only window in which
it is visible is between creation and unlink, and :func:`sweep_stale_spools` removes a file left there
by a process that is gone.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
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
        self._size = 0

    def put(self, data: bytes) -> tuple[int, int]:
        """Append ``data``; return its ``(offset, length)``."""
        assert self._fd is not None, "spool is closed"
        off = self._size
        view = memoryview(data)
        done = 0
        while done < len(view):
            done += os.pwrite(self._fd, view[done:], off + done)
        self._size += len(data)
        return off, len(data)

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
