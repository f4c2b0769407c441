"""``masks``: images paired with segmentation masks found by patterns that share placeholders.

An image and its mask(s) belong together when every placeholder the two patterns share (``{id}``,
and ``{split}`` or ``{label}`` when both capture it) has the same value (case-insensitive). Files
matching ``masks`` are never taken as images. YAML::

    layout:
      kind: masks
      images: "ISIC-2017_{split}_Data/{id}.jpg"
      masks: "ISIC-2017_{split}_Part1_GroundTruth/{id}_segmentation.png"
      mask_values: {nonzero: lesion}      # mask pixel -> raw label (see below)
      split_map: {Training: train, Validation: train, Test_v2: test}

``mask_values`` keys: ``nonzero`` (any "on" pixel of a binary mask; lossy JPEG masks are
thresholded), a grey level / palette index (``"0"``, ``"255"``, ``"2"``), or a colour
``"#RRGGBB"`` for colour-coded masks. A value ``"{label}"`` takes the label captured by the
``images`` pattern (class-per-folder sources whose masks are binary, e.g. BUSI). Default:
``{nonzero: "{label}"}`` when ``images`` captures ``{label}``.

Several mask files per image:

- ``masks`` captures ``{class}``: one binary mask file per class (``leftMask/x.png``,
  ``x_BE.tif``); the class text is the raw label, or ``classes`` maps it to one (``null`` ignores
  that class's files);
- ``masks`` contains ``*`` after the shared placeholders (``{id}_mask*.png``): every matching file
  is one more mask of the same image, all read with ``mask_values``.

``missing_mask``: ``drop`` (default; counted as ``missing_mask``) or ``keep`` (the image is kept
without mask, e.g. normal images that have no structure to locate).

Records carry ``mask`` (paths joined by ``|``) and ``mask_labels`` as documented in
:mod:`medmat_builder.build.boxes`; their ``labels`` are the raw labels the mask(s) can hold (those of
``mask_labels``: the classes found, every label of ``mask_values``, or the captured ``{label}``
it refers to); which are really present is only known once
:func:`medmat_builder.build.boxes.resolve_boxes` reads the mask. An image kept without mask
(``missing_mask: keep``) has the captured ``{label}`` if any, else no label.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from medmat_builder.layouts.base import LayoutBase, ScanSource, fill_fake_path, write_bytes
from medmat_builder.layouts.patterns import PathPattern, RelativePattern, accepts_image, prefer_declared_extension
from medmat_builder.layouts.split_lists import listed_split, read_split_lists, write_split_lists
from medmat_builder.records import ANY_FOREGROUND, COLOR_FLAG, MASK_SEPARATOR, FakeSample, RawRecord, color_value

NONZERO = "nonzero"
LABEL_REF = "{label}"


def parse_mask_value(key: str) -> int:
    """YAML key of ``mask_values`` -> mask value code of :mod:`medmat_builder.build.boxes`."""
    k = str(key).strip()
    if k.lower() == NONZERO:
        return ANY_FOREGROUND
    if k.startswith("#"):
        return color_value(k)
    if k.isdigit():
        v = int(k)
        if v >= COLOR_FLAG:
            raise ValueError(f"mask value {k} is too large for a grey level")
        return v
    raise ValueError(f"mask value {key!r} must be 'nonzero', a grey level like '255' or a colour like '#FF0000'")


class MasksLayout(LayoutBase):
    kind: Literal["masks"]
    images: RelativePattern = Field(description="Pattern of the images; captures {id} (maybe {split}, {label}).")
    masks: RelativePattern = Field(description="Pattern of the masks; shares placeholders with images; maybe {class} or *.")
    mask_values: dict[str, str] | None = Field(
        default=None, description="Mask pixel ('nonzero', grey level, '#RRGGBB') -> raw label or '{label}'."
    )
    classes: dict[str, str | None] | None = Field(
        default=None, description="With {class} in masks: captured class -> raw label (null: ignore)."
    )
    missing_mask: Literal["drop", "keep"] = "drop"

    @model_validator(mode="after")
    def _check(self) -> "MasksLayout":
        img = PathPattern(self.images).placeholders
        msk = PathPattern(self.masks).placeholders
        if "id" not in img or "id" not in msk:
            raise ValueError("both images and masks patterns must capture {id}")
        if "class" in msk:
            if self.mask_values and set(self.mask_values) != {NONZERO}:
                raise ValueError("with {class} in masks, mask_values may only be {nonzero: ...}")
        elif self.mask_values is None and "label" not in img:
            raise ValueError("give mask_values (mask pixel -> raw label) or capture {label} in images")
        for key, lab in (self.mask_values or {}).items():
            parse_mask_value(key)
            if lab == LABEL_REF and "label" not in img:
                raise ValueError("mask_values uses '{label}' but images does not capture {label}")
        return self

    # ------------------------------------------------------------------ helpers
    @property
    def _shared(self) -> list[str]:
        msk = PathPattern(self.masks).placeholders
        return [p for p in PathPattern(self.images).placeholders if p in msk and p != "class"]

    def _values(self, captured_label: str | None) -> list[tuple[int, str]]:
        spec = self.mask_values if self.mask_values is not None else {NONZERO: LABEL_REF}
        out = []
        for key, lab in spec.items():
            raw = captured_label if lab == LABEL_REF else lab
            if raw is not None:
                out.append((parse_mask_value(key), raw))
        return out

    def _class_label(self, cls: str) -> str | None:
        if self.classes is None:
            return cls
        for k, v in self.classes.items():
            if k.lower() == cls.lower():
                return v
        return cls

    # ------------------------------------------------------------------ reading
    def scan(self, source: ScanSource, root: Path) -> Iterator[RawRecord]:
        index = self.file_index(root)
        listed = read_split_lists(self, index, root, source.key)
        mpat = self.mask_pattern(self.masks)
        shared = self._shared
        per_class = "class" in mpat.placeholders
        found: dict[tuple[str, ...], list[tuple[str, str | None]]] = {}
        mask_files: set[str] = set()
        for path, groups in prefer_declared_extension(
                ((p, g) for p, g in index.matching(mpat) if accepts_image(p)), mpat.extension):
            mask_files.add(path)
            key = tuple(groups[p].lower() for p in shared)
            found.setdefault(key, []).append((path, groups.get("class")))
        for path, groups in self.matching_images(index, self.images):
            if path in mask_files:
                continue
            captured = groups.get("label")
            labels: tuple[str, ...] = (captured,) if captured is not None else ()
            split: str | None = None
            raw_split, reason, detail = listed_split(self, listed.for_path(path), groups.get("split"))
            if reason is None:
                split, reason, detail = self.resolve_split(raw_split)
            if reason:
                yield RawRecord(source.key, path, path, labels, drop_reason=reason, detail=detail)
                continue
            hits = sorted(found.get(tuple(groups[p].lower() for p in shared), []))
            if not hits:
                if self.missing_mask == "keep":
                    yield RawRecord(source.key, path, path, labels, split=split)
                else:
                    yield RawRecord(source.key, path, path, labels, drop_reason="missing_mask",
                                    detail=f"no file matching {self.masks!r} for image {path!r}")
                continue
            mask_labels: list[tuple[int, str]] = []
            paths: list[str] = []
            if per_class:
                value = ANY_FOREGROUND
                for mpath, cls in hits:
                    lab = self._class_label(cls or "")
                    if lab is None:
                        continue
                    paths.append(mpath)
                    mask_labels.append((value, lab))
            elif len(hits) == 1:
                paths = [hits[0][0]]
                mask_labels = self._values(captured)
            else:  # several masks of one image, each read with the same values
                values = self._values(captured)
                if len(values) != 1:
                    yield RawRecord(source.key, path, path, labels, drop_reason="ambiguous_mask",
                                    detail=f"{len(hits)} masks for {path!r} but mask_values has "
                                           f"{len(values)} entries; several files need one entry")
                    continue
                paths = [h[0] for h in hits]
                mask_labels = values * len(paths)
            if not paths:
                yield RawRecord(source.key, path, path, labels, drop_reason="missing_mask",
                                detail=f"every mask of {path!r} is of an ignored class")
                continue
            labels = tuple(dict.fromkeys(lab for _, lab in mask_labels))
            yield RawRecord(source.key, path, path, labels, split=split,
                            mask=MASK_SEPARATOR.join(paths), mask_labels=tuple(mask_labels))

    # ------------------------------------------------------------------ writing (inverse)
    def write_fake(self, source: ScanSource, root: Path, samples: list[FakeSample]) -> dict[int, str]:
        ipat, mpat = PathPattern(self.images), PathPattern(self.masks)
        written: dict[int, str] = {}
        per_class = "class" in mpat.placeholders
        label_in_path = "label" in ipat.placeholders
        default_split = next(iter(self.split_map), None)
        listed: list[tuple[str, str | None]] = []
        for s in samples:
            values = {name: f"x{s.index:05d}" for name in set(ipat.placeholders) | set(mpat.placeholders)}
            values["id"] = f"fake{s.index:05d}"
            if label_in_path:
                values["label"] = s.labels[0]
            if "split" in values:
                values["split"] = self.raw_split_for(s.split) or default_split or "train"
            rel = fill_fake_path(ipat, values, s)
            if not self.accepts(rel):
                rel += s.ext
            write_bytes(root / rel, s.image)
            listed.append((os.path.basename(rel), s.split))
            written[s.index] = rel
            dir_star = s.dir_star or "fake"
            if per_class:
                for lab in s.labels:
                    cls = self._class_for(lab)
                    mvals = dict(values, **{"class": cls})
                    own = [b for b in s.boxes if b.label == lab] if s.boxes else None
                    data = _mask_bytes(s, [(255, lab)], own, mpat.pattern)
                    write_bytes(root / _mask_path(mpat, mvals, dir_star), data)
            else:
                pairs = self._values(s.labels[0] if label_in_path else None)
                by_label = {lab: v for v, lab in pairs}
                wanted = [(by_label.get(lab, pairs[0][0] if pairs else ANY_FOREGROUND), lab) for lab in s.labels]
                data = _mask_bytes(s, wanted, list(s.boxes) or None, mpat.pattern)
                write_bytes(root / _mask_path(mpat, values, dir_star), data)
        if self.split_lists:
            write_split_lists(self, root, listed)
        return written

    def _class_for(self, raw_label: str) -> str:
        for k, v in (self.classes or {}).items():
            if v == raw_label:
                return k
        return raw_label


def _mask_path(pattern: PathPattern, values: dict[str, str], dir_star: str = "fake") -> str:
    rel = pattern.fill(values, star="", dir_star=dir_star)
    if rel.endswith("."):  # "{id}.*": any extension
        rel += "png"
    elif not os.path.splitext(rel)[1]:
        rel += ".png"
    return rel


def _mask_bytes(s: FakeSample, wanted: list[tuple[int, str]], boxes, pattern: str) -> bytes:
    """A synthetic mask: ``s.mask`` if given, else each wanted label's value painted in its boxes
    (``s.boxes`` of that label, else one rectangle per label in its own band of the image)."""
    from PIL import Image, ImageDraw

    ext = os.path.splitext(pattern)[1].lower() or ".png"
    fmt = {".jpg": "JPEG", ".jpeg": "JPEG", ".bmp": "BMP", ".tif": "TIFF", ".tiff": "TIFF", ".gif": "GIF"}.get(ext, "PNG")
    if s.mask is not None:
        if fmt == "PNG":
            return s.mask
        with Image.open(io.BytesIO(s.mask)) as im:
            buf = io.BytesIO()
            im.convert("RGB" if im.mode not in ("L", "1") else "L").save(buf, format=fmt)
            return buf.getvalue()
    colour = any(v >= COLOR_FLAG for v, _ in wanted)
    inverted = any(v == 0 for v, _ in wanted)
    background = 255 if inverted else 0
    im = Image.new("RGB" if colour else "L", (s.width, s.height), (0, 0, 0) if colour else background)
    draw = ImageDraw.Draw(im)
    n = max(1, len(wanted))
    for i, (v, lab) in enumerate(wanted):
        fill = _fill_of(v, colour)
        own = [b for b in (boxes or []) if b.label == lab]
        if own:
            for b in own:
                draw.rectangle([b.x1, b.y1, b.x2 - 1, b.y2 - 1], fill=fill)
        else:  # one rectangle per label, in its own horizontal band
            band = s.width / n
            x1, x2 = int(i * band + band * 0.2), int((i + 1) * band - band * 0.2) - 1
            draw.rectangle([x1, s.height // 4, max(x1, x2), (3 * s.height) // 4], fill=fill)
    buf = io.BytesIO()
    im.save(buf, format=fmt)
    return buf.getvalue()


def _fill_of(value: int, colour: bool):
    if value == ANY_FOREGROUND:
        return (255, 255, 255) if colour else 255
    if value >= COLOR_FLAG:
        packed = value & 0xFFFFFF
        return (packed >> 16, (packed >> 8) & 0xFF, packed & 0xFF)
    return (value, value, value) if colour else value
