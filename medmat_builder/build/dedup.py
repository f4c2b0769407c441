"""The duplicate and label-conflict check of one subset: which kept image a new one repeats, and what follows.

Duplicates are decided by :class:`~medmat_builder.images.DuplicateIndex` (the same decoded pixels, or
a perceptual hash that proposes and a thumbnail comparison that confirms). In a classification subset
an image that repeats a kept one under other labels is a **label conflict**: neither is used (both are
counted as ``label_conflict``), and the kept one is taken back out of its split, whose fill then takes
the next candidate of its label.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from medmat_builder.build.candidates import Candidate, Selected
from medmat_builder.build.loader import LoadResult
from medmat_builder.images import DuplicateIndex, NearDuplicateRule, ThumbnailEdges
from medmat_builder.report import SourceLedger


class TakesBack(Protocol):
    """What holds a kept image in a split (a fill) and can take it back out (a label conflict)."""

    def take_back(self, key: str, item: tuple[Selected, Candidate], detail: str) -> None: ...


@dataclass
class KeptImage:
    """What the duplicate check knows of a kept image: where it came from, its labels, and where it sits."""

    ref: str
    labels: frozenset[str]
    fill: TakesBack | None = None  # None once it no longer sits in a split (re-levelled out, or in conflict)
    key: str = ""
    item: tuple[Selected, Candidate] | None = None
    conflict: bool = False


def _thumbnail(res: LoadResult) -> bytes | ThumbnailEdges:
    """What the duplicate index compares: the edges the worker computed, else the thumbnail itself."""
    return res.thumbnail if res.edges is None else res.edges


def _names(labels: frozenset[str]) -> str:
    return ", ".join(sorted(labels)) or "no label"


class SeenImages:
    """The images kept so far in one subset, for the duplicate and label-conflict checks.

    Duplicates are decided by :class:`~medmat_builder.images.duplicates.DuplicateIndex` (same pixels, or a
    perceptual hash that proposes and a thumbnail comparison that confirms). Each entry remembers the
    record it came from, so a later image under other labels can take it back out (a label conflict).
    """

    def __init__(self, rule: NearDuplicateRule, conflicts: bool):
        self.index = DuplicateIndex(rule)
        self.entries: list[KeptImage] = []
        self.conflicts = conflicts
        self._in_split: dict[str, KeptImage] = {}  # by record id: entries that sit in a split

    def add(self, res: LoadResult, kept: KeptImage) -> None:
        self.index.add(res.pixel_hash, res.phash, _thumbnail(res), min(res.width, res.height))
        self.entries.append(kept)
        if kept.item is not None:
            self._in_split[kept.item[0].id] = kept

    def release(self, item: tuple[Selected, Candidate]) -> None:
        """``item`` left its split without a conflict (test re-levelling): nothing to take back later."""
        kept = self._in_split.pop(item[0].id, None)
        if kept is not None:
            kept.fill, kept.item = None, None

    def check(self, res: LoadResult, cand: Candidate, ledger: SourceLedger, subset_name: str) -> bool:
        """Count ``cand`` as dropped (and take back the kept image it conflicts with) if it repeats a kept one."""
        match = self.index.check(res.pixel_hash, res.phash, _thumbnail(res), min(res.width, res.height))
        if match is None:
            return False
        first = self.entries[match.entry]
        labels = frozenset(cand.labels)
        if self.conflicts and (first.conflict or labels != first.labels):
            same = "same decoded pixels as" if match.kind == "duplicate" else "near duplicate of"
            how = "" if match.kind == "duplicate" else f" ({match.describe()})"
            ref = f"{cand.source.key}:{cand.record.ref}"
            ledger.drop("label_conflict", cand.record.ref,
                        f"{same} {first.ref}{how}, which is filed under {_names(first.labels)}; this one under "
                        f"{_names(labels)}: neither is used")
            self.index.add(res.pixel_hash, res.phash, _thumbnail(res), min(res.width, res.height))  # its copies conflict too
            self.entries.append(KeptImage(ref, labels, conflict=True))
            if not first.conflict:
                first.conflict = True
                if first.fill is not None and first.item is not None:
                    first.fill.take_back(first.key, first.item,
                                         f"{same} {ref}{how}, which is filed under {_names(labels)}; this one under "
                                         f"{_names(first.labels)}: neither is used")
                    self.release(first.item)
            return True
        if match.kind == "duplicate":
            ledger.drop("duplicate", cand.record.ref, f"same decoded pixels as {first.ref}, kept in {subset_name}")
        else:
            ledger.drop("near_duplicate", cand.record.ref,
                        f"near duplicate of {first.ref}, kept in {subset_name} ({match.describe()})")
        return True
