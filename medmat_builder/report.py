"""The build report: a ledger in which every raw record is either kept (per split) or dropped (per reason).

``report["configs"][config]["sources"][key] == {"raw": n, "kept": {"train": a, "test": b},
"dropped": {reason: m, ...}, "examples": {reason: [[ref, detail], ...]}}`` with
``raw == a + b + sum(dropped.values())`` for every source; :meth:`ConfigReport.check` enforces it.
Each source also accounts for the files in its folder: ``read_images`` (image files its records
refer to), ``unread_images`` (the others, each counted under why: :class:`UnreadFiles`) and
``unmatched_tables`` (tables no pattern reads, with the closest pattern), so files that a layout
misses are visible too; and ``groups``: its declared subject key, the number of subjects and of
records that matched none (``ungrouped``), and its kept subjects per split. Per config,
``num_examples`` are the rows written per split (for a multi-label config, ``label_counts`` count
label occurrences, which are more), and ``groups`` is the leakage audit (:mod:`medmat_builder.audit`):
subjects per split and those found in both.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from medmat_builder.records import DROP_REASONS

EXAMPLES_PER_REASON = 5
_DICOM_PATH = re.compile(r"[^\s'\"\[\],:]+\.(?:dcm|dicom|dic)\b", re.IGNORECASE)


def safe_ref(text: str) -> str:
    """Replace DICOM file paths (whose names may carry patient or study identifiers) by a hash."""
    return _DICOM_PATH.sub(lambda m: "dicom:" + hashlib.sha256(m.group(0).encode()).hexdigest()[:16], text)


@dataclass
class UnreadFiles:
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
    examples: list[str] = field(default_factory=list)
    copy_folders: list[list[str]] = field(default_factory=list)
    folders: list[dict[str, Any]] = field(default_factory=list)

    @property
    def unexplained(self) -> int:
        return self.count - self.excluded - self.other_entries - self.nested_copies

    def to_dict(self) -> dict[str, Any]:
        return {"count": self.count, "excluded": self.excluded, "other_entries": self.other_entries,
                "nested_copies": self.nested_copies, "unexplained": self.unexplained,
                "examples": list(self.examples), "copy_folders": [list(p) for p in self.copy_folders],
                "folders": [dict(f) for f in self.folders]}


@dataclass
class SourceLedger:
    raw: int = 0
    kept: Counter = field(default_factory=Counter)
    dropped: Counter = field(default_factory=Counter)
    examples: dict[str, list[list[str]]] = field(default_factory=dict)
    missing: bool = False
    unread: UnreadFiles = field(default_factory=UnreadFiles)
    #: image files that records of this source refer to (as image or mask)
    read_images: int = 0
    #: tables (csv, tsv, xlsx, json) in the folder that no pattern of the layout reads, with the closest pattern
    unmatched_tables: list[dict[str, Any]] = field(default_factory=list)
    #: raw labels outside the clusters of a source declared ``unlisted_labels: drop``, with their counts
    ignored_labels: Counter = field(default_factory=Counter)
    #: subject key and counts (see the module docstring); None for a source that was not scanned
    groups: dict[str, Any] | None = None

    def drop(self, reason: str, ref: str, detail: str | None = None) -> None:
        if reason not in DROP_REASONS:
            raise ValueError(f"unknown drop reason {reason!r}")
        self.dropped[reason] += 1
        ex = self.examples.setdefault(reason, [])
        if len(ex) < EXAMPLES_PER_REASON:
            ex.append([safe_ref(ref), safe_ref(detail or DROP_REASONS[reason])])

    def to_dict(self) -> dict[str, Any]:
        return {
            "raw": self.raw,
            "kept": {"train": self.kept["train"], "test": self.kept["test"]},
            "dropped": dict(sorted(self.dropped.items())),
            "examples": {k: v for k, v in sorted(self.examples.items())},
            "missing": self.missing,
            "read_images": self.read_images,
            "unread_images": self.unread.to_dict(),
            "unmatched_tables": [dict(t) for t in self.unmatched_tables],
            "ignored_labels": dict(sorted(self.ignored_labels.items())),
            "groups": self.groups,
        }


@dataclass
class ConfigReport:
    config: str
    sources: dict[str, SourceLedger] = field(default_factory=dict)
    label_counts: dict[str, Counter] = field(default_factory=lambda: {"train": Counter(), "test": Counter()})
    ood: bool = False
    warnings: list[str] = field(default_factory=list)
    #: rows written per split (the parquet row counts)
    rows: Counter = field(default_factory=Counter)
    #: the leakage audit of the config (subjects per split, subjects on both sides)
    groups: dict[str, Any] = field(default_factory=dict)

    def ledger(self, key: str) -> SourceLedger:
        return self.sources.setdefault(key, SourceLedger())

    def check(self) -> None:
        """Raise if any source's ledger does not add up (a record was lost or counted twice)."""
        for key, led in self.sources.items():
            total = sum(led.kept.values()) + sum(led.dropped.values())
            if total != led.raw:
                raise AssertionError(
                    f"{self.config}: source {key}: {led.raw} raw records but {total} kept+dropped"
                )

    def to_dict(self) -> dict[str, Any]:
        return {
            "sources": {k: v.to_dict() for k, v in sorted(self.sources.items())},
            "num_examples": {s: self.rows[s] for s in ("train", "test")},
            "label_counts": {s: dict(sorted(c.items())) for s, c in self.label_counts.items()},
            "ood": self.ood,
            "missing_sources": sorted(k for k, v in self.sources.items() if v.missing),
            "warnings": list(self.warnings),
            "groups": dict(self.groups),
        }
