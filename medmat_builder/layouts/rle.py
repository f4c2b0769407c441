"""``rle_table``: masks given as run-length strings in a CSV table (Kaggle segmentation contests).

Each row names an image (``id_column``) and holds one run-length mask (``rle_column``), optionally
of a class (``label_column``; else every region gets ``label``). Rows of one image are merged. The
masks are decoded while scanning (the table alone is read, no image is opened) into pixel boxes
with :func:`medmat_builder.build.boxes.boxes_from_array`, so records carry ``boxes``. The image size
needed to decode comes from ``image_size`` or from ``{width}``/``{height}`` captured by the
``images`` pattern. YAML::

    layout:
      kind: rle_table
      tables: [{path: "train.csv"}]
      images: "{case}/{caseday}/scans/slice_{slice:\\d+}_{width:\\d+}_{height:\\d+}_{sx}_{sy}.png"
      image_id: "{caseday}_slice_{slice}"     # row id built from the image's captures (default "{id}")
      id_column: id
      rle_column: segmentation
      label_column: class                      # or  label: Pneumothorax
      empty_values: ["", "-1"]                 # cells meaning "no region"
      empty_label: none                        # raw label of an image without any region (optional)
      rle_order: row                           # row | column
      rle_starts: absolute                     # absolute | relative
      rle_base: 1                              # 1 | 0 (ignored for relative starts)

An image without any region gets ``empty_label`` (map it to ``null`` to drop such images, or to
a label to keep them with no box); without ``empty_label`` it has no labels.
"""

from __future__ import annotations

import csv
import io
import os
import string
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from medmat_builder.layouts.base import LayoutBase, ScanSource
from medmat_builder.layouts.misses import missing_file_hint
from medmat_builder.layouts.patterns import (
    PathPattern,
    PixelCount,
    RelativePattern,
    declared_first,
)
from medmat_builder.layouts.split_lists import listed_split, read_split_lists, write_split_lists
from medmat_builder.layouts.tables import LayoutError, TableFile, id_key, source_file
from medmat_builder.records import Box, FakeSample, RawRecord


