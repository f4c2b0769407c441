"""Choose which raw records of a subset land in which split, following the paper (Section 2.1, App. B).

Order of work, so that only kept images are ever opened:

1. scan every source's layout (tables and file names only) -> raw records;
2. map raw labels to the subset's canonical labels, count every record that cannot be used;
3. split: the source's own train/test split where it has one (validation goes to train), else a
   seeded, label-stratified 9:1 split by subject (:mod:`medmat_builder.splitting`): the images of
   one patient, lesion, volume or video (``groups`` in the registry, :mod:`medmat_builder.groups`)
   all go to one side. Later steps only drop images, so no subject ever spans train and test
   unless the source's official split puts it there (the leakage audit reports that);
4. quotas: test strictly label-balanced (same count for every label, at most ``test_max_per_label``),
   train capped at 3,000 with labels balanced as far as possible (water-filling);
5. fill the quotas in a seeded order, opening images only now (in parallel when ``num_proc > 1``):
   corrupt images and duplicates of an image already kept in the subset (same decoded pixels, or a
   near duplicate: perceptual hash close *and* thumbnails confirming, see
   :mod:`medmat_builder.images.duplicates`) are skipped and the next candidate is taken. The test split is
   filled first, so a duplicate pair never spans train and test. In a classification subset, an
   image that repeats a kept one under other labels is a **label conflict**: neither is used (both
   are counted as ``label_conflict``), and the kept one's place goes to the next candidate of its
   label (also in the test split, which stays strictly balanced).
6. check that the config loads: an empty train or test split, or (single-label) a label with
   records but no test item, raises :class:`EmptySplitError` with the numbers (nothing is written).

Accepted image bytes go to an on-disk :class:`Spool` (bounded memory); the builder reads them back.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from medmat_builder.audit import audit_rows
from medmat_builder.file_ledger import account_files
from medmat_builder.groups import GroupResolver, subject_pseudonym
from medmat_builder.images import DuplicateIndex, ImageError, NearDuplicateRule, image_id, load_image
from medmat_builder.layouts.file_index import FileIndex
from medmat_builder.records import (
    DEFAULT_SEED,
    MASK_SEPARATOR,
    TEST_CAP,
    TEST_FRACTION,
    TEST_MAX_PER_LABEL,
    TRAIN_CAP,
    Box,
    RawRecord,
)
from medmat_builder.registry import Source, Subset
from medmat_builder.report import ConfigReport, SourceLedger, safe_ref
from medmat_builder.safe_paths import RawTree
from medmat_builder.splitting import assign_group_splits


@dataclass(frozen=True)
class BuildSettings:
    """Knobs of a build; the defaults are the paper's rules."""

    seed: int = DEFAULT_SEED
    train_cap: int = TRAIN_CAP
    test_fraction: float = TEST_FRACTION
    test_max_per_label: int = TEST_MAX_PER_LABEL
    test_cap: int = TEST_CAP
    lenient: bool = False
    num_proc: int = 1
    #: When two images are near duplicates (perceptual hash radius, thumbnail edge correlation).
    near_duplicates: NearDuplicateRule = field(default_factory=NearDuplicateRule)


class UnknownLabelError(ValueError):
    """Raw labels that are not in a source's clusters (use --lenient to count them as dropped)."""


class EmptySplitError(ValueError):
    """A config would not load (an empty split, or a label without test item); the message says why in numbers."""

    def __init__(self, message: str, report: ConfigReport | None = None):
        super().__init__(message)
        self.report = report


@dataclass
class Candidate:
    record: RawRecord
    source: Source
    root: Path
    labels: tuple[str, ...]
    split: str
    id: str
    key: str  # balancing key: the label (single), rarest label (multi), "all" (det/seg)
    order: str = ""
    group: str = ""  # namespaced subject key (medmat_builder.groups)


@dataclass(frozen=True)
class Selected:
    """One kept record: everything the builder needs to write it, image bytes in the spool."""

    id: str
    source: str
    split: str
    labels: tuple[str, ...]
    offset: int
    length: int
    width: int
    height: int
    boxes: tuple[Box, ...] = ()


