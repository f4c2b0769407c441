"""The leakage audit: subjects (the exported ``group`` column) that appear in both train and test.

Part of every build (``build_report.json``: ``configs.<name>.groups``, and per source
``sources.<key>.groups``) and a command (``medmat audit OUT [configs]``, exit 1 when a subject
spans the splits). A seeded split is made by subject, so only an official split of a source can
put one subject on both sides; the build keeps such a split (the paper's rule) and the audit says so.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Spanning subjects listed as examples in the build report (the command prints them all).
AUDIT_EXAMPLES = 5


@dataclass(frozen=True)
class SpanningSubject:
    """One subject with rows in both splits: its pseudonym, source, rows per split and an id on each side."""

    group: str
    source: str
    train: int
    test: int
    train_id: str
    test_id: str

    def to_dict(self) -> dict[str, Any]:
        return {"group": self.group, "source": self.source, "train": self.train, "test": self.test,
                "ids": {"train": self.train_id, "test": self.test_id}}


@dataclass
class LeakageAudit:
    """Subjects per split and the subjects found on both sides."""

    subjects: Counter = field(default_factory=Counter)
    spanning: list[SpanningSubject] = field(default_factory=list)

    @property
    def leaks(self) -> bool:
        return bool(self.spanning)

    def to_dict(self, examples: int = AUDIT_EXAMPLES) -> dict[str, Any]:
        return {"train": self.subjects["train"], "test": self.subjects["test"],
                "across_splits": len(self.spanning), "examples": [s.to_dict() for s in self.spanning[:examples]]}


def audit_rows(rows: Iterable[tuple[str, str, str, str]]) -> LeakageAudit:
    """Audit ``(split, group, source, id)`` rows; spanning subjects sorted by source and group."""
    seen: dict[tuple[str, str], dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for split, group, source, rid in rows:
        seen[(source, group)][split].append(rid)
    audit = LeakageAudit()
    per_split: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for key, splits in seen.items():
        for split in splits:
            per_split[split].add(key)
    audit.subjects = Counter({split: len(keys) for split, keys in per_split.items()})
    for (source, group), splits in sorted(seen.items()):
        if splits.get("train") and splits.get("test"):
            audit.spanning.append(SpanningSubject(group, source, len(splits["train"]), len(splits["test"]),
                                                  min(splits["train"]), min(splits["test"])))
    return audit


class AuditError(RuntimeError):
    """An export cannot be audited (no such folder or config, or no ``group`` column); the message says what to do."""


def audit_export(out: str | Path, configs: Sequence[str] | None = None) -> dict[str, LeakageAudit]:
    """Audit the parquet files of an export folder (all its configs by default), reading only
    the ``group``, ``source`` and ``id`` columns."""
    import pyarrow.parquet as pq

    out = Path(out)
    if not out.is_dir():
        raise AuditError(f"{out} is not an export folder (run `medmat build --out {out}` first)")
    names = list(configs) if configs else sorted(p.name for p in out.iterdir() if p.is_dir() and any(p.glob("*.parquet")))
    results: dict[str, LeakageAudit] = {}
    for name in names:
        files = sorted((out / name).glob("*.parquet"))
        if not files:
            raise AuditError(f"{out} has no config {name!r} (no {name}/*.parquet)")
        rows: list[tuple[str, str, str, str]] = []
        for f in files:
            split = f.name.split("-", 1)[0]
            columns = pq.ParquetFile(f).schema_arrow.names
            if "group" not in columns:
                raise AuditError(f"{f} has no 'group' column: it was built before subjects were recorded; rebuild it")
            table = pq.read_table(f, columns=["group", "source", "id"])
            rows += [(split, g, s, i) for g, s, i in zip(*(table.column(c).to_pylist() for c in ("group", "source", "id")))]
        results[name] = audit_rows(rows)
    return results
