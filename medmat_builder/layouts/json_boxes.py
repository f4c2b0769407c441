"""``json_boxes``: box annotations in JSON files (COCO, or a list/dict of per-image entries).

Three shapes, chosen by ``format``:

- ``coco``: ``{"images": [{id, file_name}], "annotations": [{image_id, bbox: [x, y, w, h],
  category_id}], "categories": [{id, name}]}``; the raw label is the category name;
- ``list``: ``[{<id_field>: "x.png", <boxes_field>: [...], <labels_field>: [...]}, ...]``;
- ``dict``: ``{"<image id>": {<boxes_field>: [...]}, ...}``.

In ``list``/``dict`` a box is a list ``[x1, y1, x2, y2]`` (``box_format: xywh`` for ``[x, y, w,
h]``) or an object whose ``box_keys`` name the four numbers; its raw label comes from the parallel
list ``labels_field``, from the box object's ``label_key``, or is the constant ``label``.
An image with no box gets ``empty_label`` (e.g. "No Finding"), else no labels. YAML::

    layout:
      kind: json_boxes
      annotations:
        - {path: "ChestX_Det_train.json", split: train}
        - {path: "ChestX_Det_test.json", split: test}
      format: list
      images: "{split}/{id}.png"
      id_field: file_name
      boxes_field: boxes
      labels_field: syms
      empty_label: No Finding
      split_map: {train: train, test: test}

Image ids are matched like the ``table`` kind: without extension, zero padding ignored,
case-insensitive, by trailing segments for path-like ids.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from medmat_builder.layouts.base import LayoutBase, ScanSource, write_bytes
from medmat_builder.layouts.misses import missing_file_hint
from medmat_builder.layouts.patterns import (
    PathPattern,
    PathSegment,
    RelativePattern,
    declared_first,
)
from medmat_builder.layouts.split_lists import listed_split, read_split_lists, write_split_lists
from medmat_builder.layouts.tables import LayoutError, id_key, source_file
from medmat_builder.records import Box, FakeSample, RawRecord


class JsonFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    path: RelativePattern = Field(description="Pattern of the JSON file; may capture {split}.")
    split: PathSegment | None = Field(default=None, description="Raw split of every image of this file.")


class JsonBoxesLayout(LayoutBase):
    kind: Literal["json_boxes"]
    annotations: list[JsonFile] = Field(min_length=1)
    format: Literal["coco", "list", "dict"]
    images: RelativePattern = Field(description="Pattern locating an image; must capture {id}.")
    items_field: str | None = Field(default=None, description="list: key of the list when the file is an object.")
    id_field: str = "file_name"
    boxes_field: str = "boxes"
    labels_field: str | None = None
    label_key: str | None = None
    label: str | None = None
    box_keys: list[str] | None = Field(default=None, min_length=4, max_length=4)
    box_format: Literal["xyxy", "xywh"] = "xyxy"
    empty_label: str | None = None

    @model_validator(mode="after")
    def _check(self) -> "JsonBoxesLayout":
        if "id" not in PathPattern(self.images).placeholders:
            raise ValueError(f"images pattern {self.images!r} must capture {{id}}")
        if self.format != "coco":
            given = [x for x in (self.labels_field, self.label_key, self.label) if x is not None]
            if len(given) != 1:
                raise ValueError("give exactly one of labels_field, label_key or label")
        return self

    # ------------------------------------------------------------------ reading
    def _entries(self, data: Any, where: str) -> Iterator[tuple[str, list[tuple[str, tuple[float, ...]]]]]:
        """(image id, [(raw label, (x1, y1, x2, y2))]) per image of one JSON document."""
        if self.format == "coco":
            cats = {c["id"]: str(c["name"]) for c in data.get("categories", [])}
            names = {im["id"]: str(im["file_name"]) for im in data["images"]}
            boxes: dict[Any, list] = {k: [] for k in names}
            for ann in data.get("annotations", []):
                x, y, w, h = (float(v) for v in ann["bbox"])
                boxes.setdefault(ann["image_id"], []).append((cats.get(ann.get("category_id"), "object"), (x, y, x + w, y + h)))
            for k, name in names.items():
                yield name, boxes[k]
            return
        if self.format == "dict":
            items = [(str(k), v) for k, v in data.items()]
        else:
            seq = data[self.items_field] if self.items_field else data
            if not isinstance(seq, list):
                raise LayoutError(f"{where}: expected a list of entries (set items_field?)")
            items = [(str(v[self.id_field]), v) for v in seq]
        for image_id, entry in items:
            raw_boxes = entry.get(self.boxes_field) or []
            labels = entry.get(self.labels_field) or [] if self.labels_field else []
            out = []
            for i, b in enumerate(raw_boxes):
                if self.box_keys:
                    nums = [float(b[k]) for k in self.box_keys]
                else:
                    nums = [float(v) for v in b[:4]]
                if self.box_format == "xywh":
                    nums = [nums[0], nums[1], nums[0] + nums[2], nums[1] + nums[3]]
                if self.labels_field:
                    lab = str(labels[i]) if i < len(labels) else None
                elif self.label_key:
                    lab = str(b.get(self.label_key)) if isinstance(b, dict) else None
                else:
                    lab = self.label
                if lab is None:
                    raise LayoutError(f"{where}: box {i} of {image_id!r} has no label")
                out.append((lab, tuple(nums)))
            if self.labels_field and not raw_boxes:  # labels without boxes (image-level findings)
                out += [(str(lab), ()) for lab in labels]
            yield image_id, out

    def scan(self, source: ScanSource, root: Path) -> Iterator[RawRecord]:
        index = self.file_index(root)
        listed = read_split_lists(self, index, root, source.key)
        own_ext = self.image_pattern(self.images).extension
        images = self.images_by_key(index, lambda groups: id_key(groups["id"]), trailing=True)
        n_files = 0
        for spec in self.annotations:
            for jpath, jgroups in index.matching(PathPattern(spec.path)):
                n_files += 1
                jfile = source_file(root, jpath, source.key)
                try:
                    data = json.loads(jfile.read_text(encoding="utf-8-sig"))
                except Exception as exc:  # noqa: BLE001
                    raise LayoutError(f"source {source.key}: {jpath} is not readable JSON: {exc}") from None
                raw_split = spec.split or jgroups.get("split")
                try:
                    entries = list(self._entries(data, f"source {source.key}: {jpath}"))
                except (KeyError, TypeError, ValueError, IndexError) as exc:
                    raise LayoutError(f"source {source.key}: {jpath} does not have the {self.format!r} "
                                      f"shape the layout expects ({type(exc).__name__}: {exc})") from None
                for image_id, found in entries:
                    ref = f"{jpath}:{image_id}"
                    labels = tuple(dict.fromkeys(lab for lab, _ in found))
                    if not labels and self.empty_label is not None:
                        labels = (self.empty_label,)
                    boxes = tuple(Box(lab, *xyxy) for lab, xyxy in found if len(xyxy) == 4)
                    hits = sorted(images.get(id_key(image_id), []))
                    if len(hits) > 1 and raw_split:
                        narrowed = [h for h in hits if f"/{raw_split.lower()}" in "/" + h[0].lower()]
                        hits = narrowed or hits
                    if len(hits) > 1:
                        keep = declared_first([h[0] for h in hits], own_ext)
                        hits = [h for h in hits if h[0] in keep]
                    if not hits:
                        yield RawRecord(source.key, ref, "", labels, drop_reason="missing_image",
                                        detail=f"no file matching {self.images!r} for id {image_id!r}")
                        continue
                    if len(hits) > 1:
                        yield RawRecord(source.key, ref, hits[0][0], labels, drop_reason="ambiguous_image",
                                        detail=f"id {image_id!r} matches {len(hits)} files")
                        continue
                    path, groups = hits[0]
                    split: str | None = None
                    split_value, reason, detail = listed_split(self, listed.for_path(path),
                                                               raw_split or groups.get("split"))
                    if reason is None:
                        split, reason, detail = self.resolve_split(split_value)
                    if reason:
                        yield RawRecord(source.key, ref, path, labels, drop_reason=reason, detail=detail)
                        continue
                    yield RawRecord(source.key, ref, path, labels, split=split, boxes=boxes)  # type: ignore[arg-type]
        if n_files == 0:
            hint = missing_file_hint([a.path for a in self.annotations], index.files)
            raise LayoutError(f"source {source.key}: no JSON file matching "
                              f"{', '.join(a.path for a in self.annotations)} under {root}{hint}")

    # ------------------------------------------------------------------ writing (inverse)
    def write_fake(self, source: ScanSource, root: Path, samples: list[FakeSample]) -> dict[int, str]:
        ipat = PathPattern(self.images)
        groups: dict[int, list[tuple[FakeSample, str]]] = {}
        written: dict[int, str] = {}
        for s in samples:
            values = {n: f"x{s.index:05d}" for n in ipat.placeholders}
            values["id"] = f"fake{s.index:05d}"
            t = self._file_for(s)
            spec = self.annotations[t]
            if "split" in values:
                values["split"] = self.raw_split_for(s.split) or spec.split or next(iter(self.split_map), "train")
            rel = self.place_fake_image(root, ipat, values, s)
            written[s.index] = rel
            groups.setdefault(t, []).append((s, os.path.basename(rel)))
        if self.split_lists:
            write_split_lists(self, root, [(name, s.split) for items in groups.values() for s, name in items])
        for t, items in sorted(groups.items()):
            spec = self.annotations[t]
            doc = self._document(items)
            jpath = root / PathPattern(spec.path).fill(
                {n: (spec.split or "train") for n in PathPattern(spec.path).placeholders}, star="annotations")
            write_bytes(jpath, json.dumps(doc, indent=1).encode("utf-8"))
        return written

    def _fake_boxes(self, s: FakeSample) -> list[Box]:
        if s.boxes:
            return list(s.boxes)
        labs = [lab for lab in s.labels if lab != self.empty_label]
        n = max(1, len(labs))
        return [Box(lab, s.width * i / n + 1, s.height / 4, s.width * (i + 1) / n - 1, s.height * 3 / 4)
                for i, lab in enumerate(labs)]

    def _box_value(self, b: Box) -> Any:
        nums = [b.x1, b.y1, b.x2, b.y2]
        if self.box_format == "xywh":
            nums = [b.x1, b.y1, b.x2 - b.x1, b.y2 - b.y1]
        nums = [round(v, 2) for v in nums]
        if self.box_keys:
            obj: dict[str, Any] = dict(zip(self.box_keys, nums))
            if self.label_key:
                obj[self.label_key] = b.label
            return obj
        return nums

    def _document(self, items: list[tuple[FakeSample, str]]) -> Any:
        if self.format == "coco":
            cats: dict[str, int] = {}
            images, anns = [], []
            for n, (s, name) in enumerate(items, start=1):
                images.append({"id": n, "file_name": name, "width": s.width, "height": s.height})
                for b in self._fake_boxes(s):
                    cid = cats.setdefault(b.label, len(cats) + 1)
                    anns.append({"id": len(anns) + 1, "image_id": n, "category_id": cid,
                                 "bbox": [b.x1, b.y1, b.x2 - b.x1, b.y2 - b.y1]})
            return {"images": images, "annotations": anns,
                    "categories": [{"id": v, "name": k} for k, v in cats.items()]}
        entries = []
        for s, name in items:
            boxes = self._fake_boxes(s)
            entry: dict[str, Any] = {self.boxes_field: [self._box_value(b) for b in boxes]}
            if self.labels_field:
                entry[self.labels_field] = [b.label for b in boxes]
            entries.append((name, entry))
        if self.format == "dict":
            return {os.path.splitext(name)[0]: e for name, e in entries}
        seq = [{self.id_field: name, **e} for name, e in entries]
        return {self.items_field: seq} if self.items_field else seq

    def _file_for(self, s: FakeSample) -> int:
        for i, spec in enumerate(self.annotations):
            if spec.split is not None and self.map_split(spec.split)[0] == s.split:
                return i
        return 0

