"""The seeded 9:1 split of a source without an official split: by subject, stratified by label.

A *unit* is one subject (:mod:`medmat_builder.groups`): all its images go to the same side. Each unit
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
its side (the side holding most of its images; test on a tie).
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Protocol

from medmat_builder.groups import split_token


class Splittable(Protocol):
    group: str
    split: str


@dataclass
class _Unit:
    order: str
    members: list
    counts: dict[str, int]


def _seeded(*parts: object) -> str:
    return hashlib.sha256(":".join(map(str, parts)).encode()).hexdigest()


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
        by_subject.setdefault(item.group, []).append(item)
    units: list[_Unit] = []
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
        units.append(_Unit(_seeded(seed, "split", source, split_token(key)), members, counts))
    target = {s: int(round(n * fraction)) for s, n in totals.items()}
    in_test: dict[str, int] = {}
    units.sort(key=lambda u: u.order)
    for unit in units:
        to_test = _closer(unit.counts, in_test, target)
        if to_test:
            for s, c in unit.counts.items():
                in_test[s] = in_test.get(s, 0) + c
        for item in unit.members:
            item.split = "test" if to_test else "train"
