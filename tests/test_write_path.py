"""The build's write path: the spool read straight into a buffer, and the builder's Arrow tables."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pyarrow as pa
import pytest

from medmat_builder.build import builder
from medmat_builder.build.builder import MedMatBuilder, table_chunks
from medmat_builder.build.candidates import Selected
from medmat_builder.build.features import export_features
from medmat_builder.build.spool import Spool


def _selected(i: int, offset: int, length: int) -> Selected:
    return Selected(id=f"r{i}", source="s", split="train", labels=("a",), offset=offset, length=length,
                    width=1, height=1)


def test_spool_reads_into_a_slice_of_a_buffer(tmp_path):
    spool = Spool(str(tmp_path))
    first = spool.put(b"abc")
    second = spool.put(b"defgh")
    buf = bytearray(b"........")
    view = memoryview(buf)
    spool.read_into(second[0], view[0:5])
    spool.read_into(first[0], view[5:8])
    assert bytes(buf) == b"defghabc"
    with pytest.raises(OSError, match="past its end"):
        spool.read_into(6, memoryview(bytearray(4)))
    spool.close()


def test_tables_are_cut_by_rows_and_by_image_bytes(monkeypatch):
    monkeypatch.setattr(builder, "ROWS_PER_TABLE", 3)
    monkeypatch.setattr(builder, "TABLE_IMAGE_BYTES", 10)
    items = [_selected(i, 0, n) for i, n in enumerate([1, 1, 1, 1, 6, 5, 12, 1])]
    chunks = [[s.id for s in c] for c in table_chunks(items)]
    # three rows at most; a new table where the bytes would pass 10; an image larger than that alone
    assert chunks == [["r0", "r1", "r2"], ["r3", "r4"], ["r5"], ["r6"], ["r7"]]
    assert list(table_chunks([])) == []


def test_image_column_holds_the_spooled_bytes_as_from_pylist_would(tmp_path):
    spool = Spool(str(tmp_path))
    blobs = [b"\x89PNG-one", b"", b"jpeg-three-bytes"]
    places = [spool.put(b) for b in blobs]
    items = [_selected(i, off, n) for i, (off, n) in enumerate(reversed(places))]  # not in spool order
    image_type = export_features().arrow_schema.field("image").type
    column = MedMatBuilder._image_column(SimpleNamespace(_spool=spool), items, image_type)
    expected = pa.array([{"bytes": b, "path": None} for b in reversed(blobs)], type=image_type)
    assert column.type == image_type and column.equals(expected)
    assert column.to_pylist() == [{"bytes": b, "path": None} for b in reversed(blobs)]
    spool.close()


def test_spool_appends_from_another_process_land_whole_between_the_holders_own(tmp_path):
    """A worker appends through the holder's descriptor (``SpoolRef``); both sides' places stay right."""
    import multiprocessing

    from medmat_builder.build.spool import append

    spool = Spool(str(tmp_path))
    first = spool.put(b"main-1")

    def child(ref, out):
        fd = ref.open()
        out.send(None if fd is None else [append(fd, b"worker-%d" % i) for i in range(3)])

    ctx = multiprocessing.get_context("fork")
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=child, args=(spool.ref, send))
    proc.start()
    places = recv.recv()
    proc.join()
    if places is None:
        pytest.skip("no /proc/<pid>/fd here: workers send the bytes back instead")
    last = spool.put(b"main-2")
    assert spool.get(*first) == b"main-1" and spool.get(*last) == b"main-2"
    assert [spool.get(*p) for p in places] == [b"worker-0", b"worker-1", b"worker-2"]
    spool.close()


def test_a_spool_ref_to_another_file_is_not_written(tmp_path):
    from dataclasses import replace

    spool = Spool(str(tmp_path))
    assert replace(spool.ref, ino=spool.ref.ino + 1).open() is None  # the descriptor holds another file now
    assert replace(spool.ref, pid=2**22 + 7).open() is None  # no such process
    spool.close()


def test_workers_append_the_bytes_and_send_their_place(tmp_path, mini_raw):
    """With a spool, a pool worker's results hold the bytes' place in it, or, for an image kept as its file
    is, that file's place (no bytes at all): the same bytes as without one."""
    from medmat_builder.build.loader import Loader, LoadJob, shutdown_pools

    files = sorted(p for p in mini_raw.rglob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg"))[:6]
    assert files
    jobs = [LoadJob(str(p), str(p.parent), None, False) for p in files]  # type: ignore[arg-type]
    spool = Spool(str(tmp_path))
    try:
        direct = list(Loader(1).imap(jobs))
        pooled = list(Loader(2).imap(jobs, spool.ref))
    finally:
        shutdown_pools()
    for a, b in zip(direct, pooled, strict=True):
        assert a.data is not None and a.spooled is None and a.raw == b.raw
        if b.raw is not None:  # the raw file as it is: not spooled, not sent back
            assert b.data is None and b.spooled is None and a.raw.length == len(a.data)
            got = Path(b.raw.path).read_bytes()
        else:
            got = spool.get(*b.spooled) if b.spooled is not None else b.data
        assert got == a.data and (a.pixel_hash, a.phash, a.thumbnail) == (b.pixel_hash, b.phash, b.thumbnail)
    spool.close()


def _fails() -> None:
    raise ValueError("from the aside process")


def test_the_aside_process_prepares_then_runs_calls_and_leaves():
    import os

    from medmat_builder.build.aside import Aside

    aside = Aside(os.getpid)
    pid = aside.submit(os.getpid).result()
    assert pid != os.getpid()
    with pytest.raises(ValueError, match="from the aside process"):
        aside.submit(_fails).result()
    aside.shutdown()
    assert not aside._proc.is_alive()
    killed = Aside(os.getpid)
    killed.shutdown(cancel_futures=True)
    assert not killed._proc.is_alive()
