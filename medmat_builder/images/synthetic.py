"""Synthetic images for the demo, the tests and the benchmarks: clearly not medical, seeded, in any format.

Two simple pictures: :func:`fake_pixels` (a smooth gradient with a few discs) and :func:`block_pixels`
(an 8x8 random block pattern, tinted and marked with a white bar: the demo's records, whose perceptual
hashes are far apart so that no two demo images are near duplicates). :func:`write_fake_image` encodes
an array (or a seed for :func:`fake_pixels`) as PNG, JPEG, TIFF, BMP, GIF, WEBP, PGM/PPM or DICOM (a
Secondary Capture object without any identifying attribute). Same arguments, same bytes. The
realistic look-alike scans that measure the near-duplicate rule are :mod:`medmat_builder.images.lookalikes`.
"""

from __future__ import annotations

import hashlib
import io

import numpy as np
from PIL import Image

from medmat_builder.images.convert import PNG_COMPRESS_LEVEL, minmax_to_uint8

FAKE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif", ".webp", ".pgm", ".ppm", ".dcm", ".dicom")


def seeded_rng(*parts: object) -> np.random.Generator:
    """A numpy generator seeded by a hash of ``parts`` (the same parts, the same numbers, in any process)."""
    digest = hashlib.sha256(":".join(map(str, parts)).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def fake_pixels(seed: int, size: tuple[int, int] = (64, 64), *, color: bool = False) -> np.ndarray:
    """A clearly synthetic, seed-determined uint8 picture (smooth gradient plus discs), H x W (x 3)."""
    width, height = size
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    angle = rng.uniform(0, 2 * np.pi)
    base = 60 + 60 * (np.cos(angle) * xx / max(width, 1) + np.sin(angle) * yy / max(height, 1))
    for _ in range(int(rng.integers(2, 5))):
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        r = rng.uniform(0.08, 0.3) * min(width, height)
        base = base + rng.uniform(60, 120) * (((xx - cx) ** 2 + (yy - cy) ** 2) < r * r)
    gray = np.clip(base, 0, 255).astype(np.uint8)
    if not color:
        return gray
    tint = rng.uniform(0.6, 1.0, size=3)
    return np.clip(gray[..., None] * tint[None, None, :], 0, 255).astype(np.uint8)


def block_pixels(rng: np.random.Generator, size: tuple[int, int], tint: int) -> np.ndarray:
    """An RGB uint8 array: an 8x8 random block pattern (distinct perceptual hashes), tinted, marked."""
    w, h = size
    blocks = rng.integers(0, 256, size=(8, 8), dtype=np.uint8)
    grey = np.kron(blocks, np.ones((h // 8 + 1, w // 8 + 1), dtype=np.uint8))[:h, :w]
    img = np.stack([grey, (grey.astype(int) * (tint % 7 + 3) // 9).astype(np.uint8), 255 - grey], axis=-1)
    img[:3, :, :] = 255  # the "synthetic" bar along the top
    return img


def write_fake_image(
    source: np.ndarray | int,
    ext: str = ".png",
    *,
    size: tuple[int, int] = (64, 64),
    color: bool = False,
    rescale_slope: float = 1.0,
    rescale_intercept: float = 0.0,
    window: tuple[float, float] | None = None,
    photometric: str = "MONOCHROME2",
) -> bytes:
    """Encode a synthetic image (an array, or a seed for :func:`fake_pixels`) as a file of type ``ext``.

    Deterministic: same arguments, same bytes. ``.png`` keeps a ``uint16`` array as a 16-bit PNG.
    ``.dcm`` writes a Secondary Capture object with no identifying attributes at all (patient and
    study fields empty, UIDs derived from the pixels); integer arrays are stored as they are, with the
    given rescale, window and photometric interpretation (``.dicom`` is the same). ``.gif`` writes a
    single frame; ``.pgm`` and ``.ppm`` write Netpbm files (grey and RGB).
    """
    arr = fake_pixels(source, size, color=color) if isinstance(source, (int, np.integer)) else np.asarray(source)
    ext = ext.lower() if ext.startswith(".") else "." + ext.lower()
    if ext in (".dcm", ".dicom"):
        return _fake_dicom(arr, rescale_slope, rescale_intercept, window, photometric)
    if arr.dtype != np.uint8 and not (ext in (".png", ".tif", ".tiff") and arr.dtype == np.uint16 and arr.ndim == 2):
        arr = minmax_to_uint8(arr)
    img = Image.fromarray(np.ascontiguousarray(arr))
    buf = io.BytesIO()
    if ext == ".png":
        img.save(buf, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    elif ext in (".jpg", ".jpeg"):
        img.save(buf, format="JPEG", quality=92)
    elif ext in (".tif", ".tiff"):
        img.save(buf, format="TIFF", compression="tiff_deflate")
    elif ext == ".bmp":
        img.save(buf, format="BMP")
    elif ext == ".gif":
        img.save(buf, format="GIF")
    elif ext == ".webp":
        img.save(buf, format="WEBP", lossless=True)
    elif ext in (".pgm", ".ppm"):
        img.save(buf, format="PPM")
    else:
        raise ValueError(f"write_fake_image: unsupported extension {ext!r}; use one of {', '.join(FAKE_EXTENSIONS)}")
    return buf.getvalue()


def _fake_dicom(arr: np.ndarray, slope: float, intercept: float, window: tuple[float, float] | None,
                photometric: str) -> bytes:
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    digest = hashlib.sha256(arr.tobytes() + str(arr.shape).encode() + str(arr.dtype).encode()).hexdigest()
    sop_uid = generate_uid(entropy_srcs=["medmat-fake-sop", digest])
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"  # Secondary Capture Image Storage
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = generate_uid(entropy_srcs=["medmat-fake-implementation"])
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = sop_uid
    ds.StudyInstanceUID = generate_uid(entropy_srcs=["medmat-fake-study", digest])
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=["medmat-fake-series", digest])
    ds.Modality = "OT"
    ds.PatientName = ""
    ds.PatientID = ""
    ds.ImageComments = "SYNTHETIC medmat demo image; not patient data"
    ds.Rows, ds.Columns = int(arr.shape[0]), int(arr.shape[1])
    if arr.ndim == 3:
        data = np.ascontiguousarray(arr.astype(np.uint8))
        ds.SamplesPerPixel = 3
        ds.PhotometricInterpretation = "RGB"
        ds.PlanarConfiguration = 0
        ds.BitsAllocated = ds.BitsStored = 8
        ds.HighBit = 7
        ds.PixelRepresentation = 0
    else:
        if arr.dtype == np.uint8:
            data, bits, signed = arr, 8, 0
        elif arr.dtype in (np.int16, np.int32, np.int64, np.int8) and arr.min(initial=0) < 0:
            data, bits, signed = arr.astype("<i2"), 16, 1
        else:
            data, bits, signed = arr.astype("<u2"), 16, 0
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = photometric
        ds.BitsAllocated = ds.BitsStored = bits
        ds.HighBit = bits - 1
        ds.PixelRepresentation = signed
        if slope != 1.0 or intercept != 0.0:
            ds.RescaleSlope = f"{slope:g}"
            ds.RescaleIntercept = f"{intercept:g}"
        if window is not None:
            ds.WindowCenter = f"{window[0]:g}"
            ds.WindowWidth = f"{window[1]:g}"
        data = np.ascontiguousarray(data)
    ds.PixelData = data.tobytes()
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()
