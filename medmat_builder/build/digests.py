"""Digests of a build's staged parquet files (what ``croissant.json`` lists), hashed in the background."""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from medmat_builder.publish.croissant import FileDigest


class StagedDigests:
    """SHA-256 and size of the staged parquet files (what ``croissant.json`` lists), each file hashed in a
    background thread as soon as it is in place (or its digest taken while it was written, see
    :meth:`add`): hashing and reading release the GIL, so this overlaps the build's other work instead of
    reading every file again at the end. Same digests either way.

    The decoding workers are forked before the first scan (:func:`~medmat_builder.build.loader.start_pool`),
    before any file is added, so the thread never runs while a worker is forked."""

    def __init__(self, staging: Path):
        self.staging = staging
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="medmat-sha256")
        self._pending: dict[str, Future[FileDigest]] = {}

    def add(self, paths: Iterable[Path], known: Iterable[FileDigest] | None = None) -> None:
        """Start hashing ``paths`` (files under the staging folder); ``known``: their digests, taken as they
        were written (:class:`~medmat_builder.build.parquet.HashingFile`), which are kept instead."""
        paths = list(paths)
        for path, digest in zip(paths, known if known is not None else [None] * len(paths), strict=True):
            rel = path.relative_to(self.staging).as_posix()
            if digest is None:
                self._pending[rel] = self._pool.submit(FileDigest.of_file, path)
            else:
                self._pending[rel] = done = Future()
                done.set_result(digest)

    def add_config(self, name: str) -> None:
        """Start hashing the parquet files of config ``name`` (linked into the staging folder)."""
        self.add(sorted((self.staging / name).glob("*.parquet")))

    def result(self) -> dict[str, FileDigest]:
        """Path (relative to the staging folder) -> digest of every file added; waits for the hashing."""
        return {rel: future.result() for rel, future in sorted(self._pending.items())}

    def close(self) -> None:
        """Stop the thread (a file being hashed is finished, the queued ones dropped)."""
        self._pool.shutdown(wait=True, cancel_futures=True)
