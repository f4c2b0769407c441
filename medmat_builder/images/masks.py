"""Masks to pixel boxes: decode a mask file, pick each label's foreground, one box per connected component.

Mask conventions (what a layout puts in ``RawRecord.mask`` / ``mask_labels``)
-----------------------------------------------------------------------------
``mask`` is a path relative to the source folder, or several paths joined by
:data:`~medmat_builder.records.MASK_SEPARATOR` (one mask file per class, or several lesion masks of
one image). ``mask_labels`` is a tuple of ``(value, raw_label)``:

- with one mask file, every pair applies to that file;
- with several files, pair *i* applies to file *i* (same count required).

``value`` selects the foreground pixels of a label:

- :data:`~medmat_builder.records.ANY_FOREGROUND` (``-1``): any "on" pixel of a binary mask: ``> 0``
  when the mask's maximum is 1 (0/1 masks), else ``>= 128`` for 8-bit masks (tolerates lossy JPEG
  masks), else ``> 0``;
- ``0 <= value < COLOR_FLAG``: pixels whose grey level (or palette index for palette PNGs)
  equals ``value`` (multi-class label masks, inverted masks where 0 is the structure);
- ``value >= COLOR_FLAG``: ``COLOR_FLAG | 0xRRGGBB``, pixels of exactly that RGB colour
  (colour-coded masks); see :func:`color_value`.

Components (8-connectivity) smaller than :func:`min_component_area`
(``max(MIN_AREA_PIXELS, MIN_AREA_FRACTION * width * height)``) are specks (annotation noise, JPEG
artefacts of lossy masks) and are ignored. Box coordinates are pixel *edges*: a component covering
columns 3..7 has ``x1 = 3, x2 = 8``, so a box of the whole image is ``(0, 0, width, height)``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from medmat_builder.images.dicom_decoders import decode_pixel_array
from medmat_builder.records import ANY_FOREGROUND, COLOR_FLAG, MASK_SEPARATOR, Box, color_value  # noqa: F401 (kept here too)

MIN_AREA_PIXELS = 16


MIN_AREA_FRACTION = 0.0005


class MaskError(RuntimeError):
    """A mask file is missing or unreadable; the message names the file and the source."""


def min_component_area(width: int, height: int) -> int:
    """Smallest connected component (in pixels) that counts as a structure, not a speck."""
    return max(MIN_AREA_PIXELS, int(round(MIN_AREA_FRACTION * width * height)))


def split_mask_paths(mask: str) -> list[str]:
    """The mask files of a record (one, or several joined by :data:`MASK_SEPARATOR`)."""
    return [p for p in mask.split(MASK_SEPARATOR) if p]


def foreground(array: np.ndarray, value: int) -> np.ndarray:
    """Boolean foreground of one label in a decoded mask array (see the module docstring)."""
    if value >= COLOR_FLAG:
        packed = value & 0xFFFFFF
        if array.ndim == 2:  # a grey mask asked for a grey colour
            r, g, b = packed >> 16, (packed >> 8) & 0xFF, packed & 0xFF
            return array == r if r == g == b else np.zeros(array.shape, dtype=bool)
        rgb = array[..., :3].astype(np.int64)
        return ((rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]) == packed
    grey = array if array.ndim == 2 else array[..., :3].max(axis=-1)
    if value == ANY_FOREGROUND:
        top = int(grey.max()) if grey.size else 0
        if top <= 1 or grey.dtype != np.uint8:
            return grey > 0
        return grey >= 128
    if array.ndim == 3:  # grey value asked of an RGB-stored mask: all channels must agree
        rgb = array[..., :3]
        return np.all(rgb == value, axis=-1)
    return grey == value


def boxes_from_array(
    array: np.ndarray, mask_labels: Iterable[tuple[int, str]], min_area: int | None = None
) -> list[Box]:
    """Pixel boxes of the connected components of each label's foreground in one mask array."""
    from scipy import ndimage

    height, width = array.shape[:2]
    floor = min_component_area(width, height) if min_area is None else min_area
    structure = np.ones((3, 3), dtype=bool)
    out: list[Box] = []
    for value, label in mask_labels:
        fg = foreground(array, value)
        if not fg.any():
            continue
        labelled, n = ndimage.label(fg, structure=structure)
        if n == 0:
            continue
        areas = np.bincount(labelled.ravel(), minlength=n + 1)
        for idx, sl in enumerate(ndimage.find_objects(labelled), start=1):
            if sl is None or areas[idx] < floor:
                continue
            ys, xs = sl
            out.append(Box(label, float(xs.start), float(ys.start), float(xs.stop), float(ys.stop)))
    return out


def read_mask(path: Path) -> np.ndarray:
    """Decode a mask file to an array: palette PNGs keep their indices, 16-bit stays 16-bit.

    DICOM masks (files with the ``DICM`` marker, e.g. Duke Liver's per-slice masks) are read with
    pydicom; anything else with Pillow.
    """
    with open(path, "rb") as fh:
        head = fh.read(132)
    if head[128:132] == b"DICM":
        import pydicom

        arr = decode_pixel_array(pydicom.dcmread(str(path))).array
        return arr[0] if arr.ndim == 3 and arr.shape[-1] not in (3, 4) else arr  # first frame

    with Image.open(path) as im:
        im.load()
        if im.mode == "P":
            return np.asarray(im)
        if im.mode in ("1", "L", "I;16", "I;16B", "I;16L", "I"):
            arr = np.asarray(im)
            return arr.astype(np.uint8) if arr.dtype == bool else arr
        if im.mode in ("LA",):
            return np.asarray(im.convert("L"))
        return np.asarray(im.convert("RGB"))


def mask_boxes(
    source_root: Path,
    mask: str,
    mask_labels: Sequence[tuple[int, str]],
    image_size: tuple[int, int] | None = None,
    source: str = "?",
) -> list[Box]:
    """Boxes of a record's mask file(s), scaled to ``image_size`` (width, height) if it differs."""
    paths = split_mask_paths(mask)
    if len(paths) > 1 and len(mask_labels) != len(paths):
        raise MaskError(
            f"source {source}: {len(paths)} mask files but {len(mask_labels)} mask labels for {mask!r}"
        )
    out: list[Box] = []
    for i, rel in enumerate(paths):
        pairs = [mask_labels[i]] if len(paths) > 1 else list(mask_labels)
        full = Path(source_root) / rel
        try:
            array = read_mask(full)
        except FileNotFoundError:
            raise MaskError(f"source {source}: mask file {full} is missing") from None
        except Exception as exc:  # noqa: BLE001 - any decoder failure names the file
            raise MaskError(f"source {source}: mask file {full} could not be read: {exc}") from None
        mh, mw = array.shape[:2]
        w, h = image_size if image_size else (mw, mh)
        min_area = min_component_area(mw, mh)
        sx, sy = w / mw, h / mh
        for b in boxes_from_array(array, pairs, min_area):
            out.append(Box(b.label, b.x1 * sx, b.y1 * sy, b.x2 * sx, b.y2 * sy))
    return out
