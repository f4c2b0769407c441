"""What loading one image gives: a :class:`LoadedImage` ready for a record, or an :class:`ImageError`.

Errors carry a ``reason`` from :data:`IMAGE_ERROR_REASONS` (the same names as the build report's drop
reasons) and a ``detail`` that never holds a path or a DICOM header value.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from PIL import Image

from medmat_builder.images.hashes import fingerprint, pixel_hash

ImageReason = Literal["corrupt", "truncated", "empty", "too_large", "unsupported", "unsupported_dicom", "multiframe"]


IMAGE_ERROR_REASONS: tuple[str, ...] = (
    "corrupt", "truncated", "empty", "too_large", "unsupported", "unsupported_dicom", "multiframe",
)


class ImageError(Exception):
    """An image that cannot be used; ``reason`` is one of :data:`IMAGE_ERROR_REASONS`.

    ``str(err)`` is ``"<path>: <detail>"``. ``detail`` alone never holds a path or a DICOM header
    value, so it is safe to write into a build report.
    """

    def __init__(self, reason: str, message: str, *, path: str | Path | None = None, detail: str | None = None):
        if reason not in IMAGE_ERROR_REASONS:
            raise ValueError(f"unknown image error reason {reason!r}")
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.path = str(path) if path is not None else None
        self.detail = detail if detail is not None else message

    def __reduce__(self):  # keep reason/detail across process pools
        return (_rebuild_image_error, (self.reason, self.message, self.path, self.detail))


def _rebuild_image_error(reason: str, message: str, path: str | None, detail: str) -> ImageError:
    return ImageError(reason, message, path=path, detail=detail)


def fail(reason: str, path: Path | str, detail: str) -> ImageError:
    return ImageError(reason, f"{path}: {detail}", path=path, detail=detail)


@dataclass(frozen=True)
class LoadedImage:
    """An image ready for a record: ``data`` is PNG or JPEG bytes (``format``)."""

    data: bytes
    format: Literal["png", "jpeg"]
    width: int
    height: int
    #: xxh3-128 of the decoded 8-bit pixels (mode, size, bytes): equal for pixel-identical images.
    pixel_hash: str
    #: 64-bit perceptual hash (imagehash.phash) as an int; compare with :func:`phash_distance`.
    phash: int
    #: The grey :data:`THUMBNAIL_SIDE` x :data:`THUMBNAIL_SIDE` image (uint8, row-major) the perceptual
    #: hash is computed from; :mod:`medmat_builder.images.duplicates` compares it to confirm a near duplicate.
    thumbnail: bytes
    #: True when ``data`` is the original image data (with its metadata segments removed, see
    #: :func:`strip_metadata`), False when it was converted to PNG.
    kept_original: bool
    #: What the file really was ("PNG", "JPEG", "TIFF", "DICOM" ...), whatever its extension.
    source_format: str
    #: EXIF Orientation (2-8) applied to the stored pixels, or 1 when none was: boxes drawn on the
    #: file's stored pixel grid move with :func:`medmat_builder.build.boxes.orient_boxes`.
    orientation: int = 1
    #: The file's bytes as read from disk (a reference, not a copy): :attr:`file_sha256` hashes them.
    file_data: bytes = field(default=b"", repr=False)

    @functools.cached_property
    def file_sha256(self) -> str:
        """sha256 of the file as read from disk, computed when first asked for (the build never needs it)."""
        return hashlib.sha256(self.file_data).hexdigest()

    @classmethod
    def of(cls, pixels: Image.Image, data: bytes, format: Literal["png", "jpeg"], *, file_data: bytes,
           kept_original: bool, source_format: str, orientation: int = 1) -> LoadedImage:
        """The record's image: ``data`` stored for the 8-bit ``pixels`` it decodes to (size and hashes from
        them); ``file_data`` is the file it was read from."""
        phash, thumbnail = fingerprint(pixels)
        return cls(data=data, format=format, width=pixels.width, height=pixels.height, pixel_hash=pixel_hash(pixels),
                   phash=phash, thumbnail=thumbnail, kept_original=kept_original, source_format=source_format,
                   orientation=orientation, file_data=file_data)
