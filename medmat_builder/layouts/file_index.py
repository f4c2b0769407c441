"""The files of a source folder, walked once, with second copies of folders set aside.

Archives that hold a second copy of part of themselves (``X/X/...`` in Kaggle re-uploads) are read
once: :class:`FileIndex` finds folders with the same name and the same files (names, sizes, and the
bytes of a sample) under different prefixes, keeps one and lists the others as copies.
"""

from __future__ import annotations

import bisect
import hashlib
import os
import re
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import Any

from medmat_builder.layouts.patterns import JUNK_DIRS, JUNK_NAMES, PathPattern

#: Files hashed per folder to confirm that two folders with the same names and sizes are copies.
COPY_SAMPLE = 3

#: While :func:`shared_indexes` is active: (folder, preferred patterns) -> its one :class:`FileIndex`.
_SHARED: dict[tuple[str, tuple[str, ...]], "FileIndex"] | None = None
#: While :func:`shared_indexes` is active: folder -> its one walk (indexes and the resume listing of one folder share it).
_WALKS: dict[str, "FolderWalk"] = {}


@contextmanager
def shared_indexes() -> Iterator[None]:
    """Within this block, :meth:`FileIndex.of` gives one index per folder (and preferred patterns), and
    :func:`folder_walk` one walk per folder, so a build's inputs fingerprint, its scans, their file ledgers
    and the folder-link checks walk each source folder once. Re-entrant."""
    global _SHARED
    if _SHARED is not None:
        yield
        return
    _SHARED = {}
    try:
        yield
    finally:
        _SHARED = None
        _WALKS.clear()


class FolderWalk:
    """One walk of a folder (one ``os.scandir`` a folder, links to folders never followed).

    ``files``: every file, sorted, junk (:func:`~medmat_builder.layouts.patterns.is_junk`) left out;
    ``folders`` the folders holding them (``""``: the folder itself);
    ``file_links`` those of them that are links; ``folder_links`` the links to folders (outside junk
    folders), in walk order. With ``stat``, ``rows`` also lists every entry below the folder, junk
    included, that is a file, a link or anything but a plain folder, as ``path NUL size NUL mtime_ns``
    (``lstat``, links not followed): what :func:`medmat_builder.build.resume.folder_listing` hashes.
    """

    def __init__(self, root: str | Path, stat: bool = False):
        self.files: list[str] = []
        self.file_links: set[str] = set()
        self.folder_links: list[str] = []
        self.folders: set[str] = set()
        self.rows: list[bytes] | None = [] if stat else None
        self._walk(os.fspath(root))

    def _walk(self, root: str) -> None:
        files, rows, file_links = self.files, self.rows, self.file_links
        junk_names = JUNK_NAMES
        stack = [(root, "", False)]
        while stack:  # depth first, folders in listing order, as os.walk(followlinks=False)
            dirpath, prefix, junk = stack.pop()
            try:
                with os.scandir(dirpath) as it:
                    entries = list(it)
            except OSError:
                continue
            subdirs = []
            # per entry the work is inlined (no calls but the DirEntry's own): 100,000s of files a folder tree
            prefix_b = prefix.encode("utf-8", "surrogateescape")
            before = len(files)
            for entry in entries:
                name = entry.name
                try:
                    is_dir = entry.is_dir()
                except OSError:
                    is_dir = False
                if is_dir and not entry.is_symlink():
                    in_junk = junk or name.lower() in JUNK_DIRS
                    if rows is not None or not in_junk:  # junk folders are walked only for the listing
                        subdirs.append((entry.path, prefix + name + "/", in_junk))
                    continue
                if rows is not None:  # a file, a link or anything but a plain folder: a row of the listing
                    try:
                        st = entry.stat(follow_symlinks=False)
                    except OSError:  # gone since the folder was listed
                        pass
                    else:
                        rows.append(b"%s%s\0%d\0%d" % (prefix_b, name.encode("utf-8", "surrogateescape"),
                                                       st.st_size, st.st_mtime_ns))
                if is_dir:  # a link to a folder: listed, never followed
                    if not (junk or name.lower() in JUNK_DIRS):
                        self.folder_links.append(prefix + name)
                # no junk: no dot file, no junk name (a cheap length test first)
                elif not junk and name[:1] != "." and not (len(name) in _JUNK_NAME_LENGTHS and name.lower() in junk_names):
                    path = prefix + name
                    files.append(path)
                    if entry.is_symlink():
                        file_links.add(path)
            if len(files) > before:
                self.folders.add(prefix[:-1])
            stack.extend(reversed(subdirs))
        files.sort()


