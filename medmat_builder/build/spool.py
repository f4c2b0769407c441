"""The spool: accepted image bytes wait in one temporary file while a config is selected (flat memory)."""

from __future__ import annotations

import os
import tempfile


class Spool:
    """Append-only temporary file holding accepted image bytes; the builder reads them back by offset."""

    def __init__(self, directory: str | None = None):
        fd, self.path = tempfile.mkstemp(prefix="medmat-spool-", suffix=".bin", dir=directory)
        self._fh = os.fdopen(fd, "w+b")
        self._size = 0

    def put(self, data: bytes) -> tuple[int, int]:
        """Append ``data``; return its ``(offset, length)``."""
        self._fh.seek(self._size)
        self._fh.write(data)
        off = self._size
        self._size += len(data)
        return off, len(data)

    def get(self, offset: int, length: int) -> bytes:
        self._fh.flush()
        with open(self.path, "rb") as fh:
            fh.seek(offset)
            return fh.read(length)

    def close(self) -> None:
        self._fh.close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
