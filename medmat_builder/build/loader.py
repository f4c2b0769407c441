"""Open the chosen images: one job per candidate, in order, in worker processes when ``num_proc > 1``.

The consumer stops as soon as a quota is met, so images past it are (almost) never opened: at most a
small window of jobs is in flight, sent to the workers :data:`BATCH` at a time (one task and one
result message per batch, not per image). A fill takes its keys one after another through a
:class:`Lookahead`, which runs no job of a key past the quota it still needs and gives the rest of the
window to the next keys (:meth:`Loader.imap` serves one queue alone). Each job decodes and hashes the image
(:func:`medmat_builder.images.load_image`), computes what the duplicate check compares
(:class:`~medmat_builder.images.duplicates.ThumbnailEdges`, so the main process only compares) and,
for detection/segmentation, resolves its boxes (annotations, or the mask's components). Given the
config's spool (:class:`~medmat_builder.build.spool.SpoolRef`), a worker appends the image bytes to it
itself and sends back their place only, so the bytes never travel through the pool's pipes (where
the spool cannot be reached, they come back as before). An image kept as its raw file is (most of them)
is not spooled at all: its result names the file (:class:`~medmat_builder.build.rawfile.RawFile`), which
is read again when the record is written. Pools live for the whole build (:func:`shutdown_pools`).
"""

from __future__ import annotations

import itertools
import os
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

from medmat_builder.build import progress
from medmat_builder.build.boxes import resolve_boxes
from medmat_builder.build.rawfile import RawFile
from medmat_builder.build.signals import pause_point, worker_init
from medmat_builder.build.spool import SpoolRef, append
from medmat_builder.images import ImageError, MaskError, ThumbnailEdges, load_image
from medmat_builder.records import Box, RawRecord


@dataclass(frozen=True)
class LoadJob:
    """One image to open: its path, its source folder (for masks), its record, and whether it needs boxes."""

    path: str
    root: str
    record: RawRecord
    detection: bool


#: Jobs sent to a worker as one task (fewer, larger tasks: 4 a task took about half the main process's CPU
#: per image that 2 took; 8 about 12 % less again on the 20k bench, now that :class:`Lookahead` keeps a
#: larger window from decoding past a quota). The window of jobs in flight is ``2 * BATCH * num_proc``:
#: two tasks a worker.
BATCH = 8

#: How many times the usual window :class:`Lookahead` sends at first when the caller has work to do meanwhile
#: (its ``started``): the build's file ledgers and the train side's order, about 0.3 s at 100,000 files, while
#: the workers decode the first jobs of the test split.
FIRST_WINDOW = 4


@dataclass(frozen=True)
class LoadResult:
    """The opened image (bytes, size, hashes, thumbnail and its edges, boxes), or ``error`` (a drop reason)
    with its detail. Bytes a worker appended to the spool are not held (``data`` None): ``spooled`` gives
    their ``(offset, length)`` there. ``raw`` is set when the bytes are the raw file as it is (then not
    spooled, and not held either where a spool was given: the file is read again when the record is written)."""

    data: bytes | None
    width: int = 0
    height: int = 0
    pixel_hash: str = ""
    phash: int = 0
    thumbnail: bytes = b""
    boxes: tuple[Box, ...] = ()
    error: str | None = None
    detail: str | None = None
    edges: ThumbnailEdges | None = None
    spooled: tuple[int, int] | None = None
    raw: RawFile | None = None


def load_job(job: LoadJob) -> LoadResult:
    """Open one image (in a worker process, so errors come back as values, never as exceptions)."""
    try:
        img = load_image(job.path)
    except ImageError as exc:  # detail never holds a path or a DICOM header value
        return LoadResult(None, error=exc.reason, detail=exc.detail)
    boxes: tuple[Box, ...] = ()
    if job.detection:
        try:
            boxes = tuple(resolve_boxes(job.record, Path(job.root), (img.width, img.height), img.orientation))
        except (ImageError, MaskError) as exc:
            return LoadResult(None, error=getattr(exc, "reason", "corrupt"), detail=f"mask: {getattr(exc, 'detail', exc)}")
    as_is = img.data is img.file_data or img.data == img.file_data  # kept as read: no metadata stripped
    return LoadResult(img.data, img.width, img.height, img.pixel_hash, img.phash, img.thumbnail, boxes,
                      edges=ThumbnailEdges.of(img.thumbnail), raw=RawFile.of(job.path, img.data) if as_is else None)


def load_batch(jobs: tuple[LoadJob, ...], spool: SpoolRef | None = None) -> list[LoadResult]:
    """:func:`load_job` for each of ``jobs``, in order (one worker task); with ``spool``, each image's bytes
    are appended to it and its result holds their place instead (where the spool can be reached), or, kept
    as its raw file is, neither (:attr:`LoadResult.raw`)."""
    if spool is None:
        return [load_job(job) for job in jobs]
    fd = spool.open()
    try:
        return [_spooled(load_job(job), fd) for job in jobs]
    finally:
        if fd is not None:
            os.close(fd)


