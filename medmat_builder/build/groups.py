"""Subjects: what ties several images of one source together (a patient, a lesion, a volume, a video).

The unit of a split is the subject, not the image: follow-up scans of one patient, photographs of one
lesion, slices of one volume or frames of one video must never land on both sides of a split. Each
source declares in ``sources.yaml`` what its subject is (``groups``, see
:class:`medmat_builder.registry.Groups`), and :class:`GroupResolver` gives every raw record its
subject key:

- ``column``: a column of the layout's own label table, read from the record's row by the table
  layout (:attr:`RawRecord.group`);
- ``table``: a side table mapping image ids to subjects (e.g. ISIC 2018's lesion groupings CSV), read
  once per source; ids are matched the way the table layout matches them (image extension stripped,
  zero padding removed, case ignored, path-like ids by their trailing segments);
- ``path``: path patterns capturing ``{group}``, tried in order against the image path, with any layout;
- ``none``: every image is its own subject (the registry says why).

An image that matches no pattern, is missing from the side table or has an empty group cell is its own
subject; the build report counts these per source (``ungrouped``) and warns when they are more than
:data:`UNGROUPED_WARN_SHARE` of the source's records. Keys are namespaced by the source's folder (entries
that share one download share their subjects).

The export never carries a raw subject id: its ``group`` column is :func:`subject_pseudonym`, a salted
SHA-256 of the namespaced key, stable across builds and configs (so the audit, the trainer's leakage
guard and ``GroupKFold`` can use it).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import repeat
from operator import attrgetter, getitem
from pathlib import Path
from typing import Any

from medmat_builder.layouts import FileIndex, LayoutError, PathPattern
from medmat_builder.layouts.tables import find_column, id_key, read_table, source_file
from medmat_builder.records import RawRecord
from medmat_builder.registry import Source

#: Salt of the exported subject pseudonyms (changing it changes every ``group`` value).
GROUP_SALT = "medmat-subject-v1"
#: Warn when more than this share of a source's records falls back to "its own subject".
UNGROUPED_WARN_SHARE = 0.10
_SEP = "\x1f"
_IMAGE = attrgetter("image")


def subject_key(namespace: str, group: str | None, image: str) -> str:
    """The namespaced subject key of a record: its group, or (``group`` None) the image itself."""
    return _SEP.join((namespace, "group", group)) if group is not None else _SEP.join((namespace, "image", image))


def split_token(key: str) -> str:
    """What the seeded split hashes for a subject: the image path for a one-image subject (so a
    source without groups is split exactly as by image), ``group:<id>`` for a declared subject."""
    _, kind, value = key.split(_SEP, 2)
    return value if kind == "image" else "group:" + value


def split_tokens(keys: Iterable[str]) -> list[str]:
    """:func:`split_token` of each key (one pass in C where every key is a one-image subject of one namespace,
    the usual case for the split of a large source)."""
    keys = list(keys)
    if keys:
        namespace, kind, _ = keys[0].split(_SEP, 2)
        prefix = _SEP.join((namespace, "image", ""))
        if kind == "image" and all(map(str.startswith, keys, repeat(prefix))):
            return list(map(getitem, keys, repeat(slice(len(prefix), None))))
    return [value if kind == "image" else "group:" + value
            for _, kind, value in map(str.split, keys, repeat(_SEP), repeat(2))]


def subject_pseudonym(key: str) -> str:
    """The exported ``group`` value of a subject key: 16 hex digits of a salted SHA-256, never the raw id."""
    return hashlib.sha256(f"{GROUP_SALT}{_SEP}{key}".encode()).hexdigest()[:16]


@dataclass
class GroupStats:
    """Per source and config: which key is declared, how many subjects, how many records matched none."""

    declared: str = "none"
    records: int = 0
    ungrouped: int = 0
    subjects: set[str] = field(default_factory=set)

    def to_dict(self) -> dict[str, Any]:
        return {"declared": self.declared, "groups": len(self.subjects), "ungrouped": self.ungrouped}

    @property
    def mostly_ungrouped(self) -> bool:
        return self.declared != "none" and self.records > 0 and self.ungrouped > UNGROUPED_WARN_SHARE * self.records


class _SideTable:
    """Image id -> subject, from a side table (exact ids first, then their trailing segments)."""

    _AMBIGUOUS = object()

    def __init__(self) -> None:
        self.exact: dict[str, object] = {}
        self.suffix: dict[str, object] = {}

    def add(self, image_id: str, group: str) -> None:
        parts = id_key(image_id).split("/")
        for index in range(len(parts)):
            target = self.exact if index == 0 else self.suffix
            key = "/".join(parts[index:])
            if target.get(key, group) != group:
                target[key] = self._AMBIGUOUS
            else:
                target[key] = group

    def lookup(self, image: str) -> str | None:
        parts = id_key(image).split("/")
        for index in range(len(parts)):
            key = "/".join(parts[index:])
            for table in (self.exact, self.suffix):
                hit = table.get(key)
                if isinstance(hit, str):
                    return hit
        return None


def read_group_table(source: Source, root: Path) -> _SideTable:
    """Read a source's ``groups.table`` (every file matching its path pattern) into an id -> subject map."""
    spec = source.groups.table  # type: ignore[union-attr]
    assert spec is not None
    found = list(FileIndex.of(root).matching(PathPattern(spec.path)))
    if not found:
        raise LayoutError(
            f"source {source.key}: groups table {spec.path!r} (groups.table in sources.yaml) not found under {root}"
        )
    side = _SideTable()
    for rel, _ in found:
        header, rows = read_table(source_file(root, rel, source.key), sep=spec.sep, source=source.key)
        id_col = find_column(header, spec.id_column, rel, source.key, "groups.table.id_column")
        group_col = find_column(header, spec.group_column, rel, source.key, "groups.table.group_column")
        for _, cells in rows:
            if cells is None:
                continue
            image_id, group = cells[id_col].strip(), cells[group_col].strip()
            if image_id and group:
                side.add(image_id, group)
    return side


