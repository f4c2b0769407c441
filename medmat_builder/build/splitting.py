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

How it is computed (the same splits as the rule above, in a fraction of the time at 100,000 images): a
unit in one stratum ``s`` with ``c`` images goes to test exactly when ``c < 2 * (target - test)``
(integers); a unit in several strata compares the weighted sum over a common denominator (integers,
exact). A source whose subjects all hold one image and one stratum is filled per stratum: its first
``target`` images in the seeded order go to test.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from itertools import compress, groupby, repeat
from math import lcm
from operator import attrgetter
from typing import Protocol

from medmat_builder.build.candidates import Candidate
from medmat_builder.build.groups import split_tokens
from medmat_builder.images.hashes import small_sha256
from medmat_builder.report import ConfigReport

_HASH = type(small_sha256())
_GROUP = attrgetter("group")
_SOURCE = attrgetter("source.key")


class Splittable(Protocol):
    group: str
    split: str


def seeded_digests(prefix: str, tokens: Iterable[str]) -> list[bytes]:
    """``sha256(prefix + token)`` of each token, as bytes: they sort as the hex keys of
    :func:`~medmat_builder.build.candidates.seeded_key` would (``prefix`` being its first parts joined by ``:``)."""
    return list(map(_HASH.digest, map(small_sha256, map(str.encode, map(prefix.__add__, tokens)))))


def seeded_hexdigests(prefix: str, tokens: Iterable[str]) -> list[str]:
    """:func:`~medmat_builder.build.candidates.seeded_key` of each token: ``sha256(prefix + token)`` in hex."""
    return list(map(_HASH.hexdigest, map(small_sha256, map(str.encode, map(prefix.__add__, tokens)))))


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
    _assign(free, [tuple(strata(item)) for item in free], seed, fraction, source, placed)


def _assign(free: Sequence[Splittable], strata: list[tuple[str, ...]], seed: int, fraction: float, source: str,
            placed: Sequence[Splittable]) -> None:
    """:func:`assign_group_splits` with each item's strata given (``strata[i]`` those of ``free[i]``)."""
    prefix = f"{seed}:split:{source}:"  # seeded_key(seed, "split", source, token) == sha256(prefix + token)
    keys = list(map(_GROUP, free))
    official = _official_sides(placed)
    if not official and set(map(len, strata)) == {1} and len(set(keys)) == len(keys):
        _fill_one_image_subjects(free, [s for (s,) in strata], seeded_digests(prefix, split_tokens(keys)), fraction)
        return
    by_subject: dict[str, list[int]] = {}
    for i, key in enumerate(keys):
        members = by_subject.get(key)
        if members is None:
            by_subject[key] = [i]
        else:
            members.append(i)
    unit_keys: list[str] = []
    unit_members: list[list[int]] = []
    unit_strata: list[str | dict[str, int]] = []  # the one stratum, or images per stratum (empty: no stratum)
    unit_counts: list[int] = []  # images in its one stratum
    totals: dict[str, int] = {}
    for key, members in by_subject.items():
        side = official.get(key)
        if side is not None:
            for i in members:
                free[i].split = side
            continue
        counts: dict[str, int] = {}
        for i in members:
            for s in strata[i]:
                counts[s] = counts.get(s, 0) + 1
        for s, c in counts.items():
            totals[s] = totals.get(s, 0) + c
        unit_keys.append(key)
        unit_members.append(members)
        if len(counts) == 1:
            ((s, c),) = counts.items()
            unit_strata.append(s)
            unit_counts.append(c)
        else:
            unit_strata.append(counts)
            unit_counts.append(0)
    target = {s: int(round(n * fraction)) for s, n in totals.items()}
    weight = {s: max(t, 1) for s, t in target.items()}
    in_test = dict.fromkeys(target, 0)
    digests = seeded_digests(prefix, split_tokens(unit_keys))
    for u in sorted(range(len(unit_keys)), key=digests.__getitem__):  # stable: ties keep first-seen order
        st = unit_strata[u]
        if isinstance(st, str):
            t, c = in_test[st], unit_counts[u]
            to_test = c < 2 * (target[st] - t)  # |t + c - target| < |t - target|, c >= 1
            if to_test:
                in_test[st] = t + c
        elif st:
            to_test = _weighted_closer(st, in_test, target, weight)
            if to_test:
                for s, c in st.items():
                    in_test[s] += c
        else:
            to_test = False
        side = "test" if to_test else "train"
        for i in unit_members[u]:
            free[i].split = side


def _official_sides(placed: Sequence[Splittable]) -> dict[str, str]:
    """Subject -> the side its officially split images hold most of (test on a tie)."""
    sides: dict[str, Counter] = {}
    for item in placed:
        sides.setdefault(item.group, Counter())[item.split] += 1
    return {key: "test" if n["test"] >= n["train"] else "train" for key, n in sides.items()}


