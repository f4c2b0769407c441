"""``folders``: the label (and optionally the split) is read from the file's path.

Covers class-per-folder sources (``train/NORMAL/x.jpeg``), split folders, and labels encoded in file
names (``{label}_*.png``). Validation folders (``val``, ``valid``, ``validation``, ``dev``) go to
train unless ``split_map`` says otherwise; official split lists (``split_lists``, see
:mod:`medmat_builder.layouts.split_lists`) override the split the path gives. YAML::

    layout:
      kind: folders
      images: "{split}/{label}/*.jpeg"     # must capture {label}; {split} optional
      split_map: {train: train, test: test}
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from medmat_builder.layouts.base import LayoutBase, ScanSource
from medmat_builder.layouts.patterns import PathPattern, RelativePattern
from medmat_builder.layouts.split_lists import listed_split, read_split_lists, write_split_lists
from medmat_builder.records import FakeSample, RawRecord


class FoldersLayout(LayoutBase):
    kind: Literal["folders"]
    images: RelativePattern = Field(description="Path pattern of the images; captures {label}, maybe {split}.")
    label_separator: str | None = Field(
        default=None, description="Split a captured label into several (multi-label folder names)."
    )

    @field_validator("images")
    @classmethod
    def _needs_label(cls, v: str) -> str:
        if "label" not in PathPattern(v).placeholders:
            raise ValueError(f"images pattern {v!r} must capture {{label}}")
        return v

    def scan(self, source: ScanSource, root: Path) -> Iterator[RawRecord]:
        index = self.file_index(root)
        listed = read_split_lists(self, index, root, source.key)
        key, sep = source.key, self.label_separator
        labels_of: dict[str, tuple[str, ...]] = {}  # raw label -> labels, and raw split -> resolved, worked out once
        split_of: dict[str | None, tuple[str | None, str | None, str | None]] = {}

        def labels_for(raw_label: str) -> tuple[str, ...]:
            labels = labels_of.get(raw_label)
            if labels is None:
                labels = labels_of[raw_label] = (
                    tuple(x.strip() for x in raw_label.split(sep) if x.strip()) if sep else (raw_label,))
            return labels

        def split_for(raw_split: str | None) -> tuple[str | None, str | None, str | None]:
            resolved = split_of.get(raw_split)
            if resolved is None:
                resolved = split_of[raw_split] = self.resolve_split(raw_split)
            return resolved

        images = self.matching_images(index, self.images)
        if not self.split_lists:  # the split comes from the path: the files of one folder share one record shape
            for groups, paths in _runs(images):
                split, reason, detail = split_for(groups.get("split"))
                labels = labels_for(groups["label"])
                for path in paths:
                    yield RawRecord(key, path, path, labels, split=split, drop_reason=reason, detail=detail)  # type: ignore[arg-type]
            return
        for path, groups in images:
            labels = labels_for(groups["label"])
            raw_split, reason, detail = listed_split(self, listed.for_path(path), groups.get("split"))
            if reason is None:
                split, reason, detail = split_for(raw_split)
            else:
                split = None
            yield RawRecord(key, path, path, labels, split=split, drop_reason=reason, detail=detail)  # type: ignore[arg-type]

    def write_fake(self, source: ScanSource, root: Path, samples: list[FakeSample]) -> dict[int, str]:
        pattern = PathPattern(self.images)
        default_split = next(iter(self.split_map), None)
        listed = []
        written: dict[int, str] = {}
        for s in samples:
            values = {name: f"x{s.index:05d}" for name in pattern.placeholders}
            values["label"] = (self.label_separator or "").join(s.labels) if self.label_separator else s.labels[0]
            if "split" in values:
                values["split"] = self.raw_split_for(s.split) or default_split or "train"
            rel = self.place_fake_image(root, pattern, values, s)
            listed.append((os.path.basename(rel), s.split))
            written[s.index] = rel
        if self.split_lists:
            write_split_lists(self, root, listed)
        return written


def _runs(matches: Iterable[tuple[str, dict[str, str]]]) -> Iterator[tuple[dict[str, str], list[str]]]:
    """The paths of ``matches`` in runs that share one captures dict (the files of one folder, see
    :meth:`~medmat_builder.layouts.file_index.FileIndex.matches`), in order."""
    run: list[str] = []
    caps: dict[str, str] | None = None
    for path, groups in matches:
        if groups is not caps:
            if run:
                yield caps, run  # type: ignore[misc]
            run, caps = [], groups
        run.append(path)
    if run:
        yield caps, run  # type: ignore[misc]
