"""The build's write path: the spool read straight into a buffer, and the builder's Arrow tables."""

from __future__ import annotations

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