def prefetch(jobs: Iterable[LoadJob]) -> None:
    """Ask the kernel to start reading the files of ``jobs`` now (``posix_fadvise(WILLNEED)``), without waiting.

    Called as a batch is handed to a worker, a window ahead of its decode (in one process, as jobs enter
    the window of those to run next): the reads then overlap the decoding of the jobs before them, where
    the decoding process would otherwise block on each cold file. Reads
    nothing more than the decode would (the whole file); a file that cannot be opened is left to the
    worker, which reports it. A no-op where the platform has no ``posix_fadvise``.
    """
    if not hasattr(os, "posix_fadvise"):
        return
    for job in jobs:
        try:
            fd = os.open(job.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except OSError:
            continue
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_WILLNEED)
        except OSError:
            pass
        finally:
            os.close(fd)


def _spooled(res: LoadResult, fd: int | None) -> LoadResult:
    """``res`` with its bytes appended to the spool open at ``fd`` (as they are where that write fell short, or
    without ``fd``), or, for bytes that are the raw file as it is, dropped (the file is read again instead)."""
    if res.data is None:
        return res
    if res.raw is not None:
        return replace(res, data=None)
    if fd is None:
        return res
    place = append(fd, res.data)
    return res if place is None else replace(res, data=None, spooled=place)


