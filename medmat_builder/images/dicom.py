"""DICOM files to 8-bit pixels: parse, check, decode (:mod:`~medmat_builder.images.dicom_decoders`), show as a viewer does.

Monochrome images are shown as a DICOM viewer shows them (:func:`render_monochrome`, PS3.3 C.11 and
PS3.4 N.2.1.1), with pydicom's own transforms:

1. Modality LUT (``pydicom.pixels.apply_modality_lut``): Rescale Slope/Intercept, or the Modality LUT
   Sequence.
2. VOI (``pydicom.pixels.apply_voi_lut`` with ``prefer_lut=False``): the first Window Center/Width with
   its VOI LUT Function (LINEAR, LINEAR_EXACT, SIGMOID); the window's output range (pydicom's, from
   Bits Stored and the rescale) becomes 0-255. Without a usable window, the first VOI LUT Sequence
   item; its first and last entries become 0 and 255. Without either, the image's own min-max.
   A window that the standard forbids (LINEAR width below 1, a width of 0) is ignored, not guessed.
3. MONOCHROME1 (0 is white) is inverted, so bright means dense in every output image.

Palette colour is expanded; YBR is delivered as RGB. Multi-frame files are refused (``multiframe``), so
are files whose header says Burned In Annotation = YES (``unsupported``: their pixels may show patient
data). Only pixels leave this module: no header value (other than a transfer syntax UID) reaches the
output bytes, the ids, or any error message.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from medmat_builder.images.convert import collapse_gray, encode_png, scale_color
from medmat_builder.images.dicom_decoders import PixelDataError, decode_pixel_array, decoder_problem
from medmat_builder.images.dicom_syntaxes import transfer_syntax_name, undecodable_detail
from medmat_builder.images.loaded import LoadedImage, fail


class NotDicom(Exception):
    """The bytes are not a DICOM file after all (tried without the 128-byte preamble)."""


# --------------------------------------------------------------------------- DICOM
def looks_like_dicom(data: bytes) -> bool:
    return len(data) >= 132 and data[128:132] == b"DICM"


def load_dicom(data: bytes, name: str | Path, max_pixels: int, *, force: bool = False) -> LoadedImage:
    import pydicom
    from pydicom.errors import InvalidDicomError
    from pydicom.pixels import apply_color_lut

    # Messages below are fixed texts: a pydicom message could quote a header value.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ds = pydicom.dcmread(io.BytesIO(data), force=force)
        except InvalidDicomError:
            if force:
                raise NotDicom() from None
            raise fail("corrupt", name, "DICOM file cannot be parsed") from None
        except EOFError:
            raise fail("truncated", name, "DICOM file ends inside its header") from None
        except Exception:
            if force:
                raise NotDicom() from None
            raise fail("corrupt", name, "DICOM file cannot be parsed") from None
        if force and not any(tag in ds for tag in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
            if len(ds) == 0 or "SOPClassUID" not in ds and "Rows" not in ds:
                raise NotDicom()
        if "PixelData" not in ds:
            sop = ds.get("SOPClassUID") or getattr(getattr(ds, "file_meta", None), "MediaStorageSOPClassUID", None)
            if len(ds) == 0 or "Image Storage" in str(getattr(sop, "name", "")):
                raise fail("truncated", name, "DICOM image file ends before its pixel data")
            raise fail("unsupported", name, "DICOM object has no (integer) pixel data (not an image object)")
        if str(ds.get("BurnedInAnnotation", "")).strip().upper() == "YES":
            raise fail("unsupported", name, "DICOM says Burned In Annotation = YES: its pixels may show patient data")
        try:
            frames = int(ds.get("NumberOfFrames") or 1)
            rows, cols = int(ds.Rows), int(ds.Columns)
        except (AttributeError, TypeError, ValueError):
            raise fail("corrupt", name, "DICOM header lacks a valid Rows/Columns/Number of Frames") from None
        if frames > 1:
            raise fail("multiframe", name, f"multi-frame DICOM with {frames} frames; refusing to pick a frame")
        if rows <= 0 or cols <= 0:
            raise fail("corrupt", name, f"DICOM header gives an empty size {cols}x{rows}")
        if rows * cols > max_pixels:
            raise fail("too_large", name, f"DICOM is {cols}x{rows} pixels, over the limit of {max_pixels:,}")
        photometric = str(ds.get("PhotometricInterpretation", "")).strip().upper()
        _ensure_transfer_syntax(ds)
        tsyntax = str(ds.file_meta.TransferSyntaxUID)
        problem = decoder_problem(tsyntax)
        if problem is not None:
            raise fail("unsupported_dicom", name, problem)
        ts_name = f"{transfer_syntax_name(tsyntax)} ({tsyntax})"
        try:
            arr = decode_pixel_array(ds).array
        except PixelDataError as exc:  # no decoder may be given this stream (its text holds no header value)
            raise fail("corrupt", name, f"DICOM pixel data in {ts_name} cannot be decoded: {exc}") from None
        except NotImplementedError:
            raise fail("unsupported_dicom", name, undecodable_detail(tsyntax)) from None
        except ValueError as exc:
            if "less than expected" in str(exc) or "truncat" in str(exc).lower():
                raise fail("truncated", name, "DICOM pixel data is shorter than its header says") from None
            raise fail("corrupt", name, f"DICOM pixel data in {ts_name} cannot be decoded") from None
        except Exception:  # every installed decoder refused the data: a damaged or non-conformant stream
            raise fail("corrupt", name, f"DICOM pixel data in {ts_name} cannot be decoded "
                                         "(the installed decoders reject it: damaged or non-conformant)") from None

        if photometric in ("MONOCHROME1", "MONOCHROME2"):
            if arr.ndim != 2:
                raise fail("unsupported", name, f"{photometric} DICOM with pixel array shape {arr.shape}")
            img = Image.fromarray(np.ascontiguousarray(render_monochrome(arr, ds)), mode="L")
        elif photometric == "PALETTE COLOR":
            rgb = np.asarray(apply_color_lut(arr, ds))
            img = Image.fromarray(scale_color(rgb, 16 if rgb.max(initial=0) > 255 else 8), mode="RGB")
        elif photometric in ("RGB", "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT", "YBR_PARTIAL_420"):
            if arr.ndim != 3 or arr.shape[-1] != 3:
                raise fail("unsupported", name, f"colour DICOM with pixel array shape {arr.shape}")
            bits = int(ds.get("BitsStored") or ds.get("BitsAllocated") or 8)
            img = Image.fromarray(scale_color(arr, bits), mode="RGB")
        else:
            raise fail("unsupported", name, f"DICOM photometric interpretation {photometric or 'missing'!r} is not supported")

    img = collapse_gray(img)
    return LoadedImage.of(img, encode_png(img), "png", file_data=data, kept_original=False, source_format="DICOM")


def _ensure_transfer_syntax(ds) -> None:
    """Files without a meta header (no preamble) still say how they were encoded: record it."""
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

    meta = getattr(ds, "file_meta", None)
    if meta is not None and "TransferSyntaxUID" in meta:
        return
    implicit, little = getattr(ds, "original_encoding", (True, True))
    if meta is None:
        meta = FileMetaDataset()
        ds.file_meta = meta
    if implicit:
        meta.TransferSyntaxUID = ImplicitVRLittleEndian
    else:
        meta.TransferSyntaxUID = ExplicitVRLittleEndian if little else ExplicitVRBigEndian


def render_monochrome(arr: np.ndarray, ds) -> np.ndarray:
    """8-bit grey levels of a MONOCHROME1/2 pixel array as a viewer shows it (see the module docstring)."""
    from pydicom.pixels import apply_modality_lut

    values = np.asarray(apply_modality_lut(arr, ds))
    out = _apply_window(values, ds)
    if out is None:
        out = _apply_voi_lut_sequence(values, ds)
    if out is None:
        values = values.astype(np.float64)
        out = _stretch(values, float(values.min()), float(values.max()))
    if str(ds.get("PhotometricInterpretation", "")).strip().upper() == "MONOCHROME1":
        out = 255 - out
    return out


def _apply_window(values: np.ndarray, ds) -> np.ndarray | None:
    """Window Center/Width through pydicom, its output range mapped to 0-255; ``None`` without a usable window."""
    from pydicom.pixels import apply_voi_lut

    if ds.get("WindowCenter") is None or ds.get("WindowWidth") is None:
        return None
    try:
        shown = apply_voi_lut(values, ds, prefer_lut=False)
        # The range pydicom maps a window onto (from Bits Stored, Pixel Representation, the rescale):
        # the images of -inf and +inf, whatever the VOI LUT Function.
        lo, hi = apply_voi_lut(np.array([-np.inf, np.inf]), ds, prefer_lut=False)
    except (ValueError, TypeError, AttributeError, IndexError):  # a width the standard forbids, odd values
        return None
    return _stretch(np.asarray(shown, dtype=np.float64), float(lo), float(hi))


def _apply_voi_lut_sequence(values: np.ndarray, ds) -> np.ndarray | None:
    """The first VOI LUT Sequence item through pydicom; its first and last entries become 0 and 255."""
    from pydicom.pixels import apply_voi

    seq = ds.get("VOILUTSequence")
    if not seq or seq[0].get("LUTDescriptor") is None or seq[0].get("LUTData") is None:
        return None
    try:
        entries, first = int(seq[0].LUTDescriptor[0]) or 2**16, int(seq[0].LUTDescriptor[1])
        # Clip inputs to the table first: pydicom indexes with unsigned 16-bit offsets.
        inputs = np.clip(np.rint(values.astype(np.float64)), first, first + entries - 1).astype(np.int64)
        shown = apply_voi(inputs, ds)
        lo, hi = apply_voi(np.array([first, first + entries - 1], dtype=np.int64), ds)
    except (ValueError, TypeError, AttributeError, IndexError, NotImplementedError):
        return None
    return _stretch(np.asarray(shown, dtype=np.float64), float(lo), float(hi))


def _stretch(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Map ``lo`` to 0 and ``hi`` to 255 (``lo > hi`` inverts), rounded and clipped to uint8."""
    if hi == lo:
        return np.zeros(values.shape, dtype=np.uint8)
    out = np.subtract(values, lo, dtype=np.float64)  # one new array, then in place: images are large
    out *= 255.0 / (hi - lo)
    np.rint(out, out=out)
    np.clip(out, 0, 255, out=out)
    np.nan_to_num(out, copy=False, nan=0.0)
    return out.astype(np.uint8)
