"""Boxes for the detection/segmentation subsets: from annotations or masks to one answer text.

Three steps, used by the builder for every det/seg record:

1. :func:`resolve_boxes` gives pixel boxes of a :class:`~medmat_builder.layouts.base.RawRecord`:
   the record's own ``boxes`` when the source annotates boxes, else the connected components of
   its mask (8-connectivity, one box per component and raw label). Components smaller than
   :func:`min_component_area` (``max(MIN_AREA_PIXELS, MIN_AREA_FRACTION * width * height)``) are
   specks (annotation noise, JPEG artefacts of lossy masks) and are ignored. Boxes and masks are
   drawn on the file's stored pixel grid; for a photo whose EXIF Orientation (2-8) was applied to
   the stored pixels, they move with it (:func:`orient_boxes`), so pixels and boxes share one frame.
2. :func:`normalize_boxes` turns pixel boxes into integers 0-1000 relative to the image size,
   ``[x1, y1, x2, y2]`` with ``x1 <= x2`` and ``y1 <= y2``, clamped to the image.
3. :func:`format_box_answer` writes the answer text (see :data:`ANSWER_FORMAT`).

Mask conventions (what a layout puts in ``RawRecord.mask`` / ``mask_labels``)
-----------------------------------------------------------------------------
``mask`` is a path relative to the source folder, or several paths joined by
:data:`MASK_SEPARATOR` (one mask file per class, or several lesion masks of one image).
``mask_labels`` is a tuple of ``(value, raw_label)``:

- with one mask file, every pair applies to that file;
- with several files, pair *i* applies to file *i* (same count required).

``value`` selects the foreground pixels of a label:

- :data:`ANY_FOREGROUND` (``-1``): any "on" pixel of a binary mask: ``> 0`` when the mask's
  maximum is 1 (0/1 masks), else ``>= 128`` for 8-bit masks (tolerates lossy JPEG masks),
  else ``> 0``;
- ``0 <= value < COLOR_FLAG``: pixels whose grey level (or palette index for palette PNGs)
  equals ``value`` (multi-class label masks, inverted masks where 0 is the structure);
- ``value >= COLOR_FLAG``: ``COLOR_FLAG | 0xRRGGBB``, pixels of exactly that RGB colour
  (colour-coded masks); see :func:`color_value`.

Box coordinates are pixel *edges*: a component covering columns 3..7 has ``x1 = 3, x2 = 8``, so
a box of the whole image is ``(0, 0, width, height)`` and normalizes to ``[0, 0, 1000, 1000]``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from medmat_builder.layouts.base import Box, RawRecord

MASK_SEPARATOR = "|"
ANY_FOREGROUND = -1
COLOR_FLAG = 1 << 24
MIN_AREA_PIXELS = 16
MIN_AREA_FRACTION = 0.0005
SCALE = 1000
NO_BOX_ANSWER = "none"
ANSWER_FORMAT = "label: [x1, y1, x2, y2]; label: [x1, y1, x2, y2]"

NormBox = tuple[str, int, int, int, int]


class MaskError(RuntimeError):
    """A mask file is missing or unreadable; the message names the file and the source."""


def color_value(rgb: str | Sequence[int]) -> int:
    """Mask value of an RGB colour: ``"#00AA55"`` or ``(0, 170, 85)`` -> ``COLOR_FLAG | 0x00AA55``."""
    if isinstance(rgb, str):
        text = rgb.strip().lstrip("#")
        if len(text) != 6:
            raise ValueError(f"colour {rgb!r} must look like #RRGGBB")
        packed = int(text, 16)
    else:
        r, g, b = (int(c) for c in rgb)
        packed = (r << 16) | (g << 8) | b
    return COLOR_FLAG | packed


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

    from medmat_builder.layouts.base import Box  # late: the layouts package imports this module

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
    from PIL import Image

    with open(path, "rb") as fh:
        head = fh.read(132)
    if head[128:132] == b"DICM":
        import pydicom

        from medmat_builder.dicom import decode_pixel_array

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
    from medmat_builder.layouts.base import Box

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


def decode_rle(
    rle: str,
    width: int,
    height: int,
    order: str = "row",
    starts: str = "absolute",
    base: int = 1,
) -> np.ndarray:
    """Decode a run-length string ``"start length start length ..."`` to a boolean mask (h, w).

    ``order``: ``row`` (pixels numbered along rows, Kaggle's UW-Madison) or ``column`` (down
    columns first, SIIM-ACR). ``starts``: ``absolute`` positions, or ``relative`` (each start
    counts from the end of the previous run, SIIM-ACR stage 1). ``base``: 1 when the first pixel
    is numbered 1 (the Kaggle convention), 0 when it is 0.
    """
    values = [int(v) for v in rle.split()]
    if len(values) % 2:
        raise ValueError(f"run-length string has an odd number of values ({len(values)})")
    flat = np.zeros(width * height, dtype=bool)
    pos = 0
    for start, length in zip(values[0::2], values[1::2]):
        if length < 0 or start < 0:
            raise ValueError(f"negative start or length in run-length string ({start} {length})")
        begin = pos + start if starts == "relative" else start - base
        if begin < 0 or begin + length > flat.size:
            raise ValueError(f"run {start} {length} falls outside a {width}x{height} image")
        flat[begin : begin + length] = True
        pos = begin + length
    if order == "column":
        return flat.reshape(width, height).T
    return flat.reshape(height, width)


def encode_rle(mask: np.ndarray, order: str = "row", starts: str = "absolute", base: int = 1) -> str:
    """Inverse of :func:`decode_rle` (used to write synthetic sources)."""
    flat = (mask.T if order == "column" else mask).reshape(-1).astype(np.int8)
    padded = np.concatenate([[0], flat, [0]])
    edges = np.flatnonzero(padded[1:] != padded[:-1])
    runs = edges.reshape(-1, 2)
    out: list[int] = []
    pos = 0
    for begin, end in runs:
        if starts == "relative":
            out += [int(begin - pos), int(end - begin)]
            pos = int(end)
        else:
            out += [int(begin + base), int(end - begin)]
    return " ".join(map(str, out))


#: Where EXIF Orientation ``o`` puts the point ``(x, y)`` of a stored ``w`` x ``h`` pixel grid when the
#: image is displayed (Pillow's ``ImageOps.exif_transpose``): mirrors for 2 and 4, a half turn for 3,
#: a transpose for 5, quarter turns for 6 (clockwise) and 8, the anti-diagonal transpose for 7.
_ORIENT_POINT = {
    1: lambda x, y, w, h: (x, y),
    2: lambda x, y, w, h: (w - x, y),
    3: lambda x, y, w, h: (w - x, h - y),
    4: lambda x, y, w, h: (x, h - y),
    5: lambda x, y, w, h: (y, x),
    6: lambda x, y, w, h: (h - y, x),
    7: lambda x, y, w, h: (h - y, w - x),
    8: lambda x, y, w, h: (y, w - x),
}


def stored_size(image_size: tuple[int, int], orientation: int) -> tuple[int, int]:
    """``(width, height)`` of the stored pixel grid of an image displayed at ``image_size``."""
    return (image_size[1], image_size[0]) if orientation in (5, 6, 7, 8) else image_size


def orient_boxes(boxes: Iterable[Box], orientation: int, size: tuple[int, int]) -> list[Box]:
    """Boxes drawn on a stored ``size`` = ``(width, height)`` pixel grid, moved to the frame that EXIF
    ``orientation`` (1-8) displays, the frame in which :func:`medmat_builder.images.load_image` stores
    the pixels. Orientation 1 (or any value outside 1-8) leaves them as they are.
    """
    from medmat_builder.layouts.base import Box

    move = _ORIENT_POINT.get(orientation)
    if move is None or orientation == 1:
        return list(boxes)
    w, h = size
    out: list[Box] = []
    for b in boxes:
        xa, ya = move(b.x1, b.y1, w, h)
        xb, yb = move(b.x2, b.y2, w, h)
        out.append(Box(b.label, min(xa, xb), min(ya, yb), max(xa, xb), max(ya, yb)))
    return out


def resolve_boxes(
    record: "RawRecord", source_root: Path, image_size: tuple[int, int], orientation: int = 1
) -> list[Box]:
    """Pixel boxes of a record: its annotated ``boxes``, else its mask's connected components.

    ``image_size`` is the loaded image's ``(width, height)`` and ``orientation`` the EXIF
    Orientation that loading applied (``LoadedImage.orientation``). Annotated boxes and masks are
    taken to be drawn on the file's stored pixel grid (a mask is read as stored, its own EXIF
    ignored), so both are moved into the displayed frame with :func:`orient_boxes`; mask boxes are
    first scaled to the stored grid when the mask has another resolution. A record with neither
    boxes nor mask has no boxes (``[]``).
    """
    size = stored_size(image_size, orientation)
    if record.boxes:
        boxes = list(record.boxes)
    elif record.mask:
        boxes = mask_boxes(Path(source_root), record.mask, record.mask_labels, size, record.source)
    else:
        return []
    return orient_boxes(boxes, orientation, size)


def normalize_boxes(boxes: Iterable[Box], width: int, height: int) -> list[NormBox]:
    """Pixel boxes -> ``(label, x1, y1, x2, y2)`` integers 0-1000, ordered corners, clamped."""
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    out: list[NormBox] = []
    for b in boxes:
        xa, xb = sorted((b.x1, b.x2))
        ya, yb = sorted((b.y1, b.y2))
        coords = [
            _clamp(round(xa / width * SCALE)),
            _clamp(round(ya / height * SCALE)),
            _clamp(round(xb / width * SCALE)),
            _clamp(round(yb / height * SCALE)),
        ]
        out.append((b.label, coords[0], coords[1], coords[2], coords[3]))
    return out


def sort_boxes(norm_boxes: Iterable[NormBox]) -> list[NormBox]:
    """Deterministic order: by label, then top-to-bottom, left-to-right."""
    return sorted(norm_boxes, key=lambda b: (b[0], b[2], b[1], b[4], b[3]))


def format_box_answer(norm_boxes: Iterable[NormBox], with_labels: bool = True) -> str:
    """Answer text: ``"polyp: [102, 220, 380, 515]; polyp: [600, 40, 720, 180]"``.

    Boxes are sorted with :func:`sort_boxes`; ``with_labels=False`` drops the ``label: `` prefix.
    No box gives :data:`NO_BOX_ANSWER`.
    """
    parts = []
    for label, x1, y1, x2, y2 in sort_boxes(norm_boxes):
        coords = f"[{x1}, {y1}, {x2}, {y2}]"
        parts.append(f"{label}: {coords}" if with_labels else coords)
    return "; ".join(parts) if parts else NO_BOX_ANSWER


def _clamp(v: float) -> int:
    return int(min(SCALE, max(0, v)))