class Spool:
    """Append-only temporary file holding accepted image bytes (keeps memory flat)."""

    def __init__(self, directory: str | None = None):
        fd, self.path = tempfile.mkstemp(prefix="medmat-spool-", suffix=".bin", dir=directory)
        self._fh = os.fdopen(fd, "w+b")
        self._size = 0

    def put(self, data: bytes) -> tuple[int, int]:
        self._fh.seek(self._size)
        self._fh.write(data)
        off = self._size
        self._size += len(data)
        return off, len(data)

    def get(self, offset: int, length: int) -> bytes:
        self._fh.flush()
        with open(self.path, "rb") as fh:
            fh.seek(offset)
            return fh.read(length)

    def close(self) -> None:
        self._fh.close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


def _hash_key(*parts: object) -> str:
    return hashlib.sha256(":".join(map(str, parts)).encode()).hexdigest()


# --------------------------------------------------------------------------- labels & splits
def map_labels(
    subset: Subset, source: Source, record: RawRecord, unknown: dict[str, list[str]],
    ignored: Counter | None = None,
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
                    ignored[lab] += 1
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


def assign_random_splits(
    cands: list[Candidate], seed: int, fraction: float, kind: str = "single-label", placed: Sequence[Candidate] = ()
) -> None:
    """Seeded 9:1 split by subject, stratified by label, of candidates without an official split.

    Strata: the label (single-label), every label (multi-label), one stratum (detection/segmentation).
    ``placed`` are candidates of the same sources that keep their official split. See
    :mod:`medmat_builder.splitting` for the greedy assignment.
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


def balanced_quotas(available: dict[str, int], cap: int) -> dict[str, int]:
    """Water-filling: share ``cap`` among keys as evenly as their availability allows."""
    quotas = {k: 0 for k in available}
    remaining = cap
    keys = sorted(available, key=lambda k: (available[k], k))
    for i, k in enumerate(keys):
        share = remaining // (len(keys) - i)
        quotas[k] = min(available[k], share)
        remaining -= quotas[k]
    for k in keys:  # hand out the rounding leftovers
        if remaining <= 0:
            break
        if quotas[k] < available[k]:
            quotas[k] += 1
            remaining -= 1
    return quotas


# --------------------------------------------------------------------------- image loading
@dataclass(frozen=True)
class _LoadJob:
    path: str
    root: str
    record: RawRecord
    detection: bool


@dataclass(frozen=True)
class _LoadResult:
    data: bytes | None
    width: int = 0
    height: int = 0
    pixel_hash: str = ""
    phash: int = 0
    thumbnail: bytes = b""
    boxes: tuple[Box, ...] = ()
    error: str | None = None
    detail: str | None = None


def _load(job: _LoadJob) -> _LoadResult:
    try:
        img = load_image(Path(job.path))
    except ImageError as exc:  # detail never holds a path or a DICOM header value
        return _LoadResult(None, error=exc.reason, detail=exc.detail)
    boxes: tuple[Box, ...] = ()
    if job.detection:
        from medmat_builder.boxes import resolve_boxes
        from medmat_builder.images.masks import MaskError

        try:
            boxes = tuple(resolve_boxes(job.record, Path(job.root), (img.width, img.height), img.orientation))
        except (ImageError, MaskError) as exc:
            return _LoadResult(None, error=getattr(exc, "reason", "corrupt"), detail=f"mask: {getattr(exc, 'detail', exc)}")
    return _LoadResult(img.data, img.width, img.height, img.pixel_hash, img.phash, img.thumbnail, boxes)


class _Loader:
    """Loads candidates lazily and in order; with ``num_proc > 1`` at most a small window is in flight.

    The consumer stops as soon as a quota is met, so images past it are (almost) never opened: the
    over-read is bounded by the window, not by the size of the candidate list. Pools are kept for
    the whole build (see :func:`shutdown_pools`) instead of being started per config.
    """

    _pools: dict[int, ProcessPoolExecutor] = {}

    def __init__(self, num_proc: int):
        self.pool = None
        if num_proc > 1:
            self.pool = self._pools.get(num_proc)
            if self.pool is None:
                self.pool = self._pools[num_proc] = ProcessPoolExecutor(num_proc)
        self.window = 4 * num_proc

    def imap(self, jobs: Iterable[_LoadJob]) -> Iterator[_LoadResult]:
        if self.pool is None:
            for job in jobs:
                yield _load(job)
            return
        pending: deque[Future] = deque()
        try:
            for job in jobs:
                pending.append(self.pool.submit(_load, job))
                if len(pending) >= self.window:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for fut in pending:  # the consumer stopped early: drop what has not started
                fut.cancel()


def shutdown_pools() -> None:
    """Stop the worker processes kept between configs (called at the end of a build)."""
    for pool in _Loader._pools.values():
        pool.shutdown()
    _Loader._pools.clear()


@dataclass
class _KeptImage:
    """What the duplicate check knows of a kept image: where it came from, its labels, and where it sits."""

    ref: str
    labels: frozenset[str]
    fill: _Fill | None = None  # None once it no longer sits in a split (re-levelled out, or in conflict)
    key: str = ""
    item: tuple[Selected, Candidate] | None = None
    conflict: bool = False


def _names(labels: frozenset[str]) -> str:
    return ", ".join(sorted(labels)) or "no label"


class _SeenImages:
    """The images kept so far in one subset, for the duplicate and label-conflict checks.

    Duplicates are decided by :class:`~medmat_builder.images.duplicates.DuplicateIndex` (same pixels, or a
    perceptual hash that proposes and a thumbnail comparison that confirms). Each entry remembers the
    record it came from, so a later image under other labels can take it back out (a label conflict).
    """

    def __init__(self, rule: NearDuplicateRule, conflicts: bool):
        self.index = DuplicateIndex(rule)
        self.entries: list[_KeptImage] = []
        self.conflicts = conflicts
        self._in_split: dict[str, _KeptImage] = {}  # by record id: entries that sit in a split

    def add(self, res: _LoadResult, kept: _KeptImage) -> None:
        self.index.add(res.pixel_hash, res.phash, res.thumbnail, min(res.width, res.height))
        self.entries.append(kept)
        if kept.item is not None:
            self._in_split[kept.item[0].id] = kept

    def release(self, item: tuple[Selected, Candidate]) -> None:
        """``item`` left its split without a conflict (test re-levelling): nothing to take back later."""
        kept = self._in_split.pop(item[0].id, None)
        if kept is not None:
            kept.fill, kept.item = None, None

    def check(self, res: _LoadResult, cand: Candidate, ledger: SourceLedger, subset_name: str) -> bool:
        """Count ``cand`` as dropped (and take back the kept image it conflicts with) if it repeats a kept one."""
        match = self.index.check(res.pixel_hash, res.phash, res.thumbnail, min(res.width, res.height))
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
            self.index.add(res.pixel_hash, res.phash, res.thumbnail, min(res.width, res.height))  # its copies conflict too
            self.entries.append(_KeptImage(ref, labels, conflict=True))
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


def folder_links_out(root: Path) -> list[str]:
    """Links to folders under ``root`` that lead outside it (``link -> target``); never followed."""
    if not root.is_dir():
        return []
    tree = RawTree(root)
    index = FileIndex(root)
    index.all_files  # the walk fills folder_links
    return [f"{link} -> {tree.escape(link)}" for link in index.folder_links if tree.escape(link) is not None]


def _outside_link(tree: RawTree, rec: RawRecord) -> str | None:
    """Why a record must not be read: its image or a mask is a link leading out of the source folder."""
    for rel in (rec.image, *(rec.mask.split(MASK_SEPARATOR) if rec.mask else ())):
        target = tree.escape(rel)
        if target is not None:
            return f"{rel} is a link to {target}, outside the source folder"
    return None


# --------------------------------------------------------------------------- the selection
@dataclass
class Selection:
    train: list[Selected] = field(default_factory=list)
    test: list[Selected] = field(default_factory=list)
    #: record id -> subject pseudonym (the exported ``group`` column)
    groups: dict[str, str] = field(default_factory=dict)


def select_subset(
    subset: Subset,
    sources: Sequence[tuple[Source, Path]],
    settings: BuildSettings,
    report: ConfigReport,
    spool: Spool,
    scan: Callable[[Source, Path], Iterable[RawRecord]] | None = None,
    siblings: Mapping[str, Sequence[Source]] | None = None,
) -> Selection:
    """Scan, split, balance and fill one subset; every raw record ends up kept or counted as dropped.

    ``siblings`` maps a source key to the other entries that share its folder (for the unread-files count).
    """
    scan = scan or (lambda src, root: src.layout.scan(src, root))
    label_rank = {lab: i for i, lab in enumerate(subset.labels)}
    candidates: list[Candidate] = []
    unknown: dict[tuple[str, str], list[str]] = {}
    for source, root in sources:
        ledger = report.ledger(source.key)
        src_unknown: dict[str, list[str]] = {}
        claimed: set[str] = set()
        tree = RawTree(root)
        resolver = GroupResolver(source, root)
        for rec in scan(source, root):
            ledger.raw += 1
            claimed.add(rec.image)
            if rec.mask:
                claimed.update(rec.mask.split(MASK_SEPARATOR))
            if rec.drop_reason:
                ledger.drop(rec.drop_reason, rec.ref, rec.detail)
                continue
            outside = _outside_link(tree, rec)
            if outside:
                ledger.drop("outside_link", rec.ref, outside)
                continue
            labels, reason = map_labels(subset, source, rec, src_unknown, ledger.ignored_labels)
            if reason:
                detail = f"raw labels {list(rec.labels)}" if reason != "unlabeled" else None
                ledger.drop(reason, rec.ref, detail)
                continue
            rid = f"{subset.name}-{image_id(source.key, rec.image)}"
            candidates.append(Candidate(rec, source, root, labels, rec.split or "", rid, key="",
                                        group=resolver.key_of(rec)))
        for lab, refs in src_unknown.items():
            unknown[(source.key, lab)] = refs
        ledger.groups = resolver.stats.to_dict()
        if resolver.warning():
            report.warnings.append(resolver.warning())
        report.warnings += account_files(source, root, claimed, ledger, (siblings or {}).get(source.key, ()))
        links_out = folder_links_out(root)
        if links_out:
            report.warnings.append(
                f"source {source.key}: {len(links_out)} links to folders outside its folder are not followed "
                f"(e.g. {safe_ref(links_out[0])}); nothing under them is read"
            )
    if unknown and not settings.lenient:
        lines = [
            f"  source {src}: raw label {lab!r} ({len(refs)} records, e.g. {refs[0]})"
            for (src, lab), refs in sorted(unknown.items())
        ]
        raise UnknownLabelError(
            f"{subset.name}: raw labels missing from the label clusters in sources.yaml:\n"
            + "\n".join(lines)
            + "\nAdd them to the source's 'labels' (map to a canonical label or null), "
            "or pass --lenient to count them as dropped."
        )

    # Balancing keys.
    freq: dict[str, int] = defaultdict(int)
    for c in candidates:
        for lab in c.labels:
            freq[lab] += 1
    for c in candidates:
        if subset.kind == "single-label":
            c.key = c.labels[0]
        elif subset.kind == "multi-label":
            c.key = min(c.labels, key=lambda lab: (freq[lab], label_rank.get(lab, 0), lab))
        else:
            c.key = "all"
        c.order = _hash_key(settings.seed, "order", c.id)

    # Splits: the source's own where it has one, else a seeded 9:1 split by subject, stratified by label.
    by_source: dict[str, list[Candidate]] = defaultdict(list)
    for c in candidates:
        by_source[c.source.key].append(c)
    unsplit: list[Candidate] = []
    placed: list[Candidate] = []
    for key, group in by_source.items():
        if any(c.split == "test" for c in group):  # the source has its own test split
            unsplit += [c for c in group if not c.split]
            placed += [c for c in group if c.split]
        else:  # no split, or only train/validation parts: seeded 9:1 over everything
            unsplit += group
    assign_random_splits(unsplit, settings.seed, settings.test_fraction, subset.kind, placed)
    candidates = _keep_official_test_subjects_out_of_train(candidates, report)

    # Same image id twice (a table listing one file twice): keep the first, count the rest.
    seen_ids: set[str] = set()
    unique: list[Candidate] = []
    for c in sorted(candidates, key=lambda c: (c.split != "test", c.order)):
        if c.id in seen_ids:
            report.ledger(c.source.key).drop("duplicate", c.record.ref, "the same file is listed twice")
            continue
        seen_ids.add(c.id)
        unique.append(c)

    buckets: dict[str, dict[str, list[Candidate]]] = {"train": defaultdict(list), "test": defaultdict(list)}
    for c in unique:
        buckets[c.split][c.key].append(c)
    for split in buckets:
        for group in buckets[split].values():
            group.sort(key=lambda c: c.order)

    loader = _Loader(settings.num_proc)
    seen = _SeenImages(settings.near_duplicates, conflicts=subset.is_classification)
    selection = Selection()
    # Test first: strictly balanced.
    test_avail = {k: len(v) for k, v in buckets["test"].items()}
    if subset.kind == "single-label":
        per = min([*test_avail.values(), settings.test_max_per_label]) if test_avail else 0
        test_quota = {k: per for k in test_avail}
    else:
        test_quota = balanced_quotas(test_avail, settings.test_cap)
    train_avail = {k: len(v) for k, v in buckets["train"].items()}
    train_quota = balanced_quotas(train_avail, settings.train_cap)
    test = _Fill(buckets["test"], test_quota, loader, seen, spool, report, subset)
    train = _Fill(buckets["train"], train_quota, loader, seen, spool, report, subset)
    while True:  # more than once only when a label conflict took a kept image back out
        test.run()
        if subset.kind == "single-label":
            test.relevel()
        train.run()
        if not (test.short() or train.short()):
            break
    if subset.kind == "single-label":  # a conflict may have left a test label short with nothing to refill it
        test.relevel()
    kept_test = test.finish("balance")
    kept_train = train.finish("over_cap")

    split_drops = {"test": test.dropped, "train": train.dropped}

    for split, kept in (("test", kept_test), ("train", kept_train)):
        items = sorted((sel for group in kept.values() for sel, _ in group), key=lambda s: s.id)
        setattr(selection, split, items)
        report.rows[split] = len(items)
        for sel, cand in (pair for group in kept.values() for pair in group):
            selection.groups[sel.id] = subject_pseudonym(cand.group)
        for sel in items:
            report.ledger(sel.source).kept[split] += 1
            for lab in sel.labels:
                report.label_counts[split][lab] += 1
    report.ood = len(selection.train) < settings.train_cap
    _audit(report, selection)
    report.check()
    problem = _unloadable(subset, selection, unique, split_drops)
    if problem:
        raise EmptySplitError(problem, report)
    return selection


def _keep_official_test_subjects_out_of_train(cands: list[Candidate], report: ConfigReport) -> list[Candidate]:
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


def _audit(report: ConfigReport, selection: Selection) -> None:
    """The leakage audit of the selection: subjects per split and subjects on both sides, overall and per source."""
    rows = [(split, selection.groups[sel.id], sel.source, sel.id)
            for split in ("train", "test") for sel in getattr(selection, split)]
    audit = audit_rows(rows)
    report.groups = audit.to_dict()
    for key, led in report.sources.items():
        own = audit_rows(r for r in rows if r[2] == key)
        led.groups = {**(led.groups or {"declared": "none", "groups": 0, "ungrouped": 0}),
                      "train": own.subjects["train"], "test": own.subjects["test"], "across_splits": len(own.spanning)}
    if audit.spanning:
        by_source = Counter(s.source for s in audit.spanning)
        report.warnings.append(
            f"{len(audit.spanning)} subjects span train and test ("
            + ", ".join(f"{k}: {n}" for k, n in sorted(by_source.items()))
            + "), as the sources' official splits put them; `medmat audit` lists them"
        )


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
    per_split = Counter(c.split for c in cands)
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
            have = [c for c in cands if c.labels[0] == lab]
            if have and lab not in in_test:
                n_test = sum(c.split == "test" for c in have)
                official = all(c.record.split for c in have)
                how = "the official split" if official else "the 9:1 split by subject"
                return (f"{subset.name}: test would have no {lab!r} item: {n_test} of its {len(have)} candidates "
                        f"are in test ({how}), and the paper balances test over every label")
    return None


class _Fill:
    """Fills one split's quotas key by key, in the candidates' seeded order, opening images only as needed.

    A kept image can be taken back later (:meth:`take_back`, a label conflict); :meth:`run` then tops
    its key up from the candidates left. :meth:`finish` counts the candidates that were never needed.
    """

    def __init__(self, buckets: dict[str, list[Candidate]], quotas: dict[str, int], loader: _Loader,
                 seen: _SeenImages, spool: Spool, report: ConfigReport, subset: Subset):
        self.queues = buckets
        self.need = {k: quotas.get(k, 0) for k in buckets}
        self.kept: dict[str, list[tuple[Selected, Candidate]]] = {k: [] for k in buckets}
        self.pos = {k: 0 for k in buckets}
        self.loader, self.seen, self.spool, self.report, self.subset = loader, seen, spool, report, subset
        self.dropped: Counter = Counter()  # this split's drops by reason (for the "would be empty" message)

    def _open(self, key: str) -> bool:
        return len(self.kept[key]) < self.need[key] and self.pos[key] < len(self.queues[key])

    def short(self) -> bool:
        """Is some key below its quota with candidates left (after a take-back)?"""
        return any(self._open(k) for k in self.queues)

    def run(self) -> None:
        while keys := [k for k in sorted(self.queues) if self._open(k)]:
            for key in keys:
                self._top_up(key)

    def _top_up(self, key: str) -> None:
        detection = not self.subset.is_classification
        queue, got = self.queues[key][self.pos[key]:], self.kept[key]
        jobs = (_LoadJob(str(c.root / c.record.image), str(c.root), c.record, detection) for c in queue)
        results = self.loader.imap(jobs)
        for cand, res in zip(queue, results):
            self.pos[key] += 1
            ledger = self.report.ledger(cand.source.key)
            if res.error:
                ledger.drop(res.error, cand.record.ref, res.detail)
                self.dropped[res.error] += 1
                continue
            before = Counter(ledger.dropped)
            if self.seen.check(res, cand, ledger, self.subset.name):
                self.dropped.update(ledger.dropped - before)
                continue
            labels = cand.labels
            boxes: tuple[Box, ...] = ()
            if detection:
                canonical = {b.label: cand.source.lookup_label(b.label)[1] for b in res.boxes}
                boxes = tuple(
                    Box(canonical[b.label], b.x1, b.y1, b.x2, b.y2)  # type: ignore[arg-type]
                    for b in res.boxes
                    if canonical[b.label] is not None
                )
                if not boxes:
                    ledger.drop("no_annotation", cand.record.ref)
                    self.dropped["no_annotation"] += 1
                    continue
                labels = tuple(dict.fromkeys(b.label for b in boxes))
            off, length = self.spool.put(res.data)  # type: ignore[arg-type]
            item = (Selected(cand.id, cand.source.key, cand.split, labels, off, length, res.width, res.height, boxes),
                    cand)
            got.append(item)
            self.seen.add(res, _KeptImage(f"{cand.source.key}:{cand.record.ref}", frozenset(cand.labels), self, key, item))
            if len(got) >= self.need[key]:
                break
        results.close()

    def take_back(self, key: str, item: tuple[Selected, Candidate], detail: str) -> None:
        """Remove a kept image (a label conflict) and count it; its key is topped up by the next :meth:`run`."""
        items = self.kept[key]
        del items[next(i for i, it in enumerate(items) if it is item)]  # in place: a top-up may hold the list
        cand = item[1]
        self.report.ledger(cand.source.key).drop("label_conflict", cand.record.ref, detail)
        self.dropped["label_conflict"] += 1

    def relevel(self) -> None:
        """Strict test balance: cut every label down to the shortest one (duplicates, corrupt files, conflicts)."""
        if not self.kept:
            return
        floor = min(len(v) for v in self.kept.values())
        for key, items in self.kept.items():
            for item in items[floor:]:
                self.report.ledger(item[1].source.key).drop("balance", item[1].record.ref, "test re-levelled")
                self.dropped["balance"] += 1
                self.seen.release(item)
            del items[floor:]
            self.need[key] = min(self.need[key], floor)

    def finish(self, surplus_reason: str) -> dict[str, list[tuple[Selected, Candidate]]]:
        """Count the candidates never needed as ``surplus_reason``; return the kept records per key."""
        for key, queue in self.queues.items():
            for cand in queue[self.pos[key]:]:
                self.report.ledger(cand.source.key).drop(surplus_reason, cand.record.ref)
                self.dropped[surplus_reason] += 1
            self.pos[key] = len(queue)
        return self.kept
