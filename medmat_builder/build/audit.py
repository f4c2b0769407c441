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

from medmat_builder.build.candidates import Selection
from medmat_builder.records import SPLITS
from medmat_builder.report import ConfigReport, LeakageSummary, SourceGroups, SpanningSubject, SplitIds
from medmat_builder.scripts import did_you_mean

#: Spanning subjects listed as examples in the build report (the command prints them all).
AUDIT_EXAMPLES = 5


@dataclass
class LeakageAudit:
    """Subjects per split and the subjects found on both sides."""

    subjects: Counter = field(default_factory=Counter)
    spanning: list[SpanningSubject] = field(default_factory=list)

    @property
    def leaks(self) -> bool:
        return bool(self.spanning)

    def summary(self, examples: int = AUDIT_EXAMPLES) -> LeakageSummary:
        """What the build report keeps of the audit (some spanning subjects, not all)."""
        return LeakageSummary(train=self.subjects["train"], test=self.subjects["test"],
                              across_splits=len(self.spanning), examples=self.spanning[:examples])


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
            audit.spanning.append(SpanningSubject(
                group=group, source=source, train=len(splits["train"]), test=len(splits["test"]),
                ids=SplitIds(train=min(splits["train"]), test=min(splits["test"]))))
    return audit


def audit_selection(report: ConfigReport, selection: Selection) -> None:
    """Record the leakage audit of a config's selection: subjects per split and on both sides, overall and per source."""
    rows = [(split, selection.groups[sel.id], sel.source, sel.id) for split in SPLITS for sel in getattr(selection, split)]
    audit = audit_rows(rows)
    report.groups = audit.summary()
    for key, led in report.sources.items():
        own = audit_rows(r for r in rows if r[2] == key)
        groups = led.groups or SourceGroups()
        led.groups = groups.model_copy(update={"train": own.subjects["train"], "test": own.subjects["test"],
                                               "across_splits": len(own.spanning)})
    if audit.spanning:
        by_source = Counter(s.source for s in audit.spanning)
        report.warnings.append(
            f"{len(audit.spanning)} subjects span train and test ("
            + ", ".join(f"{k}: {n}" for k, n in sorted(by_source.items()))
            + "), as the sources' official splits put them; `medmat audit` lists them"
        )


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
            built = sorted(p.name for p in out.iterdir() if p.is_dir() and any(p.glob("*.parquet")))
            raise AuditError(f"{out} has no config {name!r} (no {name}/*.parquet){did_you_mean(name, built)}")
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
