"""Official split lists that sources ship, for every layout kind (``split_lists`` in the YAML).

A list is a text file naming one image per line (``Data-split/COVID/trainCT_COVID.txt``) or a table
whose ``column`` names the image (``partition/Test/Train.xlsx``, ``annotations.csv`` with a
``split_column``). YAML::

    layout:
      kind: folders
      images: "{label:CT_COVID|CT_NonCOVID}/*"
      split_lists:
        - {path: "Data-split/*/{split}CT_*.txt"}                 # split from the file name
        - {path: "partition/Test/Train.xlsx", split: train, column: image_name}
        - {path: "annotations.csv", column: HLY, split_column: sub_dataset}
      split_map: {train: train, val: train, test: test}
      unlisted: keep                                             # or drop

Names are matched without an image extension, ignoring case and zero padding, by their trailing
path segments (a list may name ``images/x.png`` or ``x``). An image listed under two splits that map
to different sides is dropped as ``conflicting_split``; one not listed at all keeps the split its
path gives (or none: a seeded 9:1 split), or is dropped as ``unlisted`` with ``unlisted: drop``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from medmat_builder.layouts.base import LayoutBase, SplitList, write_bytes
from medmat_builder.layouts.file_index import FileIndex
from medmat_builder.layouts.misses import missing_file_hint
from medmat_builder.layouts.patterns import PathPattern
from medmat_builder.layouts.tables import LayoutError, TableFile, id_key, read_table, source_file, write_table
from medmat_builder.records import Split


def list_key(name: str) -> str:
    """How a listed name and an image path are compared: no extension, no zero padding, lower case."""
    return id_key(name.strip().replace("\\", "/").strip("/"))


@dataclass
class ListedSplits:
    """The raw splits the lists give each listed name (keyed by :func:`list_key` or a layout's own key)."""

    by_key: dict[str, set[str]] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.files)

    def add(self, key: str, raw_split: str) -> None:
        if key:
            self.by_key.setdefault(key, set()).add(raw_split)

    def get(self, key: str) -> set[str]:
        return self.by_key.get(key, set())

    def for_path(self, path: str) -> set[str]:
        """Raw splits listed for an image path, trying its trailing segments longest first."""
        if not self.by_key:
            return set()
        parts = list_key(path).split("/")
        for k in range(len(parts)):
            hit = self.by_key.get("/".join(parts[k:]))
            if hit:
                return hit
        return set()


def read_split_lists(layout: LayoutBase, index: FileIndex, root: Path, source: str,
                     key: Callable[[str], str] = list_key) -> ListedSplits:
    """Read every split list of ``layout`` (an error names a list that is missing or unreadable)."""
    listed = ListedSplits()
    for spec in layout.split_lists:
        found = list(index.matching(PathPattern(spec.path)))
        if not found:
            hint = missing_file_hint([spec.path], index.files)
            raise LayoutError(f"source {source}: no split list matching {spec.path!r} under {root}{hint}")
        for path, groups in found:
            listed.files.append(path)
            fixed = spec.split or groups.get("split")
            if spec.column is None:
                text = source_file(root, path, source).read_bytes().decode(spec.encoding)
                for line in text.splitlines():
                    if line.strip():
                        listed.add(key(line), fixed)  # type: ignore[arg-type]
                continue
            header, rows = read_table(source_file(root, path, source), sep=spec.sep, sheet=spec.sheet, header_row=spec.header_row,
                                      encoding=spec.encoding, source=source)
            cols = {}
            for name in filter(None, (spec.column, spec.split_column)):
                if name.strip() not in [h.strip() for h in header]:
                    raise LayoutError(f"source {source}: split list {path} has no column {name!r} "
                                      f"(columns: {', '.join(map(repr, header))})")
                cols[name] = [h.strip() for h in header].index(name.strip())
            for _, cells in rows:
                if cells is None:
                    continue
                name = cells[cols[spec.column]].strip()
                raw = cells[cols[spec.split_column]].strip() if spec.split_column else fixed
                if name and raw:
                    listed.add(key(name), raw)
    return listed


