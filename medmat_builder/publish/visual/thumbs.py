"""Thumbnails of the visual report: small JPEGs as ``data:`` URIs, with a record's boxes drawn on them."""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from typing import Any

from PIL import Image, ImageDraw

#: Longest edge of a thumbnail, in pixels (smaller images are scaled up to it, so boxes stay visible).
THUMB_EDGE = 96
#: JPEG quality of a thumbnail (4:4:4 chroma, so a drawn box keeps its colour).
JPEG_QUALITY = 70
#: Box colours, by the box label's order of first appearance in a record (then repeating).
BOX_COLOURS: tuple[tuple[int, int, int], ...] = ((255, 0, 0), (0, 255, 0), (0, 128, 255), (255, 255, 0), (255, 0, 255))
#: Width of a drawn box outline, in thumbnail pixels.
BOX_WIDTH = 2


def thumbnail_size(width: int, height: int, edge: int = THUMB_EDGE) -> tuple[int, int]:
    """The size of a thumbnail of a ``width`` x ``height`` image: the longest edge is ``edge``."""
    scale = edge / max(width, height, 1)
    return max(1, round(width * scale)), max(1, round(height * scale))


def scale_box(box: dict[str, Any], size: tuple[int, int]) -> tuple[int, int, int, int]:
    """A box on the 0-1000 grid (the ``boxes`` column) in pixels of an image of ``size``."""
    w, h = size
    return (round(box["x1"] * (w - 1) / 1000), round(box["y1"] * (h - 1) / 1000),
            round(box["x2"] * (w - 1) / 1000), round(box["y2"] * (h - 1) / 1000))


def _displayable(img: Image.Image) -> Image.Image:
    """``img`` as 8-bit grey (``L``, kept for grey images: a smaller JPEG) or ``RGB``."""
    if img.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        lo, hi = img.getextrema()
        span = (hi - lo) or 1
        img = img.point(lambda v: (v - lo) * 255 / span)
    return img.convert("L" if img.mode in ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F") else "RGB")


def make_thumbnail(data: bytes, boxes: Sequence[dict[str, Any]] = (), edge: int = THUMB_EDGE) -> Image.Image:
    """Decode ``data`` (encoded image bytes), fit it to ``edge`` pixels and draw ``boxes`` (0-1000 grid) on it."""
    with Image.open(io.BytesIO(data)) as src:
        img = _displayable(src)
    if boxes:
        img = img.convert("RGB")
    img = img.resize(thumbnail_size(*img.size, edge=edge), Image.Resampling.BICUBIC)
    if boxes:
        draw = ImageDraw.Draw(img)
        colours: dict[str, tuple[int, int, int]] = {}
        for box in boxes:
            colour = colours.setdefault(str(box.get("label", "")), BOX_COLOURS[len(colours) % len(BOX_COLOURS)])
            draw.rectangle(scale_box(box, img.size), outline=colour, width=BOX_WIDTH)
    return img


def data_uri(img: Image.Image) -> str:
    """``img`` as a JPEG ``data:`` URI (same pixels, same text)."""
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=JPEG_QUALITY, subsampling=0 if img.mode == "RGB" else -1)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def thumbnail_uri(data: bytes, boxes: Sequence[dict[str, Any]] = ()) -> str | None:
    """A thumbnail of ``data`` as a ``data:`` URI, or ``None`` when there is no image (a text-only row)."""
    if not data:
        return None
    try:
        return data_uri(make_thumbnail(data, boxes))
    except (OSError, ValueError, Image.DecompressionBombError):
        return None