def _fill_one_image_subjects(free: Sequence[Splittable], strata: list[str], digests: list[bytes],
                             fraction: float) -> None:
    """The greedy fill when every subject is one image in one stratum: per stratum, the first
    ``round(fraction * n)`` images in the seeded order go to test, the others to train."""
    left = {s: int(round(n * fraction)) for s, n in Counter(strata).items()}
    remaining = sum(left.values())
    for item in free:
        item.split = "train"
    if not remaining:
        return
    for i in _seeded_order_head(digests, strata, left, fraction):
        s = strata[i]
        if left[s] > 0:
            left[s] -= 1
            free[i].split = "test"
            remaining -= 1
            if not remaining:  # every target met: the rest stay in train (a tenth of the way, at random)
                return


def _seeded_order_head(digests: list[bytes], strata: list[str], need: dict[str, int], fraction: float) -> list[int]:
    """The indices of ``digests`` in their sorted order, or the first part of that order, long enough to hold
    ``need[s]`` items of each stratum ``s``: the items whose digest's first byte is below a cut a little past
    ``fraction`` (sha256 digests are uniform), sorted alone where that leaves every stratum enough items. All
    items below the cut come before all the others, so they are the head of the whole order."""
    share = fraction * 1.25 + 0.02
    cut = int(256 * share) + 1
    if cut < 256:
        below = list(compress(range(len(digests)), map(bytes.__lt__, digests, repeat(bytes((cut,))))))
        have = Counter(map(strata.__getitem__, below))
        if all(have[s] >= n for s, n in need.items()):
            return sorted(below, key=digests.__getitem__)
    return sorted(range(len(digests)), key=digests.__getitem__)


def _weighted_closer(counts: dict[str, int], in_test: dict[str, int], target: dict[str, int],
                     weight: dict[str, int]) -> bool:
    """Does adding ``counts`` (several strata) bring ``sum |test - target| / weight`` strictly down? Exact:
    the sum is taken over the weights' least common multiple."""
    common = lcm(*(weight[s] for s in counts))
    delta = 0
    for s, c in counts.items():
        t, goal = in_test[s], target[s]
        delta += (abs(t + c - goal) - abs(t - goal)) * (common // weight[s])
    return delta < 0


def split_candidates(candidates: list[Candidate], seed: int, fraction: float, kind: str,
                     report: ConfigReport) -> list[Candidate]:
    """Set every candidate's split: the source's own where it has a test split (its unsplit images by subject,
    see the module docstring), else a seeded 9:1 split by subject over all its images (train and validation
    parts included). Returns the candidates, minus the train images of official test subjects."""
    by_source = _by_source(candidates)
    for src in sorted(by_source):
        group = by_source[src]
        splits = [c.split for c in group]
        if "test" in splits:  # the source has its own test split
            free = [c for c, split in zip(group, splits) if not split]
            placed = [c for c, split in zip(group, splits) if split]
        else:  # no split, or only train/validation parts: seeded 9:1 over everything
            free, placed = group, []
        if free:
            _assign(free, _strata(free, kind), seed, fraction, src, placed)
    return keep_official_test_subjects_out_of_train(candidates, report)


def assign_random_splits(
    cands: list[Candidate], seed: int, fraction: float, kind: str = "single-label", placed: Sequence[Candidate] = ()
) -> None:
    """Seeded 9:1 split by subject, stratified by label, of candidates without an official split.

    Strata: the label (single-label), every label (multi-label), one stratum (detection/segmentation).
    ``placed`` are candidates of the same sources that keep their official split. See
    :mod:`medmat_builder.build.splitting` for the greedy assignment.
    """
    fixed = _by_source(placed)
    for src, free in sorted(_by_source(cands).items()):
        _assign(free, _strata(free, kind), seed, fraction, src, fixed.get(src, []))


def _strata(cands: Sequence[Candidate], kind: str) -> list[tuple[str, ...]]:
    """Each candidate's strata: its labels (multi-label), else its balancing key."""
    return [c.labels for c in cands] if kind == "multi-label" else [(c.key,) for c in cands]


def _by_source(cands: Iterable[Candidate]) -> dict[str, list[Candidate]]:
    """The candidates of each source, in their order."""
    cands = list(cands)
    keys = list(map(_SOURCE, cands))
    if len(set(keys)) == 1:  # one source: no sort
        return {keys[0]: cands}
    return {src: list(group) for src, group in groupby(sorted(cands, key=_SOURCE), _SOURCE)}


def keep_official_test_subjects_out_of_train(cands: list[Candidate], report: ConfigReport) -> list[Candidate]:
    """An official split that puts one subject on both sides (Kermany OCT, the pediatric CXR set ...) keeps
    its test side as published; the subject's train images are dropped as ``subject_in_test``, so the
    build never trains on a test patient. Sources without an official split are split by subject already."""
    in_test = {c.group for c in cands if c.split == "test" and c.group}
    dropped = [c for c in cands if c.split == "train" and c.group in in_test]
    if not dropped:
        return cands
    for c in dropped:
        report.ledger(c.source.key).drop("subject_in_test", c.record.ref,
                                         "its subject also has images in the official test split")
    return [c for c in cands if not (c.split == "train" and c.group in in_test)]
