"""Choose which raw records of a subset land in which split, following the paper (Section 2.1, App. B).

Order of work, so that only kept images are ever opened:

1. scan every source's layout (tables and file names only) -> raw records, and map raw labels to the
   subset's canonical labels, counting every record that cannot be used (:mod:`~medmat_builder.build.scan`);
2. balancing keys (:mod:`~medmat_builder.build.labels`);
3. split: the source's own train/test split where it has one (validation goes to train), else a
   seeded, label-stratified 9:1 split by subject (:mod:`medmat_builder.build.splitting`): the images of
   one patient, lesion, volume or video (``groups`` in the registry, :mod:`medmat_builder.build.groups`)
   all go to one side. Later steps only drop images, so no subject ever spans train and test
   unless the source's official split puts it there (the leakage audit reports that);
4. quotas: test strictly label-balanced (same count for every label, at most ``test_max_per_label``),
   train capped at 3,000 with labels balanced as far as possible (:mod:`~medmat_builder.build.quotas`);
5. fill the quotas in a seeded order, opening images only now (in parallel when ``num_proc > 1``):
   corrupt images and duplicates of an image already kept in the subset (same decoded pixels, or a
   near duplicate: perceptual hash close *and* thumbnails confirming, see
   :mod:`medmat_builder.images.duplicates`) are skipped and the next candidate is taken. The test split is
   filled first, so a duplicate pair never spans train and test. In a classification subset, an
   image that repeats a kept one under other labels is a **label conflict**: neither is used (both
   are counted as ``label_conflict``), and the kept one's place goes to the next candidate of its
   label (also in the test split, which stays strictly balanced): :mod:`~medmat_builder.build.fill`,
   :mod:`~medmat_builder.build.dedup`;
6. check that the config loads: an empty train or test split, or (single-label) a label with
   records but no test item, raises :class:`EmptySplitError` with the numbers (nothing is written).

Accepted image bytes go to an on-disk :class:`~medmat_builder.build.spool.Spool` (bounded memory); the
builder reads them back. The leakage audit of the selection goes into the report (:mod:`~medmat_builder.build.audit`).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from operator import attrgetter
from pathlib import Path

from medmat_builder.build.audit import audit_selection
from medmat_builder.build.candidates import Candidate, Selected, Selection
from medmat_builder.build.dedup import SeenImages
from medmat_builder.build.fill import Fill
from medmat_builder.build.groups import subject_pseudonym
from medmat_builder.build.labels import assign_balance_keys
from medmat_builder.build.loader import Loader
from medmat_builder.build.quotas import quotas_for_test, quotas_for_train
from medmat_builder.build.scan import (FileChecks, Scan, collector_paused, kept_from_collector, run_file_checks,
                                      scan_candidates)
from medmat_builder.build.settings import BuildSettings
from medmat_builder.build.splitting import seeded_hexdigests, split_candidates
from medmat_builder.build.spool import Spool
from medmat_builder.registry import Source, Subset
from medmat_builder.report import ConfigReport, safe_ref


_ORDER = attrgetter("order")


class EmptySplitError(ValueError):
    """A config would not load (an empty split, or a label without test item); the message says why in numbers."""

    def __init__(self, message: str, report: ConfigReport | None = None):
        super().__init__(message)
        self.report = report


def select_subset(
    subset: Subset,
    sources: Sequence[tuple[Source, Path]],
    settings: BuildSettings,
    report: ConfigReport,
    spool: Spool,
    scan: Scan | None = None,
    siblings: Mapping[str, Sequence[Source]] | None = None,
) -> Selection:
    """Scan, split, balance and fill one subset; every raw record ends up kept or counted as dropped.

    ``siblings`` maps a source key to the other entries that share its folder (for the unread-files count).
    """
    # plain paths: the builder's module is patched by ``datasets`` for streaming, so a root made there is an
    # ``xPath``, whose ``/`` costs about 0.1 ms (once per opened image)
    sources = [(src, Path(root)) for src, root in sources]
    with kept_from_collector() as freeze:
        return _select(subset, sources, settings, report, spool, scan, siblings, freeze)


def _select(subset: Subset, sources: list[tuple[Source, Path]], settings: BuildSettings, report: ConfigReport,
            spool: Spool, scan: Scan | None, siblings: Mapping[str, Sequence[Source]] | None,
            freeze: Callable[[], None]) -> Selection:
    """:func:`select_subset`; ``freeze`` keeps what is alive after the split from the collector (until the end)."""
    checks: list[FileChecks] = []  # the file ledgers and link checks, run once the first images are decoding
    with collector_paused():  # 100,000s of candidates stay alive until the fill: no collector passes over them
        candidates = scan_candidates(subset, sources, report, lenient=settings.lenient, scan=scan, siblings=siblings,
                                     later=checks)
        assign_balance_keys(candidates, subset)
        ids = [c.id for c in candidates]
        candidates = split_candidates(candidates, settings.seed, settings.test_fraction, subset.kind, report)
        ordered = len(set(ids)) != len(ids)  # ids all different (the split only drops some): no two orders alike
        if ordered:  # some file listed twice: every order first, to keep the first of each
            _set_orders(candidates, settings.seed)
        unique = _drop_listed_twice(candidates, report) if ordered else candidates
        test_side = [c for c in unique if c.split == "test"]
        if not ordered:
            _set_orders(test_side, settings.seed)  # the train side's once the first test images are decoding
        test_buckets = _buckets(test_side, ("test",))["test"]
        freeze()

    def train_side() -> dict[str, list[Candidate]]:
        """The train side's buckets (its order keys set first), and the scan's file checks: nothing the first
        test jobs need, done while they decode."""
        with collector_paused():
            run_file_checks(report, checks)
            train_cands = [c for c in unique if c.split == "train"]
            if not ordered:
                _set_orders(train_cands, settings.seed)
            return _buckets(train_cands, ("train",))["train"]

    rest = _Once(train_side)
    loader = Loader(settings.num_proc)
    seen = SeenImages(settings.near_duplicates, conflicts=subset.is_classification)
    test_quota = quotas_for_test({k: len(v) for k, v in test_buckets.items()}, subset.kind, settings)
    test = Fill(test_buckets, test_quota, loader, seen, spool, report, subset, rest)  # test first: strictly balanced
    test.run()
    if subset.kind == "single-label":
        test.relevel()
    train_buckets = rest()
    train_quota = quotas_for_train({k: len(v) for k, v in train_buckets.items()}, settings)
    train = Fill(train_buckets, train_quota, loader, seen, spool, report, subset)
    train.run()
    while test.short() or train.short():  # only when a label conflict took a kept image back out
        test.run()
        if subset.kind == "single-label":
            test.relevel()
        train.run()
    if subset.kind == "single-label":  # a conflict may have left a test label short with nothing to refill it
        test.relevel()
    kept = {"test": test.finish("balance"), "train": train.finish("over_cap")}

    selection = _record(report, kept)
    report.ood = len(selection.train) < settings.train_cap
    audit_selection(report, selection)
    report.check()
    problem = _unloadable(subset, selection, unique, {"test": test.dropped, "train": train.dropped})
    if problem:
        raise EmptySplitError(problem, report)
    return selection


class _Once:
    """A call made at most once: later calls give back its first result."""

    def __init__(self, fn: Callable[[], dict[str, list[Candidate]]]):
        self._fn: Callable[[], dict[str, list[Candidate]]] | None = fn
        self._value: dict[str, list[Candidate]] = {}

    def __call__(self) -> dict[str, list[Candidate]]:
        fn, self._fn = self._fn, None
        if fn is not None:
            self._value = fn()
        return self._value


def _set_orders(candidates: list[Candidate], seed: int) -> None:
    """Each candidate's seeded place in line, ``seeded_key(seed, "order", id)`` (hashed in one call)."""
    orders = seeded_hexdigests(f"{seed}:order:", [c.id for c in candidates])
    for c, order in zip(candidates, orders):
        c.order = order


