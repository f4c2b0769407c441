"""``MedMatBuilder``: a ``datasets.ArrowBasedBuilder`` with one config per subset (``subset_01`` .. ``subset_53``).

``datasets`` no longer runs loading scripts, so users never load this module by name: ``medmat build``
drives it and exports the result in the Hub layout (see :mod:`medmat_builder.build.export`). The builder
is what ``datasets`` asks of one: a config dataclass, ``_info``, ``_split_generators`` (which selects the
records: :func:`medmat_builder.build.select.select_subset`, opening only the chosen images) and
``_generate_tables`` (one VQA record per selected image, :mod:`medmat_builder.build.vqa`, handed over as
Arrow tables of :data:`ROWS_PER_TABLE` rows: the same rows as yielding them one by one, without
``datasets``' per-example encoding, which took about a third of the main process's time at 20k images).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import datasets
import pyarrow as pa

from medmat_builder.build.boxes import format_box_answer, normalize_boxes
from medmat_builder.build.candidates import Selected
from medmat_builder.build.features import export_features
from medmat_builder.build.select import select_subset
from medmat_builder.build.settings import BuildSettings
from medmat_builder.build.signals import pause_point
from medmat_builder.build.spool import Spool
from medmat_builder.build.vqa import classification_question, detection_question, label_set_text, record_rng
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


#: Records per Arrow table handed to ``datasets`` (images included: about 10 MB at 150 KB an image).
ROWS_PER_TABLE = 64


class MedMatBuilder(datasets.ArrowBasedBuilder):
    BUILDER_CONFIG_CLASS = MedMatConfig
    BUILDER_CONFIGS = [MedMatConfig(name=n, version=datasets.Version("1.0.0")) for n in CONFIG_NAMES]

    def __init__(self, *args, registry: Registry | None = None, **kwargs):
        self._registry = registry
        self.report: ConfigReport | None = None
        self._spool: Spool | None = None
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
            datasets.SplitGenerator(name=datasets.Split.TRAIN, gen_kwargs={"items": selection.train, "pool": pool, "groups": groups}),
            datasets.SplitGenerator(name=datasets.Split.TEST, gen_kwargs={"items": selection.test, "pool": pool, "groups": groups}),
        ]

    @staticmethod
    def _distractor_pool(sub: Subset, items: list[Selected]) -> list[str]:
        if sub.kind == "single-label":
            return list(sub.labels)
        if sub.kind == "multi-label":
            seen = {label_set_text(s.labels, sub.labels) for s in items}
            return sorted(seen | set(sub.labels))
        return []

    def _generate_tables(self, items: list[Selected], pool: list[str], groups: dict[str, str]):
        """The records of one split as Arrow tables of at most :data:`ROWS_PER_TABLE` rows, in order."""
        schema = self.info.features.arrow_schema
        batch: list[dict] = []
        for _, row in self._generate_examples(items, pool, groups):
            batch.append(row)
            if len(batch) >= ROWS_PER_TABLE:
                yield len(batch), pa.Table.from_pylist(batch, schema=schema)
                batch = []
        if batch:
            yield len(batch), pa.Table.from_pylist(batch, schema=schema)

    def _generate_examples(self, items: list[Selected], pool: list[str], groups: dict[str, str]):
        """``(id, record)`` of every selected image, in order (the rows :meth:`_generate_tables` batches)."""
        sub = self.subset
        seed = self.config.settings.seed
        for sel in items:
            rng = record_rng(seed, sub.name, sel.id)
            label_text = label_set_text(sel.labels, sub.labels)
            norm: list = []
            if sub.is_classification:
                q = classification_question(sub.instructions, label_text, pool, rng)
            else:
                norm = normalize_boxes(list(sel.boxes), sel.width, sel.height)
                q = detection_question(sub.instructions, format_box_answer(norm), label_text, rng)
            source = self.registry.source(sel.source)
            yield sel.id, {
                "id": sel.id,
                "image": {"bytes": self._spool.get(sel.offset, sel.length), "path": None},  # type: ignore[union-attr]
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
                "license": source.license,
                "group": groups[sel.id],
                "image_hash": sel.image_hash,
            }

    def close(self) -> None:
        """Delete the temporary image spool."""
        if self._spool is not None:
            self._spool.close()
            self._spool = None