#: The lengths of the names in :data:`JUNK_NAMES` (a cheap test before lowering a name).
_JUNK_NAME_LENGTHS = frozenset(len(n) for n in JUNK_NAMES)


def folder_walk(root: str | Path, stat: bool = False) -> FolderWalk:
    """The walk of ``root`` (with ``stat``: with its listing rows); inside :func:`shared_indexes` the one made already."""
    if _SHARED is None:
        return FolderWalk(root, stat)
    key = os.fspath(root)
    walk = _WALKS.get(key)
    if walk is None or (stat and walk.rows is None):
        walk = _WALKS[key] = FolderWalk(root, stat)
    return walk


class FileIndex:
    """All files below a source folder, walked once, sorted, junk removed, nested copies set aside.

    Links to folders are not followed (``folder_links`` lists them); links to files are listed like
    files, and the build checks where they lead before opening anything (see ``outside_link``).

    ``files`` are the files layouts read; ``copies`` maps each file of a second copy of a folder
    (same folder name, same file names and sizes, same bytes in a sample) to its twin in the copy
    that is kept. ``prefer`` (the layout's own patterns) decides which copy is kept: the one whose
    files they match most, else the shallowest, else the first by name.
    """

    def __init__(self, root: Path, prefer: Sequence[PathPattern] = ()):
        self.root = Path(root)
        self.prefer = list(prefer)
        self.folder_links: list[str] = []
        self.file_links: set[str] = set()
        self._matches: dict[tuple[str, ...], list[tuple[str, dict[str, str]]]] = {}
        #: what layouts work out once per index (their image lists), by a key of their own
        self.memo: dict[tuple[str, ...], Any] = {}

    @classmethod
    def of(cls, root: Path, prefer: Sequence[PathPattern] = ()) -> "FileIndex":
        """The index of ``root``: inside :func:`shared_indexes` the one already made, else a new one."""
        if _SHARED is None:
            return cls(root, prefer)
        key = (str(root), tuple(p.regex.pattern for p in prefer))
        index = _SHARED.get(key)
        if index is None:
            index = _SHARED[key] = cls(root, prefer)
        return index

    @cached_property
    def all_files(self) -> list[str]:
        """Every file (junk removed), copies included; ``folder_links`` and ``file_links`` are filled too."""
        walk = folder_walk(self.root)
        self.folder_links += walk.folder_links
        self.file_links |= walk.file_links
        self._folders = walk.folders
        return walk.files

    def plain_file(self, relpath: str) -> bool:
        """Is ``relpath`` a file the walk found that is no link (so it cannot lead out of the folder)?"""
        return relpath in self.plain_files

    @cached_property
    def plain_files(self) -> frozenset[str]:
        """The files the walk found that are no links (see :meth:`plain_file`)."""
        return frozenset(self.all_files).difference(self.file_links)

    @cached_property
    def copy_folders(self) -> dict[str, str]:
        """Folder of a second copy -> the folder kept in its place (both relative to the root)."""
        files = self.all_files
        return _find_copies(self.root, files, self.prefer, getattr(self, "_folders", None))

    @cached_property
    def copies(self) -> dict[str, str]:
        """File of a second copy -> the same file in the kept folder."""
        out: dict[str, str] = {}
        if not self.copy_folders:
            return out
        for path in self.all_files:
            folder = _copy_folder_of(path, self.copy_folders)
            if folder is not None:
                out[path] = self.copy_folders[folder] + path[len(folder):]
        return out

    @cached_property
    def files(self) -> list[str]:
        """The files layouts read (second copies left out)."""
        copies = self.copies
        return [p for p in self.all_files if p not in copies] if copies else self.all_files

    def matching(self, pattern: PathPattern, exclude: Iterable[PathPattern] = ()) -> Iterator[tuple[str, dict[str, str]]]:
        """The files that ``pattern`` matches and no pattern of ``exclude`` does, with their captures."""
        return iter(self.matches(pattern, exclude))

    def matches(self, pattern: PathPattern, exclude: Iterable[PathPattern] = ()) -> list[tuple[str, dict[str, str]]]:
        """:meth:`matching` as a list, worked out once per pattern and exclusions (the captures are shared: read only)."""
        excl = [e.regex for e in exclude]
        key = (pattern.regex.pattern, *(r.pattern for r in excl))
        found = self._matches.get(key)
        if found is None:
            found = self._matches[key] = _matches(self.files, pattern, excl)
        return found


