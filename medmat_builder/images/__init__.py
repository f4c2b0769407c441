"""Images: decode raw files safely (Pillow, DICOM), hash them, tell duplicates apart, decode masks, draw fakes.

- :mod:`~medmat_builder.images.decode`: :func:`load_image` (keep PNG/JPEG data, convert the rest to PNG);
  :mod:`~medmat_builder.images.convert` (8-bit conversion), :mod:`~medmat_builder.images.metadata`
  (metadata stripping), :mod:`~medmat_builder.images.dicom` with its decoders and transfer syntaxes;
- :mod:`~medmat_builder.images.hashes` (ids, pixel and perceptual hashes) and
  :mod:`~medmat_builder.images.duplicates` (exact and near duplicates by evidence);
- :mod:`~medmat_builder.images.masks` and :mod:`~medmat_builder.images.rle` (masks to pixel boxes);
- :mod:`~medmat_builder.images.synthetic` and :mod:`~medmat_builder.images.lookalikes` (synthetic
  images for the demo, tests and benchmarks); :mod:`~medmat_builder.images.deid` (identifying DICOM values).
"""

from medmat_builder.images.decode import MAX_IMAGE_PIXELS, load_image, load_image_bytes
from medmat_builder.images.duplicates import DuplicateIndex, DuplicateMatch, NearDuplicateRule, ThumbnailEdges
from medmat_builder.images.hashes import (
    THUMBNAIL_SIDE,
    UndecodableNameError,
    fingerprint,
    image_id,
    phash_distance,
    pixel_hash,
)
from medmat_builder.images.loaded import IMAGE_ERROR_REASONS, ImageError, LoadedImage
from medmat_builder.images.masks import MaskError
from medmat_builder.images.metadata import strip_metadata
from medmat_builder.images.synthetic import fake_pixels, write_fake_image

__all__ = [
    "IMAGE_ERROR_REASONS",
    "MAX_IMAGE_PIXELS",
    "THUMBNAIL_SIDE",
    "DuplicateIndex",
    "DuplicateMatch",
    "ImageError",
    "LoadedImage",
    "MaskError",
    "NearDuplicateRule",
    "ThumbnailEdges",
    "UndecodableNameError",
    "fake_pixels",
    "fingerprint",
    "image_id",
    "load_image",
    "load_image_bytes",
    "phash_distance",
    "pixel_hash",
    "strip_metadata",
    "write_fake_image",
]