def listed_split(layout: LayoutBase, raws: set[str], path_split: str | None) -> tuple[str | None, str | None, str | None]:
    """``(raw split, drop reason, detail)`` of an image given the raw splits its lists give it."""
    if not raws:
        if layout.split_lists and layout.unlisted == "drop":
            return None, "unlisted", "no split list of the source names it"
        return path_split, None, None
    sides = set()
    for raw in raws:
        try:
            split, dropped = layout.map_split(raw)
        except KeyError:
            split, dropped = raw, False  # resolve_split reports it as unknown_split
        sides.add("drop" if dropped else split)
    if len(sides) > 1:
        return None, "conflicting_split", f"the split lists name it in {sorted(raws)}"
    return sorted(raws)[0], None, None


# --------------------------------------------------------------------------- writing (inverse)
def write_split_lists(layout: LayoutBase, root: Path, entries: Iterable[tuple[str, Split | None]]) -> None:
    """Write (or extend) every split list of ``layout`` so that each ``(file name, split)`` is listed.

    A list file that already exists (another registry entry unpacked into the same folder wrote it)
    is extended with the names it does not hold yet, so both entries keep reading it.
    """
    per_file: dict[str, tuple[SplitList, list[tuple[str, str]]]] = {}
    for spec in layout.split_lists:  # every list exists, an empty one too
        for path in _list_paths(layout, spec):
            per_file.setdefault(path, (spec, []))
    for name, split in entries:
        raw = layout.raw_split_for(split)
        if raw is None:
            continue
        for spec in layout.split_lists:
            if spec.split is not None and layout.map_split(spec.split)[0] != split:
                continue
            path = PathPattern(spec.path).fill({"split": raw}, star="list")
            per_file.setdefault(path, (spec, []))[1].append((name, raw))
            break
    for rel, (spec, items) in sorted(per_file.items()):
        target = root / rel
        if spec.column is None:
            have = target.read_text(encoding="utf-8-sig").splitlines() if target.exists() else []
            known = {list_key(x) for x in have if x.strip()}
            lines = have + [n for n, _ in items if list_key(n) not in known]
            write_bytes(target, "".join(x + "\n" for x in lines).encode())
        else:
            _extend_table(target, spec, items)


def _list_paths(layout: LayoutBase, spec: SplitList) -> list[str]:
    if "split" not in PathPattern(spec.path).placeholders:
        return [PathPattern(spec.path).fill({}, star="list")]
    raws = {layout.raw_split_for(s) for s in ("train", "test")} - {None}  # type: ignore[arg-type]
    return [PathPattern(spec.path).fill({"split": r}, star="list") for r in sorted(raws)]  # type: ignore[type-var]


def _extend_table(path: Path, spec: SplitList, items: list[tuple[str, str]]) -> None:
    wanted = [c for c in (spec.column, spec.split_column) if c]
    if path.exists():
        header, rows = read_table(path, sep=spec.sep, sheet=spec.sheet, header_row=spec.header_row,
                                  encoding=spec.encoding, source="demo")
        body = [cells for _, cells in rows if cells is not None]
    else:
        header, body = [], []
    header = header + [c for c in wanted if c not in header]
    body = [cells + [""] * (len(header) - len(cells)) for cells in body]
    col = header.index(spec.column)  # type: ignore[arg-type]
    known = {list_key(cells[col]) for cells in body}
    for name, raw in items:
        if list_key(name) in known:
            continue
        cells = [""] * len(header)
        cells[col] = name
        if spec.split_column:
            cells[header.index(spec.split_column)] = raw
        body.append(cells)
    lead = [[""] * len(header)] * spec.header_row
    write_table(path, lead + [header] + body, TableFile(path=spec.path, sheet=spec.sheet, sep=spec.sep))


__all__ = ["ListedSplits", "list_key", "listed_split", "read_split_lists", "write_split_lists"]