def _matches(files: list[str], pattern: PathPattern, excl: list[re.Pattern[str]]) -> list[tuple[str, dict[str, str]]]:
    """``(path, captures)`` of the files ``pattern`` finds and no regex of ``excl`` does.

    Where the pattern splits into a folder part and a file-name part (:attr:`PathPattern.folder_matcher`),
    the folder part is matched once per folder, and the files of one folder whose names capture nothing
    share one captures dict; else every path is matched whole."""
    split = pattern.folder_matcher
    if split is None:
        return _whole_matches(files, pattern.regex, excl)
    folder_search, name_match, any_name = split.folder.search if split.folder else None, split.name.match, split.any_name
    merge = split.name_captures
    out: list[tuple[str, dict[str, str]]] = []
    seen: dict[str, dict[str, str] | None] = {}
    last: str | None = None
    caps: dict[str, str] | None = None
    for path in files:
        folder, slash, name = path.rpartition("/")
        if folder != last or not slash:  # files of one folder mostly come in a run (sorted paths)
            last = folder
            if folder_search is None:
                caps = {}
            elif not slash:  # a file at the root: the pattern needs a folder
                caps, last = None, None
            elif folder in seen:
                caps = seen[folder]
            else:
                m = folder_search(folder)
                caps = seen[folder] = None if m is None else m.groupdict()
        if caps is None:
            continue
        if any_name:
            groups = caps
        else:
            m = name_match(name)
            if m is None:
                continue
            groups = {**caps, **m.groupdict()} if merge else caps
        if excl and any(r.search(path) is not None for r in excl):
            continue
        out.append((path, groups))
    return out


def _whole_matches(files: list[str], regex: re.Pattern[str], excl: list[re.Pattern[str]]) -> list[tuple[str, dict[str, str]]]:
    """``(path, captures)`` of the files ``regex`` finds and no regex of ``excl`` does."""
    search, out = regex.search, []
    for path in files:
        m = search(path)
        if m is None or (excl and any(r.search(path) is not None for r in excl)):
            continue
        out.append((path, m.groupdict()))
    return out


def _copy_folder_of(path: str, folders: dict[str, str]) -> str | None:
    parts = path.split("/")
    for k in range(1, len(parts)):
        prefix = "/".join(parts[:k])
        if prefix in folders:
            return prefix
    return None


