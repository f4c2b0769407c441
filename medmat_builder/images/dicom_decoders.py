"""Decoding DICOM pixel data with pydicom's plugins, in the order medmat sets, and never with a stream that crashes one.

medmat sets the order in which decoders are tried (:data:`~medmat_builder.images.dicom_syntaxes.TRANSFER_SYNTAXES`)
rather than pydicom (which would try GDCM first for every JPEG and JPEG 2000 syntax) because of what the
decoders do with damaged streams (measured by damaging the test fixtures' streams):

- GDCM aborts the whole process (an uncaught C++ exception, or a crash) on some damaged JPEG-LS and
  JPEG 2000 streams, and on JPEG headers that libjpeg only warns about or whose sample precision is
  impossible. It is therefore not used for JPEG-LS or JPEG 2000 (``pyjpegls``, ``pylibjpeg-openjpeg``
  and Pillow decode those), comes after Pillow for JPEG Baseline, and gets a JPEG stream only when its
  header is well formed (:func:`jpeg_header_problem`).
- ``pyjpegls`` (CharLS 2.4.2) loops forever on a truncated JPEG-LS stream, so a stream that does not
  end with its end-of-image marker is refused before it gets there.

A stream that every decoder refuses, or that no decoder may be given, is ``corrupt`` (:class:`PixelDataError`).

pydicom hands no 12-bit JPEG Extended (Process 4) stream to GDCM, though GDCM decodes them. medmat adds
the pydicom decoding plugin ``medmat-gdcm`` for that syntax (:func:`register_gdcm_jpeg_extended_plugin`,
pydicom's plugin interface: :func:`is_available`, :data:`DECODER_DEPENDENCIES`), which decodes the frame
through GDCM's own Python API (a ``gdcm.Image`` holding the stream, decoded by ``GetBuffer``) and leaves
the rest (bit depth, sign, colour) to pydicom.

python-gdcm loads its libraries with ``RTLD_GLOBAL``, and they export a zlib: imported before the
system zlib is loaded, it breaks every later zlib user (Python's ``zlib`` crashes with "double free").
:func:`import_gdcm` therefore loads ``zlib`` first; pydicom itself imports Pillow (and so zlib) before
GDCM.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np

from medmat_builder.images.dicom_syntaxes import (
    BY_UID,
    DECODER_PACKAGES,
    JPEG_EXTENDED,
    JPEG_FAMILY,
    JPEG_LS,
    undecodable_detail,
)

if TYPE_CHECKING:
    from pydicom.dataset import Dataset
    from pydicom.pixels.decoders.base import DecodeRunner


def decoder_problem(uid: str | None) -> str | None:
    """``None`` when pixel data in syntax ``uid`` can be decoded here, else :func:`undecodable_detail`.

    For a syntax of :data:`TRANSFER_SYNTAXES` only its own packages count (pydicom may offer others,
    e.g. Pillow for 12-bit JPEG Extended, which it cannot decode).
    """
    from pydicom.pixels import get_decoder

    try:
        decoder = get_decoder(str(uid or ""))
    except (NotImplementedError, ValueError):
        return undecodable_detail(uid)
    ts = BY_UID.get(str(uid))
    if ts is None:
        return None if decoder.is_available else undecodable_detail(uid)
    if decoder.is_native and not decoder.available_plugins and "pydicom" in ts.decoders:
        return None
    if decoding_plugins(str(uid)):
        return None
    return undecodable_detail(uid, ts.decoders)


def decoding_plugins(uid: str) -> tuple[tuple[str, str], ...]:
    """The pydicom plugins that :func:`decode_pixel_array` tries for syntax ``uid``, as (plugin, package) pairs.

    Only installed ones, in the order of :data:`TRANSFER_SYNTAXES` (the default install's packages,
    then those of optional extras). Empty for native (uncompressed) syntaxes, which need none. A syntax
    outside the table gets pydicom's own plugins in pydicom's order, with an empty package name.
    """
    from pydicom.pixels import get_decoder

    register_gdcm_jpeg_extended_plugin()
    decoder = get_decoder(uid)
    available = decoder.available_plugins
    ts = BY_UID.get(str(uid))
    if ts is None:
        return tuple((label, "") for label in available)
    order: list[tuple[str, str]] = []
    for package in (*ts.decoders, *ts.optional):
        for label in DECODER_PACKAGES[package].plugins:
            if label in available and label not in {seen for seen, _ in order}:
                order.append((label, package))
    return tuple(order)


class PixelDataError(Exception):
    """Encapsulated pixel data that no decoder decoded, or that none may be given; the message holds no header value."""


@dataclass(frozen=True)
class DecodedPixels:
    """A decoded pixel array and what decoded it."""

    array: np.ndarray
    #: The pydicom plugin (``""`` for native data, which needs none).
    plugin: str
    #: The PyPI package behind that plugin (``"pydicom"`` for native data).
    package: str


def decode_pixel_array(ds: Dataset) -> DecodedPixels:
    """``ds.pixel_array``, decoded by the plugins of :func:`decoding_plugins` in that order (first success wins).

    A plugin is skipped when the stream would be unsafe for it (:func:`stream_problem`). Raises the
    first decoder's exception when every plugin tried failed (a decoder's panic, which is no
    ``Exception``, as :class:`PixelDataError`), :class:`PixelDataError` when none could be tried, and
    pydicom's own exception for a syntax with no plugin installed.
    """
    uid = str(ds.file_meta.TransferSyntaxUID)
    plugins = decoding_plugins(uid)
    if not plugins:
        return DecodedPixels(np.asarray(ds.pixel_array), "", "pydicom")
    frames = _encapsulated_frames(ds)
    first_error: Exception | None = None
    skipped: list[str] = []
    for label, package in plugins:
        problem = stream_problem(package, uid, frames)
        if problem is not None:
            skipped.append(problem)
            continue
        ds.pixel_array_options(decoding_plugin=label)
        try:
            return DecodedPixels(np.asarray(ds.pixel_array), label, package)
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as exc:  # this decoder refused the stream: try the next one
            first_error = first_error or exc
        except BaseException:  # a Rust panic (pylibjpeg-rle on damaged RLE) is no Exception
            first_error = first_error or PixelDataError(f"the {package} decoder failed on it (a panic)")
    if first_error is not None:
        raise first_error
    raise PixelDataError(skipped[0])


def stream_problem(package: str, uid: str, frames: list[bytes]) -> str | None:
    """Why the encapsulated ``frames`` must not reach ``package`` (it would hang or abort on them), or ``None``.

    GDCM gets JPEG streams only with a well-formed header (:func:`jpeg_header_problem`); ``pyjpegls``
    gets JPEG-LS streams only when they end with their end-of-image marker.
    """
    if package == "python-gdcm" and uid in JPEG_FAMILY:
        for frame in frames:
            problem = jpeg_header_problem(frame)
            if problem is not None:
                return f"its JPEG stream {problem}"
    if package == "pyjpegls" and uid in JPEG_LS:
        for frame in frames:
            if not frame.rstrip(b"\x00").endswith(b"\xff\xd9"):
                return "its JPEG-LS stream does not end with an end-of-image marker (truncated or damaged)"
    return None


def _encapsulated_frames(ds: Dataset) -> list[bytes]:
    """The encoded frames of ``ds`` (empty when they cannot be told apart: pydicom then refuses the data)."""
    from pydicom.encaps import generate_frames

    try:
        count = int(ds.get("NumberOfFrames") or 1)
        return list(generate_frames(ds.PixelData, number_of_frames=count))
    except Exception:  # malformed encapsulation: pydicom's decoding reports it
        return []


# --------------------------------------------------------------------------- JPEG header check
#: Start-of-frame markers (ITU-T T.81 B.1.1.3, T.87 for 0xF7), which carry the image's size.
_SOF_MARKERS = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF, 0xF7})


#: Sample precisions that a frame header may give (T.81 B.2.2): 8 for baseline, 8 or 12 for the other
#: DCT processes, 2-16 for lossless and JPEG-LS. GDCM crashes on a precision outside them.
_SAMPLE_PRECISIONS = {0xC0: (8,), **dict.fromkeys((0xC1, 0xC2, 0xC5, 0xC6, 0xC9, 0xCA, 0xCD, 0xCE), (8, 12))}


#: Markers without a length field; none may appear before the first scan.
_STANDALONE_MARKERS = frozenset({0x01, *range(0xD0, 0xDA)})


def jpeg_header_problem(stream: bytes) -> str | None:
    """What is wrong with the header of a JPEG stream (its markers up to the first scan), or ``None``.

    The header must be SOI, then marker segments (T.81 B.1.1.2-B.1.1.4: each ``0xFF``, optional
    ``0xFF`` fill bytes, a marker code and a length that fits the stream) up to a start-of-scan
    segment, with one frame header before it (1-4 components, a sample precision that its process
    allows: GDCM crashes on others). Also refused is what libjpeg decodes but warns about
    while reading a header (bytes between segments, a JFIF APP0 of another major version than 1, an
    Adobe APP14 colour transform that does not fit the component count), because GDCM turns any such
    warning into a process abort.
    """
    if stream[:2] != b"\xff\xd8":
        return "does not start with a start-of-image marker"
    pos, size = 2, len(stream)
    components: int | None = None
    adobe_transform: int | None = None
    while True:
        if pos >= size:
            return "ends before its first scan"
        if stream[pos] != 0xFF:
            return f"has stray bytes between header segments (offset {pos})"
        while pos < size and stream[pos] == 0xFF:  # fill bytes
            pos += 1
        if pos + 2 >= size:
            return "ends before its first scan"
        marker = stream[pos]
        if marker == 0x00 or marker in _STANDALONE_MARKERS:
            return f"has marker 0xFF{marker:02X} before its first scan"
        length = int.from_bytes(stream[pos + 1:pos + 3], "big")
        body = stream[pos + 3:pos + 1 + length]
        if length < 2 or len(body) != length - 2:
            return f"has a header segment (0xFF{marker:02X}) that does not fit the stream"
        if marker in _SOF_MARKERS:
            if components is not None:
                return "has two frame headers"
            if len(body) < 6 or len(body) != 6 + 3 * body[5] or not 1 <= body[5] <= 4:
                return "has a malformed frame header"
            if body[0] not in _SAMPLE_PRECISIONS.get(marker, range(2, 17)):
                return f"has a frame header with a sample precision of {body[0]} bits"
            components = body[5]
        elif marker == 0xE0 and body[:5] == b"JFIF\x00" and len(body) >= 6 and body[5] != 1:
            return f"has a JFIF header of version {body[5]}"
        elif marker == 0xEE and body[:5] == b"Adobe" and len(body) >= 12:
            adobe_transform = body[11]
        elif marker == 0xDA:
            if components is None:
                return "has a scan before its frame header"
            if not body or len(body) != 4 + 2 * body[0]:
                return "has a malformed scan header"
            allowed = {3: (0, 1), 4: (0, 2)}.get(components)
            if adobe_transform is not None and allowed is not None and adobe_transform not in allowed:
                return f"has an Adobe colour transform ({adobe_transform}) unknown for {components} components"
            return None
        pos += 1 + length


# --------------------------------------------------------------------------- GDCM for 12-bit JPEG Extended
#: Label of medmat's pydicom decoding plugin (12-bit JPEG Extended through GDCM).
GDCM_PLUGIN = "medmat-gdcm"


#: pydicom's plugin interface: the syntaxes the ``medmat-gdcm`` plugin decodes and what it needs.
DECODER_DEPENDENCIES: dict[str, tuple[str, ...]] = {JPEG_EXTENDED: ("python-gdcm>=3.0.10",)}


_gdcm_plugin_registered = False


def import_gdcm() -> ModuleType | None:
    """The ``gdcm`` module of python-gdcm, or ``None`` when it is not installed.

    ``zlib`` is imported first, so the system zlib is loaded before GDCM's (see the module docstring).
    """
    import zlib  # noqa: F401

    try:
        import gdcm
    except ImportError:
        return None
    return gdcm


def is_available(uid: str) -> bool:
    """pydicom's plugin interface: whether ``medmat-gdcm`` decodes syntax ``uid`` here."""
    return str(uid) in DECODER_DEPENDENCIES and import_gdcm() is not None


