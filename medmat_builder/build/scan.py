"""Scan a subset's sources into candidates: read tables and paths only (no image is opened), count every record.

Each raw record a layout yields is counted in its source's ledger (``raw``) and either dropped there
with its reason (the layout's own, a link out of the source folder, an unusable label) or becomes a
:class:`~medmat_builder.build.candidates.Candidate` with canonical labels and a subject key. The files
of each source folder are accounted for too (:mod:`~medmat_builder.build.file_ledger`).
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from itertools import repeat
from operator import attrgetter
from pathlib import Path

from medmat_builder.build import progress
from medmat_builder.build.candidates import Candidate
from medmat_builder.build.file_ledger import account_files
from medmat_builder.build.groups import GroupResolver
from medmat_builder.build.labels import map_labels, unknown_label_error
from medmat_builder.images import UndecodableNameError, image_id
from medmat_builder.images.hashes import image_ids
from medmat_builder.layouts import FileIndex, shared_indexes
from medmat_builder.records import MASK_SEPARATOR, RawRecord
from medmat_builder.registry import Source, Subset
from medmat_builder.report import ConfigReport, SourceGroups, SourceLedger, safe_ref
from medmat_builder.safe_paths import RawTree

Scan = Callable[[Source, Path], Iterable[RawRecord]]


def scan_candidates(
    subset: Subset,
    sources: Sequence[tuple[Source, Path]],
    report: ConfigReport,
    *,
    lenient: bool = False,
    scan: Scan | None = None,
    siblings: Mapping[str, Sequence[Source]] | None = None,
    later: list[FileChecks] | None = None,
) -> list[Candidate]:
    """Every usable record of ``sources`` as a candidate (no split yet); the rest counted in ``report``.

    Raw labels outside the clusters raise :class:`~medmat_builder.build.labels.UnknownLabelError`
    unless ``lenient``. ``siblings`` maps a source key to the other entries that share its folder.
    With ``later``, each source's file ledger and folder-link check (report only, no candidate depends
    on them) are appended there instead of being run, for :func:`run_file_checks` to run when the
    caller has a moment (the build: once the first images are being decoded).
    """
    with shared_indexes(), collector_paused():  # the layout, the file ledger and the link checks walk each folder once
        checks: list[FileChecks] = [] if later is None else later
        try:
            return _scan_candidates(subset, sources, report, lenient, scan or _layout_scan, siblings or {}, checks)
        finally:
            if later is None:
                run_file_checks(report, checks)


class FileChecks:
    """One source's file ledger and folder-link check, run later (:func:`run_file_checks`); their warnings go
    where they would have gone had they run during the scan (``at``: the length of the report's warnings then)."""

    def __init__(self, source: Source, root: Path, claimed: set[str], ledger: SourceLedger,
                 siblings: Sequence[Source], at: int):
        self.source, self.root, self.claimed, self.ledger, self.siblings, self.at = \
            source, root, claimed, ledger, siblings, at
        # taken now: after the scan's block the shared index may be gone (the same walk, whenever it runs)
        self.index = source.layout.file_index(root) if root.is_dir() else None
        self.links_index = FileIndex.of(root) if root.is_dir() else None

    def run(self) -> list[str]:
        """The warnings of the file ledger, then of the folder-link check."""
        warnings = account_files(self.source, self.root, self.claimed, self.ledger, self.siblings, self.index)
        links_out = folder_links_out(self.root, self.links_index)
        if links_out:
            warnings.append(
                f"source {self.source.key}: {len(links_out)} links to folders outside its folder are not followed "
                f"(e.g. {safe_ref(links_out[0])}); nothing under them is read"
            )
        return warnings


def run_file_checks(report: ConfigReport, checks: list[FileChecks]) -> None:
    """Run ``checks`` (emptying the list) and put their warnings in ``report`` where the scan would have."""
    done = [(check.at, check.run()) for check in checks]  # in scan order: a ledger shared by two checks fills alike
    checks.clear()
    for at, warnings in reversed(done):  # from the last: an insertion leaves the places before it as they are
        report.warnings[at:at] = warnings


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector: a scan makes 100,000s of records and candidates that all stay
    alive, which it would otherwise walk through again and again (a quarter of the scan's time at 100k files).
    Collection resumes as usual afterwards; re-entrant (an inner pause leaves an outer one in place)."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


@contextmanager
def kept_from_collector() -> Iterator[Callable[[], None]]:
    """Yields ``freeze``: called, it moves every object alive into the collector's permanent generation
    (:func:`gc.freeze`), where no collection walks them, until the block ends (:func:`gc.unfreeze`). A
    build calls it at the end of its scan and split, whose 100,000s of records and candidates stay alive
    through the fill: else the first collections after the pause walked all of them (about 0.25 s at
    100,000 files, before the first image was decoded). Objects frozen by someone else are left as they are."""
    own = gc.get_freeze_count() == 0
    frozen = False

    def freeze() -> None:
        nonlocal frozen
        if own:
            gc.freeze()
            frozen = True

    try:
        yield freeze
    finally:
        if frozen:
            gc.unfreeze()


def _layout_scan(source: Source, root: Path) -> Iterable[RawRecord]:
    return source.layout.scan(source, root)


def _scan_candidates(subset: Subset, sources: Sequence[tuple[Source, Path]], report: ConfigReport, lenient: bool,
                     scan: Scan, siblings: Mapping[str, Sequence[Source]], later: list[FileChecks]) -> list[Candidate]:
    candidates: list[Candidate] = []
    unknown: dict[tuple[str, str], list[str]] = {}
    for source, root in sources:
        ledger = report.ledger(source.key)
        src_unknown: dict[str, list[str]] = {}
        tree = RawTree(root)
        index = FileIndex.of(root)
        plain = index.plain_files  # files found by the walk that are no links: they cannot lead out of the folder
        resolver = GroupResolver(source, root)
        records = list(progress.counted(scan(source, root), "scan"))
        images = list(map(_IMAGE, records))
        claimed = set(images)  # and the masks, below
        ids = image_ids(source.key, images)  # None: image_id itself decides
        kept = _plain_records(subset, source, records, ids, plain)
        if kept is None:
            kept = _usable_records(subset, source, records, ids, tree, index, ledger, claimed, src_unknown)
        kept_records, kept_labels, kept_ids = kept
        groups = resolver.keys_of(kept_records)
        id_prefix = f"{subset.name}-"
        candidates += map(Candidate, kept_records, repeat(source), repeat(root), kept_labels,
                          [rec.split or "" for rec in kept_records], map(id_prefix.__add__, kept_ids),
                          repeat(""), repeat(""), groups)
        ledger.raw += len(records)  # once, not per record (the ledger is a pydantic model)
        for lab, refs in src_unknown.items():
            unknown[(source.key, lab)] = refs
        ledger.groups = SourceGroups(**resolver.stats.to_dict())
        if resolver.warning():
            report.warnings.append(resolver.warning())
        later.append(FileChecks(source, root, claimed, ledger, siblings.get(source.key, ()), len(report.warnings)))
    if unknown and not lenient:
        run_file_checks(report, later)  # the report of a failed scan is complete too
        raise unknown_label_error(subset, unknown)
    return candidates


_IMAGE = attrgetter("image")
_MASK = attrgetter("mask")
_DROP = attrgetter("drop_reason")
_LABELS = attrgetter("labels")
#: what a source's usable records give: the records, their canonical labels and their image ids (in order)
Usable = tuple[list[RawRecord], list[tuple[str, ...]], list[str]]


def _plain_records(subset: Subset, source: Source, records: list[RawRecord], ids: list[str | None],
                   plain: frozenset[str]) -> Usable | None:
    """The usable records of a source where every record is the usual case, all at once: no mask, no drop
    reason, an id, an image that is a plain file of the walk, and raw labels that map to canonical labels
    with nothing to count (each distinct set of raw labels mapped once). None where some record is not:
    :func:`_usable_records` then goes through them one by one (the same outcome, with the drops counted)."""
    if any(map(_MASK, records)) or any(map(_DROP, records)) or None in ids or not plain.issuperset(map(_IMAGE, records)):
        return None
    raw = list(map(_LABELS, records))
    mapped: dict[tuple[str, ...], tuple[str, ...]] = {}
    for raw_labels in set(raw):
        if not raw_labels:
            return None
        unknown: dict[str, list[str]] = {}
        ignored: dict[str, int] = {}
        labels, reason = map_labels(subset, source, RawRecord(source.key, "", "", raw_labels), unknown, ignored)
        if reason or unknown or ignored:
            return None
        mapped[raw_labels] = labels
    return records, list(map(mapped.__getitem__, raw)), ids  # type: ignore[return-value]


def _usable_records(subset: Subset, source: Source, records: list[RawRecord], ids: list[str | None],
                    tree: RawTree, index: FileIndex, ledger: SourceLedger, claimed: set[str],
                    src_unknown: dict[str, list[str]]) -> Usable:
    """The usable records of a source, one by one: each unusable one is counted in ``ledger`` with its reason
    (unknown raw labels collected in ``src_unknown``), and its masks added to ``claimed``."""
    plain = index.plain_files
    known: dict[tuple[str, ...], tuple[tuple[str, ...], str | None]] = {}  # raw labels -> map_labels, when usable
    kept: Usable = ([], [], [])
    for rec, iid in zip(records, ids):
        image, mask = rec.image, rec.mask
        if mask:
            claimed.update(mask.split(MASK_SEPARATOR))
        if rec.drop_reason:
            ledger.drop(rec.drop_reason, rec.ref, rec.detail)
            continue
        if iid is None:
            try:
                iid = image_id(source.key, image)
            except UndecodableNameError as exc:  # never fatal: counted, and the path shown escaped
                ledger.drop("undecodable_name", exc.printable, str(exc))
                continue
        if mask or image not in plain:  # else the usual case: a plain file of the walk
            outside = _outside_link(tree, index, rec)
            if outside:
                ledger.drop("outside_link", rec.ref, outside)
                continue
        raw_labels = rec.labels
        mapped = known.get(raw_labels) if raw_labels else None
        if mapped is None:
            ignored = sum(ledger.ignored_labels.values())
            mapped = map_labels(subset, source, rec, src_unknown, ledger.ignored_labels)
            if mapped[1] is None and raw_labels and sum(ledger.ignored_labels.values()) == ignored:
                known[raw_labels] = mapped  # no side effect: the same raw labels map the same way
        labels, reason = mapped
        if reason:
            detail = f"raw labels {list(raw_labels)}" if reason != "unlabeled" else None
            ledger.drop(reason, rec.ref, detail)
            continue
        kept[0].append(rec)
        kept[1].append(labels)
        kept[2].append(iid)
    return kept


def folder_links_out(root: Path, index: FileIndex | None = None) -> list[str]:
    """Links to folders under ``root`` that lead outside it (``link -> target``); never followed. ``index``:
    ``FileIndex.of(root)`` taken already."""
    if not root.is_dir():
        return []
    tree = RawTree(root)
    index = index or FileIndex.of(root)
    index.all_files  # the walk fills folder_links
    return [f"{link} -> {tree.escape(link)}" for link in index.folder_links if tree.escape(link) is not None]


def _outside_link(tree: RawTree, index: FileIndex, rec: RawRecord) -> str | None:
    """Why a record must not be read: its image or a mask is a link leading out of the source folder.

    A file the walk of the folder found and that is no link stays inside (no ``lstat`` needed)."""
    if not rec.mask and index.plain_file(rec.image):  # the usual case
        return None
    for rel in (rec.image, *(rec.mask.split(MASK_SEPARATOR) if rec.mask else ())):
        if index.plain_file(rel):
            continue
        target = tree.escape(rel)
        if target is not None:
            return f"{rel} is a link to {target}, outside the source folder"
    return None
