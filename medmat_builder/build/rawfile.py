"""Kept images whose bytes are their raw file as it is: written from that file, not from the spool.

Most kept images are stored exactly as they were read: a PNG or JPEG with no metadata to strip keeps
its bytes (:func:`medmat_builder.images.load_image` hands back the very ``bytes`` object it read).
Copying those into the spool would cost a first write of every page (system time in the process that
writes it, 588 MB for the 20k bench) only to read them back once. Such a record carries a :class:`RawFile`
instead: the file's path, its length and an xxh3-64 digest of the bytes that were decoded and checked.
The parquet writer reads the file again (:meth:`RawFile.read_into`) and compares both, so a file that
changed in between (a raw folder still being copied or edited) stops the build with
:class:`RawFileChangedError` instead of putting bytes into the export that were never decoded.
Images that were stripped or converted are new bytes: they still go to the spool.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import xxhash

from medmat_builder.build.errors import BuildError


class RawFileChangedError(BuildError):
    """A raw image file changed between its decoding and the writing of its record."""

    def __init__(self, path: str, what: str):
        super().__init__(f"{path} changed while the build ran ({what}): run the build again once the raw "
                         "folder is no longer being modified")
        self.path = path


@dataclass(frozen=True)
class RawFile:
    """The image bytes of a record are the whole file at ``path``: ``length`` bytes whose xxh3-64 is ``digest``
    (of the bytes that were decoded, taken where they were)."""

    path: str
    length: int
    digest: int

    @classmethod
    def of(cls, path: str, data: bytes) -> RawFile:
        """The place of ``data``, the whole content of the file ``path`` as it was just read."""
        return cls(path, len(data), xxhash.xxh3_64_intdigest(data))

    def read_into(self, view: memoryview) -> None:
        """Fill ``view`` (``length`` bytes, a slice of a larger buffer) with the file, read straight into it;
        raise :class:`RawFileChangedError` unless it is still the file that was decoded (length and digest)."""
        try:
            fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except OSError as exc:
            raise RawFileChangedError(self.path, f"it cannot be opened any more: {exc.strerror}") from None
        try:
            size = os.fstat(fd).st_size
            if size != self.length:
                raise RawFileChangedError(self.path, f"{size} bytes now, {self.length} when it was decoded")
            got = 0
            while got < self.length:
                n = os.readv(fd, [view[got:]])
                if not n:
                    raise RawFileChangedError(self.path, f"it ended after {got} of its {self.length} bytes")
                got += n
        finally:
            os.close(fd)
        if xxhash.xxh3_64_intdigest(view) != self.digest:
            raise RawFileChangedError(self.path, "its bytes are not those that were decoded")