def _buckets(candidates: list[Candidate],
             splits: tuple[str, ...] = ("train", "test")) -> dict[str, dict[str, list[Candidate]]]:
    """The candidates by split and balancing key, each list in the seeded order; the keys of a split in the order
    of their first candidate (as met going through the candidates sorted by order): what the fills work on.
    ``candidates`` all belong to ``splits``."""
    buckets: dict[str, dict[str, list[Candidate]]] = {split: defaultdict(list) for split in splits}
    for c in candidates:
        buckets[c.split][c.key].append(c)
    for split, groups in buckets.items():
        for group in groups.values():
            group.sort(key=_ORDER)
        buckets[split] = defaultdict(list, sorted(groups.items(), key=_first_order))
    return buckets


def _first_order(item: tuple[str, list[Candidate]]) -> str:
    return item[1][0].order


def _drop_listed_twice(candidates: list[Candidate], report: ConfigReport) -> list[Candidate]:
    """Same image id twice (a table listing one file twice): keep the first (test first), count the rest."""
    in_order = sorted(candidates, key=_ORDER)  # stable: as sorting by (split != "test", order)
    in_order = [c for c in in_order if c.split == "test"] + [c for c in in_order if c.split != "test"]
    if len({c.id for c in in_order}) == len(in_order):
        return in_order
    seen_ids: set[str] = set()
    unique: list[Candidate] = []
    for c in in_order:
        if c.id in seen_ids:
            report.ledger(c.source.key).drop("duplicate", c.record.ref, "the same file is listed twice")
            continue
        seen_ids.add(c.id)
        unique.append(c)
    return unique


