"""DICOM transfer syntaxes a build decodes, the packages that decode each, and how an undecodable one is named.

Decoding is pydicom's (``Dataset.pixel_array``) with its pixel-data plugins. The default install
(``setup.cfg`` ``install_requires``) holds only permissively licensed decoders (:data:`DECODER_PACKAGES`):
``python-gdcm`` (JPEG Baseline, Extended 12-bit, Lossless), ``pyjpegls`` (JPEG-LS),
``pylibjpeg-openjpeg`` (JPEG 2000, HTJ2K), ``pylibjpeg-rle`` (RLE) and Pillow (JPEG Baseline, JPEG 2000).
``pylibjpeg-libjpeg`` (GPL-3.0) is the optional extra ``dicom-gpl``: never needed, only tried after the
default decoders of a syntax (the JPEG family and JPEG-LS) have refused a stream.

:data:`TRANSFER_SYNTAXES` lists what a build decodes and with which packages, in the order they are
tried (:func:`medmat_builder.images.dicom_decoders.decode_pixel_array`); docs/images.md shows the same
table. A file in any other syntax is refused with reason ``unsupported_dicom`` and the one-line detail
of :func:`undecodable_detail` (the syntax's UID and name, and what would decode it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: SPDX identifiers that an Apache-2.0 project may require of its users (no copyleft).
PERMISSIVE_LICENSES = frozenset({"MIT", "MIT-CMU", "BSD-2-Clause", "BSD-3-Clause", "Apache-2.0"})


@dataclass(frozen=True)
class DecoderPackage:
    """A PyPI package that decodes DICOM pixel data through pydicom, and under which licence."""

    name: str
    #: SPDX identifier of its licence (python-gdcm: GDCM's BSD-3-Clause; its wheel's metadata says Apache-2.0).
    license: str
    #: The codec library inside, with its own licence.
    library: str
    #: The pydicom decoding plugins it provides (``Decoder.available_plugins`` labels).
    plugins: tuple[str, ...]
    #: ``None`` for the default install (``install_requires``), else the ``setup.cfg`` extra.
    extra: str | None = None

    @property
    def permissive(self) -> bool:
        """Whether an Apache-2.0 project may depend on it without its licence spreading."""
        return self.license in PERMISSIVE_LICENSES


#: Every package that :data:`TRANSFER_SYNTAXES` names, by PyPI name.
DECODER_PACKAGES: dict[str, DecoderPackage] = {p.name: p for p in (
    DecoderPackage("pydicom", "MIT", "pydicom (native and RLE decoding)", ("pydicom",)),
    DecoderPackage("python-gdcm", "BSD-3-Clause", "GDCM 3.2 (BSD-3-Clause; the wheel is Apache-2.0): IJG libjpeg "
                   "8/12/16-bit with GDCM's lossless patches", ("gdcm", "medmat-gdcm")),
    DecoderPackage("pyjpegls", "MIT", "CharLS 2.4 (BSD-3-Clause)", ("pyjpegls",)),
    DecoderPackage("pylibjpeg-openjpeg", "MIT", "OpenJPEG 2.5 (BSD-2-Clause)", ("pylibjpeg",)),
    DecoderPackage("pylibjpeg-rle", "MIT", "its own RLE decoder (MIT)", ("pylibjpeg",)),
    DecoderPackage("pillow", "MIT-CMU", "libjpeg-turbo (IJG, BSD-3-Clause), OpenJPEG (BSD-2-Clause)", ("pillow",)),
    DecoderPackage("pylibjpeg-libjpeg", "GPL-3.0-only", "Thomas Richter's libjpeg (GPL-3.0)", ("pylibjpeg",),
                   extra="dicom-gpl"),
)}


@dataclass(frozen=True)
class TransferSyntax:
    """A transfer syntax that a build decodes, and the packages that decode it, in the order they are tried."""

    uid: str
    name: str
    #: Packages of the default install (all permissive), first one first.
    decoders: tuple[str, ...]
    lossless: bool
    #: Packages of optional extras, tried after ``decoders`` when installed.
    optional: tuple[str, ...] = ()


_NATIVE = ("pydicom",)


_GPL_JPEG = ("pylibjpeg-libjpeg",)


_J2K = ("pylibjpeg-openjpeg", "pillow")


#: Every transfer syntax a build decodes, with the packages :func:`decode_pixel_array` tries, in order.
TRANSFER_SYNTAXES: tuple[TransferSyntax, ...] = (
    TransferSyntax("1.2.840.10008.1.2", "Implicit VR Little Endian", _NATIVE, True),
    TransferSyntax("1.2.840.10008.1.2.1", "Explicit VR Little Endian", _NATIVE, True),
    TransferSyntax("1.2.840.10008.1.2.1.99", "Deflated Explicit VR Little Endian", _NATIVE, True),
    TransferSyntax("1.2.840.10008.1.2.2", "Explicit VR Big Endian", _NATIVE, True),
    TransferSyntax("1.2.840.10008.1.2.4.50", "JPEG Baseline (Process 1), 8-bit", ("pillow", "python-gdcm"), False,
                   _GPL_JPEG),
    TransferSyntax("1.2.840.10008.1.2.4.51", "JPEG Extended (Process 2 and 4), 12-bit", ("python-gdcm",), False,
                   _GPL_JPEG),
    TransferSyntax("1.2.840.10008.1.2.4.57", "JPEG Lossless, Non-Hierarchical (Process 14)", ("python-gdcm",), True,
                   _GPL_JPEG),
    TransferSyntax("1.2.840.10008.1.2.4.70", "JPEG Lossless, Process 14 [Selection Value 1]", ("python-gdcm",), True,
                   _GPL_JPEG),
    TransferSyntax("1.2.840.10008.1.2.4.80", "JPEG-LS Lossless", ("pyjpegls",), True, _GPL_JPEG),
    TransferSyntax("1.2.840.10008.1.2.4.81", "JPEG-LS Lossy (Near-Lossless)", ("pyjpegls",), False, _GPL_JPEG),
    TransferSyntax("1.2.840.10008.1.2.4.90", "JPEG 2000 (Lossless Only)", _J2K, True),
    TransferSyntax("1.2.840.10008.1.2.4.91", "JPEG 2000", _J2K, False),
    TransferSyntax("1.2.840.10008.1.2.4.201", "High-Throughput JPEG 2000 (Lossless Only)", ("pylibjpeg-openjpeg",),
                   True),
    TransferSyntax("1.2.840.10008.1.2.4.202", "High-Throughput JPEG 2000 with RPCL Options (Lossless Only)",
                   ("pylibjpeg-openjpeg",), True),
    TransferSyntax("1.2.840.10008.1.2.4.203", "High-Throughput JPEG 2000", ("pylibjpeg-openjpeg",), False),
    TransferSyntax("1.2.840.10008.1.2.5", "RLE Lossless", ("pylibjpeg-rle", "pydicom"), True),
)


BY_UID = {ts.uid: ts for ts in TRANSFER_SYNTAXES}


JPEG_FAMILY = frozenset({"1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.57",
                          "1.2.840.10008.1.2.4.70"})


JPEG_LS = frozenset({"1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81"})


JPEG_EXTENDED = "1.2.840.10008.1.2.4.51"


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

    if uid in BY_UID:
        return BY_UID[uid].name
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
    if uid in BY_UID:
        need = missing or BY_UID[uid].decoders
        return f"{head}: install {' or '.join(need)} (a medmat dependency: rerun scripts/setup.sh)"
    for prefix, what in _NO_PLUGIN:
        if uid.startswith(prefix):
            return f"{head}: {what}"
    if transfer_syntax_name(uid) == _NOT_STANDARD:
        return f"{head}: a private or invalid UID, so no decoder is known; ask the archive which codec wrote it"
    return f"{head}: no pydicom plugin decodes it; GDCM (gdcmconv --raw) or DCMTK may transcode it"
