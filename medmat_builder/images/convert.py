"""Conversion of decoded images to the 8-bit ``L`` or ``RGB`` pixels a record stores, and their PNG encoding.

- 16-bit and 32-bit/float images are stretched min-max to 0-255 per image (medical 16-bit files
  rarely use the full range); palette images are expanded; alpha is composited over black (medical
  backgrounds are black); CMYK uses Pillow's plain conversion. An RGB image whose three channels are
  equal is stored as grayscale.
- An image whose EXIF says to rotate or mirror it (Orientation 2-8) is turned as displayed
  (:func:`apply_exif_orientation`); the caller moves its boxes with
  :func:`medmat_builder.build.boxes.orient_boxes`.
- :func:`encode_png` is deterministic (same pixels, same bytes) and writes no metadata chunk.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageOps

from medmat_builder.images.hashes import is_gray

PNG_COMPRESS_LEVEL = 6


def encode_png(img: Image.Image) -> bytes:
    """Deterministic PNG of an ``L``/``RGB`` image: fixed compression, no metadata chunks."""
    arr = np.asarray(img)
    fresh = Image.fromarray(np.ascontiguousarray(arr), mode=None)  # drops info: no ICC, dpi, text
    buf = io.BytesIO()
    fresh.save(buf, format="PNG", compress_level=PNG_COMPRESS_LEVEL, optimize=False)
    return buf.getvalue()


def apply_exif_orientation(im: Image.Image) -> tuple[Image.Image, int]:
    """The image as displayed and the EXIF Orientation applied (1: none; 2-8: mirrored and/or rotated)."""
    try:
        value = im.getexif().get(0x0112, 1)
        if value not in range(2, 9):  # 1 is "as stored"; other values mean nothing: use stored orientation
            return im, 1
        return ImageOps.exif_transpose(im), int(value)
    except Exception:  # a broken EXIF block must not lose the image; use stored orientation
        return im, 1


def to_8bit(im: Image.Image) -> Image.Image:
    """Map any Pillow mode to 8-bit ``L`` or ``RGB`` (see the module rules)."""
    mode = im.mode
    if mode in ("L", "RGB"):
        return im
    if mode == "1":
        return im.convert("L")
    if mode in ("P", "PA"):
        has_alpha = mode == "PA" or "transparency" in im.info
        im = im.convert("RGBA" if has_alpha else "RGB")
        mode = im.mode
        if mode == "RGB":
            return im
    if mode in ("RGBA", "RGBa", "LA", "La"):
        rgba = im.convert("RGBA")
        black = Image.new("RGBA", im.size, (0, 0, 0, 255))
        flat = Image.alpha_composite(black, rgba).convert("RGB")
        return flat.convert("L") if mode.startswith("L") else flat
    if mode.startswith("I") or mode == "F":
        arr = np.asarray(im)
        return Image.fromarray(minmax_to_uint8(arr.astype(np.float64)), mode="L")
    if mode in ("RGB;16", "RGBA;16") or mode.endswith(";16"):
        arr = np.asarray(im).astype(np.float64)
        return Image.fromarray(minmax_to_uint8(arr[..., :3]), mode="RGB")
    return im.convert("RGB")  # CMYK, YCbCr, LAB, HSV


def collapse_gray(img: Image.Image) -> Image.Image:
    if img.mode != "RGB":
        return img
    arr = np.asarray(img)
    if is_gray(arr):
        return Image.fromarray(np.ascontiguousarray(arr[..., 0]), mode="L")
    return img


def minmax_to_uint8(arr: np.ndarray) -> np.ndarray:
    arr = np.nan_to_num(arr.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    lo, hi = float(arr.min()), float(arr.max())
    if hi <= lo:
        return np.zeros(arr.shape, dtype=np.uint8)
    return np.clip(np.rint((arr - lo) * (255.0 / (hi - lo))), 0, 255).astype(np.uint8)


def scale_color(arr: np.ndarray, bits: int) -> np.ndarray:
    if arr.dtype == np.uint8 and bits <= 8:
        return np.ascontiguousarray(arr)
    top = float(2 ** max(bits, 1) - 1)
    return np.clip(np.rint(arr.astype(np.float64) * (255.0 / top)), 0, 255).astype(np.uint8)
