"""Digests of a build's staged parquet files (what ``croissant.json`` lists), hashed in the background."""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from medmat_builder.publish.croissant import FileDigest


class StagedDigests:
    """SHA-256 and size of the staged parquet files (what ``croissant.json`` lists), each file hashed in a
    background thread as soon as it is in place: hashing and reading release the GIL, so this overlaps
    the build's other work instead of reading every file again at the end. Same digests either way.

    The decoding workers are forked before the first scan (:func:`~medmat_builder.build.loader.start_pool`),
    before any file is added, so the thread never runs while a worker is forked."""

    def __init__(self, staging: Path):
        self.staging = staging
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="medmat-sha256")
        self._pending: dict[str, Future[FileDigest]] = {}

    def add(self, paths: Iterable[Path]) -> None:
        """Start hashing ``paths`` (files under the staging folder)."""
        for path in paths:
            self._pending[path.relative_to(self.staging).as_posix()] = self._pool.submit(FileDigest.of_file, path)

    def add_config(self, name: str) -> None:
        """Start hashing the parquet files of config ``name`` (linked into the staging folder)."""
        self.add(sorted((self.staging / name).glob("*.parquet")))

    def result(self) -> dict[str, FileDigest]:
        """Path (relative to the staging folder) -> digest of every file added; waits for the hashing."""
        return {rel: future.result() for rel, future in sorted(self._pending.items())}

    def close(self) -> None:
        """Stop the thread (a file being hashed is finished, the queued ones dropped)."""
        self._pool.shutdown(wait=True, cancel_futures=True)