def register_gdcm_jpeg_extended_plugin() -> None:
    """Add ``medmat-gdcm`` to pydicom's JPEG Extended decoder, after pydicom's own plugins (once per process).

    pydicom's GDCM plugin refuses 12-bit JPEG Extended streams, Pillow decodes 8-bit ones only, and the
    only other decoder, ``pylibjpeg-libjpeg``, is GPL-3.0.
    """
    global _gdcm_plugin_registered
    if _gdcm_plugin_registered:
        return
    from pydicom.pixels.decoders import JPEGExtended12BitDecoder

    try:
        JPEGExtended12BitDecoder.add_plugin(GDCM_PLUGIN, (__name__, "decode_jpeg_extended_frame"))
    except ValueError:  # already added (this module was reloaded)
        pass
    _gdcm_plugin_registered = True


def decode_jpeg_extended_frame(src: bytes, runner: DecodeRunner) -> bytes:
    """pydicom decoding plugin ``medmat-gdcm``: one JPEG Extended frame (8- or 12-bit) decoded by GDCM.

    Returns the samples as pydicom expects them (little endian, Bits Allocated each, colour by pixel);
    pydicom then applies the sign, the bit depth and the colour space. Raises ``ValueError`` for a
    stream that GDCM refuses, or must not be given (:func:`jpeg_header_problem`).
    """
    gdcm = import_gdcm()
    if gdcm is None:
        raise ValueError("python-gdcm is not installed")
    problem = jpeg_header_problem(src)
    if problem is not None:
        raise ValueError(f"the JPEG stream {problem}")
    fragment = gdcm.Fragment()
    fragment.SetByteStringValue(src)
    fragments = gdcm.SequenceOfFragments.New()
    fragments.AddFragment(fragment)
    pixel_data = gdcm.DataElement(gdcm.Tag(0x7FE0, 0x0010))
    pixel_data.SetValue(fragments.__ref__())

    image = gdcm.Image()
    image.SetNumberOfDimensions(2)
    image.SetDimensions((runner.columns, runner.rows, 1))
    image.SetDataElement(pixel_data)
    pi_type = gdcm.PhotometricInterpretation.GetPIType(str(runner.photometric_interpretation))
    image.SetPhotometricInterpretation(gdcm.PhotometricInterpretation(pi_type))
    if runner.samples_per_pixel > 1:
        image.SetPlanarConfiguration(runner.planar_configuration)
    image.SetPixelFormat(gdcm.PixelFormat(runner.samples_per_pixel, runner.bits_allocated, runner.bits_stored,
                                          runner.bits_stored - 1, runner.pixel_representation))
    image.SetTransferSyntax(gdcm.TransferSyntax(gdcm.TransferSyntax.JPEGExtendedProcess2_4))

    # GetBuffer decodes (None when GDCM refuses the stream). Not gdcm.ImageChangeTransferSyntax: its
    # SetInput takes a reference on this Python-owned image, and GDCM aborts the process when SWIG
    # deletes an image whose reference count is not 0.
    buffer = image.GetBuffer()
    if not buffer:
        raise ValueError("GDCM could not decode the JPEG Extended stream")
    frame = buffer.encode("utf-8", "surrogateescape")  # SWIG hands the char buffer over as a str
    expected = runner.rows * runner.columns * runner.samples_per_pixel * ((runner.bits_allocated + 7) // 8)
    if len(frame) != expected:
        raise ValueError(f"GDCM returned {len(frame)} bytes for a frame of {expected}")
    return frame
