"""What every layout kind shares: its YAML fields (:class:`LayoutBase`), official split lists, and the reader protocol.

A *layout* says how a source's files lie on disk once unpacked under ``RAW/<key>/``. Each layout
kind has a reader (``scan``: walk the files and tables, yield
:class:`~medmat_builder.records.RawRecord` without opening any image) and an inverse (``write_fake``:
write a small synthetic copy of the source in that layout), so the offline demo and the tests go
through exactly the code that real data goes through. Paths are matched by patterns
(:mod:`~medmat_builder.layouts.patterns`) over a :class:`~medmat_builder.layouts.file_index.FileIndex`.

A reader needs two things of a registry entry (:class:`ScanSource`): its key (for refs and messages)
and, for a ``table`` layout, the column naming each image's subject (``groups: {column: ...}``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from functools import cached_property
from pathlib import Path
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, model_validator

from medmat_builder.layouts.file_index import FileIndex
from medmat_builder.layouts.patterns import (
    IMAGE_EXTENSIONS,
    PathPattern,
    PathSegment,
    RelativePattern,
    accepted_extensions,
    accepts_image,
    compiled_pattern,
    extension_of,
    is_validation_split,
    names_a_file,
    normalize_extensions,
    prefer_declared_extension,
    with_extension,
)
from medmat_builder.records import FakeSample, RawRecord, Split


class ScanSource(Protocol):
    """What a reader needs of a registry entry; :class:`medmat_builder.registry.Source` is one."""

    @property
    def key(self) -> str: ...

    @property
    def group_column(self) -> str | None:
        """The label-table column naming each image's subject (``groups: {column: ...}``), else ``None``."""


def fill_fake_path(pattern: "PathPattern", values: dict[str, str], sample: FakeSample) -> str:
    """The relative path a layout writes ``sample``'s image to: ``pattern`` filled with ``values``
    (the layout's own placeholder values) and the sample's path hints (see :class:`FakeSample`).

    A sample with a whole ``path`` is written there; ``values`` then take what ``pattern`` reads from it
    (a table's ``{id}``, say), so that the layout's table rows and masks name the same file."""
    if sample.path is not None:
        found = pattern.match(sample.path)
        if found is None:
            raise ValueError(f"demo record {sample.index}: {sample.path!r} does not match the image pattern "
                             f"{pattern.pattern!r}; fix its naming scheme in medmat_builder/demo/path_hints.yaml")
        for name in ("label", "split"):
            if name in found and name in values and found[name].lower() != str(values[name]).lower():
                raise ValueError(f"demo record {sample.index}: {sample.path!r} has {name} {found[name]!r}, "
                                 f"not {values[name]!r}; fix its naming scheme in medmat_builder/demo/path_hints.yaml")
        values.update(found)
        return sample.path
    values.update(dict(sample.path_values))
    return pattern.fill(values, star=sample.star or f"fake{sample.index:05d}", dir_star=sample.dir_star or "fake")


