"""Parquet shards of a prepared split, written with public APIs only and in flat memory.

The builder prepares each config in ``datasets``' own format; :func:`write_split` takes the split that
``builder.as_dataset`` returns, reads its Arrow files (``Dataset.cache_files``) batch by batch with
``pyarrow`` (plain reads, not a memory map, so the process does not keep the images mapped) and writes
``{split}-NNNNN-of-NNNNN.parquet`` shards of at most about :data:`MAX_SHARD_BYTES` with row groups of
:data:`ROWS_PER_GROUP` rows, under the schema of the split's features (``Features.arrow_schema``,
which carries the features for ``load_dataset``). Same rows, same bytes. Each row group is handed to the
writer as one contiguous chunk; a record batch that is exactly one row group (the builder's tables are,
:data:`medmat_builder.build.builder.ROWS_PER_TABLE`) is written as it was read, without being copied.

Image bytes (already PNG or JPEG) are stored plain: snappy gains nothing on them (the compressed pages
measured larger than the raw ones) and a dictionary over unique images is only built to be dropped,
which roughly halved ``write_table``'s time on the bench's 1,800-row split.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterator
from pathlib import Path

import datasets
import pyarrow as pa
import pyarrow.parquet as pq

#: Largest parquet shard (the size ``datasets`` shards at by default).
MAX_SHARD_BYTES = 500 * 10**6
#: Rows per parquet row group: small groups suit rows that hold images.
ROWS_PER_GROUP = 100


def shard_bounds(rows: int, shards: int) -> list[tuple[int, int]]:
    """``[start, end)`` rows of each of ``shards`` contiguous shards, the first ones one row longer when uneven."""
    size, extra = divmod(rows, shards)
    bounds, start = [], 0
    for i in range(shards):
        end = start + size + (1 if i < extra else 0)
        bounds.append((start, end))
        start = end
    return bounds


def _batches(ds: datasets.Dataset) -> Iterator[pa.RecordBatch]:
    """The split's record batches, in order, read from its Arrow files (a dataset held in memory: its table's)."""
    if not ds.cache_files:
        yield from ds.data.to_batches()
        return
    for cache in ds.cache_files:
        with pa.OSFile(cache["filename"]) as source:
            yield from pa.ipc.open_stream(source)


#: Leaf columns stored plain (no dictionary, no compression): the image files' own compressed bytes.
PLAIN_COLUMNS = ("image.bytes",)


def column_options(schema: pa.Schema) -> dict:
    """``ParquetWriter`` options: dictionary and snappy for every leaf column but :data:`PLAIN_COLUMNS`."""
    sink = io.BytesIO()
    pq.write_table(schema.empty_table(), sink)  # the parquet leaf paths of the schema ("image.bytes", ...)
    leaves = [col.path for col in pq.ParquetFile(io.BytesIO(sink.getvalue())).schema]
    if not any(leaf in PLAIN_COLUMNS for leaf in leaves):
        return {}
    return {"use_dictionary": [leaf for leaf in leaves if leaf not in PLAIN_COLUMNS],
            "compression": {leaf: ("none" if leaf in PLAIN_COLUMNS else "snappy") for leaf in leaves}}


def write_split(ds: datasets.Dataset, folder: Path, split: str) -> list[Path]:
    """Write the prepared split ``ds`` as ``folder/{split}-NNNNN-of-NNNNN.parquet``; return the files in order."""
    schema = ds.features.arrow_schema
    shards = max(1, math.ceil(ds.data.nbytes / MAX_SHARD_BYTES))
    paths = [Path(folder) / f"{split}-{i:05d}-of-{shards:05d}.parquet" for i in range(shards)]
    batches = _batches(ds)
    options = column_options(schema)
    pending: pa.RecordBatch | None = None
    for path, (start, end) in zip(paths, shard_bounds(ds.num_rows, shards)):
        with pq.ParquetWriter(path, schema, **options) as writer:
            buffered: list[pa.RecordBatch] = []
            count, left = 0, end - start
            while left > 0:
                batch, pending = (pending, None) if pending is not None else (next(batches), None)
                if batch.num_rows > left:
                    batch, pending = batch.slice(0, left), batch.slice(left)
                buffered.append(batch)
                count += batch.num_rows
                left -= batch.num_rows
                if count >= ROWS_PER_GROUP or left == 0:  # whole row groups now, the rest with the next rows
                    table = pa.Table.from_batches(buffered, schema=schema)
                    full = count if left == 0 else count - count % ROWS_PER_GROUP
                    for group in range(0, full, ROWS_PER_GROUP):  # one contiguous chunk a row group: the
                        rows = table.slice(group, min(ROWS_PER_GROUP, full - group)).combine_chunks()
                        writer.write_table(rows)  # pages do not depend on how the Arrow files were batched
                    rest = table.slice(full)
                    buffered, count = rest.to_batches(), rest.num_rows
    return paths


def write_table(table: pa.Table, path: Path) -> None:
    """Write ``table`` as :func:`write_split` writes a shard: the schema of its features, the same column
    options, one contiguous chunk per row group of :data:`ROWS_PER_GROUP` rows (``medmat fill`` uses it).

    The schema is made again from the features (``datasets.Features.arrow_schema``): a schema read back from
    parquet names list items ``element`` where ``datasets`` says ``item``.
    """
    schema = datasets.Features.from_arrow_schema(table.schema).arrow_schema
    table = table.cast(schema)
    with pq.ParquetWriter(path, schema, **column_options(schema)) as writer:
        for group in range(0, table.num_rows, ROWS_PER_GROUP):
            writer.write_table(table.slice(group, ROWS_PER_GROUP).combine_chunks())
