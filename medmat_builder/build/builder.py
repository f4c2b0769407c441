"""``MedMatBuilder``: a ``datasets.ArrowBasedBuilder`` with one config per subset (``subset_01`` .. ``subset_53``).

``datasets`` no longer runs loading scripts, so users never load this module by name: ``medmat build``
drives it and exports the result in the Hub layout (see :mod:`medmat_builder.build.export`). The builder
is what ``datasets`` asks of one: a config dataclass, ``_info``, ``_split_generators`` (which selects the
records: :func:`medmat_builder.build.select.select_subset`, opening only the chosen images) and
``_generate_tables`` (one VQA record per selected image, :mod:`medmat_builder.build.vqa`, handed over as
Arrow tables of :data:`ROWS_PER_TABLE` rows: the same rows as yielding them one by one, without
``datasets``' per-example encoding, which took about a third of the main process's time at 20k images).
Each table is built column by column; its image bytes are read from the spool (or, for an image kept as
its raw file is, from that file: :mod:`medmat_builder.build.rawfile`) straight into the Arrow buffer of
the ``image`` column, the only copy of them the builder makes. For ``medmat build``
(:attr:`MedMatBuilder.parquet_dest` set) the tables go whole to the parquet writer only, and ``datasets``'
Arrow files, deleted once the parquet files are checked, get null images (see ``_generate_tables``).
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from dataclasses import dataclass, field
from itertools import accumulate
from pathlib import Path

import datasets
import pyarrow as pa

from medmat_builder.build.boxes import format_box_answer, normalize_boxes
from medmat_builder.build.candidates import Selected
from medmat_builder.build.features import export_features
from medmat_builder.build.parquet import ROWS_PER_GROUP, EarlySplit, estimated_shards, write_tables
from medmat_builder.build.select import select_subset
from medmat_builder.build.settings import BuildSettings
from medmat_builder.build.signals import pause_point
from medmat_builder.build.spool import Spool
from medmat_builder.build.vqa import classification_question, detection_question, label_set_text, record_rng
from medmat_builder.publish.croissant import FileDigest
from medmat_builder.records import CONFIG_NAMES, MEDMAT_HOMEPAGE
from medmat_builder.registry import Registry, Subset, load_registry
from medmat_builder.report import ConfigReport


@dataclass
class MedMatConfig(datasets.BuilderConfig):
    """One Med-MAT subset. ``raw_dir`` holds the sources unpacked as ``RAW/<key>/``."""

    raw_dir: str | None = None
    registry_path: str | None = None
    settings: BuildSettings = field(default_factory=BuildSettings)
    only_sources: tuple[str, ...] | None = None  # --partial: the sources present on disk


#: Records per Arrow table handed to ``datasets``: one parquet row group (about 15 MB at 150 KB an image).
#: ``datasets`` stores an image dataset's Arrow file in record batches of 100 rows
#: (``config.ARROW_RECORD_BATCH_SIZE_FOR_IMAGE_DATASETS``), so each batch is then one row group, which
#: :func:`~medmat_builder.build.parquet.write_split` writes without copying it into one chunk first.
ROWS_PER_TABLE = ROWS_PER_GROUP
#: Image bytes per Arrow table, at most: a table ends earlier than :data:`ROWS_PER_TABLE` rows where its
#: images would pass it (an Arrow ``binary`` column holds under 2 GiB; this also bounds the memory a table takes).
TABLE_IMAGE_BYTES = 256 * 2**20


def table_chunks(items: list[Selected]) -> Iterator[list[Selected]]:
    """``items`` cut in order into runs of at most :data:`ROWS_PER_TABLE` records and, unless one image alone
    is larger, at most :data:`TABLE_IMAGE_BYTES` of image bytes."""
    chunk: list[Selected] = []
    size = 0
    for sel in items:
        if chunk and (len(chunk) >= ROWS_PER_TABLE or size + sel.length > TABLE_IMAGE_BYTES):
            yield chunk
            chunk, size = [], 0
        chunk.append(sel)
        size += sel.length
    if chunk:
        yield chunk


class MedMatBuilder(datasets.ArrowBasedBuilder):
    BUILDER_CONFIG_CLASS = MedMatConfig
    BUILDER_CONFIGS = [MedMatConfig(name=n, version=datasets.Version("1.0.0")) for n in CONFIG_NAMES]

    def __init__(self, *args, registry: Registry | None = None, **kwargs):
        self._registry = registry
        self.report: ConfigReport | None = None
        self._spool: Spool | None = None
        #: where ``medmat build`` wants the parquet files: each split's shards are then written while
        #: ``datasets`` writes its Arrow files (:class:`~medmat_builder.build.parquet.EarlySplit`, by split)
        self.parquet_dest: Path | None = None
        self.early: dict[str, EarlySplit] = {}
        self._splits: dict[str, tuple[list[Selected], list[str], dict[str, str]]] = {}  # split -> gen_kwargs
        kwargs.setdefault("dataset_name", "medmat")
        super().__init__(*args, **kwargs)

    @property
    def registry(self) -> Registry:
        if self._registry is None:
            self._registry = load_registry(self.config.registry_path)
        return self._registry

    @property
    def subset(self) -> Subset:
        return self.registry.subset(self.config.name)

    def _info(self) -> datasets.DatasetInfo:
        sub = self.subset
        return datasets.DatasetInfo(
            description=f"Med-MAT {sub.name}: {sub.title} ({sub.modality}, {sub.area}, {sub.task}).",
            features=export_features(),
            homepage=MEDMAT_HOMEPAGE,
        )

    def _split_generators(self, dl_manager):
        if not self.config.raw_dir:
            raise ValueError("MedMatBuilder needs raw_dir=RAW (the folder holding RAW/<source key>/)")
        raw = Path(self.config.raw_dir)
        sub = self.subset
        keys = self.config.only_sources if self.config.only_sources is not None else tuple(sub.sources)
        sources = [(self.registry.source(k), raw / self.registry.source(k).folder) for k in keys]
        self.report = ConfigReport(config=sub.name)
        for k in sub.sources:
            self.report.ledger(k).missing = k not in keys
        self._spool = Spool()
        pause_point("scan")  # test hook: the spool exists, nothing scanned yet
        siblings = {src.key: self.registry.sharing_folder(src) for src, _ in sources}
        selection = select_subset(sub, sources, self.config.settings, self.report, self._spool, siblings=siblings)
        pool = self._distractor_pool(sub, selection.train + selection.test)
        groups = selection.groups
        return [
            datasets.SplitGenerator(name=datasets.Split.TRAIN, gen_kwargs={"items": selection.train, "pool": pool, "groups": groups,
                                                                              "split": "train"}),
            datasets.SplitGenerator(name=datasets.Split.TEST, gen_kwargs={"items": selection.test, "pool": pool, "groups": groups,
                                                                             "split": "test"}),
        ]

    @staticmethod
    def _distractor_pool(sub: Subset, items: list[Selected]) -> list[str]:
        if sub.kind == "single-label":
            return list(sub.labels)
        if sub.kind == "multi-label":
            seen = {label_set_text(s.labels, sub.labels) for s in items}
            return sorted(seen | set(sub.labels))
        return []

    def _generate_tables(self, items: list[Selected], pool: list[str], groups: dict[str, str], split: str = ""):
        """The records of one split as Arrow tables of at most :data:`ROWS_PER_TABLE` rows (fewer where their
        images pass :data:`TABLE_IMAGE_BYTES`), in order.

        When :attr:`parquet_dest` is set (``medmat build``), each table is made whole, its images read from
        the spool, by the split's early parquet writer in its thread, and the tables handed to ``datasets``
        hold every column but the images, which are null: the Arrow files are only the prepared split that
        ``as_dataset`` loads for the checks of :meth:`export_split`, and are deleted after it, so the image
        bytes are written once, into the parquet files."""
        schema = self.info.features.arrow_schema
        if self.parquet_dest is None or not split:
            for chunk in table_chunks(items):
                yield len(chunk), self._table(chunk, pool, groups, schema)
            return
        self.abort_early(split)
        self._splits[split] = (items, pool, groups)
        shards = estimated_shards(sum(sel.length for sel in items), len(items))
        # queued without bound: the queue holds the image-less tables only (a few hundred bytes a row), so
        # ``datasets`` goes on to the next split while this one's images are written (both writers run at once)
        early = self.early[split] = EarlySplit(self.parquet_dest, split, schema, len(items), shards, queued=0)
        for chunk in table_chunks(items):
            table = self._table(chunk, pool, groups, schema, images=False)
            early.put(partial(self._with_images, table, chunk))
            yield len(chunk), table

    def split_tables(self, split: str) -> Iterator[pa.Table]:
        """The whole tables (images included) of a split that :meth:`_generate_tables` handed over, made again."""
        items, pool, groups = self._splits[split]
        schema = self.info.features.arrow_schema
        for chunk in table_chunks(items):
            yield self._table(chunk, pool, groups, schema)

    def export_split(self, split: str, ds: datasets.Dataset) -> tuple[list[Path], list[FileDigest] | None]:
        """Write ``split`` (prepared as ``ds``) into :attr:`parquet_dest`: the early writer's files where its
        check passes, else written again from :meth:`split_tables`. Returns the files, in order, and their
        digests where they were taken as the files were written (else None)."""
        assert self.parquet_dest is not None, "export_split needs parquet_dest"
        early = self.early.pop(split, None)
        paths = early.finish(ds) if early is not None else None
        if paths is not None:
            return paths, early.digests  # type: ignore[union-attr]
        schema = self.info.features.arrow_schema
        nbytes = early.nbytes if early is not None else sum(table.nbytes for table in self.split_tables(split))
        return write_tables(self.split_tables(split), schema, self.parquet_dest, split, ds.num_rows, nbytes), None

    def abort_early(self, split: str | None = None) -> None:
        """Stop the early parquet writer of ``split`` (all of them: None), if one runs."""
        for name in [split] if split is not None else list(self.early):
            writer = self.early.pop(name, None)
            if writer is not None:
                writer.abort()

    def _table(self, items: list[Selected], pool: list[str], groups: dict[str, str], schema: pa.Schema,
               images: bool = True) -> pa.Table:
        """One Arrow table of ``items``' records, built column by column (the image bytes with no Python copy;
        ``images`` False: null images, see :meth:`_with_images`)."""
        rows = [self._fields(sel, pool, groups) for sel in items]
        arrays = []
        for fld in schema:
            if fld.name == "image":
                arrays.append(self._image_column(items, fld.type) if images else pa.nulls(len(items), fld.type))
            else:
                arrays.append(pa.array([row[fld.name] for row in rows], type=fld.type))
        return pa.Table.from_arrays(arrays, schema=schema)

    def _with_images(self, table: pa.Table, items: list[Selected]) -> pa.Table:
        """``table`` (``items``' records made with null images) with its images read from the spool: the
        table :meth:`_table` makes."""
        index = table.schema.get_field_index("image")
        field_ = table.schema.field(index)
        return table.set_column(index, field_, self._image_column(items, field_.type))

    def _image_column(self, items: list[Selected], image_type: pa.StructType) -> pa.StructArray:
        """The ``image`` column of ``items`` (``{bytes, path: null}``): the bytes are read straight into one Arrow
        buffer, the column's data, instead of into one ``bytes`` object per image that is then copied; from the
        spool, or from the raw file for an image kept as it is (checked against its digest: a file changed
        since it was decoded raises :class:`~medmat_builder.build.rawfile.RawFileChangedError`)."""
        offsets = [0, *accumulate(sel.length for sel in items)]
        data = pa.allocate_buffer(offsets[-1])
        view = memoryview(data)
        for sel, start in zip(items, offsets):
            if sel.raw is not None:
                sel.raw.read_into(view[start:start + sel.length])
            else:
                self._spool.read_into(sel.offset, view[start:start + sel.length])  # type: ignore[union-attr]
        view.release()
        image_bytes = pa.Array.from_buffers(pa.binary(), len(items), [None, pa.array(offsets, pa.int32()).buffers()[1], data])
        paths = pa.nulls(len(items), pa.string())
        return pa.StructArray.from_arrays([image_bytes, paths], fields=list(image_type))

    def _fields(self, sel: Selected, pool: list[str], groups: dict[str, str]) -> dict:
        """Every column of ``sel``'s record but ``image``: its VQA question (:mod:`medmat_builder.build.vqa`) and metadata."""
        sub = self.subset
        rng = record_rng(self.config.settings.seed, sub.name, sel.id)
        label_text = label_set_text(sel.labels, sub.labels)
        norm: list = []
        if sub.is_classification:
            q = classification_question(sub.instructions, label_text, pool, rng)
        else:
            norm = normalize_boxes(list(sel.boxes), sel.width, sel.height)
            q = detection_question(sub.instructions, format_box_answer(norm), label_text, rng)
        return {
            "id": sel.id,
            "question": q.question,
            "options": q.options,
            "answer": q.answer,
            "answer_label": q.answer_label,
            "labels": list(sel.labels),
            "boxes": [dict(zip(("label", "x1", "y1", "x2", "y2"), b)) for b in norm],
            "modality": sub.modality,
            "area": sub.area,
            "task": sub.task,
            "subset": sub.name,
            "source": sel.source,
            "license": self.registry.source(sel.source).license,
            "group": groups[sel.id],
            "image_hash": sel.image_hash,
        }

    def close(self) -> None:
        """Stop the early parquet writers still running and delete the temporary image spool."""
        self.abort_early()
        if self._spool is not None:
            self._spool.close()
            self._spool = None
