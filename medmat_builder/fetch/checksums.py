"""Checksums of downloads: sha256 and md5 read in one pass, compared with what the registry pins."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the registry (pydantic models) only for the annotations
    from medmat_builder.registry import Download


#: Bytes read at a time (hashing, downloading, unpacking).
CHUNK = 1 << 20


# --------------------------------------------------------------------------- hashing
#: The checksum algorithms a registry download may pin, strongest first.
ALGORITHMS = ("sha256", "md5")


def file_hashes(path: Path) -> dict[str, str]:
    """sha256 and md5 of a file, read once in chunks."""
    hashes = {name: hashlib.new(name) for name in ALGORITHMS}
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            for h in hashes.values():
                h.update(block)
    return {name: h.hexdigest() for name, h in hashes.items()}


def file_sha256(path: Path) -> str:
    """sha256 of a file, read in chunks."""
    return file_hashes(path)["sha256"]


def pinned(dl: Download) -> dict[str, str]:
    """The checksums the registry pins for a download (algorithm -> lower-case hex)."""
    return {name: getattr(dl, name).lower() for name in ALGORITHMS if getattr(dl, name, None)}


def mismatches(actual: dict[str, str], expected: dict[str, str]) -> list[str]:
    """``"md5: expected X, got Y"`` for every pinned checksum the file does not have."""
    return [f"{name} mismatch: expected {want}, got {actual[name]}" for name, want in expected.items()
            if actual[name] != want]
