"""Raw labels to the subset's canonical labels (the registry's clusters), and the key each record is balanced by."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence

from medmat_builder.build.candidates import Candidate
from medmat_builder.records import RawRecord
from medmat_builder.registry import Source, Subset


class UnknownLabelError(ValueError):
    """Raw labels that are not in a source's clusters (use --lenient to count them as dropped)."""


def map_labels(
    subset: Subset, source: Source, record: RawRecord, unknown: dict[str, list[str]],
    ignored: dict[str, int] | None = None,
) -> tuple[tuple[str, ...], str | None]:
    """Canonical labels of a record, or a drop reason. Unknown raw labels are collected in ``unknown``;
    with the source's ``unlisted_labels: drop`` they count as explicit drops instead (in ``ignored``)."""
    raw = list(record.labels)
    if not subset.is_classification:
        raw = raw or [b.label for b in record.boxes] or [lab for _, lab in record.mask_labels]
    if not raw:
        return (), "unlabeled"
    out: list[str] = []
    for lab in raw:
        known, canonical = source.lookup_label(lab)  # tolerant of case, spaces and Unicode form
        if not known:
            if source.unlisted_labels == "drop":
                if ignored is not None:
                    ignored[lab] = ignored.get(lab, 0) + 1
                continue
            unknown.setdefault(lab, []).append(record.ref)
            return (), "unknown_label"
        if canonical is not None and canonical not in out:
            out.append(canonical)
    if not out:
        return (), "unused_label"
    if subset.kind == "single-label" and len(out) > 1:
        return (), "multiple_labels"
    return tuple(out), None


def unknown_label_error(subset: Subset, unknown: Mapping[tuple[str, str], Sequence[str]]) -> UnknownLabelError:
    """The error listing every raw label missing from the clusters, per source, with how to fix it."""
    lines = [
        f"  source {src}: raw label {lab!r} ({len(refs)} records, e.g. {refs[0]})"
        for (src, lab), refs in sorted(unknown.items())
    ]
    return UnknownLabelError(
        f"{subset.name}: raw labels missing from the label clusters in sources.yaml:\n"
        + "\n".join(lines)
        + "\nAdd them to the source's 'labels' (map to a canonical label or null), "
        "or pass --lenient to count them as dropped."
    )


def assign_balance_keys(candidates: Sequence[Candidate], subset: Subset) -> None:
    """Set each candidate's balancing ``key``: its label (single-label), its rarest label (multi-label; ties by the
    subset's label order), ``all`` (detection/segmentation)."""
    rank = {lab: i for i, lab in enumerate(subset.labels)}
    freq: dict[str, int] = defaultdict(int)
    for c in candidates:
        for lab in c.labels:
            freq[lab] += 1
    for c in candidates:
        if subset.kind == "single-label":
            c.key = c.labels[0]
        elif subset.kind == "multi-label":
            c.key = min(c.labels, key=lambda lab: (freq[lab], rank.get(lab, 0), lab))
        else:
            c.key = "all"
