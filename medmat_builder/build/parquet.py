"""Parquet shards of a prepared split, written with public APIs only and in flat memory.

The builder prepares each config in ``datasets``' own format; :func:`write_split` takes the split that
``builder.as_dataset`` returns, reads its Arrow files (``Dataset.cache_files``) batch by batch with
``pyarrow`` (plain reads, not a memory map, so the process does not keep the images mapped) and writes
``{split}-NNNNN-of-NNNNN.parquet`` shards of at most about :data:`MAX_SHARD_BYTES` with row groups of
:data:`ROWS_PER_GROUP` rows, under the schema of the split's features (``Features.arrow_schema``,
which carries the features for ``load_dataset``). Same rows, same bytes. Each row group is handed to the
writer as one contiguous chunk; a record batch that is exactly one row group (the builder's tables are,
:data:`medmat_builder.build.builder.ROWS_PER_TABLE`) is written as it was read, without being copied.

:class:`EarlySplit` writes the same shards in a background thread from the builder's tables, while
``datasets`` writes its Arrow files, so the build need not read them back; the thread also makes each
table (reads its images from the spool), and ``medmat build``'s Arrow files then hold no image bytes
(see :class:`medmat_builder.build.builder.MedMatBuilder`).

Image bytes (already PNG or JPEG) are stored plain: snappy gains nothing on them (the compressed pages
measured larger than the raw ones) and a dictionary over unique images is only built to be dropped,
which roughly halved ``write_table``'s time on the bench's 1,800-row split.
"""

from __future__ import annotations

import hashlib
import io
import math
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import closing, nullcontext
from pathlib import Path

import datasets
import pyarrow as pa
import pyarrow.parquet as pq

from medmat_builder.publish.croissant import FileDigest

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
    leaves = [col.path for col in pq.ParquetFile(pa.BufferReader(sink.getvalue())).schema]
    if not any(leaf in PLAIN_COLUMNS for leaf in leaves):
        return {}
    return {"use_dictionary": [leaf for leaf in leaves if leaf not in PLAIN_COLUMNS],
            "compression": {leaf: ("none" if leaf in PLAIN_COLUMNS else "snappy") for leaf in leaves}}


def write_split(ds: datasets.Dataset, folder: Path, split: str) -> list[Path]:
    """Write the prepared split ``ds`` as ``folder/{split}-NNNNN-of-NNNNN.parquet``; return the files in order."""
    paths = split_paths(folder, split, split_shards(ds))
    _write_shards(_batches(ds), ds.features.arrow_schema, paths, ds.num_rows)
    return paths


def split_shards(ds: datasets.Dataset) -> int:
    """How many shards :func:`write_split` cuts ``ds`` into (each at most about :data:`MAX_SHARD_BYTES`)."""
    return shards_for(ds.data.nbytes)


def shards_for(nbytes: int) -> int:
    """How many shards a split whose Arrow data takes ``nbytes`` (``Table.nbytes``) is cut into."""
    return max(1, math.ceil(nbytes / MAX_SHARD_BYTES))


def write_tables(tables: Iterable[pa.Table], schema: pa.Schema, folder: Path, split: str, rows: int,
                 nbytes: int) -> list[Path]:
    """Write the ``rows`` rows of ``tables`` (``nbytes`` of Arrow data in all) as :func:`write_split` writes
    a split holding them: same shards, same bytes; return the files in order."""
    paths = split_paths(folder, split, shards_for(nbytes))
    _write_shards((batch for table in tables for batch in table.to_batches()), schema, paths, rows)
    return paths


def split_paths(folder: Path, split: str, shards: int) -> list[Path]:
    """The files of a split written as ``shards`` shards, in order."""
    return [Path(folder) / f"{split}-{i:05d}-of-{shards:05d}.parquet" for i in range(shards)]


