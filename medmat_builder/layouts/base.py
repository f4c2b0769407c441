"""Shared pieces of the layout readers: raw records, path patterns, the file index, the base config.

A *layout* says how a source's files lie on disk once unpacked under ``RAW/<key>/``. Each layout
kind has a reader (``scan``: walk the files and tables, yield :class:`RawRecord` without opening any
image) and an inverse (``write_fake``: write a small synthetic copy of the source in that layout),
so the offline demo and the tests go through exactly the code that real data goes through.

Path patterns
-------------
Patterns are matched against the POSIX path of each file relative to the source folder. A pattern
matches the *end* of a path on a folder boundary, so ``"{split}/{label}/*.jpg"`` matches both
``train/cat/1.jpg`` and ``Archive-v2/train/cat/1.jpg`` (unpacked with or without the archive's top
folder). Tokens:

- ``{name}``: captures one non-empty piece of a single path segment (``{label}``, ``{split}``,
  ``{id}``, or any other name), as long as the rest still matches (``{id}.*`` keeps dotted names
  like ``1-s2.0-x.jpg`` whole up to the last dot); ``{name:REGEX}`` captures with a custom regex;
- ``*``: any characters inside one segment; ``**``: any number of whole segments (also none);
- everything else is literal; matching ignores case (``.JPG`` and ``.jpg`` are the same).

Two rules make patterns survive real archives (see :meth:`LayoutBase.image_pattern`):

- *image extensions*: the extension that ends an image or mask pattern (``*.png``) is a default, not a
  filter: files of any other image extension match too (``x.jpg``), unless the layout says
  ``extensions: strict`` (only the pattern's own) or lists the extensions it takes. Where a file of
  the pattern's own extension yields the same captures and stem, that one wins (so a ``H0001.bmp``
  mask never stands in for the image ``H0001.jpg``);
- *validation folders*: ``{split:REGEX}`` also takes the validation names of :data:`VALIDATION_SPLITS`
  (``val``, ``valid``, ``validation``, ``dev``, any case), which go to ``train`` unless ``split_map``
  says otherwise (the paper's rule), so a ``{split:train|test}`` pattern reads ``val/`` too.

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
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from medmat_builder.records import FakeSample, RawRecord, Split
from medmat_builder.safe_paths import UnsafePathError, relative_path_problem

if TYPE_CHECKING:  # pragma: no cover
    from medmat_builder.registry import Source

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".dcm", ".dicom", ".gif", ".webp", ".pgm", ".ppm")
JUNK_NAMES = {".ds_store", "thumbs.db", "desktop.ini"}
JUNK_DIRS = {"__macosx", ".git", ".ipynb_checkpoints", ".medmat"}  # .medmat: medmat's own marker and scratch
#: Raw split names that mean "validation" (any case); they go to ``train`` unless ``split_map`` says otherwise.
VALIDATION_SPLITS = ("val", "valid", "validation", "dev")
#: Files hashed per folder to confirm that two folders with the same names and sizes are copies.
COPY_SAMPLE = 3


def is_validation_split(raw: str) -> bool:
    """Is ``raw`` a validation part (``val``, ``Valid``, ``validation``, ``DEV`` ...)?"""
    return raw.strip().lower() in VALIDATION_SPLITS


def normalize_extensions(extensions: Iterable[str]) -> tuple[str, ...]:
    """``["jpg", ".PNG"]`` -> ``(".jpg", ".png")``."""
    return tuple(e.lower() if e.startswith(".") else "." + e.lower() for e in extensions)


def fill_fake_path(pattern: "PathPattern", values: dict[str, str], sample: FakeSample) -> str:
    """The relative path a layout writes ``sample``'s image to: ``pattern`` filled with ``values``
    (the layout's own placeholder values) and the sample's path hints (see :class:`FakeSample`)."""
    values.update(dict(sample.path_values))
    return pattern.fill(values, star=sample.star or f"fake{sample.index:05d}", dir_star=sample.dir_star or "fake")


def _relative_pattern(v: str) -> str:
    problem = relative_path_problem(v, pattern=True)
    if problem:
        raise ValueError(f"path pattern {v!r} {problem}")
    return v


def _path_segment(v: str) -> str:
    if not v or "/" in v or "\\" in v or "\x00" in v or v in (".", ".."):
        raise ValueError(f"{v!r} must be a plain name (no '/', no '..'): it becomes part of file paths")
    return v


#: A path pattern relative to the source folder that cannot leave it (no leading '/', no '..').
RelativePattern = Annotated[str, AfterValidator(_relative_pattern)]
#: A pixel count (image width or height) that an image can really have.
PixelCount = Annotated[int, Field(ge=1, le=65_535)]
#: A name that is used as one folder or file name (a raw split name, an id template).
PathSegment = Annotated[str, AfterValidator(_path_segment)]


_TRAILING_EXT = re.compile(r"\.([A-Za-z0-9]+)$")


def _pattern_to_regex(pattern: str, extensions: Sequence[str] | None = None) -> re.Pattern[str]:
    """Compile a path pattern; with ``extensions``, a trailing image extension accepts any of them."""
    tail = ""
    m = _TRAILING_EXT.search(pattern)
    if extensions and m and "." + m.group(1).lower() in IMAGE_EXTENSIONS:
        pattern = pattern[: m.start()]
        tail = r"\.(?:" + "|".join(re.escape(e.lstrip(".")) for e in extensions) + ")"
    out: list[str] = []
    i = 0
    names: set[str] = set()
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**/", i):
            out.append(r"(?:[^/]+/)*")
            i += 3
        elif pattern.startswith("**", i):
            out.append(r".*")
            i += 2
        elif c == "*":
            out.append(r"[^/]*")
            i += 1
        elif c == "{":
            end = pattern.index("}", i)
            body = pattern[i + 1 : end]
            name, _, rx = body.partition(":")
            if not name.isidentifier():
                raise ValueError(f"bad placeholder {{{body}}} in pattern {pattern!r}")
            if name in names:
                out.append(f"(?P={name})")
            else:
                names.add(name)
                if name == "split" and rx:  # validation folders are read wherever split folders are
                    rx = rx + "|" + "|".join(VALIDATION_SPLITS)
                out.append(f"(?P<{name}>{rx or '[^/]+'})")
            i = end + 1
        else:
            out.append(re.escape(c))
            i += 1
    return re.compile(r"(?:^|/)" + "".join(out) + tail + r"$", re.IGNORECASE)


class PathPattern:
    """A compiled path pattern (see the module docstring for the syntax).

    ``extensions``: image extensions that the pattern's own trailing image extension stands for
    (``None``: exactly the one written).
    """

    def __init__(self, pattern: str, extensions: Sequence[str] | None = None):
        self.pattern = pattern
        self.regex = _pattern_to_regex(pattern, extensions)

    def match(self, relpath: str) -> dict[str, str] | None:
        m = self.regex.search(relpath)
        return None if m is None else m.groupdict()

    @property
    def placeholders(self) -> list[str]:
        return list(self.regex.groupindex)

    @property
    def extension(self) -> str | None:
        """The image extension the pattern ends with (``".png"``), if any."""
        m = _TRAILING_EXT.search(self.pattern)
        ext = "." + m.group(1).lower() if m else None
        return ext if ext in IMAGE_EXTENSIONS else None

    def fill(self, values: dict[str, str], star: str = "fake", dir_star: str = "fake") -> str:
        """Inverse of :meth:`match`: a concrete relative path for the given placeholder values.

        ``*`` in the file name becomes ``star`` (per file); ``*`` in a folder becomes ``dir_star``, the
        same for every file, so that an image and its mask land in one folder as in the real archive.
        """
        path = self.pattern.replace("**/", "").replace("**", "")

        def sub(m: re.Match[str]) -> str:
            name = m.group(1).partition(":")[0]
            if name not in values:
                raise KeyError(f"pattern {self.pattern!r} needs a value for {{{name}}}")
            return str(values[name])

        if path.endswith(".*"):  # an extension wildcard: the caller appends the real extension
            path = path[:-2]
        path = re.sub(r"\{([^}]*)\}", sub, path)
        folder, slash, name = path.rpartition("/")
        filled = folder.replace("*", dir_star) + slash + name.replace("*", star)
        problem = relative_path_problem(filled)
        if problem:  # a value from the registry (a raw label, a split name) would leave the folder
            raise UnsafePathError(f"pattern {self.pattern!r} filled with {values} gives {filled!r}, which {problem}")
        return filled

    def __repr__(self) -> str:
        return f"PathPattern({self.pattern!r})"


def is_junk(relpath: str) -> bool:
    """OS and archive litter that is never an image: ``__MACOSX``, ``.DS_Store``, ``._x``, ..."""
    parts = relpath.split("/")
    if any(p.lower() in JUNK_DIRS for p in parts[:-1]):
        return True
    name = parts[-1]
    return name.lower() in JUNK_NAMES or name.startswith("._") or name.startswith(".")


def prefer_declared_extension(
    matches: Iterable[tuple[str, dict[str, str]]], extension: str | None
) -> Iterator[tuple[str, dict[str, str]]]:
    """Drop matches of another extension where one of ``extension`` has the same captures and stem.

    A widened pattern (``{id}.jpg`` that also takes ``.bmp``) must not turn the ``H0001.bmp`` of a
    mask folder into a second image beside ``H0001.jpg``: the file the registry names wins.
    """
    items = list(matches)
    if extension is None:
        yield from items
        return
    own = [p.lower().endswith(extension) for p, _ in items]
    if all(own):  # the usual case: nothing to decide
        yield from items
        return

    def key(path: str, groups: dict[str, str]) -> tuple:
        stem = os.path.splitext(path.rsplit("/", 1)[-1])[0].lower()
        return (stem, tuple(sorted((k, (v or "").lower()) for k, v in groups.items())))

    declared = {key(p, g) for (p, g), mine in zip(items, own) if mine}
    for (path, groups), mine in zip(items, own):
        if mine or key(path, groups) not in declared:
            yield path, groups


def declared_first(paths: list[str], extension: str | None) -> list[str]:
    """Several files for one id: those with the pattern's own extension, if any (else all)."""
    if len(paths) > 1 and extension:
        own = [p for p in paths if os.path.splitext(p)[1].lower() == extension]
        return own or paths
    return paths


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

    @cached_property
    def all_files(self) -> list[str]:
        """Every file (junk removed), copies included."""
        found: list[str] = []
        root = str(self.root)
        for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
            dirnames[:] = [d for d in dirnames if d.lower() not in JUNK_DIRS]
            rel = os.path.relpath(dirpath, root)
            prefix = "" if rel == "." else rel.replace(os.sep, "/") + "/"
            self.folder_links += [prefix + d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]
            for name in filenames:
                path = prefix + name
                if not is_junk(path):
                    found.append(path)
        found.sort()
        return found

    @cached_property
    def copy_folders(self) -> dict[str, str]:
        """Folder of a second copy -> the folder kept in its place (both relative to the root)."""
        return _find_copies(self.root, self.all_files, self.prefer)

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
        excl = list(exclude)
        for path in self.files:
            groups = pattern.match(path)
            if groups is None or any(e.match(path) is not None for e in excl):
                continue
            yield path, groups


def _copy_folder_of(path: str, folders: dict[str, str]) -> str | None:
    parts = path.split("/")
    for k in range(1, len(parts)):
        prefix = "/".join(parts[:k])
        if prefix in folders:
            return prefix
    return None


def _find_copies(root: Path, files: list[str], prefer: Sequence[PathPattern]) -> dict[str, str]:
    """Find folders that repeat another folder of the same name (see :class:`FileIndex`)."""
    # Names-only Merkle signature of every folder: cheap, no stat; candidates are then confirmed.
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
            h.update(b"f" + name.encode() + b"\0")
        for sub in sorted(subdirs.get(folder, ())):
            h.update(b"d" + sub.rpartition("/")[2].encode() + b"\0" + sig[sub])
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


class SplitList(BaseModel):
    """An official split list a source ships: a text file naming one image per line, or a table.

    The raw split of the listed images is ``split``, or ``{split}`` captured by ``path``
    (``Data-split/*/{split}CT_*.txt``), or per row the table's ``split_column``. A table names the
    image in ``column`` (CSV, TSV, XLSX or JSON, like the ``table`` kind reads them).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: RelativePattern = Field(description="Pattern of the list file; may capture {split}.")
    split: PathSegment | None = Field(default=None, description="Raw split name of every listed image.")
    column: str | None = Field(default=None, description="Table column naming the image (text list: none).")
    split_column: str | None = Field(default=None, description="Table column holding each row's raw split.")
    sheet: str | None = None
    sep: str | None = Field(default=None, description="Field separator of a table (default from the extension).")
    header_row: int = Field(default=0, ge=0)
    encoding: str = "utf-8-sig"

    @model_validator(mode="after")
    def _one_split_source(self) -> "SplitList":
        given = [n for n, ok in (("split", self.split is not None),
                                 ("{split} in path", "split" in PathPattern(self.path).placeholders),
                                 ("split_column", self.split_column is not None)) if ok]
        if len(given) != 1:
            raise ValueError(f"split list {self.path!r}: give exactly one of split, {{split}} in path or "
                             f"split_column (got {given or 'none'})")
        if self.split_column is not None and self.column is None:
            raise ValueError(f"split list {self.path!r}: split_column needs column (the image column)")
        return self


class LayoutBase(BaseModel):
    """Fields every layout kind has.

    ``split_map`` maps raw split names (folder names, column values, table roles) to ``train`` or
    ``test``, or ``drop`` for a part the paper does not use; matching ignores case. A validation
    part (:data:`VALIDATION_SPLITS`) goes to ``train`` (the paper's rule) unless ``split_map`` names
    it. ``split_lists`` are the official split lists a source ships (see :class:`SplitList`): a
    listed image takes the listed split; ``unlisted`` says what happens to the others (``keep`` the
    split their path gives, if any; ``drop`` them, counted as ``unlisted``). ``exclude`` lists
    patterns of files that match the image pattern but are not images of the source (masks beside
    images, thumbnails ...). ``extensions``: the image extensions read (default: every image
    extension, whatever the pattern ends with; ``strict``: only the pattern's own; or a list).
    Where the layout facts come from is recorded per source (``Source.evidence["layout"]``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    split_map: dict[PathSegment, Literal["train", "test", "drop"]] = Field(default_factory=dict)
    split_lists: list[SplitList] = Field(
        default_factory=list, description="Official split lists (text files or tables naming the images of a split)."
    )
    unlisted: Literal["keep", "drop"] = Field(
        default="keep", description="Images the split lists do not name: keep them (path split or none), or drop."
    )
    exclude: list[RelativePattern] = Field(default_factory=list)
    extensions: list[str] | Literal["strict"] = Field(
        default_factory=list,
        description="Image extensions read: default every image extension (the pattern's own is a default), "
        "'strict' only the pattern's own, or a list.",
    )

    def map_split(self, raw: str | None) -> tuple[Split | None, bool]:
        """Return (split, dropped) for a raw split value; unknown values raise ``KeyError``."""
        if raw is None or raw == "":
            return None, False
        for k, v in self.split_map.items():
            if k.lower() == raw.lower():
                return (None, True) if v == "drop" else (v, False)  # type: ignore[return-value]
        if is_validation_split(raw):
            return "train", False
        raise KeyError(raw)

    def resolve_split(self, raw: str | None) -> tuple[Split | None, str | None, str | None]:
        """``(split, drop_reason, detail)`` for a raw split value: a record with an undeclared or an
        unused split is still yielded, with ``unknown_split`` / ``unused_split``, so it is counted."""
        try:
            split, dropped = self.map_split(raw)
        except KeyError:
            return None, "unknown_split", f"split {raw!r} is not in split_map"
        if dropped:
            return None, "unused_split", f"split {raw!r} is not used by the paper"
        return split, None, None

    def raw_split_for(self, split: Split | None) -> str | None:
        """Inverse of :meth:`map_split`: a raw split name that maps to ``split``."""
        if split is None:
            return None
        for k, v in self.split_map.items():
            if v == split:
                return k
        return None

    # ------------------------------------------------------------------ patterns
    @property
    def image_extensions(self) -> tuple[str, ...] | None:
        """Extensions an image pattern's own extension stands for (``None``: exactly the one written)."""
        if self.extensions == "strict":
            return None
        return normalize_extensions(self.extensions) if self.extensions else IMAGE_EXTENSIONS

    def image_pattern(self, pattern: str) -> PathPattern:
        """``pattern`` compiled with the layout's extension rule (see the module docstring)."""
        return PathPattern(pattern, self.image_extensions)

    def mask_pattern(self, pattern: str) -> PathPattern:
        """A mask pattern takes every image extension unless the layout is ``strict``."""
        return PathPattern(pattern, None if self.extensions == "strict" else IMAGE_EXTENSIONS)

    def accepts(self, path: str) -> bool:
        """Is ``path`` an image file this layout reads (by extension)?"""
        if self.extensions and self.extensions != "strict":
            return accepts_image(path, self.extensions)  # type: ignore[arg-type]
        return accepts_image(path)

    def matching_images(self, index: FileIndex, pattern: str) -> Iterator[tuple[str, dict[str, str]]]:
        """Image files matching ``pattern`` (extension rule, ``exclude``, the declared extension first)."""
        ipat = self.image_pattern(pattern)
        found = ((p, g) for p, g in index.matching(ipat, self.exclude_patterns) if self.accepts(p))
        yield from prefer_declared_extension(found, ipat.extension if self.extensions != "strict" else None)

    def extension_excluded(self, index: FileIndex) -> set[str]:
        """Image files the image pattern would take with any extension but the layout's rule leaves out
        (``extensions: strict`` or a list, or a sibling file of the pattern's own extension won)."""
        pattern = getattr(self, "images", None)
        if not pattern:
            return set()
        taken = {p for p, _ in self.matching_images(index, pattern)}
        wide = PathPattern(pattern, IMAGE_EXTENSIONS)
        return {p for p, _ in index.matching(wide, self.exclude_patterns) if accepts_image(p) and p not in taken}

    @cached_property
    def exclude_patterns(self) -> list[PathPattern]:
        """``exclude`` compiled; one naming a file (``*_mask.png``) takes every image extension, while an
        extension-only one (``*.bmp``) stays exact."""
        return [self.mask_pattern(p) if _names_a_file(p) else PathPattern(p) for p in self.exclude]

    @cached_property
    def read_patterns(self) -> list[PathPattern]:
        """Patterns of the image-like files this layout reads (its images, and masks where it has them)."""
        out = []
        if getattr(self, "images", None):
            out.append(self.image_pattern(self.images))  # type: ignore[attr-defined]
        if getattr(self, "masks", None):
            out.append(self.mask_pattern(self.masks))  # type: ignore[attr-defined]
        return out

    @cached_property
    def aux_patterns(self) -> list[PathPattern]:
        """Patterns of the non-image files this layout reads (tables, annotation files, split lists)."""
        specs = [*(getattr(self, "tables", None) or []), *(getattr(self, "annotations", None) or []), *self.split_lists]
        return [PathPattern(s.path) for s in specs]

    def file_index(self, root: Path) -> FileIndex:
        """The files under ``root``, second copies set aside, keeping the copy this layout's patterns read."""
        return FileIndex(root, prefer=self.read_patterns)

    # Subclasses implement these two.
    def scan(self, source: "Source", root: Path) -> Iterator[RawRecord]:  # pragma: no cover
        raise NotImplementedError

    def write_fake(self, source: "Source", root: Path, samples: list[FakeSample]) -> dict[int, str]:  # pragma: no cover
        """Write ``samples`` in this layout under ``root``; return each sample's image path (by index)."""
        raise NotImplementedError

    def fake_image_size(self) -> tuple[int, int] | None:
        """Pixel size the demo must give its images when the layout fixes one (else ``None``)."""
        return None

    def fake_extension(self) -> str:
        """Image extension the demo writes for this layout (from its image pattern)."""
        pattern = getattr(self, "images", "") or ""
        ext = os.path.splitext(pattern)[1].lower()
        if ext in IMAGE_EXTENSIONS:
            return ext
        if self.extensions and self.extensions != "strict":
            return normalize_extensions(self.extensions)[0]
        return ".png"


def _names_a_file(pattern: str) -> bool:
    """Does the last segment have literal text besides wildcards and the extension (``*_mask.png``)?"""
    last = pattern.rsplit("/", 1)[-1]
    stem = _TRAILING_EXT.sub("", last)
    return bool(re.sub(r"\{[^}]*\}|\*", "", stem))


def accepts_image(path: str, extensions: Iterable[str] = ()) -> bool:
    """Does ``path`` end in one of ``extensions`` (default: any known image extension)?"""
    ext = os.path.splitext(path)[1].lower()
    allowed = normalize_extensions(extensions)
    return ext in (allowed or IMAGE_EXTENSIONS)


def write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


@dataclass
class TableRowError:
    """A table row that could not be turned into a record."""

    ref: str
    reason: str
    detail: str = field(default="")
