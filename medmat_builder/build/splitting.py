"""The seeded 9:1 split of a source without an official split: by subject, stratified by label.

A *unit* is one subject (:mod:`medmat_builder.build.groups`): all its images go to the same side. Each unit
counts its images per stratum (the label of a single-label record, every label of a multi-label
record, one stratum for detection/segmentation). The target of a stratum is
``round(fraction * images of that stratum)`` test images.

Units are visited in a seeded order (a hash of the seed, the source and the subject; for a one-image
subject the image path, so a source without groups is split exactly as an image-level split would
be). A unit goes to test when that moves the test counts closer to the targets, measured as
``sum over its strata of |test - target| / max(target, 1)`` (strictly closer; ties stay in train),
else to train. For a source whose subjects each hold one label this is an exact per-label greedy
fill: with one image per subject it gives exactly ``round(0.1 n)`` test images per label, and with
larger subjects it never overshoots a label's target by more than it undershoots. For subjects that
hold several labels, or multi-label records, the relative weighting keeps rare labels near their
10% as well as common ones (a unit that would push a rare label far past its target is not taken
just because it helps a common one).

Images of a source that has an official test split, but carry no split themselves, are split the
same way, except that a subject already placed by the official split keeps its unplaced images on
its side (the side holding most of its images; test on a tie). A source's official split keeps its
test side as published: where it puts one subject on both sides, that subject's train images are
dropped as ``subject_in_test`` (:func:`keep_official_test_subjects_out_of_train`).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from fractions import Fraction
from hashlib import sha256
from operator import itemgetter
from typing import Protocol

from medmat_builder.build.candidates import Candidate
from medmat_builder.build.groups import split_token
from medmat_builder.report import ConfigReport


class Splittable(Protocol):
    group: str
    split: str


def _closer(counts: dict[str, int], in_test: dict[str, int], target: dict[str, int]) -> bool:
    """Does adding ``counts`` to the test counts bring them strictly closer to the targets?"""
    if len(counts) == 1:
        ((s, c),) = counts.items()
        t = in_test.get(s, 0)
        return abs(t + c - target[s]) < abs(t - target[s])
    delta = Fraction(0)
    for s, c in counts.items():
        t = in_test.get(s, 0)
        delta += Fraction(abs(t + c - target[s]) - abs(t - target[s]), max(target[s], 1))
    return delta < 0


def assign_group_splits(
    free: Sequence[Splittable],
    seed: int,
    fraction: float,
    strata: Callable[[Splittable], Iterable[str]],
    source: str,
    placed: Sequence[Splittable] = (),
) -> None:
    """Set ``split`` of every item of ``free`` (one source's records) to ``train`` or ``test``, by subject.

    ``strata`` gives the strata an item counts in; ``placed`` are the source's items that keep their
    official split (their subjects pull unplaced images to their side). See the module docstring.
    """
    official: dict[str, Counter] = defaultdict(Counter)
    for item in placed:
        official[item.group][item.split] += 1
    by_subject: dict[str, list] = {}
    for item in free:
        members = by_subject.get(item.group)
        if members is None:
            by_subject[item.group] = [item]
        else:
            members.append(item)
    prefix = f"{seed}:split:{source}:"  # seeded_key(seed, "split", source, token) == sha256(prefix + token)
    units: list[tuple[str, list, dict[str, int]]] = []  # (seeded order, members, images per stratum)
    totals: dict[str, int] = {}
    for key, members in by_subject.items():
        sides = official.get(key)
        if sides:
            side = "test" if sides["test"] >= sides["train"] else "train"
            for item in members:
                item.split = side
            continue
        counts: dict[str, int] = {}
        for item in members:
            for s in strata(item):
                counts[s] = counts.get(s, 0) + 1
                totals[s] = totals.get(s, 0) + 1
        units.append((sha256((prefix + split_token(key)).encode()).hexdigest(), members, counts))
    target = {s: int(round(n * fraction)) for s, n in totals.items()}
    in_test: dict[str, int] = {}
    units.sort(key=itemgetter(0))
    for _, members, counts in units:
        to_test = _closer(counts, in_test, target)
        if to_test:
            for s, c in counts.items():
                in_test[s] = in_test.get(s, 0) + c
        side = "test" if to_test else "train"
        for item in members:
            item.split = side


def split_candidates(candidates: list[Candidate], seed: int, fraction: float, kind: str,
                     report: ConfigReport) -> list[Candidate]:
    """Set every candidate's split: the source's own where it has a test split (its unsplit images by subject,
    see the module docstring), else a seeded 9:1 split by subject over all its images (train and validation
    parts included). Returns the candidates, minus the train images of official test subjects."""
    by_source: dict[str, list[Candidate]] = defaultdict(list)
    for c in candidates:
        by_source[c.source.key].append(c)
    unsplit: list[Candidate] = []
    placed: list[Candidate] = []
    for group in by_source.values():
        if any(c.split == "test" for c in group):  # the source has its own test split
            unsplit += [c for c in group if not c.split]
            placed += [c for c in group if c.split]
        else:  # no split, or only train/validation parts: seeded 9:1 over everything
            unsplit += group
    assign_random_splits(unsplit, seed, fraction, kind, placed)
    return keep_official_test_subjects_out_of_train(candidates, report)


def assign_random_splits(
    cands: list[Candidate], seed: int, fraction: float, kind: str = "single-label", placed: Sequence[Candidate] = ()
) -> None:
    """Seeded 9:1 split by subject, stratified by label, of candidates without an official split.

    Strata: the label (single-label), every label (multi-label), one stratum (detection/segmentation).
    ``placed`` are candidates of the same sources that keep their official split. See
    :mod:`medmat_builder.build.splitting` for the greedy assignment.
    """
    def strata(c: Candidate) -> tuple[str, ...]:
        return c.labels if kind == "multi-label" else (c.key,)

    free: dict[str, list[Candidate]] = defaultdict(list)
    fixed: dict[str, list[Candidate]] = defaultdict(list)
    for c in cands:
        free[c.source.key].append(c)
    for c in placed:
        fixed[c.source.key].append(c)
    for src in sorted(free):
        assign_group_splits(free[src], seed, fraction, strata, src, fixed[src])  # type: ignore[arg-type]


def keep_official_test_subjects_out_of_train(cands: list[Candidate], report: ConfigReport) -> list[Candidate]:
    """An official split that puts one subject on both sides (Kermany OCT, the pediatric CXR set ...) keeps
    its test side as published; the subject's train images are dropped as ``subject_in_test``, so the
    build never trains on a test patient. Sources without an official split are split by subject already."""
    in_test = {c.group for c in cands if c.split == "test" and c.group}
    kept = []
    for c in cands:
        if c.split == "train" and c.group in in_test:
            report.ledger(c.source.key).drop("subject_in_test", c.record.ref,
                                             "its subject also has images in the official test split")
        else:
            kept.append(c)
    return kept
