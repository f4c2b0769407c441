"""Account for every file under a source's folder: read, or not read and why (the build report's file side).

Records are counted in the ledger (kept or dropped); files are accounted for here, so that a layout
that misses part of an archive is visible: image files no record refers to are counted as excluded
by the registry, read by a sibling entry, second copies of a folder, or unexplained, and the
unexplained ones are grouped by folder with the closest pattern of the layout. Tables that no
pattern reads are listed with their closest pattern too.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from medmat_builder.layouts.file_index import FileIndex
from medmat_builder.layouts.misses import TABLE_EXTENSIONS, closest_pattern
from medmat_builder.layouts.patterns import PathPattern, accepted_extensions, with_extension
from medmat_builder.registry import Source
from medmat_builder.report import EXAMPLES_PER_REASON, FolderMiss, SourceLedger, TableMiss, safe_ref

#: Folders (of unexplained images), copy pairs and unmatched tables listed per source, at most.
LISTED = 10


def account_files(source: Source, root: Path, claimed: set[str], ledger: SourceLedger,
                  siblings: Sequence[Source] = (), index: FileIndex | None = None) -> list[str]:
    """Fill ``ledger.read_images``, ``ledger.unread_images`` and ``ledger.unmatched_tables``; return warnings.

    ``claimed`` are the files the source's records refer to (images and masks); ``siblings`` are the
    other registry entries unpacked into the same folder; ``index``: ``source.layout.file_index(root)``
    taken already.
    """
    if not root.is_dir():
        return []
    layout = source.layout
    index = index or layout.file_index(root)
    copies = index.copies
    excluded = layout.exclude_patterns
    by_extension = layout.extension_excluded(index)
    theirs = [p for sib in siblings for p in sib.layout.read_patterns]
    unread = ledger.unread_images
    folders: Counter[str] = Counter()
    first_in: dict[str, str] = {}
    images = index.memo.get(("image files",))  # the same for every config that reads the folder
    if images is None:
        images = index.memo[("image files",)] = with_extension(index.all_files, accepted_extensions())
    unclaimed = [path for path in images if path not in claimed]
    read = len(images) - len(unclaimed)
    nested = excluded_n = other = 0  # counted here, added to the ledger (a pydantic model) once
    for path in unclaimed:
        if path in copies:
            nested += 1
        elif path in by_extension or any(p.match(path) is not None for p in excluded):
            excluded_n += 1
        elif any(p.match(path) is not None for p in theirs):
            other += 1
        else:
            if len(unread.examples) < EXAMPLES_PER_REASON:
                unread.examples.append(safe_ref(path))
            folder = path.rpartition("/")[0]
            folders[folder] += 1
            first_in.setdefault(folder, path)
    unread.count += len(unclaimed)
    unread.nested_copies += nested
    unread.excluded += excluded_n
    unread.other_entries += other
    ledger.read_images += read  # once, not per file (the ledger is a pydantic model)
    unread.copy_folders = sorted(index.copy_folders.items())[:LISTED]
    own = [p.pattern for p in layout.read_patterns]
    for folder, n in sorted(folders.items(), key=lambda kv: (-kv[1], kv[0]))[:LISTED]:
        miss = closest_pattern(first_in[folder], own)
        entry = FolderMiss(folder=safe_ref(folder) or ".", files=n)
        if miss is not None:
            entry.closest_pattern = miss.pattern
            entry.hint = miss.hint or "its files match the pattern, but no table row or annotation names them"
        unread.folders.append(entry)
    warnings = []
    if unread.unexplained:
        msg = (f"source {source.key}: {unread.unexplained} image files under its folder match no pattern or "
               f"annotation of its layout (e.g. {unread.examples[0]}); check the layout in sources.yaml if they "
               "should be read")
        hinted = next((f for f in unread.folders if f.hint), None)
        if hinted:
            msg += f"; {hinted.folder}/ comes closest to {hinted.closest_pattern!r}: {hinted.hint}"
        warnings.append(msg)
    warnings += _unmatched_tables(source, index, ledger, siblings)
    return warnings


def _table_patterns(source: Source) -> list[PathPattern]:
    """Patterns of the tables and lists a source reads: its layout's, and its subject side table."""
    side = source.groups.table if source.groups is not None else None
    return [*source.layout.aux_patterns, *([PathPattern(side.path)] if side is not None else [])]


def _unmatched_tables(source: Source, index, ledger: SourceLedger, siblings: Sequence[Source]) -> list[str]:
    own = [p.pattern for p in _table_patterns(source)]
    readers = [*_table_patterns(source), *(p for sib in siblings for p in _table_patterns(sib))]
    extensions = TABLE_EXTENSIONS + ((".txt",) if any(p.lower().endswith(".txt") for p in own) else ())
    warnings = []
    for path in _ending_with(index.files, extensions):
        if any(p.match(path) is not None for p in readers):
            continue
        miss = closest_pattern(path, own)
        entry = TableMiss(path=safe_ref(path), closest_pattern=miss.pattern if miss else None,
                          hint=miss.hint if miss else None)
        if len(ledger.unmatched_tables) < LISTED:
            ledger.unmatched_tables.append(entry)
        if miss is not None:
            warnings.append(f"source {source.key}: table {path!r} matches no pattern of its layout; closest is "
                            f"{miss.pattern!r} ({miss.hint})")
    return warnings


def _ending_with(paths: list[str], suffixes: tuple[str, ...]) -> list[str]:
    """``[p for p in paths if p.lower().endswith(suffixes)]``; for suffixes such as ``.csv`` (one dot, leading) the
    text from a path's last dot decides, once per distinct text (100,000s of image files, a few tables). Where
    no path ends so (most folders: images only), one search of all the paths joined says so at once."""
    joined = "\n".join(paths).lower() + "\n"  # each path's lower case, each followed by a newline
    if not any(s + "\n" in joined for s in suffixes):
        return []
    if not all(s[:1] == "." and s.count(".") == 1 and s == s.lower() for s in suffixes):
        return [p for p in paths if p.lower().endswith(suffixes)]
    wanted, known, out = frozenset(suffixes), {}, []
    for path in paths:
        dot = path.rfind(".")
        if dot < 0:
            continue
        tail = path[dot:]
        try:
            ok = known[tail]
        except KeyError:
            ok = known[tail] = tail.lower() in wanted
        if ok:
            out.append(path)
    return out