def write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


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
        """``pattern`` compiled with the layout's extension rule (see the module docstring); compiled once."""
        return compiled_pattern(pattern, self.image_extensions)

    def mask_pattern(self, pattern: str) -> PathPattern:
        """A mask pattern takes every image extension unless the layout is ``strict``."""
        return PathPattern(pattern, None if self.extensions == "strict" else IMAGE_EXTENSIONS)

    @property
    def _accepted(self) -> frozenset[str]:
        """The extensions of the image files this layout reads (see :meth:`accepts`)."""
        return accepted_extensions(self.extensions if self.extensions != "strict" else ())

    def accepts(self, path: str) -> bool:
        """Is ``path`` an image file this layout reads (by extension)?"""
        return extension_of(path) in self._accepted

    def matching_images(self, index: FileIndex, pattern: str) -> Iterator[tuple[str, dict[str, str]]]:
        """Image files matching ``pattern`` (extension rule, ``exclude``, the declared extension first)."""
        return iter(self._images(index, pattern))

    def _images(self, index: FileIndex, pattern: str) -> list[tuple[str, dict[str, str]]]:
        """:meth:`matching_images` as a list, worked out once per index and pattern (captures shared: read only)."""
        ipat = self.image_pattern(pattern)
        own = ipat.extension if self.extensions != "strict" else None
        excl = self.exclude_patterns
        key = ("images", ipat.regex.pattern, *sorted(self._accepted), "own", own or "",
               "exclude", *(e.regex.pattern for e in excl))
        found = index.memo.get(key)
        if found is None:
            accepted = self._accepted  # (worked out once, not per file)
            found = index.memo[key] = list(prefer_declared_extension(
                with_extension(index.matches(ipat, excl), accepted, pairs=True), own))
        return found

    def images_by_key(self, index: FileIndex, key: Callable[[dict[str, str]], str],
                      trailing: bool = False) -> dict[str, list[tuple[str, dict[str, str]]]]:
        """The layout's images (path and captures) by ``key`` of their captures; with ``trailing``, also by the
        trailing segments of a path-like key (``a/b/c`` under ``b/c`` and ``c``), so ids with or without folders match."""
        out: dict[str, list[tuple[str, dict[str, str]]]] = {}
        for path, groups in self.matching_images(index, self.images):  # type: ignore[attr-defined]
            k = key(groups)
            out.setdefault(k, []).append((path, groups))
            if trailing:
                parts = k.split("/")
                for i in range(1, len(parts)):
                    out.setdefault("/".join(parts[i:]), []).append((path, groups))
        return out

    def extension_excluded(self, index: FileIndex) -> set[str]:
        """Image files the image pattern would take with any extension but the layout's rule leaves out
        (``extensions: strict`` or a list, or a sibling file of the pattern's own extension won)."""
        pattern = getattr(self, "images", None)
        if not pattern:
            return set()
        wide = compiled_pattern(pattern, IMAGE_EXTENSIONS)
        images, matches = self._images(index, pattern), index.matches(wide, self.exclude_patterns)
        if len(images) == len(matches) and self.image_pattern(pattern).regex.pattern == wide.regex.pattern:
            return set()  # the images are a part of the same matches, so all of them: none left out
        taken = {p for p, _ in images}
        return {p for p, _ in matches if p not in taken and accepts_image(p)}

    @cached_property
    def exclude_patterns(self) -> list[PathPattern]:
        """``exclude`` compiled; one naming a file (``*_mask.png``) takes every image extension, while an
        extension-only one (``*.bmp``) stays exact."""
        return [self.mask_pattern(p) if names_a_file(p) else PathPattern(p) for p in self.exclude]

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

    def model_copy(self, *, update: dict | None = None, deep: bool = False) -> "LayoutBase":
        """A copy as pydantic makes it, without the values :func:`functools.cached_property` keeps: they were
        worked out from the old fields (``exclude``, ``images`` ...) and would outlive an ``update``."""
        copy = super().model_copy(update=update, deep=deep)
        for name in _cached_properties(type(copy)):
            copy.__dict__.pop(name, None)
        return copy

    def file_index(self, root: Path) -> FileIndex:
        """The files under ``root``, second copies set aside, keeping the copy this layout's patterns read."""
        return FileIndex.of(root, self.read_patterns)

    # Subclasses implement these two.
    def scan(self, source: ScanSource, root: Path) -> Iterator[RawRecord]:  # pragma: no cover
        raise NotImplementedError

    def write_fake(self, source: ScanSource, root: Path, samples: list[FakeSample]) -> dict[int, str]:  # pragma: no cover
        """Write ``samples`` in this layout under ``root``; return each sample's image path (by index)."""
        raise NotImplementedError

    def place_fake_image(self, root: Path, pattern: PathPattern, values: dict[str, str], sample: FakeSample) -> str:
        """Write ``sample``'s image where ``pattern`` filled with ``values`` (and the sample's path hints) puts it
        (with the sample's extension when the pattern gives none); return that relative path."""
        rel = fill_fake_path(pattern, values, sample)
        if os.path.splitext(rel)[1].lower() not in IMAGE_EXTENSIONS:
            rel += sample.ext
        write_bytes(root / rel, sample.image)
        return rel

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


def _cached_properties(cls: type) -> list[str]:
    """Names of the :func:`functools.cached_property` attributes of ``cls`` and its bases."""
    return [name for klass in cls.__mro__ for name, value in vars(klass).items() if isinstance(value, cached_property)]