class RleTableLayout(LayoutBase):
    kind: Literal["rle_table"]
    tables: list[TableFile] = Field(min_length=1)
    images: RelativePattern = Field(description="Pattern locating a row's image.")
    image_id: str = Field(default="{id}", description="Row id built from the image pattern's captures.")
    id_column: str
    rle_column: str
    label_column: str | None = None
    label: str | None = Field(default=None, description="Raw label of every region (no label column).")
    empty_values: list[str] = Field(default_factory=lambda: ["", "-1"])
    empty_label: str | None = None
    image_size: tuple[PixelCount, PixelCount] | None = Field(default=None, description="(width, height) of every image.")
    rle_order: Literal["row", "column"] = "row"
    rle_starts: Literal["absolute", "relative"] = "absolute"
    rle_base: Literal[0, 1] = 1

    @model_validator(mode="after")
    def _check(self) -> "RleTableLayout":
        if (self.label_column is None) == (self.label is None):
            raise ValueError("give exactly one of label_column or label")
        caps = PathPattern(self.images).placeholders
        needed = {n.split(":")[0] for n in _template_names(self.image_id)}
        if not needed or not needed <= set(caps):
            raise ValueError(f"image_id {self.image_id!r} needs placeholders captured by images {self.images!r}")
        if self.image_size is None and not {"width", "height"} <= set(caps):
            raise ValueError("give image_size or capture {width} and {height} in images")
        return self

    # ------------------------------------------------------------------ reading
    def _row_id(self, groups: dict[str, str]) -> str:
        return id_key(self.image_id.format(**groups))

    def _size(self, groups: dict[str, str]) -> tuple[int, int]:
        if self.image_size is not None:
            return self.image_size
        return int(groups["width"]), int(groups["height"])

    def _read(self, path: Path, spec: TableFile, source: str) -> tuple[list[str], list[tuple[int, list[str]]]]:
        sep = spec.sep or ("\t" if path.suffix.lower() in (".tsv", ".txt") else ",")
        try:
            text = path.read_bytes().decode(spec.encoding)
            rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=sep))
        except Exception as exc:  # noqa: BLE001
            raise LayoutError(f"source {source}: table {path} could not be read: {exc}") from None
        if len(rows) <= spec.header_row:
            raise LayoutError(f"source {source}: table {path} has no header at line {spec.header_row + 1}")
        header = [h.strip() for h in rows[spec.header_row]]
        body = [(i, r) for i, r in enumerate(rows[spec.header_row + 1 :], start=spec.header_row + 2) if any(c.strip() for c in r)]
        return header, body

    def scan(self, source: ScanSource, root: Path) -> Iterator[RawRecord]:
        from medmat_builder.images.masks import boxes_from_array, min_component_area  # numpy: only when scanning
        from medmat_builder.images.rle import decode_rle

        index = self.file_index(root)
        listed = read_split_lists(self, index, root, source.key)
        own_ext = self.image_pattern(self.images).extension
        images = self.images_by_key(index, self._row_id)
        merged: dict[tuple[str, str | None], dict] = {}
        order: list[tuple[str, str | None]] = []
        n_tables = 0
        bad: list[RawRecord] = []
        for spec in self.tables:
            for tpath, tgroups in index.matching(PathPattern(spec.path)):
                n_tables += 1
                header, rows = self._read(source_file(root, tpath, source.key), spec, source.key)
                cols = {}
                for name in [self.id_column, self.rle_column] + ([self.label_column] if self.label_column else []):
                    if name.strip() not in header:
                        raise LayoutError(f"source {source.key}: table {tpath} has no column {name!r} "
                                          f"(columns: {', '.join(map(repr, header))})")
                    cols[name] = header.index(name.strip())
                raw_split = spec.split or tgroups.get("split")
                for line, cells in rows:
                    ref = f"{tpath}:{line}"
                    if len(cells) != len(header) or not cells[cols[self.id_column]].strip():
                        bad.append(RawRecord(source.key, ref, "", drop_reason="unreadable_row",
                                             detail=f"row {line} of {tpath} has the wrong number of cells or no id"))
                        continue
                    key = (id_key(cells[cols[self.id_column]]), raw_split)
                    slot = merged.get(key)
                    if slot is None:
                        slot = merged[key] = {"ref": ref, "runs": []}
                        order.append(key)
                    rle = cells[cols[self.rle_column]].strip()
                    if rle in self.empty_values:
                        continue
                    lab = cells[cols[self.label_column]].strip() if self.label_column else self.label
                    slot["runs"].append((lab, rle, ref))
        if n_tables == 0:
            hint = missing_file_hint([t.path for t in self.tables], index.files)
            raise LayoutError(f"source {source.key}: no table matching {', '.join(t.path for t in self.tables)} "
                              f"under {root}{hint}")
        yield from bad
        for key in order:
            slot = merged[key]
            labels = tuple(dict.fromkeys(lab for lab, _, _ in slot["runs"]))
            if not labels and self.empty_label is not None:
                labels = (self.empty_label,)
            hits = sorted(images.get(key[0], []))
            if len(hits) > 1:
                keep = declared_first([h[0] for h in hits], own_ext)
                hits = [h for h in hits if h[0] in keep]
            if not hits:
                yield RawRecord(source.key, slot["ref"], "", labels, drop_reason="missing_image",
                                detail=f"no file matching {self.images!r} for id {key[0]!r}")
                continue
            if len(hits) > 1:
                yield RawRecord(source.key, slot["ref"], hits[0][0], labels, drop_reason="ambiguous_image",
                                detail=f"id {key[0]!r} matches {len(hits)} files: {[h[0] for h in hits[:3]]}")
                continue
            path, groups = hits[0]
            split: str | None = None
            raw_split, reason, detail = listed_split(self, listed.for_path(path), key[1] or groups.get("split"))
            if reason is None:
                split, reason, detail = self.resolve_split(raw_split)
            if reason:
                yield RawRecord(source.key, slot["ref"], path, labels, drop_reason=reason, detail=detail)
                continue
            width, height = self._size(groups)
            boxes: list[Box] = []
            try:
                for lab, rle, ref in slot["runs"]:
                    mask = decode_rle(rle, width, height, self.rle_order, self.rle_starts, self.rle_base)
                    boxes += boxes_from_array(mask.astype("uint8"), [(1, lab)], min_component_area(width, height))
            except ValueError as exc:
                yield RawRecord(source.key, slot["ref"], path, labels, drop_reason="unreadable_row",
                                detail=f"run-length mask of {key[0]!r} ({ref}): {exc}")
                continue
            yield RawRecord(source.key, slot["ref"], path, labels, split=split, boxes=tuple(boxes))  # type: ignore[arg-type]

    # ------------------------------------------------------------------ writing (inverse)
    def fake_image_size(self) -> tuple[int, int] | None:
        return tuple(self.image_size) if self.image_size is not None else None  # type: ignore[return-value]

    def write_fake(self, source: ScanSource, root: Path, samples: list[FakeSample]) -> dict[int, str]:
        import numpy as np

        from medmat_builder.images.rle import encode_rle

        ipat = PathPattern(self.images)
        by_table: dict[int, list[str]] = {}
        listed: list[tuple[str, str | None]] = []
        written: dict[int, str] = {}
        for s in samples:
            values = {n: f"{s.index}" for n in ipat.placeholders}
            values["id"] = f"fake{s.index:05d}"
            if self.image_size is None:
                values["width"], values["height"] = str(s.width), str(s.height)
            if "split" in values:
                values["split"] = self.raw_split_for(s.split) or next(iter(self.split_map), "train")
            rel = self.place_fake_image(root, ipat, values, s)
            listed.append((os.path.basename(rel), s.split))
            written[s.index] = rel
            width, height = self.image_size or (s.width, s.height)
            row_id = self.image_id.format(**values)
            t = self._table_for(s)
            rows = by_table.setdefault(t, [])
            regions = [lab for lab in s.labels if lab != self.empty_label]
            if not regions:
                rows.append(self._row(row_id, s.labels[0] if self.label_column else None, self.empty_values[0] if self.empty_values else "-1"))
            for i, lab in enumerate(regions):
                mask = np.zeros((height, width), dtype=bool)
                own = [b for b in s.boxes if b.label == lab]
                if own:
                    for b in own:
                        mask[int(b.y1) : int(b.y2), int(b.x1) : int(b.x2)] = True
                else:
                    band = width / len(regions)
                    mask[height // 4 : (3 * height) // 4, int(i * band + band * 0.2) : int((i + 1) * band - band * 0.2)] = True
                rows.append(self._row(row_id, lab, encode_rle(mask, self.rle_order, self.rle_starts, self.rle_base)))
        for t, rows in sorted(by_table.items()):
            spec = self.tables[t]
            header = [self.id_column] + ([self.label_column] if self.label_column else []) + [self.rle_column]
            values = {"split": spec.split or "train"}
            tpath = root / PathPattern(spec.path).fill({n: values.get(n, "x") for n in PathPattern(spec.path).placeholders}, star="labels")
            sep = spec.sep or ("\t" if tpath.suffix.lower() in (".tsv", ".txt") else ",")
            buf = io.StringIO()
            writer = csv.writer(buf, delimiter=sep, lineterminator="\n")
            for _ in range(spec.header_row):
                writer.writerow([""] * len(header))
            writer.writerow(header)
            writer.writerows(rows)
            tpath.parent.mkdir(parents=True, exist_ok=True)
            tpath.write_text(buf.getvalue(), encoding="utf-8")
        if self.split_lists:
            write_split_lists(self, root, listed)
        return written

    def _row(self, row_id: str, label: str | None, rle: str) -> list[str]:
        return [row_id] + ([label or ""] if self.label_column else []) + [rle]

    def _table_for(self, s: FakeSample) -> int:
        for i, spec in enumerate(self.tables):
            if spec.split is not None and self.map_split(spec.split)[0] == s.split:
                return i
        return 0


def _template_names(template: str) -> list[str]:
    return [f for _, f, _, _ in string.Formatter().parse(template) if f]