def _write_shards(batches: Iterator[pa.RecordBatch], schema: pa.Schema, paths: list[Path], rows: int,
                  digests: list[FileDigest] | None = None) -> None:
    """Write the ``rows`` rows of ``batches`` as the shards ``paths`` (row groups of :data:`ROWS_PER_GROUP`);
    ``digests``: where to append each shard's digest, taken while it is written (:class:`HashingFile`)."""
    options = column_options(schema)
    pending: pa.RecordBatch | None = None
    for path, (start, end) in zip(paths, shard_bounds(rows, len(paths))):
        sink = HashingFile(path) if digests is not None else None
        with (closing(sink) if sink is not None else nullcontext()), \
                pq.ParquetWriter(sink if sink is not None else path, schema, **options) as writer:
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
                        group_rows = table.slice(group, min(ROWS_PER_GROUP, full - group)).combine_chunks()
                        writer.write_table(group_rows)  # pages do not depend on how the Arrow files were batched
                    rest = table.slice(full)
                    buffered, count = rest.to_batches(), rest.num_rows
        if sink is not None and digests is not None:
            digests.append(sink.digest())


class HashingFile(io.RawIOBase):
    """A file that ``pq.ParquetWriter`` writes through Python. Two threads of its own take the bytes as they
    come: one writes them to disk, the other takes their SHA-256 (both release the GIL), while the writer
    goes on encoding the next row group. So the digest that ``croissant.json`` lists is ready when the file
    is, instead of read back and hashed once it is complete. Same bytes as a writer given the path writes
    (tested). An error of the write (a full disk) is raised by the next :meth:`write` or by :meth:`close`."""

    #: Blocks queued for each thread at most before a write waits: bounds the memory the queues hold (a row
    #: group's images come in one write, about 15 MB; the small writes are joined up to :data:`JOIN`).
    QUEUED = 4
    #: Small writes (page headers, small columns) are handed over together, up to this many bytes.
    JOIN = 2**20

    def __init__(self, path: Path):
        super().__init__()
        self.path = Path(path)
        self._file = open(path, "wb")  # noqa: SIM115  (closed by close)
        self._sha = hashlib.sha256()
        self._size = 0
        self._small = bytearray()
        self._error: BaseException | None = None
        self._queues: list[queue.Queue[bytes | None]] = [queue.Queue(self.QUEUED), queue.Queue(self.QUEUED)]
        self._threads = [
            threading.Thread(target=self._drain, args=(self._queues[0], self._write_block), daemon=True,
                             name=f"medmat-write-{self.path.name}"),
            threading.Thread(target=self._drain, args=(self._queues[1], self._sha.update), daemon=True,
                             name=f"medmat-sha256-{self.path.name}"),
        ]
        for thread in self._threads:
            thread.start()

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:  # type: ignore[override]
        if self.closed:
            raise ValueError(f"write to the closed file {self.path}")
        if self._error is not None:
            raise self._error
        block = bytes(data)  # pyarrow hands ``bytes``: no copy
        self._size += len(block)
        if len(block) < self.JOIN:
            self._small += block
            if len(self._small) >= self.JOIN:
                self._hand_small()
        else:
            self._hand_small()
            self._hand(block)
        return len(block)

    def _hand(self, block: bytes | None) -> None:
        for blocks in self._queues:
            blocks.put(block)

    def _hand_small(self) -> None:
        if self._small:
            self._hand(bytes(self._small))
            self._small.clear()

    def tell(self) -> int:
        return self._size

    def _write_block(self, block: bytes) -> None:
        if self._error is None:  # after an error, the blocks are only taken off the queue
            try:
                self._file.write(block)
            except BaseException as exc:  # noqa: BLE001  (raised in the writer's thread by write or close)
                self._error = exc

    @staticmethod
    def _drain(blocks: queue.Queue[bytes | None], take: Callable[[bytes], object]) -> None:
        while (block := blocks.get()) is not None:
            take(block)

    def close(self) -> None:
        if self.closed:
            return
        try:
            self._hand_small()
            self._hand(None)
            for thread in self._threads:
                thread.join()
            self._file.close()
        finally:
            super().close()
        if self._error is not None:
            raise self._error

    def digest(self) -> FileDigest:
        """SHA-256 and size of what was written (once closed)."""
        assert self.closed, "the file is still being written"
        return FileDigest(self._sha.hexdigest(), self._size)


