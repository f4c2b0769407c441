"""``table``: labels come from CSV/TSV/XLSX tables that name each image.

One reader for the many table shapes real sources use. YAML::

    layout:
      kind: table
      tables:
        - {path: "train.csv", split: train}     # pattern; {split} may be captured from the path
        - {path: "test.csv", split: test}
      images: "{split}_images/{id}.png"          # pattern locating the image named by a row
      id_column: id_code
      id_zfill: 5                                # table says 17, file is 00017.png
      label_column: diagnosis                    # or label_columns: [MEL, NV, ...] (one-hot)
      label_separator: "|"                       # multi-label strings in one column
      split_column: split                        # optional per-row split

A source declaring ``groups: {column: "Patient ID"}`` gets the subject of each image from that column
of the same row (the first non-empty value when several rows name one image).

Rows naming the same image are merged (their labels united). Column names are matched exactly,
then with surrounding spaces stripped (some sources ship ``" Label"`` headers). Ids are matched
without a known image extension, with zero padding removed on both sides, and for path-like ids
by their trailing segments, so both ways of unpacking an archive work.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from medmat_builder.layouts.base import LayoutBase, ScanSource
from medmat_builder.layouts.file_index import FileIndex
from medmat_builder.layouts.misses import missing_file_hint
from medmat_builder.layouts.patterns import PathPattern, PathSegment, RelativePattern, declared_first
from medmat_builder.layouts.split_lists import listed_split, read_split_lists, write_split_lists
from medmat_builder.layouts.tables import (
    LayoutError,
    TableFile,
    find_column,
    read_table,
    source_file,
    strip_image_extension,
    unpad,
    write_table,
)
from medmat_builder.records import Box, FakeSample, RawRecord

TRUTHY = {"1", "1.0", "true", "yes", "y", "x", "t"}


class TableLayout(LayoutBase):
    kind: Literal["table"]
    tables: list[TableFile] = Field(min_length=1)
    images: RelativePattern = Field(description="Pattern locating a row's image; must capture {id}.")
    id_column: str
    id_zfill: int | None = Field(default=None, ge=1, le=32, description="Zero padding of ids in file names.")
    id_strip_extension: bool = True
    id_template: PathSegment = Field(default="{id}", description="File id from the row id, e.g. '{id}_green'.")
    id_regex: str | None = Field(
        default=None, description="Regex whose group 'id' (or first group) extracts the id from the cell."
    )
    label_column: str | list[str] | None = Field(
        default=None,
        description="Label column; a list joins the non-empty values of several columns with ' / ' "
        "(e.g. 'Virus / COVID-19' from a category and a sub-category column).",
    )
    label_columns: list[str] | None = Field(default=None, description="One-hot label columns.")
    label_separator: str | None = None
    empty_label: str | None = Field(
        default=None, description="Raw label for a row with no label set (e.g. 'normal')."
    )
    label_strip_chars: str | None = Field(
        default=None, description="Characters stripped from each label, e.g. \"[]' \" for list literals."
    )
    split_column: str | None = None
    on_multiple_images: Literal["drop", "all"] = Field(
        default="drop", description="An id matching several files: drop it (ambiguous) or keep every file."
    )
    box_columns: list[str] | None = Field(
        default=None, min_length=4, max_length=4, description="x1,y1,x2,y2 (or x,y,w,h) columns."
    )
    box_format: Literal["xyxy", "xywh"] = "xyxy"

    @model_validator(mode="after")
    def _one_label_source(self) -> "TableLayout":
        if (self.label_column is None) == (self.label_columns is None):
            raise ValueError("give exactly one of label_column or label_columns")
        if "id" not in PathPattern(self.images).placeholders:
            raise ValueError(f"images pattern {self.images!r} must capture {{id}}")
        return self

    # ------------------------------------------------------------------ reading
    def _read_rows(self, path: Path, spec: TableFile, source: str) -> tuple[list[str], list[tuple[int, list[str] | None]]]:
        """Return (header, [(line number, cells or None if unreadable)])."""
        return read_table(path, sep=spec.sep, sheet=spec.sheet, header_row=spec.header_row, columns=spec.columns,
                          pad_short_rows=spec.pad_short_rows, encoding=spec.encoding, source=source)

    def _column(self, header: list[str], name: str, table: str, source: str) -> int:
        return find_column(header, name, table, source)

    def _label_source_columns(self) -> list[str]:
        if self.label_columns is not None:
            return list(self.label_columns)
        return list(self.label_column) if isinstance(self.label_column, list) else [self.label_column]  # type: ignore[list-item]

    def _normalize_id(self, value: str) -> str:
        v = value.strip().replace("\\", "/")
        if self.id_regex:
            m = re.search(self.id_regex, v)
            if m:
                v = m.groupdict().get("id") or (m.group(1) if m.groups() else m.group(0))
        if self.id_strip_extension:
            v = strip_image_extension(v)
        v = self.id_template.format(id=v)
        return unpad(v).lower()

    def _image_index(self, index: FileIndex) -> dict[str, list[str]]:
        """Image paths by the id they capture (zero padding and case ignored), path-like ids also by their tails."""
        by_key = self.images_by_key(index, lambda groups: unpad(groups["id"].replace("\\", "/")).lower(), trailing=True)
        return {k: [path for path, _ in hits] for k, hits in by_key.items()}

    def _lookup(self, images: dict[str, list[str]], key: str, split: str | None) -> list[str]:
        hits = images.get(key)
        if not hits and "/" in key:
            parts = key.split("/")
            for k in range(1, len(parts)):
                hits = images.get("/".join(parts[k:]))
                if hits:
                    break
        hits = sorted(set(hits or []))
        if len(hits) > 1 and split:
            narrowed = [h for h in hits if f"/{split.lower()}" in "/" + h.lower()]
            hits = narrowed or hits
        return declared_first(hits, self.image_pattern(self.images).extension)

    def _labels_of(self, cells: list[str], cols: dict[str, int]) -> tuple[str, ...]:
        if self.label_columns is not None:
            labels = tuple(c for c in self.label_columns if cells[cols[c]].strip().lower() in TRUTHY)
        else:
            names = self.label_column if isinstance(self.label_column, list) else [self.label_column]
            value = " / ".join(v for v in (cells[cols[n]].strip() for n in names) if v)  # type: ignore[index]
            if self.label_separator:
                labels = tuple(x.strip() for x in value.split(self.label_separator) if x.strip())
            else:
                labels = (value,) if value else ()
        if self.label_strip_chars:
            labels = tuple(x for x in (lab.strip(self.label_strip_chars) for lab in labels) if x)
        if not labels and self.empty_label is not None:
            labels = (self.empty_label,)
        return labels

    def scan(self, source: ScanSource, root: Path) -> Iterator[RawRecord]:
        index = self.file_index(root)
        images = self._image_index(index)
        merged: dict[tuple, dict] = {}
        order: list[tuple] = []
        n_tables = 0
        listed = read_split_lists(self, index, root, source.key, key=self._normalize_id)
        group_column = source.group_column
        for spec in self.tables:
            tpattern = PathPattern(spec.path)
            for tpath, tgroups in index.matching(tpattern):
                n_tables += 1
                header, rows = self._read_rows(source_file(root, tpath, source.key), spec, source.key)
                needed = [self.id_column, *self._label_source_columns()]
                needed += [self.split_column] if self.split_column else []
                needed += self.box_columns or []
                cols = {name: self._column(header, name, tpath, source.key) for name in needed}
                if group_column is not None:
                    cols[group_column] = find_column(header, group_column, tpath, source.key, "groups.column")
                table_split = spec.split or tgroups.get("split")
                for line, cells in rows:
                    ref = f"{tpath}:{line}"
                    if cells is None or not cells[cols[self.id_column]].strip():
                        yield RawRecord(source.key, ref, "", drop_reason="unreadable_row",
                                        detail=f"row {line} of {tpath} has the wrong number of cells or no id")
                        continue
                    raw_split = cells[cols[self.split_column]].strip() if self.split_column else table_split
                    key = self._normalize_id(cells[cols[self.id_column]])
                    raw_split, reason, detail = listed_split(self, listed.get(key), raw_split)
                    if reason:
                        yield RawRecord(source.key, ref, "", self._labels_of(cells, cols), drop_reason=reason,
                                        detail=f"id {key!r}: {detail}")
                        continue
                    try:
                        box = self._box_of(cells, cols)
                    except ValueError as exc:
                        yield RawRecord(source.key, ref, "", drop_reason="unreadable_row",
                                        detail=f"row {line} of {tpath}: {exc}")
                        continue
                    labels = self._labels_of(cells, cols)
                    slot = merged.get((key, raw_split))
                    if slot is None:
                        slot = {"ref": ref, "key": key, "split": raw_split, "labels": [], "boxes": [], "group": None}
                        merged[(key, raw_split)] = slot
                        order.append((key, raw_split))
                    if group_column is not None and slot["group"] is None:
                        slot["group"] = cells[cols[group_column]].strip() or None
                    for lab in labels:
                        if box is not None:
                            slot["boxes"].append(Box(lab, *box))
                        if lab not in slot["labels"]:
                            slot["labels"].append(lab)
        if n_tables == 0:
            wanted = ", ".join(t.path for t in self.tables)
            hint = missing_file_hint([t.path for t in self.tables], index.files)
            raise LayoutError(f"source {source.key}: no table matching {wanted} under {root}{hint}")
        for key in order:
            slot = merged[key]
            hits = self._lookup(images, slot["key"], slot["split"])
            labels = tuple(slot["labels"])
            if not hits:
                yield RawRecord(source.key, slot["ref"], "", labels, drop_reason="missing_image",
                                detail=f"no file matching {self.images!r} for id {slot['key']!r}")
                continue
            if len(hits) > 1 and self.on_multiple_images == "all":
                pass
            elif len(hits) > 1:
                yield RawRecord(source.key, slot["ref"], hits[0], labels, drop_reason="ambiguous_image",
                                detail=f"id {slot['key']!r} matches {len(hits)} files: {hits[:3]}")
                continue
            split, reason, detail = self.resolve_split(slot["split"])
            if reason:
                yield RawRecord(source.key, slot["ref"], hits[0], labels, drop_reason=reason, detail=detail)
                continue
            for hit in hits if self.on_multiple_images == "all" else hits[:1]:
                yield RawRecord(source.key, slot["ref"], hit, labels, split=split, boxes=tuple(slot["boxes"]),
                                group=slot["group"])

    def _box_of(self, cells: list[str], cols: dict[str, int]) -> tuple[float, float, float, float] | None:
        if not self.box_columns:
            return None
        vals = [cells[cols[c]].strip() for c in self.box_columns]
        if not any(vals):
            return None  # a row without a box (e.g. "No finding")
        try:
            a, b, c, d = (float(v) for v in vals)
        except ValueError:
            raise ValueError(f"box columns {self.box_columns} hold non-numbers {vals}") from None
        return (a, b, a + c, b + d) if self.box_format == "xywh" else (a, b, c, d)

    # ------------------------------------------------------------------ writing (inverse)
    def write_fake(self, source: ScanSource, root: Path, samples: list[FakeSample]) -> dict[int, str]:
        img_pattern = PathPattern(self.images)
        group_column = source.group_column
        written: dict[int, str] = {}
        groups: dict[tuple[int, str | None], list[FakeSample]] = {}
        for s in samples:
            t_idx = self._table_for(s)
            spec = self.tables[t_idx]
            raw_split = spec.split
            if raw_split is None and "split" in PathPattern(spec.path).placeholders:
                raw_split = self.raw_split_for(s.split) or "train"
            groups.setdefault((t_idx, raw_split), []).append(s)
        listed: list[tuple[str, str | None]] = []
        for (t_idx, raw_split), group in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1] or "")):
            spec = self.tables[t_idx]
            needed = [self.id_column, *self._label_source_columns()]
            needed += [self.split_column] if self.split_column else []
            needed += self.box_columns or []
            if group_column is not None and group_column not in needed:
                needed.append(group_column)
            header = list(spec.columns) if spec.columns else needed
            rows: list[list[str]] = []
            for s in group:
                padded = f"{s.index}".zfill(self.id_zfill) if self.id_zfill else f"fake{s.index:05d}"
                values = {name: f"x{s.index:05d}" for name in img_pattern.placeholders}
                values["id"] = self.id_template.format(id=padded)
                if "split" in values:
                    values["split"] = self.raw_split_for(s.split) or raw_split or "train"
                rel = self.place_fake_image(root, img_pattern, values, s)
                written[s.index] = rel
                cell_id = f"{s.index}" if self.id_zfill else padded
                if s.path is not None:  # a real file name: the row names the id the path carries
                    cell_id = self._cell_for(values["id"], os.path.splitext(rel)[1])
                listed.append((os.path.basename(rel), s.split))
                for b in list(s.boxes) or [None]:
                    cells = {self.id_column: cell_id}
                    if self.label_columns is not None:
                        cells.update({c: "1" if c in s.labels else "0" for c in self.label_columns})
                    else:
                        labs = [b.label] if b is not None else list(s.labels)
                        text = "" if labs == [self.empty_label] else (self.label_separator or "").join(labs)
                        names = self._label_source_columns()
                        parts = text.split(" / ") if len(names) > 1 else [text]
                        cells.update(zip(names, parts + [""] * (len(names) - len(parts))))
                    if self.split_column:
                        cells[self.split_column] = self.raw_split_for(s.split) or ""
                    if group_column is not None and group_column != self.id_column:
                        cells[group_column] = s.group or ""
                    if self.box_columns:
                        if b is None:
                            coords = ["", "", "", ""]
                        elif self.box_format == "xywh":
                            coords = [f"{b.x1:g}", f"{b.y1:g}", f"{b.x2 - b.x1:g}", f"{b.y2 - b.y1:g}"]
                        else:
                            coords = [f"{b.x1:g}", f"{b.y1:g}", f"{b.x2:g}", f"{b.y2:g}"]
                        cells.update(zip(self.box_columns, coords))
                    rows.append([cells.get(c, "") for c in header])
            tpattern = PathPattern(spec.path)
            tpath = root / tpattern.fill({n: (raw_split or "train") if n == "split" else "x" for n in tpattern.placeholders},
                                         star="labels")
            lead = [] if spec.columns else [[""] * len(header)] * spec.header_row + [header]
            write_table(tpath, lead + rows, spec)
        if self.split_lists:
            write_split_lists(self, root, listed)
        return written

    def _cell_for(self, file_id: str, ext: str) -> str:
        """The table cell naming the file whose pattern captures ``file_id`` (inverse of ``id_template``),
        with the file's extension ``ext`` where the layout strips extensions from ids, as real tables write them."""
        head, _, tail = self.id_template.partition("{id}")
        if self.id_zfill or self.id_regex or not file_id.startswith(head) or not file_id.endswith(tail):
            raise ValueError(f"the demo cannot name {file_id!r} in the table of a layout with id_zfill, id_regex "
                             f"or id_template {self.id_template!r}; drop its naming scheme from path_hints.yaml")
        cell = file_id[len(head):len(file_id) - len(tail)] if tail else file_id[len(head):]
        return cell + ext if self.id_strip_extension else cell

    def _table_for(self, s: FakeSample) -> int:
        if self.split_column is None and not self.split_lists:
            for i, spec in enumerate(self.tables):
                if spec.split is not None and self.map_split(spec.split)[0] == s.split:
                    return i
        for i, spec in enumerate(self.tables):
            if spec.split is None:
                return i
        return 0
