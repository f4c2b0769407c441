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
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:  # pragma: no cover
    from medmat_builder.registry import Source

Split = Literal["train", "test"]
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".dcm", ".dicom", ".gif", ".webp", ".pgm", ".ppm")
JUNK_NAMES = {".ds_store", "thumbs.db", "desktop.ini"}
JUNK_DIRS = {"__macosx", ".git", ".ipynb_checkpoints"}


@dataclass(frozen=True)
class Box:
    """An axis-aligned box in pixel coordinates of the raw image, with its raw label."""

    label: str
    x1: float
    y1: float
    x2: float
    y2: float


@dataclass(frozen=True)
class RawRecord:
    """One image-label pair as found on disk, before any image is opened.

    ``image`` is relative to the source folder. ``split`` is ``train``/``test`` when the source
    fixes it, else ``None`` (a seeded 9:1 split is made later). ``drop_reason`` is set when the
    record is already known to be unusable (unreadable table row, image missing ...): it is still
    yielded so the build report can count it. ``group`` is the raw subject id read from the
    layout's own table (a source declaring ``groups: {column: ...}``); other group keys are
    resolved later from the path or a side table (:mod:`medmat_builder.groups`).
    """

    source: str
    ref: str
    image: str
    labels: tuple[str, ...] = ()
    split: Split | None = None
    boxes: tuple[Box, ...] = ()
    mask: str | None = None
    mask_labels: tuple[tuple[int, str], ...] = ()
    drop_reason: str | None = None
    detail: str | None = None
    group: str | None = None


@dataclass(frozen=True)
class FakeSample:
    """What the demo asks a layout to write for one synthetic record.

    ``labels`` are raw labels (as the source spells them); ``split`` is the split the record must
    land in (``None``: the layout's own default). ``image`` is encoded image bytes in ``ext``.
    ``mask`` (segmentation) is a PNG-encoded mask; ``boxes`` (detection) are pixel boxes.

    Subjects: ``group`` is the raw subject id (patient, lesion, volume) that a table layout writes
    into the source's group column, and the side table of ``groups: {table: ...}`` lists. For
    ``groups: {path: [...]}`` the demo gives path hints instead, so that the file lands where the
    group pattern finds its subject: ``path_values`` (values of placeholders the layout does not
    fill itself, e.g. a patient folder), ``star`` (text of a ``*`` in the file name) and
    ``dir_star`` (text of a ``*`` in a folder). Writers apply them through :func:`fill_fake_path`.
    """

    index: int
    labels: tuple[str, ...]
    split: Split | None
    image: bytes
    ext: str
    width: int
    height: int
    mask: bytes | None = None
    boxes: tuple[Box, ...] = ()
    group: str | None = None
    path_values: tuple[tuple[str, str], ...] = ()
    star: str | None = None
    dir_star: str | None = None


def fill_fake_path(pattern: "PathPattern", values: dict[str, str], sample: FakeSample) -> str:
    """The relative path a layout writes ``sample``'s image to: ``pattern`` filled with ``values``
    (the layout's own placeholder values) and the sample's path hints (see :class:`FakeSample`)."""
    values.update(dict(sample.path_values))
    return pattern.fill(values, star=sample.star or f"fake{sample.index:05d}", dir_star=sample.dir_star or "fake")


def _pattern_to_regex(pattern: str) -> re.Pattern[str]:
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
                out.append(f"(?P<{name}>{rx or '[^/]+'})")
            i = end + 1
        else:
            out.append(re.escape(c))
            i += 1
    return re.compile(r"(?:^|/)" + "".join(out) + r"$", re.IGNORECASE)


class PathPattern:
    """A compiled path pattern (see the module docstring for the syntax)."""

    def __init__(self, pattern: str):
        self.pattern = pattern
        self.regex = _pattern_to_regex(pattern)

    def match(self, relpath: str) -> dict[str, str] | None:
        m = self.regex.search(relpath)
        return None if m is None else m.groupdict()

    @property
    def placeholders(self) -> list[str]:
        return list(self.regex.groupindex)

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
        return folder.replace("*", dir_star) + slash + name.replace("*", star)

    def __repr__(self) -> str:
        return f"PathPattern({self.pattern!r})"


def is_junk(relpath: str) -> bool:
    """OS and archive litter that is never an image: ``__MACOSX``, ``.DS_Store``, ``._x``, ..."""
    parts = relpath.split("/")
    if any(p.lower() in JUNK_DIRS for p in parts[:-1]):
        return True
    name = parts[-1]
    return name.lower() in JUNK_NAMES or name.startswith("._") or name.startswith(".")


class FileIndex:
    """All files below a source folder, walked once, sorted, junk removed."""

    def __init__(self, root: Path):
        self.root = Path(root)

    @cached_property
    def files(self) -> list[str]:
        found: list[str] = []
        root = str(self.root)
        for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
            dirnames[:] = [d for d in dirnames if d.lower() not in JUNK_DIRS]
            rel = os.path.relpath(dirpath, root)
            prefix = "" if rel == "." else rel.replace(os.sep, "/") + "/"
            for name in filenames:
                path = prefix + name
                if not is_junk(path):
                    found.append(path)
        found.sort()
        return found

    def matching(self, pattern: PathPattern, exclude: Iterable[PathPattern] = ()) -> Iterator[tuple[str, dict[str, str]]]:
        excl = list(exclude)
        for path in self.files:
            groups = pattern.match(path)
            if groups is None or any(e.match(path) is not None for e in excl):
                continue
            yield path, groups


class LayoutBase(BaseModel):
    """Fields every layout kind has.

    ``split_map`` maps raw split names (folder names, column values, table roles) to ``train`` or
    ``test``, or ``drop`` for a part the paper does not use; matching ignores case. A validation
    part goes to ``train`` (the paper's rule). ``exclude`` lists patterns of files that match the
    image pattern but are not images of the source (masks beside images, thumbnails ...).
    Where the layout facts come from is recorded per source (``Source.evidence["layout"]``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    split_map: dict[str, Literal["train", "test", "drop"]] = Field(default_factory=dict)
    exclude: list[str] = Field(default_factory=list)

    def map_split(self, raw: str | None) -> tuple[Split | None, bool]:
        """Return (split, dropped) for a raw split value; unknown values raise ``KeyError``."""
        if raw is None or raw == "":
            return None, False
        for k, v in self.split_map.items():
            if k.lower() == raw.lower():
                return (None, True) if v == "drop" else (v, False)  # type: ignore[return-value]
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

    @cached_property
    def exclude_patterns(self) -> list[PathPattern]:
        return [PathPattern(p) for p in self.exclude]

    @cached_property
    def read_patterns(self) -> list[PathPattern]:
        """Patterns of the image-like files this layout reads (its images, and masks where it has them)."""
        return [PathPattern(p) for p in (getattr(self, "images", None), getattr(self, "masks", None)) if p]

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
        return ext if ext in IMAGE_EXTENSIONS else ".png"


def accepts_image(path: str, extensions: Iterable[str] = ()) -> bool:
    """Does ``path`` end in one of ``extensions`` (default: any known image extension)?"""
    ext = os.path.splitext(path)[1].lower()
    allowed = [e.lower() if e.startswith(".") else "." + e.lower() for e in extensions]
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