class EarlySplit:
    """Write a split's parquet shards in a background thread from the builder's tables (or from calls
    that make them, run in the thread), while ``datasets`` writes its Arrow files (all of it releases the
    GIL), instead of reading those files back afterwards. The bytes are those :func:`write_split` writes
    from the split prepared with these tables: same schema, same rows, same row groups (they do not depend
    on how the rows were batched), as many shards (counted from the tables' ``nbytes``, which are the
    prepared split's ``ds.data.nbytes``: tested).

    The number of shards is estimated before the first row (:func:`estimated_shards`); :meth:`finish`
    checks it against the tables' :attr:`nbytes` and says whether the files can be kept (else the caller
    writes the split again with :func:`write_tables`). The thread must be finished (:meth:`finish` or
    :meth:`abort`) before any worker process is forked."""

    #: Tables queued at most (the builder waits beyond): bounds the memory the queue holds.
    QUEUED = 4

    def __init__(self, folder: Path, split: str, schema: pa.Schema, rows: int, shards: int, queued: int = QUEUED):
        """``queued``: items queued at most before :meth:`put` waits (0: no bound, for calls that make their
        table in the thread: the queue then holds no table, and the caller goes on to the next split while
        this one is written)."""
        self.paths = split_paths(folder, split, shards)
        self.schema, self.rows = schema, rows
        self._queue: queue.Queue[pa.Table | Callable[[], pa.Table] | None] = queue.Queue(queued)
        #: Arrow bytes (``Table.nbytes``) of the tables written so far
        self.nbytes = 0
        #: each finished shard's digest, taken as it was written (as many as :attr:`paths` once finished)
        self.digests: list[FileDigest] = []
        self._error: BaseException | None = None
        self._stop = False
        self._ended = False  # the end of the queue (None) was taken
        Path(folder).mkdir(parents=True, exist_ok=True)
        self._thread = threading.Thread(target=self._run, name=f"medmat-parquet-{split}", daemon=True)
        self._thread.start()

    def put(self, table: pa.Table | Callable[[], pa.Table]) -> None:
        """Queue the next rows of the split: a table (not modified) or a call that makes it in the thread."""
        if self._error is None:
            self._queue.put(table)

    def _tables(self) -> Iterator[pa.RecordBatch]:
        while (item := self._queue.get()) is not None:
            if self._stop:
                raise _Stopped
            table = item if isinstance(item, pa.Table) else item()
            self.nbytes += table.nbytes
            yield from table.to_batches()
        self._ended = True

    def _run(self) -> None:
        try:
            _write_shards(self._tables(), self.schema, self.paths, self.rows, self.digests)
        except StopIteration:
            self._error = RuntimeError(f"{self.paths[0].name}: the split ended before its {self.rows} rows")
        except BaseException as exc:  # noqa: BLE001  (handed to the main thread by finish)
            self._error = exc
        while not self._ended:  # take what is left, so the builder never waits; finish tells what happened
            self._ended = self._queue.get() is None

    def finish(self, ds: datasets.Dataset) -> list[Path] | None:
        """Wait for the files; return them if they are what :func:`write_split` writes for the split ``ds``
        prepared from the same tables (as many shards for their :attr:`nbytes`, as many rows as ``ds``, the
        same schema), else remove them and return None. An error of the writer is raised here."""
        self._queue.put(None)
        self._thread.join()
        if self._error is not None:
            self._remove()
            raise self._error
        if (shards_for(self.nbytes) != len(self.paths) or ds.num_rows != self.rows
                or not ds.features.arrow_schema.equals(self.schema, check_metadata=True)):
            self._remove()
            return None
        return self.paths

    def _remove(self) -> None:
        for path in self.paths:
            path.unlink(missing_ok=True)

    def abort(self) -> None:
        """Stop the thread (the build stopped); the partial file is left to the caller's cleanup."""
        if self._thread.is_alive():
            self._stop = True
            self._queue.put(None)
            self._thread.join()


#: Bytes per row besides its image, at most, that :func:`estimated_shards` reckons with (about 400 measured).
ROW_BYTES = 2048


def estimated_shards(image_bytes: int, rows: int) -> int:
    """The shards :func:`write_split` will likely cut a split of ``rows`` rows whose images take
    ``image_bytes`` into (:class:`EarlySplit` checks it once the split is prepared)."""
    return max(1, math.ceil((image_bytes + rows * ROW_BYTES) / MAX_SHARD_BYTES))


class _Stopped(Exception):
    """The early writer was told to stop."""


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
