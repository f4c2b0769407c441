"""Boxes of the detection/segmentation subsets: from annotations or masks to one answer text.

Three steps, used by the builder for every det/seg record:

1. :func:`resolve_boxes` gives pixel boxes of a :class:`~medmat_builder.records.RawRecord`: the
   record's own ``boxes`` when the source annotates boxes, else the connected components of its mask
   (:func:`medmat_builder.images.masks.mask_boxes`). Boxes and masks are drawn on the file's stored
   pixel grid; for a photo whose EXIF Orientation (2-8) was applied to the stored pixels, they move
   with it (:func:`orient_boxes`), so pixels and boxes share one frame.
2. :func:`normalize_boxes` turns pixel boxes into integers 0-1000 relative to the image size,
   ``[x1, y1, x2, y2]`` with ``x1 <= x2`` and ``y1 <= y2``, clamped to the image: a box of the whole
   image, ``(0, 0, width, height)``, normalizes to ``[0, 0, 1000, 1000]``.
3. :func:`format_box_answer` writes the answer text (:data:`~medmat_builder.records.ANSWER_FORMAT`).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from medmat_builder.images.masks import mask_boxes
from medmat_builder.records import NO_BOX_ANSWER, SCALE, Box, RawRecord

NormBox = tuple[str, int, int, int, int]


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
