"""The build report (``DIR/build_report.json``): a typed, versioned ledger in which every raw record is kept or dropped.

Every config's report (:class:`ConfigReport`) holds one :class:`SourceLedger` per source with ``raw``
records found = ``kept`` (per split) + ``dropped`` (per reason of :data:`~medmat_builder.records.DROP_REASONS`),
with examples (:meth:`ConfigReport.check` enforces the sum). Each source also accounts for the files in
its folder: ``read_images`` (image files its records refer to), ``unread_images`` (the others, each
counted under why: :class:`UnreadFiles`) and ``unmatched_tables`` (tables no pattern reads, with the
closest pattern), so files that a layout misses are visible too; and ``groups``: its declared subject
key, the number of subjects and of records that matched none (``ungrouped``), and its kept subjects
per split. Per config, ``num_examples`` are the rows written per split (for a multi-label config,
``label_counts`` count label occurrences, which are more), and ``groups`` is the leakage audit:
subjects per split and those found in both.

The whole file is a :class:`BuildReport` with a ``version``; :meth:`BuildReport.write` puts its JSON
schema (``build_report.schema.json``) beside it. The builder, the CLI, the dataset card, the Croissant
metadata, the planner's caps and the tests all read these models, never raw dicts. The JSON is written
with sorted keys and no dates, so the same build writes the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, PrivateAttr, ValidationError, computed_field, model_validator

from medmat_builder.images.duplicates import NearDuplicateRule
from medmat_builder.records import (
    DEFAULT_SEED,
    DROP_REASONS,
    SPLITS,
    TEST_CAP,
    TEST_FRACTION,
    TEST_MAX_PER_LABEL,
    TRAIN_CAP,
    Split,
)

REPORT_NAME = "build_report.json"
SCHEMA_NAME = "build_report.schema.json"
#: Bumped when a field changes meaning or goes away (a report of another version is refused on reading).
REPORT_VERSION = 1
#: Examples (``[ref, detail]``) kept per drop reason and source.
EXAMPLES_PER_REASON = 5
_DICOM_PATH = re.compile(r"[^\s'\"\[\],:]+\.(?:dcm|dicom|dic)\b", re.IGNORECASE)


class ReportError(ValueError):
    """A build report that cannot be read (missing, not JSON, or not this version's shape); the message says why."""


def safe_ref(text: str) -> str:
    """Replace DICOM file paths (whose names may carry patient or study identifiers) by a hash; bytes of a
    file name that are not UTF-8 (surrogate escapes) are written as ``\\xNN``."""
    text = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return _DICOM_PATH.sub(lambda m: "dicom:" + hashlib.sha256(m.group(0).encode()).hexdigest()[:16], text)


class SplitCounts(BaseModel):
    """A number per split."""

    train: int = 0
    test: int = 0

    def add(self, split: Split, n: int = 1) -> None:
        setattr(self, split, getattr(self, split) + n)

    def get(self, split: Split) -> int:
        return getattr(self, split)


# --------------------------------------------------------------------------- one source
class FolderMiss(BaseModel):
    """A folder of unexplained unread images: how many, and the layout pattern its first file comes closest to."""

    folder: str
    files: int
    closest_pattern: str | None = None
    hint: str | None = None


class TableMiss(BaseModel):
    """A table (csv, tsv, xlsx, json) in a source's folder that no pattern reads, with the closest pattern."""

    path: str
    closest_pattern: str | None = None
    hint: str | None = None


class UnreadFiles(BaseModel):
    """Image files in a source's folder that no raw record refers to (neither as image nor as mask).

    They are not records (nothing labels them), so they are outside ``raw``; they are listed so that
    a layout that misses files, or a table that omits images, is visible rather than silent. Each is
    counted under one reason:

    - ``excluded``: the registry leaves it out (the layout's ``exclude`` patterns: masks beside
      images ...; or an extension the layout's ``extensions`` does not take);
    - ``other_entries``: read by another registry entry unpacked into the same folder (the
      segmentation part of a shared download, say);
    - ``nested_copies``: a file of a second copy of a folder (``X/X/...`` in re-uploads), whose twin
      in the kept copy is read instead (``copy_folders`` lists ``[copy, kept]`` pairs);
    - ``unexplained``: the rest, with ``examples``, and per folder the closest pattern of the layout
      and where the path differs from it (``folders``).
    """

    count: int = 0
    excluded: int = 0
    other_entries: int = 0
    nested_copies: int = 0
    examples: list[str] = Field(default_factory=list)
    copy_folders: list[tuple[str, str]] = Field(default_factory=list)
    folders: list[FolderMiss] = Field(default_factory=list)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def unexplained(self) -> int:
        return self.count - self.excluded - self.other_entries - self.nested_copies


class SourceGroups(BaseModel):
    """A source's subjects in one config: the declared key, subjects and records without one, kept subjects per split."""

    declared: str = "none"
    groups: int = 0
    ungrouped: int = 0
    train: int = 0
    test: int = 0
    across_splits: int = 0


class SourceLedger(BaseModel):
    """One source in one config: every raw record kept or dropped, and every file in its folder read or not."""

    raw: int = 0
    kept: SplitCounts = Field(default_factory=SplitCounts)
    dropped: dict[str, int] = Field(default_factory=dict)
    #: per reason, up to :data:`EXAMPLES_PER_REASON` ``(ref, detail)`` pairs (DICOM paths hashed)
    examples: dict[str, list[tuple[str, str]]] = Field(default_factory=dict)
    #: the source is not in the raw folder (a ``--partial`` build)
    missing: bool = False
    #: image files that records of this source refer to (as image or mask)
    read_images: int = 0
    unread_images: UnreadFiles = Field(default_factory=UnreadFiles)
    unmatched_tables: list[TableMiss] = Field(default_factory=list)
    #: raw labels outside the clusters of a source declared ``unlisted_labels: drop``, with their counts
    ignored_labels: dict[str, int] = Field(default_factory=dict)
    #: ``None`` for a source that was not scanned
    groups: SourceGroups | None = None

    def drop(self, reason: str, ref: str, detail: str | None = None) -> None:
        """Count one record as dropped for ``reason`` (one of ``DROP_REASONS``), keeping it as an example."""
        if reason not in DROP_REASONS:
            raise ValueError(f"unknown drop reason {reason!r}")
        self.dropped[reason] = self.dropped.get(reason, 0) + 1
        examples = self.examples.setdefault(reason, [])
        if len(examples) < EXAMPLES_PER_REASON:
            examples.append((safe_ref(ref), safe_ref(detail or DROP_REASONS[reason])))

    def keep(self, split: Split) -> None:
        self.kept.add(split)

    @property
    def accounted(self) -> int:
        """Records kept or dropped; equals ``raw`` in a consistent ledger."""
        return self.kept.train + self.kept.test + sum(self.dropped.values())


# --------------------------------------------------------------------------- one config
class SplitIds(BaseModel):
    train: str
    test: str


class SpanningSubject(BaseModel):
    """One subject with rows in both splits: its pseudonym, source, rows per split and a record id on each side."""

    group: str
    source: str
    train: int
    test: int
    ids: SplitIds


class LeakageSummary(BaseModel):
    """The leakage audit of a config: subjects per split, how many span both, and some of them."""

    train: int = 0
    test: int = 0
    across_splits: int = 0
    examples: list[SpanningSubject] = Field(default_factory=list)


def _label_counts() -> dict[str, dict[str, int]]:
    return {split: {} for split in SPLITS}


class ConfigReport(BaseModel):
    """The ledger of one config (``subset_NN``)."""

    #: the config's name (the key under ``configs``; not repeated in the JSON)
    config: str = Field(default="", exclude=True)
    sources: dict[str, SourceLedger] = Field(default_factory=dict)
    #: rows written per split (the parquet row counts)
    num_examples: SplitCounts = Field(default_factory=SplitCounts)
    label_counts: dict[str, dict[str, int]] = Field(default_factory=_label_counts)
    #: the train split is under the cap (out of distribution in the paper's sense)
    ood: bool = False
    warnings: list[str] = Field(default_factory=list)
    groups: LeakageSummary = Field(default_factory=LeakageSummary)
    #: row id -> raw path of each record this build kept (never written; see :attr:`raw_paths`)
    _raw_paths: dict[str, str] = PrivateAttr(default_factory=dict)

    @property
    def raw_paths(self) -> dict[str, str]:
        """Row id -> raw path (``<source folder>/<path>``, DICOM paths hashed as :func:`safe_ref` does) of
        each record kept by the build that made this ledger; empty for a ledger read from a file. Not part
        of the JSON: the visual report shows the paths of its samples from here instead of scanning again."""
        return self._raw_paths

    @computed_field  # type: ignore[prop-decorator]
    @property
    def missing_sources(self) -> list[str]:
        return sorted(k for k, v in self.sources.items() if v.missing)

    def ledger(self, key: str) -> SourceLedger:
        """The ledger of source ``key`` (created empty on first use)."""
        led = self.sources.get(key)
        if led is None:
            led = self.sources[key] = SourceLedger()
        return led

    def count_label(self, split: Split, label: str) -> None:
        counts = self.label_counts[split]
        counts[label] = counts.get(label, 0) + 1

    def dropped(self) -> dict[str, int]:
        """Drops per reason, summed over the sources."""
        total: dict[str, int] = {}
        for led in self.sources.values():
            for reason, n in led.dropped.items():
                total[reason] = total.get(reason, 0) + n
        return total

    def check(self) -> None:
        """Raise if any source's ledger does not add up (a record was lost or counted twice)."""
        for key, led in self.sources.items():
            if led.accounted != led.raw:
                raise AssertionError(f"{self.config}: source {key}: {led.raw} raw records but {led.accounted} kept+dropped")


class SkippedConfig(BaseModel):
    """A config a ``--partial`` build left out: why, and the sources missing or the ledgers that show why."""

    reason: str
    missing_sources: list[str] = Field(default_factory=list)
    sources: dict[str, SourceLedger] = Field(default_factory=dict)


# --------------------------------------------------------------------------- the whole build
class SettingsRecord(BaseModel):
    """The settings a build ran with: those that change its output (``num_proc`` does not)."""

    seed: int = DEFAULT_SEED
    train_cap: int = Field(default=TRAIN_CAP, ge=0)
    test_fraction: float = Field(default=TEST_FRACTION, gt=0, lt=1)
    test_max_per_label: int = Field(default=TEST_MAX_PER_LABEL, ge=0)
    test_cap: int = Field(default=TEST_CAP, ge=0)
    lenient: bool = False
    #: when two images are near duplicates (perceptual hash radius, thumbnail edge correlations)
    near_duplicates: NearDuplicateRule = Field(default_factory=NearDuplicateRule)


class BuildReport(BaseModel):
    """``build_report.json``: the settings and one :class:`ConfigReport` per config in the export."""

    version: Literal[1] = REPORT_VERSION
    settings: SettingsRecord = Field(default_factory=SettingsRecord)
    configs: dict[str, ConfigReport] = Field(default_factory=dict)
    skipped: dict[str, SkippedConfig] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _name_configs(self) -> BuildReport:
        for name, rep in self.configs.items():
            rep.config = name
        return self

    def to_json(self) -> str:
        """The file's text: sorted keys, two-space indent, a final newline (same report, same bytes)."""
        return json.dumps(self.model_dump(mode="json"), indent=2, sort_keys=True) + "\n"

    def write(self, folder: str | Path) -> Path:
        """Write ``REPORT_NAME`` and its JSON schema (``SCHEMA_NAME``) into ``folder``; return the report's path."""
        folder = Path(folder)
        (folder / SCHEMA_NAME).write_text(report_schema(), encoding="utf-8")
        path = folder / REPORT_NAME
        path.write_text(self.to_json(), encoding="utf-8")
        return path

    @classmethod
    def read(cls, path: str | Path) -> BuildReport:
        """Read a report file, or the ``REPORT_NAME`` of an export folder; :class:`ReportError` says what is wrong."""
        path = Path(path)
        if path.is_dir():
            path = path / REPORT_NAME
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ReportError(f"{path} not found: is {path.parent} an export written by `medmat build`?") from None
        try:
            return cls.model_validate_json(text)
        except ValidationError as exc:
            raise ReportError(f"{path} is not a build report of version {REPORT_VERSION} (rebuild the export): "
                              f"{exc.errors()[0]['msg']} at {'.'.join(map(str, exc.errors()[0]['loc']))}") from None

    def only(self, names: list[str]) -> BuildReport:
        """A copy holding only the configs ``names`` (and nothing skipped)."""
        return self.model_copy(update={"configs": {n: self.configs[n] for n in names}, "skipped": {}})

    def kept_train(self) -> dict[str, int]:
        """Training records kept per config (the planner's caps)."""
        return {name: sum(led.kept.train for led in rep.sources.values()) for name, rep in self.configs.items()}


def report_schema() -> str:
    """The JSON schema of ``build_report.json`` (what :meth:`BuildReport.write` puts beside it)."""
    return json.dumps(BuildReport.model_json_schema(mode="serialization"), indent=2, sort_keys=True) + "\n"
