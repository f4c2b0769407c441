"""DICOM specifics for :mod:`medmat_builder.images`: which transfer syntaxes decode, and grey-level display.

Decoding itself is pydicom's (``Dataset.pixel_array``) with its pixel-data plugins, installed as
regular dependencies of medmat: ``pylibjpeg`` with ``pylibjpeg-libjpeg`` (the JPEG family, JPEG-LS),
``pylibjpeg-openjpeg`` (JPEG 2000, HTJ2K) and ``pylibjpeg-rle`` (RLE), plus ``pyjpegls`` (JPEG-LS).
:data:`TRANSFER_SYNTAXES` lists what a build decodes and with which package; docs/images.md shows the
same table. A file in any other syntax is refused with reason ``unsupported_dicom`` and the one-line
detail of :func:`undecodable_detail` (the syntax's UID and name, and what would decode it).

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
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class TransferSyntax:
    """A transfer syntax that a build decodes, and the packages that decode it here (first one used)."""

    uid: str
    name: str
    decoders: tuple[str, ...]
    lossless: bool


_NATIVE = ("pydicom",)
_JPEG = ("pylibjpeg-libjpeg",)
_J2K = ("pylibjpeg-openjpeg",)

#: Every transfer syntax a build decodes. ``decoders`` are PyPI packages, in pydicom's order of trial.
TRANSFER_SYNTAXES: tuple[TransferSyntax, ...] = (
    TransferSyntax("1.2.840.10008.1.2", "Implicit VR Little Endian", _NATIVE, True),
    TransferSyntax("1.2.840.10008.1.2.1", "Explicit VR Little Endian", _NATIVE, True),
    TransferSyntax("1.2.840.10008.1.2.1.99", "Deflated Explicit VR Little Endian", _NATIVE, True),
    TransferSyntax("1.2.840.10008.1.2.2", "Explicit VR Big Endian", _NATIVE, True),
    TransferSyntax("1.2.840.10008.1.2.4.50", "JPEG Baseline (Process 1), 8-bit", (*_JPEG, "pillow"), False),
    TransferSyntax("1.2.840.10008.1.2.4.51", "JPEG Extended (Process 2 and 4), 12-bit", _JPEG, False),
    TransferSyntax("1.2.840.10008.1.2.4.57", "JPEG Lossless, Non-Hierarchical (Process 14)", _JPEG, True),
    TransferSyntax("1.2.840.10008.1.2.4.70", "JPEG Lossless, Process 14 [Selection Value 1]", _JPEG, True),
    TransferSyntax("1.2.840.10008.1.2.4.80", "JPEG-LS Lossless", (*_JPEG, "pyjpegls"), True),
    TransferSyntax("1.2.840.10008.1.2.4.81", "JPEG-LS Lossy (Near-Lossless)", (*_JPEG, "pyjpegls"), False),
    TransferSyntax("1.2.840.10008.1.2.4.90", "JPEG 2000 (Lossless Only)", (*_J2K, "pillow"), True),
    TransferSyntax("1.2.840.10008.1.2.4.91", "JPEG 2000", (*_J2K, "pillow"), False),
    TransferSyntax("1.2.840.10008.1.2.4.201", "High-Throughput JPEG 2000 (Lossless Only)", _J2K, True),
    TransferSyntax("1.2.840.10008.1.2.4.202", "High-Throughput JPEG 2000 with RPCL Options (Lossless Only)",
                   _J2K, True),
    TransferSyntax("1.2.840.10008.1.2.4.203", "High-Throughput JPEG 2000", _J2K, False),
    TransferSyntax("1.2.840.10008.1.2.5", "RLE Lossless", ("pylibjpeg-rle", "pydicom"), True),
)
_BY_UID = {ts.uid: ts for ts in TRANSFER_SYNTAXES}
#: The pydicom decoding plugin that each package of the table provides.
_PYDICOM_PLUGIN = {"pydicom": "pydicom", "pylibjpeg-libjpeg": "pylibjpeg", "pylibjpeg-openjpeg": "pylibjpeg",
                   "pylibjpeg-rle": "pylibjpeg", "pyjpegls": "pyjpegls", "pillow": "pillow"}

#: Syntaxes that no pydicom plugin decodes, by UID prefix, and what would (one phrase each).
_NO_PLUGIN: tuple[tuple[str, str], ...] = (
    ("1.2.840.10008.1.2.4.10", "it is video (MPEG-2, MPEG-4 or HEVC), which only a video decoder (ffmpeg, e.g. "
                               "through PyAV) would split into frames; medmat reads still images only"),
    ("1.2.840.10008.1.2.7.", "it is SMPTE ST 2110 video or audio, which only a video tool (ffmpeg) would read; "
                             "medmat reads still images only"),
    ("1.2.840.10008.1.2.4.94", "JPIP referenced: the pixels are not in the file but on a JPIP server"),
    ("1.2.840.10008.1.2.4.95", "JPIP referenced: the pixels are not in the file but on a JPIP server"),
    ("1.2.840.10008.1.2.4.204", "JPIP referenced: the pixels are not in the file but on a JPIP server"),
    ("1.2.840.10008.1.2.4.205", "JPIP referenced: the pixels are not in the file but on a JPIP server"),
    ("1.2.840.10008.1.2.4.9", "JPEG 2000 Part 2 multi-component: GDCM (python-gdcm, or gdcmconv --raw) may decode it; "
                              "no pydicom plugin does"),
    ("1.2.840.10008.1.2.4.", "a retired JPEG process: transcode it with DCMTK (dcmdjpeg) or GDCM (gdcmconv --raw) "
                             "first; no pydicom plugin decodes it"),
)
_UID_TEXT = re.compile(r"[0-9]+(\.[0-9]+)*")
_NOT_STANDARD = "not a transfer syntax of the DICOM standard"


def transfer_syntax_name(uid: str) -> str:
    """The standard name of a transfer syntax UID, or a fixed phrase for one outside the standard."""
    from pydicom.uid import UID

    if uid in _BY_UID:
        return _BY_UID[uid].name
    known = UID(uid)
    if not known.is_private and known.is_transfer_syntax:  # pydicom raises on is_transfer_syntax of a private UID
        return known.name
    return _NOT_STANDARD


def undecodable_detail(uid: str | None, missing: tuple[str, ...] = ()) -> str:
    """One line naming a transfer syntax (UID and name) that cannot be decoded here, and what would decode it.

    ``missing`` are packages of :data:`TRANSFER_SYNTAXES` that this environment lacks (for a syntax a
    build normally decodes). The text holds no header value other than the transfer syntax UID, and
    only when that UID is made of digits and dots as a UID must be.
    """
    uid = str(uid or "").strip()
    if not uid:
        return "DICOM file names no transfer syntax and its encoding cannot be told; nothing here decodes it"
    shown = uid if len(uid) <= 64 and _UID_TEXT.fullmatch(uid) else "(malformed UID)"
    head = f"DICOM transfer syntax {shown} ({transfer_syntax_name(uid)}) cannot be decoded here"
    if uid in _BY_UID:
        need = missing or _BY_UID[uid].decoders
        return f"{head}: install {' or '.join(need)} (a medmat dependency: rerun scripts/setup.sh)"
    for prefix, what in _NO_PLUGIN:
        if uid.startswith(prefix):
            return f"{head}: {what}"
    if transfer_syntax_name(uid) == _NOT_STANDARD:
        return f"{head}: a private or invalid UID, so no decoder is known; ask the archive which codec wrote it"
    return f"{head}: no pydicom plugin decodes it; GDCM (gdcmconv --raw) or DCMTK may transcode it"


def decoder_problem(uid: str | None) -> str | None:
    """``None`` when pydicom can decode pixel data in syntax ``uid`` here, else :func:`undecodable_detail`."""
    from pydicom.pixels import get_decoder

    try:
        decoder = get_decoder(str(uid or ""))
    except (NotImplementedError, ValueError):
        return undecodable_detail(uid)
    ts = _BY_UID.get(str(uid))
    if ts is None:
        return None if decoder.is_available else undecodable_detail(uid)
    # Only the packages of the table count: pydicom also offers Pillow for JPEG Extended, which
    # decodes no 12-bit stream, so a missing pylibjpeg-libjpeg would surface as a damaged file.
    wanted = {_PYDICOM_PLUGIN[package] for package in ts.decoders}
    if decoder.is_native and not decoder.available_plugins and "pydicom" in wanted:
        return None
    if wanted & set(decoder.available_plugins):
        return None
    return undecodable_detail(uid, ts.decoders)


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