class Loader:
    """Loads candidates lazily and in order; with ``num_proc > 1`` at most a small window is in flight.

    The consumer stops as soon as a quota is met, so images past it are (almost) never opened: the
    over-read is bounded by the window, not by the size of the candidate list. Pools are kept for
    the whole build (see :func:`shutdown_pools`) instead of being started per config.
    """

    _pools: dict[int, ProcessPoolExecutor] = {}

    def __init__(self, num_proc: int):
        self.pool = None
        if num_proc > 1:
            self.pool = self._pools.get(num_proc)
            if self.pool is None:
                self.pool = self._pools[num_proc] = ProcessPoolExecutor(
                    num_proc, initializer=worker_init, initargs=(os.getpid(),))  # workers die with the build
        self.window = 2 * BATCH * num_proc  # jobs in flight (or, in one process, prefetched) at most

    def imap(self, jobs: Iterable[LoadJob], spool: SpoolRef | None = None) -> Iterator[LoadResult]:
        """The results of ``jobs``, in order (counted as the ``decode`` stage of the progress); worker
        processes append the image bytes to ``spool`` where they can (see :class:`LoadResult`)."""
        for i, res in enumerate(progress.counted(self._imap(jobs, spool), "decode")):
            if i == 1:
                pause_point("decode")  # test hook: workers are running
            yield res

    def _imap(self, jobs: Iterable[LoadJob], spool: SpoolRef | None) -> Iterator[LoadResult]:
        if self.pool is None:  # one process: the files of the next window are read while this one decodes
            ahead: deque[LoadJob] = deque()
            todo = iter(jobs)
            while True:
                fresh = list(itertools.islice(todo, self.window - len(ahead)))
                prefetch(fresh)
                ahead.extend(fresh)
                if not ahead:
                    return
                yield load_job(ahead.popleft())
        pending: deque[Future] = deque()  # one per batch, in order
        batches = max(1, self.window // BATCH)
        todo = iter(jobs)
        try:
            while batch := tuple(itertools.islice(todo, BATCH)):
                prefetch(batch)
                pending.append(self.pool.submit(load_batch, batch, spool))
                if len(pending) >= batches:
                    yield from pending.popleft().result()
            while pending:
                yield from pending.popleft().result()
        finally:
            for fut in pending:  # the consumer stopped early: drop what has not started
                fut.cancel()


class Lookahead:
    """The results of several job queues, taken one queue after another (:meth:`take`), decoded ahead
    across the queues' ends.

    A queue's consumer stops once its quota is met, so jobs decoded past that point are wasted (with
    :meth:`Loader.imap`, up to a whole window at the end of every queue), and the next queue starts with
    idle workers. Here each queue is asked for only as many jobs ahead as ``remaining(q)`` says its
    consumer may still take (its quota left); the rest of the window goes to the next queues, whose
    results wait until they are taken. A drop (the consumer takes more than expected) asks for one more
    job of its queue. The results, and the order in which they are taken, are those of taking each
    queue with :meth:`Loader.imap`: only which jobs run ahead differs. Without worker processes each
    job is run when it is taken, and only the files of the jobs its consumer may still take are read ahead.

    ``started`` is called once, as soon as the first jobs are handed over (or, in one process, their files
    asked for): work the caller can leave until then overlaps their decoding. The first window is then
    :data:`FIRST_WINDOW` times the loader's, so that the workers are not idle meanwhile (still no job
    past a quota).
    """

    def __init__(self, loader: Loader, queues: list[Iterable[LoadJob]], remaining: Callable[[int], int],
                 spool: SpoolRef | None = None, started: Callable[[], object] | None = None):
        self.loader, self.spool, self.remaining, self._started = loader, spool, remaining, started
        self._window = loader.window * (FIRST_WINDOW if started is not None else 1)
        self._jobs = [iter(q) for q in queues]
        self._done = [False] * len(queues)  # no more jobs in that queue
        self._sent = [0] * len(queues)  # jobs submitted per queue
        self._taken = [0] * len(queues)  # results taken per queue
        self._where: dict[tuple[int, int], tuple[Future, int]] = {}  # (queue, position) -> batch and index
        self._ahead: dict[int, deque[LoadJob]] = {}  # without workers: jobs prefetched, not yet run, per queue
        self._current = 0

    def take(self, q: int) -> Generator[LoadResult, None, None]:
        """The results of queue ``q`` from the first not yet taken, in order (counted as ``decode``); stop
        when done with it (later calls go on where this one stopped)."""
        self._current = q
        for i, res in enumerate(progress.counted(self._take(q), "decode")):
            if i == 1:
                pause_point("decode")  # test hook: workers are running
            yield res

    def _take(self, q: int) -> Iterator[LoadResult]:
        while True:
            pos = self._taken[q]
            if self.loader.pool is None:
                job = self._next_serial(q)
                self._start()
                if job is None:
                    return
                self._taken[q] += 1
                yield load_job(job)
                continue
            self._submit()
            self._start()
            if pos >= self._sent[q] and not self._submit_from(q, 1):  # a drop: one more job of this queue
                return
            fut, i = self._where.pop((q, pos))
            res = fut.result()[i]
            self._taken[q] += 1
            yield res

    def _start(self) -> None:
        """Call ``started`` (the first time only); the window is the loader's from then on."""
        started, self._started = self._started, None
        if started is not None:
            started()
            self._window = self.loader.window

    def _next_serial(self, q: int) -> LoadJob | None:
        """Without workers: queue ``q``'s next job, after asking the kernel to read the files of the jobs
        after it that its consumer may still take (up to a window), so they arrive while this one decodes."""
        ahead = self._ahead.setdefault(q, deque())
        want = min(self.loader.window, max(1, self.remaining(q)))
        fresh = list(itertools.islice(self._jobs[q], max(0, want - len(ahead))))
        prefetch(fresh)
        ahead.extend(fresh)
        return ahead.popleft() if ahead else None

    def _submit(self) -> None:
        """Fill the window: the current queue up to what its consumer may still take, then the next ones."""
        queues = range(self._current, len(self._jobs))  # earlier queues are done with (jobs left there are dropped)
        room = self._window - sum(self._sent[q] - self._taken[q] for q in queues)
        for q in queues:
            if room < BATCH:
                return
            ahead = self._sent[q] - self._taken[q]
            want = max(0, self.remaining(q) - ahead)
            room -= self._submit_from(q, min(want, room))

    def _submit_from(self, q: int, count: int) -> int:
        """Submit up to ``count`` more jobs of queue ``q`` (in batches of :data:`BATCH`); returns how many."""
        sent = 0
        while sent < count and not self._done[q]:
            batch = tuple(itertools.islice(self._jobs[q], min(BATCH, count - sent)))
            if len(batch) < min(BATCH, count - sent):
                self._done[q] = True
            if not batch:
                break
            prefetch(batch)
            fut = self.loader.pool.submit(load_batch, batch, self.spool)  # type: ignore[union-attr]
            for i in range(len(batch)):
                self._where[(q, self._sent[q] + i)] = (fut, i)
            self._sent[q] += len(batch)
            sent += len(batch)
        return sent

    def close(self) -> None:
        """Drop the jobs not taken (cancelled where they have not started)."""
        for fut, _ in self._where.values():
            fut.cancel()
        self._where.clear()


def shutdown_pools(kill: bool = False) -> None:
    """Stop the worker processes kept between configs (called at the end of a build).

    ``kill`` (a stopped build): cancel queued jobs and end the workers now instead of letting them finish.
    """
    for pool in Loader._pools.values():
        if kill:
            stop_workers(pool)
        pool.shutdown(wait=True, cancel_futures=kill)
    Loader._pools.clear()


def start_pool(num_proc: int) -> None:
    """Fork the decoding pool's workers now (with ``num_proc > 1``; :class:`Loader` then uses them): at the
    start of a build this process is small (the fork copies less) and the workers start while it scans."""
    pool = Loader(num_proc).pool
    if pool is not None:
        pool.submit(os.getpid)  # the first call forks every worker of the pool


def idle_pool() -> ProcessPoolExecutor | None:
    """The decoding pool this build started, if all of its workers are running (a call handed to it then
    forks no process; they are idle once the configs are decoded), else None."""
    for pool in Loader._pools.values():
        procs = list((getattr(pool, "_processes", None) or {}).values())
        if procs and len(procs) >= getattr(pool, "_max_workers", len(procs) + 1) and all(p.is_alive() for p in procs):
            return pool
    return None


def stop_workers(pool: ProcessPoolExecutor) -> None:
    """Kill the worker processes of ``pool`` (a build that was stopped does not wait for their jobs)."""
    for proc in list((getattr(pool, "_processes", None) or {}).values()):
        if proc.is_alive():
            proc.kill()