def _find_copies(root: Path, files: list[str], prefer: Sequence[PathPattern],
                 folders: set[str] | None = None) -> dict[str, str]:
    """Find folders that repeat another folder of the same name (see :class:`FileIndex`); ``folders``: those holding
    ``files``, where the walk gave them."""
    # Names-only Merkle signature of every folder: cheap, no stat; candidates are then confirmed.
    if not _repeated_folder_names(files, folders):  # no two folders share a name: no copy (the usual case, no signatures)
        return {}
    own: dict[str, list[str]] = defaultdict(list)
    subdirs: dict[str, set[str]] = defaultdict(set)
    for path in files:
        folder, _, name = path.rpartition("/")
        if folder not in own:  # first file of this folder: register it with its ancestors
            child = folder
            while child:
                parent = child.rpartition("/")[0]
                if child in subdirs[parent]:
                    break
                subdirs[parent].add(child)
                child = parent
        own[folder].append(name)
    folders = set(own) | set(subdirs)
    folders.discard("")
    sig: dict[str, bytes] = {}
    for folder in sorted(folders, key=lambda f: -f.count("/")):
        h = hashlib.sha1()
        for name in sorted(own.get(folder, ())):
            h.update(b"f" + name.encode("utf-8", "surrogateescape") + b"\0")  # names need not be UTF-8
        for sub in sorted(subdirs.get(folder, ())):
            h.update(b"d" + sub.rpartition("/")[2].encode("utf-8", "surrogateescape") + b"\0" + sig[sub])
        sig[folder] = h.digest()
    groups: dict[tuple[str, bytes], list[str]] = defaultdict(list)
    for folder in folders:
        groups[(folder.rpartition("/")[2], sig[folder])].append(folder)
    candidates = sorted((sorted(g) for g in groups.values() if len(g) > 1),
                        key=lambda g: (min(f.count("/") for f in g), g))
    if not candidates:
        return {}
    by_folder = _FilesUnder(files)
    decided: dict[str, str] = {}
    for group in candidates:
        members = [f for f in group if _copy_folder_of(f + "/x", decided) is None]
        while len(members) > 1:
            first, rest = members[0], members[1:]
            twins = [f for f in rest if _nested(first, f) and _same_files(root, first, f, by_folder[first])]
            if twins:
                keep = _keep(root, [first, *twins], by_folder, prefer)
                for f in [first, *twins]:
                    if f != keep:
                        decided[f] = keep
            members = [f for f in rest if f not in twins]
    return decided


def _repeated_folder_names(files: list[str], folders: set[str] | None = None) -> bool:
    """Do two different folders holding files (or folders with files) have the same name?"""
    folders = {p.rpartition("/")[0] for p in files} if folders is None else set(folders)
    todo = list(folders)
    while todo:  # add every ancestor
        parent = todo.pop().rpartition("/")[0]
        if parent not in folders:
            folders.add(parent)
            todo.append(parent)
    folders.discard("")
    names = [f.rpartition("/")[2] for f in folders]
    return len(set(names)) < len(names)


class _FilesUnder:
    """Relative paths of the files below a folder, from the sorted file list (a contiguous range)."""

    def __init__(self, files: list[str]):
        self.files = files

    def __getitem__(self, folder: str) -> list[str]:
        lo = bisect.bisect_left(self.files, folder + "/")
        hi = bisect.bisect_left(self.files, folder + "0")  # "0" sorts right after "/"
        return [p[len(folder) + 1:] for p in self.files[lo:hi]]


def _nested(a: str, b: str) -> bool:
    """Is one folder's parent an ancestor of (or the same as) the other's? ``X/train`` and
    ``X/X/train`` are a nested copy; ``train/Ground truth`` and ``test/Ground truth`` are siblings of
    different parents (two splits that happen to hold equal files), never a copy."""
    pa, pb = a.rpartition("/")[0], b.rpartition("/")[0]
    return pa == pb or not pa or not pb or pb.startswith(pa + "/") or pa.startswith(pb + "/")


def _same_files(root: Path, a: str, b: str, rels: list[str]) -> bool:
    base_a, base_b = os.path.join(root, a), os.path.join(root, b)
    try:
        if any(os.path.getsize(os.path.join(base_a, r)) != os.path.getsize(os.path.join(base_b, r)) for r in rels):
            return False
        picks = sorted({rels[0], rels[len(rels) // 2], rels[-1]})[:COPY_SAMPLE]
        return all(_digest(os.path.join(base_a, r)) == _digest(os.path.join(base_b, r)) for r in picks)
    except OSError:
        return False


def _digest(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _keep(root: Path, twins: list[str], by_folder: "_FilesUnder", prefer: Sequence[PathPattern]) -> str:
    def score(folder: str) -> tuple:
        hits = sum(1 for r in by_folder[folder] if any(p.match(f"{folder}/{r}") for p in prefer))
        return (-hits, folder.count("/"), folder)

    return min(twins, key=score)
