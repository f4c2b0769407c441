"""The worker-side shortcuts give exactly what the code they replace gave.

- the PNG chunk walk's ``bare`` flag holds exactly when :func:`strip_metadata` would return the file itself;
- :class:`~medmat_builder.build.loader.Lookahead` hands each queue's results in the order and with the
  values of :meth:`Loader.imap`, whatever the consumer stops at or drops, and runs no job of a queue
  past what its consumer may still take (plus the jobs a drop asks for).
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from concurrent.futures import Future
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medmat_builder.build import loader as loader_mod
from medmat_builder.build.loader import Loader, LoadJob, Lookahead
from medmat_builder.images.decode import _check_png_chunks
from medmat_builder.images.metadata import strip_metadata
from medmat_builder.records import RawRecord


def _chunk(ctype: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + ctype + body + struct.pack(">I", zlib.crc32(ctype + body))


def _png(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (20, 30), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _with_chunk(data: bytes, chunk: bytes) -> bytes:
    """``chunk`` inserted right after IHDR (8-byte signature + 25-byte IHDR chunk)."""
    return data[:33] + chunk + data[33:]


@pytest.mark.parametrize("variant", ["clean", "tEXt", "zTXt", "iTXt", "eXIf", "tIME", "private", "trailing",
                                     "text_and_trailing"])
def test_png_walk_bare_flag_matches_strip_metadata(variant):
    data = _png(len(variant))
    extra = {"tEXt": _chunk(b"tEXt", b"Comment\x00patient"), "zTXt": _chunk(b"zTXt", b"k\x00\x00" + zlib.compress(b"x")),
             "iTXt": _chunk(b"iTXt", b"k\x00\x00\x00\x00\x00v"), "eXIf": _chunk(b"eXIf", b"MM\x00*\x00\x00\x00\x08"),
             "tIME": _chunk(b"tIME", b"\x07\xea\x0c\x03\x0c\x00\x00"), "private": _chunk(b"prVt", b"abc"),
             "text_and_trailing": _chunk(b"tEXt", b"a\x00b")}.get(variant)
    if extra is not None:
        data = _with_chunk(data, extra)
    if variant.endswith("trailing"):
        data += b"junk after IEND"
    bare = _check_png_chunks(data, "x.png")[3]
    assert bare == (strip_metadata(data) is data)
    assert bare == (variant in ("clean", "private"))


class _SyncPool:
    """An executor that runs each call when submitted, recording the jobs it was given."""

    def __init__(self):
        self.jobs: list[str] = []

    def submit(self, fn, *args):
        self.jobs += [Path(j.path).name for j in args[0]]
        fut: Future = Future()
        fut.set_result(fn(*args))
        return fut


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ahead")
    for i in range(60):
        (root / f"{i:03d}.png").write_bytes(_png(i))
    return root


def _queues(root: Path, sizes: list[int]) -> list[list[LoadJob]]:
    out, n = [], 0
    for size in sizes:
        out.append([LoadJob(str(root / f"{n + i:03d}.png"), str(root), RawRecord("s", f"{n + i}", f"{n + i:03d}.png"),
                            False) for i in range(size)])
        n += size
    return out


@pytest.mark.parametrize("started", [False, True])
@pytest.mark.parametrize("takes", [[3, 5, 2], [0, 7, 9], [20, 1, 1], [1, 1, 1]])
def test_lookahead_gives_the_results_of_imap_and_runs_no_job_past_the_quota(images, takes, started):
    """Also with ``started`` (called once, when the first jobs are out; a larger first window then)."""
    sizes = [20, 15, 12]
    queues = _queues(images, sizes)
    # the consumer drops the first image of each queue it takes from, so it takes one more than its quota
    quotas = [max(0, t - 1) for t in takes]
    reference = [list(zip(range(t), Loader(1).imap(iter(q)))) for q, t in zip(queues, takes)]

    loader = Loader(1)
    loader.pool, loader.window = _SyncPool(), 2 * loader_mod.BATCH * 2
    taken = [0, 0, 0]
    calls: list[int] = []
    ahead = Lookahead(loader, queues, lambda i: quotas[i] - max(0, taken[i] - 1),  # the quota left: kept images count
                      started=(lambda: calls.append(len(loader.pool.jobs))) if started else None)
    got = []
    for i, t in enumerate(takes):
        results = ahead.take(i)
        got.append([])
        for _ in range(t):
            res = next(results, None)
            if res is None:
                break
            got[-1].append(res)
            taken[i] += 1
        results.close()
    ahead.close()
    assert [[r.pixel_hash for r in g] for g in got] == [[r.pixel_hash for _, r in ref] for ref in reference]
    assert [[r.thumbnail for r in g] for g in got] == [[r.thumbnail for _, r in ref] for ref in reference]
    wanted = {Path(j.path).name for q, t in zip(queues, takes) for j in q[:t]}
    assert set(loader.pool.jobs) == wanted and len(loader.pool.jobs) == len(wanted)
    assert calls == ([min(sum(quotas), 4 * loader.window)] if started else [])  # once, the first window out


def test_lookahead_without_workers_runs_each_job_when_taken(images):
    queues = _queues(images, [4, 4])
    calls: list[str] = []
    ahead = Lookahead(Loader(1), queues, lambda i: 4, started=lambda: calls.append("started"))
    first = [r.pixel_hash for r in ahead.take(0)]
    assert calls == ["started"]  # once, before the first job ran
    second = ahead.take(1)
    one = next(second)
    second.close()
    again = [r.pixel_hash for r in ahead.take(1)]
    reference = [r.pixel_hash for r in Loader(1).imap(iter(queues[0] + queues[1]))]
    assert first + [one.pixel_hash] + again == reference


def test_prefetch_brings_the_batch_files_into_the_page_cache(tmp_path):
    """``prefetch`` (called as a batch goes to a worker) starts reading every file of the batch, and skips
    a path that cannot be opened (the worker reports that one)."""
    import time

    from medmat_builder.build.loader import prefetch
    from tests.test_bench_cache import _bench, _fs_type, _resident_pages

    if not hasattr(os, "posix_fadvise"):
        pytest.skip("no posix_fadvise on this platform")
    if _fs_type(tmp_path) in ("tmpfs", "ramfs", "overlay", ""):
        pytest.skip(f"{_fs_type(tmp_path) or 'unknown'} filesystem: its pages cannot be evicted")
    src = tmp_path / "src"
    src.mkdir()
    files = [src / f"img{i}.bin" for i in range(3)]
    for f in files:
        f.write_bytes(os.urandom(64 * 1024))
    _bench().prepare_cache("cold", src, [], tmp_path / "none")
    assert [_resident_pages(f) for f in files] == [0, 0, 0]
    jobs = [LoadJob(str(f), str(src), RawRecord("s", f.name, f.name), False)
            for f in files[:2]]
    prefetch([*jobs, LoadJob(str(src / "missing.png"), str(src), RawRecord("s", "m", "missing.png"), False)])
    for _ in range(200):  # the reads were started, not waited for
        if [_resident_pages(f) for f in files[:2]] == [16, 16]:
            break
        time.sleep(0.01)
    assert [_resident_pages(f) for f in files] == [16, 16, 0]  # the two files of the batch only


def test_one_process_reads_ahead_only_the_files_its_consumer_may_still_take(images, monkeypatch):
    """Without workers, the next jobs' files are prefetched while one decodes: up to the quota left, never past it."""
    seen: list[str] = []
    monkeypatch.setattr(loader_mod, "prefetch", lambda jobs: seen.extend(Path(j.path).name for j in jobs))
    queues = _queues(images, [20, 6])
    quota = [5, 6]
    taken = [0, 0]
    ahead = Lookahead(Loader(1), queues, lambda i: quota[i] - taken[i])
    results = ahead.take(0)
    first = next(results)
    # the first result's job and the four after it (the quota left) were prefetched, no more
    assert seen == [Path(j.path).name for j in queues[0][:5]]
    taken[0] += 1
    got = [first]
    while taken[0] < quota[0]:  # the consumer counts what it keeps
        got.append(next(results))
        taken[0] += 1
    results.close()
    assert seen == [Path(j.path).name for j in queues[0][:5]]  # nothing past the quota of queue 0
    second = list(ahead.take(1))
    reference = list(Loader(1).imap(iter(queues[0][:5] + queues[1])))
    assert [r.pixel_hash for r in got + second] == [r.pixel_hash for r in reference]
    assert seen[5:] == [Path(j.path).name for j in queues[1]] + [Path(j.path).name for j in queues[0][:5] + queues[1]]


def test_one_process_imap_prefetches_a_window_ahead(images, monkeypatch):
    seen: list[str] = []
    monkeypatch.setattr(loader_mod, "prefetch", lambda jobs: seen.extend(Path(j.path).name for j in jobs))
    queue = _queues(images, [40])[0]
    loader = Loader(1)
    results = loader.imap(iter(queue))
    next(results)
    assert seen == [Path(j.path).name for j in queue[: loader.window]]
    rest = list(results)
    assert len(rest) == 39 and seen == [Path(j.path).name for j in queue]  # each file once, in order
