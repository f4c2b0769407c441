"""The fast split by subject gives exactly the splits of the rule in ``splitting``'s docstring.

The reference below is the straightforward implementation of that rule (per-unit dicts, ``Fraction``
sums, one ``_closer`` call per subject), kept here only to check the fast one against it on many random
sources: one-image and multi-image subjects, multi-label records, empty and tiny strata, placed
(officially split) subjects, hash ties between distinct subjects, and the subject keys of the resolver.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from dataclasses import dataclass
from fractions import Fraction
from hashlib import sha256
from operator import itemgetter
from types import SimpleNamespace

import pytest

from medmat_builder.build.candidates import Candidate, seeded_key
from medmat_builder.build.groups import GroupResolver, split_token, split_tokens, subject_key
from medmat_builder.build.select import _drop_listed_twice
from medmat_builder.build.splitting import (
    assign_group_splits,
    assign_random_splits,
    seeded_digests,
    seeded_hexdigests,
    split_candidates,
)
from medmat_builder.records import RawRecord
from medmat_builder.report import ConfigReport


# --------------------------------------------------------------------------- the reference
def _closer_ref(counts, in_test, target):
    if len(counts) == 1:
        ((s, c),) = counts.items()
        t = in_test.get(s, 0)
        return abs(t + c - target[s]) < abs(t - target[s])
    delta = Fraction(0)
    for s, c in counts.items():
        t = in_test.get(s, 0)
        delta += Fraction(abs(t + c - target[s]) - abs(t - target[s]), max(target[s], 1))
    return delta < 0


def assign_group_splits_ref(free, seed, fraction, strata, source, placed=()):
    official = defaultdict(Counter)
    for item in placed:
        official[item.group][item.split] += 1
    by_subject = {}
    for item in free:
        by_subject.setdefault(item.group, []).append(item)
    units = []
    totals = {}
    for key, members in by_subject.items():
        sides = official.get(key)
        if sides:
            side = "test" if sides["test"] >= sides["train"] else "train"
            for item in members:
                item.split = side
            continue
        counts = {}
        for item in members:
            for s in strata(item):
                counts[s] = counts.get(s, 0) + 1
                totals[s] = totals.get(s, 0) + 1
        units.append((sha256(f"{seed}:split:{source}:{split_token(key)}".encode()).hexdigest(), members, counts))
    target = {s: int(round(n * fraction)) for s, n in totals.items()}
    in_test = {}
    units.sort(key=itemgetter(0))
    for _, members, counts in units:
        to_test = _closer_ref(counts, in_test, target)
        if to_test:
            for s, c in counts.items():
                in_test[s] = in_test.get(s, 0) + c
        for item in members:
            item.split = "test" if to_test else "train"


def split_candidates_ref(candidates, seed, fraction, kind, report):
    by_source = defaultdict(list)
    for c in candidates:
        by_source[c.source.key].append(c)
    free, fixed = defaultdict(list), defaultdict(list)
    for src, group in by_source.items():
        if any(c.split == "test" for c in group):
            free[src] += [c for c in group if not c.split]
            fixed[src] += [c for c in group if c.split]
        else:
            free[src] += group
    strata = (lambda c: c.labels) if kind == "multi-label" else (lambda c: (c.key,))
    for src in sorted(free):
        assign_group_splits_ref(free[src], seed, fraction, strata, src, fixed[src])
    in_test = {c.group for c in candidates if c.split == "test" and c.group}
    kept = []
    for c in candidates:
        if c.split == "train" and c.group in in_test:
            report.ledger(c.source.key).drop("subject_in_test", c.record.ref, "its subject also has images in the official test split")
        else:
            kept.append(c)
    return kept


# --------------------------------------------------------------------------- random sources
@dataclass
class Item:
    group: str
    labels: tuple[str, ...]
    split: str = ""


def _random_source(rng: random.Random) -> tuple[list[Item], list[Item]]:
    """Free and placed items of one random source."""
    labels = [f"l{i}" for i in range(rng.choice([1, 2, 3, 5, 12]))]
    weights = [rng.choice([1, 1, 5, 40]) for _ in labels]
    n_subjects = rng.choice([0, 1, 2, 5, 30, 200])
    image_subjects = rng.random() < 0.3  # every image its own subject (no groups declared)
    multi = rng.random() < 0.4
    free: list[Item] = []
    placed: list[Item] = []
    for g in range(n_subjects):
        key = subject_key("src", None, f"img{g}.png") if image_subjects else subject_key("src", f"p{g % 50}-{g}", "")
        if rng.random() < 0.1:  # distinct subjects with one split token ("group:tie0"): ties in the seeded order
            key = subject_key("src", None, f"group:tie{g % 2}") if rng.random() < 0.5 else subject_key("src", f"tie{g % 2}", "")
        size = 1 if image_subjects else rng.choice([1, 1, 1, 2, 3, 7])
        main = rng.choices(labels, weights)[0]
        for _ in range(size):
            if multi:
                labs = tuple(rng.sample(labels, min(len(labels), rng.choice([0, 1, 1, 2, 3]))))
                if labs and rng.random() < 0.05:
                    labs += (labs[0],)  # a label listed twice
            else:
                labs = (main,) if rng.random() < 0.9 else (rng.choice(labels),)
            (placed if rng.random() < 0.1 else free).append(Item(key, labs))
    for item in placed:
        item.split = rng.choice(["train", "train", "test", "validation"])
    if rng.random() < 0.3:  # officially split items of subjects with no free image
        placed += [Item(subject_key("src", f"q{i}", ""), ("l0",), rng.choice(["train", "test"])) for i in range(3)]
    rng.shuffle(free)
    return free, placed


@pytest.mark.parametrize("chunk", range(8))
def test_assign_group_splits_equals_the_reference_on_random_sources(chunk):
    for case in range(60):
        rng = random.Random(chunk * 1000 + case)
        free, placed = _random_source(rng)
        if rng.random() < 0.3:
            placed = []
        seed, fraction = rng.randrange(100), rng.choice([0.0, 0.1, 0.1, 0.25, 0.5, 1.0])
        ref = [Item(it.group, it.labels) for it in free]
        assign_group_splits_ref(ref, seed, fraction, lambda it: it.labels, "src", placed)
        assign_group_splits(free, seed, fraction, lambda it: it.labels, "src", placed)
        assert [it.split for it in free] == [it.split for it in ref], (chunk, case)


def test_one_image_one_label_sources_take_the_fast_fill_and_equal_the_reference():
    for case in range(30):
        rng = random.Random(case)
        labels = ["a", "b", "c", "d"][: rng.randint(1, 4)]
        free = [Item(subject_key("src", None, f"x/{i}.png"), (rng.choice(labels),)) for i in range(rng.randrange(400))]
        ref = [Item(it.group, it.labels) for it in free]
        assign_group_splits_ref(ref, case, 0.1, lambda it: it.labels, "s")
        assign_group_splits(free, case, 0.1, lambda it: it.labels, "s")
        assert [it.split for it in free] == [it.split for it in ref]
        tests = Counter(it.labels[0] for it in free if it.split == "test")
        assert tests == {lab: round(0.1 * n) for lab, n in Counter(it.labels[0] for it in free).items() if round(0.1 * n)}


def _candidates(rng: random.Random, kind: str) -> list[Candidate]:
    cands = []
    for s in range(rng.randint(1, 4)):
        source = SimpleNamespace(key=f"src{s}", folder="shared" if s < 2 else f"f{s}")
        free, placed = _random_source(rng)
        official = rng.random() < 0.5
        for it in free + (placed if official else []):
            rec = RawRecord(source.key, it.group[-12:], it.group[-12:], it.labels)
            labels = it.labels if kind == "multi-label" else it.labels[:1] or ("l0",)
            key = (labels[:1] or ("",))[0] if kind != "detection" else "all"
            group = it.group.replace("src", source.folder, 1)
            cands.append(Candidate(rec, source, None, labels, it.split, f"id{len(cands)}", key=key, group=group))
    rng.shuffle(cands)
    return cands


@pytest.mark.parametrize("kind", ["single-label", "multi-label", "detection"])
def test_split_candidates_equals_the_reference(kind):
    for case in range(40):
        rng = random.Random(case)
        cands = _candidates(rng, kind)
        twin = [Candidate(c.record, c.source, c.root, c.labels, c.split, c.id, c.key, c.order, c.group) for c in cands]
        report, ref_report = ConfigReport(), ConfigReport()
        seed, fraction = rng.randrange(10), rng.choice([0.1, 0.3])
        kept = split_candidates(cands, seed, fraction, kind, report)
        ref_kept = split_candidates_ref(twin, seed, fraction, kind, ref_report)
        assert [c.split for c in cands] == [c.split for c in twin], (kind, case)
        assert [c.id for c in kept] == [c.id for c in ref_kept]
        assert report.model_dump() == ref_report.model_dump()


def test_assign_random_splits_equals_the_reference():
    for case in range(20):
        rng = random.Random(case)
        cands = [c for c in _candidates(rng, "single-label") if not c.split]
        twin = [Candidate(c.record, c.source, c.root, c.labels, c.split, c.id, c.key, c.order, c.group) for c in cands]
        assign_random_splits(cands, case, 0.1)
        split_candidates_ref(twin, case, 0.1, "single-label", ConfigReport())
        assert [c.split for c in cands] == [c.split for c in twin]


# --------------------------------------------------------------------------- keys, tokens, the seeded order
def test_split_tokens_and_seeded_digests_match_their_one_at_a_time_forms():
    keys = [subject_key("ns", None, "a/b\x1fc.png"), subject_key("ns", "p1", ""), subject_key("n s", " x ", "y")]
    assert split_tokens(keys) == [split_token(k) for k in keys]
    tokens = ["a", "group:p1", "é/ü.png", ""]
    assert seeded_hexdigests("3:order:", tokens) == [seeded_key(3, "order", t) for t in tokens]
    assert [d.hex() for d in seeded_digests("3:split:s:", tokens)] == [seeded_key(3, "split", "s", t) for t in tokens]


def test_key_of_equals_subject_key_for_every_kind_of_record():
    for declared, groups in (("none", None), ("column", "x")):
        source = SimpleNamespace(key="k", folder="fold", groups=None)
        resolver = GroupResolver(source, "/nonexistent")  # type: ignore[arg-type]
        resolver.stats.declared = declared
        recs = [RawRecord("k", "a.png", "a.png", group=groups), RawRecord("k", "b.png", "b.png", group="  "),
                RawRecord("k", "c.png", "c.png", group=" g1 "), RawRecord("k", "a.png", "a.png", group=groups)]
        keys = [resolver.key_of(rec) for rec in recs]
        expect = []
        for rec in recs:
            raw = rec.group.strip() if declared == "column" and rec.group else None
            expect.append(subject_key("fold", raw or None, rec.image))
        assert keys == expect
        assert resolver.stats.records == 4 and resolver.stats.subjects == set(expect)
        assert resolver.stats.ungrouped == (0 if declared == "none" else sum(1 for k in expect if "\x1fimage\x1f" in k))


def test_drop_listed_twice_keeps_test_first_in_seeded_order():
    for case in range(10):
        rng = random.Random(case)
        cands = _candidates(rng, "single-label")
        for c in cands:
            c.split = c.split or rng.choice(["train", "test"])
            c.order = seeded_key(case, "order", c.id)
            if rng.random() < 0.1:
                c.id = "twice"
        ref = sorted(cands, key=lambda c: (c.split != "test", c.order))
        seen, expect = set(), []
        for c in ref:
            if c.id not in seen:
                seen.add(c.id)
                expect.append(c)
        report = ConfigReport()
        assert [id(c) for c in _drop_listed_twice(cands, report)] == [id(c) for c in expect]
        assert sum(led.dropped.get("duplicate", 0) for led in report.sources.values()) == len(cands) - len(expect)


def test_buckets_are_those_of_going_through_every_candidate_in_order():
    """The fills' lists by split and key, built from the candidates as they come (ids all different), are those
    built by going through all of them sorted by order: the same lists, and the keys in the same order."""
    from medmat_builder.build.select import _buckets

    for case in range(30):
        rng = random.Random(case)
        cands = _candidates(rng, rng.choice(["single-label", "multi-label", "detection"]))
        for c in cands:
            c.split = c.split if c.split in ("train", "test") else rng.choice(["train", "test"])
            c.key = rng.choice(["a", "b", "c", "d", "e"]) if rng.random() < 0.7 else c.key
            c.order = seeded_key(case, "order", c.id)
        expect: dict[str, dict[str, list[int]]] = {"train": {}, "test": {}}
        for c in sorted(cands, key=lambda c: c.order):
            expect[c.split].setdefault(c.key, []).append(id(c))
        got = _buckets(cands)
        assert {s: {k: [id(c) for c in v] for k, v in g.items()} for s, g in got.items()} == expect
        assert all(list(got[s]) == list(expect[s]) for s in expect)


def test_one_image_keys_of_one_namespace_take_the_quick_tokens_and_keys():
    from medmat_builder.build.splitting import _seeded_order_head

    keys = [subject_key("ns", None, f"d/{i}\x1f.png") for i in range(50)]
    assert split_tokens(keys) == [split_token(k) for k in keys]
    mixed = keys + [subject_key("ns", "p", "")] + [subject_key("other", None, "x.png")]
    assert split_tokens(mixed) == [split_token(k) for k in mixed]
    source = SimpleNamespace(key="k", folder="fold", groups=None)
    recs = [RawRecord("k", f"{i}.png", f"{i}.png") for i in range(5)] + [RawRecord("k", "0.png", "0.png")]
    one, bulk = GroupResolver(source, "/nonexistent"), GroupResolver(source, "/nonexistent")  # type: ignore[arg-type]
    assert bulk.keys_of(recs) == [one.key_of(rec) for rec in recs]
    assert bulk.stats == one.stats
    for case in range(30):  # the head of the seeded order: a prefix of it, with enough of every stratum
        rng = random.Random(case)
        n = rng.randrange(1, 3000)
        digests = seeded_digests(f"{case}:", [str(i) for i in range(n)])
        strata = [rng.choice("abc") for _ in range(n)]
        fraction = rng.choice([0.1, 0.3, 0.9])
        need = {s: round(fraction * c) for s, c in Counter(strata).items()}
        head = _seeded_order_head(digests, strata, need, fraction)
        full = sorted(range(n), key=digests.__getitem__)
        assert head == full[:len(head)]
        got = Counter(strata[i] for i in head)
        assert all(got[s] >= c for s, c in need.items())
