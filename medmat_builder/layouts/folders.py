"""``folders``: the label (and optionally the split) is read from the file's path.

Covers class-per-folder sources (``train/NORMAL/x.jpeg``), split folders, and labels encoded in file
names (``{label}_*.png``). YAML::

    layout:
      kind: folders
      images: "{split}/{label}/*.jpeg"     # must capture {label}; {split} optional
      split_map: {train: train, val: train, test: test}
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field, field_validator

from medmat_builder.layouts.base import (
    IMAGE_EXTENSIONS,
    FakeSample,
    FileIndex,
    LayoutBase,
    PathPattern,
    RawRecord,
    accepts_image,
    fill_fake_path,
    write_bytes,
)

if TYPE_CHECKING:  # pragma: no cover
    from medmat_builder.registry import Source


class FoldersLayout(LayoutBase):
    kind: Literal["folders"]
    images: str = Field(description="Path pattern of the images; captures {label}, maybe {split}.")
    extensions: list[str] = Field(
        default_factory=list,
        description="Image extensions accepted when the pattern does not fix one (default: all).",
    )
    label_separator: str | None = Field(
        default=None, description="Split a captured label into several (multi-label folder names)."
    )

    @field_validator("images")
    @classmethod
    def _needs_label(cls, v: str) -> str:
        if "label" not in PathPattern(v).placeholders:
            raise ValueError(f"images pattern {v!r} must capture {{label}}")
        return v

    def _accepts(self, path: str) -> bool:
        return accepts_image(path, self.extensions)

    def scan(self, source: "Source", root: Path) -> Iterator[RawRecord]:
        pattern = PathPattern(self.images)
        for path, groups in FileIndex(root).matching(pattern, self.exclude_patterns):
            if not self._accepts(path):
                continue
            raw_label = groups["label"]
            labels = (
                tuple(x.strip() for x in raw_label.split(self.label_separator) if x.strip())
                if self.label_separator
                else (raw_label,)
            )
            split, reason, detail = self.resolve_split(groups.get("split"))
            yield RawRecord(source.key, path, path, labels, split=split, drop_reason=reason, detail=detail)

    def fake_extension(self) -> str:
        ext = os.path.splitext(self.images)[1].lower()
        if ext in IMAGE_EXTENSIONS:
            return ext
        if self.extensions:
            first = self.extensions[0].lower()
            return first if first.startswith(".") else "." + first
        return ".png"

    def write_fake(self, source: "Source", root: Path, samples: list[FakeSample]) -> dict[int, str]:
        pattern = PathPattern(self.images)
        default_split = next(iter(self.split_map), None)
        written: dict[int, str] = {}
        for s in samples:
            values = {name: f"x{s.index:05d}" for name in pattern.placeholders}
            values["label"] = (self.label_separator or "").join(s.labels) if self.label_separator else s.labels[0]
            if "split" in values:
                values["split"] = self.raw_split_for(s.split) or default_split or "train"
            rel = fill_fake_path(pattern, values, s)
            if os.path.splitext(rel)[1].lower() not in IMAGE_EXTENSIONS:
                rel += s.ext
            write_bytes(root / rel, s.image)
            written[s.index] = rel
        return written