def _record(report: ConfigReport, kept: Mapping[str, Mapping[str, list[tuple[Selected, Candidate]]]]) -> Selection:
    """The selection of the fills' kept records (sorted by id), counted in the report per split, source and label;
    each record's raw path noted in ``report.raw_paths`` (for the visual report)."""
    selection = Selection()
    for split in ("test", "train"):
        pairs = [pair for group in kept[split].values() for pair in group]
        items = sorted((sel for sel, _ in pairs), key=lambda s: s.id)
        setattr(selection, split, items)
        setattr(report.num_examples, split, len(items))
        for sel, cand in pairs:
            selection.groups[sel.id] = subject_pseudonym(cand.group)
            report.raw_paths[sel.id] = safe_ref(f"{cand.source.folder}/{cand.record.image}")
        for sel in items:
            report.ledger(sel.source).keep(split)  # type: ignore[arg-type]
            for lab in sel.labels:
                report.count_label(split, lab)  # type: ignore[arg-type]
    return selection


_DROP_PHRASES = {
    "near_duplicate": "dropped as near duplicates",
    "duplicate": "dropped as duplicates",
    "balance": "dropped to balance the labels",
    "over_cap": "over the cap",
    "no_annotation": "dropped without a box",
}


def _unloadable(subset: Subset, selection: Selection, cands: Sequence[Candidate],
                split_drops: Mapping[str, Counter]) -> str | None:
    """Why the config would not load (one line, in numbers), or None."""
    per_split = Counter([c.split for c in cands])
    for split, other in (("train", "test"), ("test", "train")):
        if getattr(selection, split):
            continue
        n = per_split[split]
        parts = [f"{n} candidates"]
        parts += [f"{v} {_DROP_PHRASES.get(r, 'dropped as ' + r.replace('_', ' '))}"
                  for r, v in sorted(split_drops[split].items()) if v > 0]
        line = f"{subset.name}: {split} would be empty: " + ", ".join(parts)
        if n == 0:
            line += f" (all {per_split[other]} usable records fell in {other})"
        return line
    if subset.kind == "single-label":
        in_test = {lab for sel in selection.test for lab in sel.labels}
        for lab in subset.labels:
            if lab in in_test:
                continue
            have = [c for c in cands if c.labels[0] == lab]
            if have:
                n_test = sum(c.split == "test" for c in have)
                official = all(c.record.split for c in have)
                how = "the official split" if official else "the 9:1 split by subject"
                return (f"{subset.name}: test would have no {lab!r} item: {n_test} of its {len(have)} candidates "
                        f"are in test ({how}), and the paper balances test over every label")
    return None
