"""What the visual report shows of a source's ledger: the chart, the duplicate pairs and the subjects."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from medmat_builder.images import ImageError, load_image
from medmat_builder.publish.visual.charts import Bar, bar_chart
from medmat_builder.publish.visual.rawpaths import RawPaths
from medmat_builder.publish.visual.thumbs import thumbnail_uri
from medmat_builder.records import SPLITS
from medmat_builder.report import SourceLedger

#: Drop reasons shown as duplicate pairs, and how many pairs per source.
DUPLICATE_REASONS = ("duplicate", "near_duplicate", "label_conflict")
PAIRS_PER_SOURCE = 3
_KEPT = re.compile(r"(?:same decoded pixels as|near duplicate of) (?P<key>[^\s:]+):(?P<ref>\S+?)(?:,|\s\(|$)")


@dataclass
class Side:
    """One image of a duplicate pair: its source, raw ref and thumbnail (``None``: raw file not at hand)."""

    source: str
    ref: str
    uri: str | None = None


@dataclass
class DuplicatePair:
    reason: str
    detail: str
    dropped: Side
    kept: Side | None


@dataclass
class SourceView:
    """One source of a config page."""

    key: str
    ledger: SourceLedger
    chart: str
    pairs: list[DuplicatePair] = field(default_factory=list)


def ledger_bars(ledger: SourceLedger) -> list[Bar]:
    """Kept per split, dropped per reason (largest first), and files the registry excludes."""
    bars = [Bar(f"kept {split}", ledger.kept.get(split), split) for split in SPLITS]
    bars += [Bar(f"dropped: {reason}", n, "dropped")
             for reason, n in sorted(ledger.dropped.items(), key=lambda kv: (-kv[1], kv[0]))]
    bars.append(Bar("excluded files", ledger.unread_images.excluded, "excluded"))
    if ledger.unread_images.unexplained:
        bars.append(Bar("unread files (unexplained)", ledger.unread_images.unexplained, "other"))
    return bars


def _thumb(raw: RawPaths, source: str, ref: str) -> str | None:
    path = raw.file(source, ref)
    if path is None:
        return None
    try:
        return thumbnail_uri(load_image(path).data)
    except (ImageError, OSError):
        return None


def duplicate_pairs(key: str, ledger: SourceLedger, raw: RawPaths, limit: int = PAIRS_PER_SOURCE) -> list[DuplicatePair]:
    """Up to ``limit`` examples of duplicates dropped from source ``key``, each beside the image it repeats."""
    pairs: list[DuplicatePair] = []
    for reason in DUPLICATE_REASONS:
        for ref, detail in ledger.examples.get(reason, []):
            if len(pairs) == limit:
                return pairs
            m = _KEPT.search(detail)
            kept = Side(m["key"], m["ref"], _thumb(raw, m["key"], m["ref"])) if m else None
            pairs.append(DuplicatePair(reason, detail, Side(key, ref, _thumb(raw, key, ref)), kept))
    return pairs


def source_view(key: str, ledger: SourceLedger, raw: RawPaths) -> SourceView:
    """The chart and the duplicate pairs of one source."""
    return SourceView(key, ledger, bar_chart(ledger_bars(ledger), f"ledger of {key}"), duplicate_pairs(key, ledger, raw))