class GroupResolver:
    """Gives each record of one source its subject key (see the module docstring) and counts them."""

    def __init__(self, source: Source, root: Path):
        self.source = source
        self.namespace = source.folder
        self.spec = source.groups
        self.stats = GroupStats(declared=self.spec.declared if self.spec is not None else "none")
        self._patterns = [PathPattern(p) for p in self.spec.path] if self.spec is not None else []
        self._table = read_group_table(source, Path(root)) if self.spec is not None and self.spec.table else None
        self._image_prefix = subject_key(self.namespace, None, "")  # + the image: subject_key(namespace, None, image)
        self._group_prefix = subject_key(self.namespace, "", "")  # + the group: subject_key(namespace, group, image)

    def raw_group(self, rec: RawRecord) -> str | None:
        """The record's subject id as the source spells it, or None (its own subject)."""
        declared = self.stats.declared
        if declared == "column":
            return rec.group
        if declared == "table":
            return self._table.lookup(rec.image) if self._table is not None else None
        if declared == "path":
            for pattern in self._patterns:
                found = pattern.match(rec.image)
                if found is not None and found.get("group"):
                    return found["group"]
        return None

    def key_of(self, rec: RawRecord) -> str:
        """The namespaced subject key of ``rec`` (counted in :attr:`stats`)."""
        stats = self.stats
        stats.records += 1
        raw = self.raw_group(rec) if stats.declared != "none" else None
        raw = raw.strip() if raw else None
        if raw:
            key = self._group_prefix + raw
        else:
            key = self._image_prefix + rec.image
            if stats.declared != "none":
                stats.ungrouped += 1
        stats.subjects.add(key)
        return key

    def keys_of(self, records: list[RawRecord]) -> list[str]:
        """:meth:`key_of` of each record, in order (with no subjects declared, in one pass of C calls)."""
        stats = self.stats
        if stats.declared != "none":
            return [self.key_of(rec) for rec in records]
        keys = list(map(self._image_prefix.__add__, map(_IMAGE, records)))
        stats.records += len(keys)
        stats.subjects.update(keys)
        return keys

    def warning(self) -> str | None:
        """A warning when a large share of the records matched no subject."""
        st = self.stats
        if not st.mostly_ungrouped:
            return None
        return (
            f"source {self.source.key}: {st.ungrouped} of {st.records} records have no subject under its "
            f"groups.{st.declared} declaration and count as their own subject; check groups in sources.yaml"
        )
