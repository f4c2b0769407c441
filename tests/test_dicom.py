"""DICOM transfer syntaxes and grey-level display: every syntax in use decodes, lossless ones to the very
pixels of the uncompressed file; windowing matches values computed by hand; what cannot be decoded is
refused with one line naming its syntax and what would decode it.

Fixtures: ``tests/fixtures/dicom/`` (synthetic, written once by DCMTK, GDCM and OpenJPH, see its README) for
the syntaxes pydicom cannot encode; the others are encoded here with pydicom and its plugins.

Every decode also says which package decoded it: always one of the default install, whose licences
are all permissive (medmat is Apache-2.0), whether or not the GPL extra ``dicom-gpl`` is installed.
"""

from __future__ import annotations

import configparser
import hashlib
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom import uid
from pydicom.data import get_testdata_file
from pydicom.encaps import encapsulate

from medmat_builder.images import ImageError, load_image
from medmat_builder.images.dicom_decoders import decode_pixel_array, decoding_plugins, jpeg_header_problem
from medmat_builder.images.dicom_syntaxes import DECODER_PACKAGES, TRANSFER_SYNTAXES, undecodable_detail

FIXTURES = Path(__file__).parent / "fixtures" / "dicom"
ROOT = Path(__file__).resolve().parents[1]
SYNTAX = {ts.uid: ts for ts in TRANSFER_SYNTAXES}
SOURCES = ("gray8", "rgb8", "gray12_mono1_voilut", "dx12_window", "ct16_signed_window")


def _source_of(path: Path) -> str:
    return next(s for s in SOURCES if path.name.startswith(s + "_"))


def _pixels(path: Path | str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(load_image(path).data))).astype(np.int64)


def _uncompressed(source: str) -> Path:
    return FIXTURES / f"{source}_explicit_le.dcm"


def _decode(path: Path) -> np.ndarray:
    """Raw pixels as a build decodes them; the package that did it must be a permissive one of the default install."""
    ds = pydicom.dcmread(path)
    decoded = decode_pixel_array(ds)
    ts = SYNTAX[str(ds.file_meta.TransferSyntaxUID)]
    assert decoded.package in ts.decoders, (ts.name, decoded.plugin, decoded.package)
    assert DECODER_PACKAGES[decoded.package].permissive and DECODER_PACKAGES[decoded.package].extra is None
    return decoded.array


# Largest raw-value error of each lossy fixture against its source array (NEAR, quality 90 ...).
LOSSY_RAW_MAX = {
    "gray8_jpeg_baseline.dcm": 4,
    "rgb8_jpeg_baseline.dcm": 10,
    "dx12_window_jpeg_extended.dcm": 8,
    "gray12_mono1_voilut_jpegls_near_lossless.dcm": 2,
    "dx12_window_jpegls_near_lossless.dcm": 3,
    "dx12_window_htj2k_lossy.dcm": 9,  # OpenJPH, irreversible 9/7, qstep 0.002 (of the 12-bit range: ~8 levels)
}
FIXTURE_FILES = sorted(p.name for p in FIXTURES.glob("*.dcm"))


@pytest.mark.parametrize("name", FIXTURE_FILES)
def test_fixture_decodes_to_its_source(name):
    """Every fixture (DCMTK/GDCM-written) decodes; lossless ones to the source array and to the very
    8-bit output of the uncompressed file, lossy ones close to both."""
    path = FIXTURES / name
    source = _source_of(path)
    arr = _decode(path)
    expected = np.load(FIXTURES / f"{source}.npy")
    out, ref = _pixels(path), _pixels(_uncompressed(source))
    assert out.shape == ref.shape == expected.shape
    err = np.abs(arr.astype(np.int64) - expected.astype(np.int64))
    if name in LOSSY_RAW_MAX:
        assert 0 < err.max() <= LOSSY_RAW_MAX[name], name  # really lossy, and close
        assert np.abs(out - ref).max() <= 8 and np.abs(out - ref).mean() <= 1.5
    else:
        assert err.max() == 0, name
        assert load_image(path).pixel_hash == load_image(_uncompressed(source)).pixel_hash
        assert np.array_equal(out, ref)


def test_fixtures_cover_every_syntax_pydicom_cannot_encode():
    syntaxes = {str(pydicom.dcmread(FIXTURES / n, stop_before_pixels=True).file_meta.TransferSyntaxUID)
                for n in FIXTURE_FILES}
    assert {uid.JPEGBaseline8Bit, uid.JPEGExtended12Bit, uid.JPEGLossless, uid.JPEGLosslessSV1,
            uid.ExplicitVRBigEndian, uid.HTJ2KLossless, uid.HTJ2KLosslessRPCL, uid.HTJ2K} <= syntaxes
    assert sum(p.stat().st_size for p in FIXTURES.iterdir()) < 300_000


# --------------------------------------------------------------------------- encoded here with pydicom
ENCODED = [  # (transfer syntax, compress() options, lossless)
    (uid.RLELossless, {}, True),
    (uid.JPEGLSLossless, {}, True),
    (uid.JPEGLSNearLossless, {"jls_error": 3}, False),
    (uid.JPEG2000Lossless, {}, True),
    (uid.JPEG2000, {"j2k_cr": [10]}, False),
    (uid.DeflatedExplicitVRLittleEndian, None, True),
]


def _encode(source: str, syntax: str, options: dict | None, tmp_path: Path) -> Path:
    ds = pydicom.dcmread(_uncompressed(source))
    if options is None:  # not a pixel codec: the whole dataset is deflated on writing
        ds.file_meta.TransferSyntaxUID = syntax
    else:
        ds.compress(syntax, generate_instance_uid=False, **options)
    path = tmp_path / f"{source}.dcm"
    ds.save_as(path)
    assert pydicom.dcmread(path, stop_before_pixels=True).file_meta.TransferSyntaxUID == syntax
    return path


ENCODED_CASES = [  # 12-bit MONOCHROME1 with a VOI LUT and 16-bit signed CT in every syntax; colour losslessly
    pytest.param(source, syntax, options, lossless, id=f"{source}-{syntax.name}")
    for source in ("gray12_mono1_voilut", "ct16_signed_window", "rgb8")
    for syntax, options, lossless in ENCODED
    if lossless or source != "rgb8"
]


@pytest.mark.parametrize("source,syntax,options,lossless", ENCODED_CASES)
def test_pydicom_encoded_syntaxes_decode(tmp_path, source, syntax, options, lossless):
    path = _encode(source, syntax, options, tmp_path)
    expected = np.load(FIXTURES / f"{source}.npy").astype(np.int64)
    err = np.abs(_decode(path).astype(np.int64) - expected)
    out, ref = _pixels(path), _pixels(_uncompressed(source))
    if lossless:
        assert err.max() == 0
        assert load_image(path).pixel_hash == load_image(_uncompressed(source)).pixel_hash
    else:
        assert err.max() > 0 and err.mean() < 0.01 * (expected.max() - expected.min())
        assert np.abs(out - ref).mean() <= 1.5


def test_every_tested_syntax_is_in_the_documented_table():
    table = {ts.uid for ts in TRANSFER_SYNTAXES}
    tested = {str(pydicom.dcmread(FIXTURES / n, stop_before_pixels=True).file_meta.TransferSyntaxUID)
              for n in FIXTURE_FILES} | {str(s) for s, _, _ in ENCODED} | {uid.ImplicitVRLittleEndian}
    assert tested <= table
    assert tested == table, {SYNTAX[u].name for u in table - tested}  # every syntax of the table is tested
    doc = (ROOT / "docs" / "images.md").read_text()
    for ts in TRANSFER_SYNTAXES:  # one row per syntax naming its decoders, in order, and their licences
        row = next(line for line in doc.splitlines() if f"| {ts.uid} |" in line)
        cells = [cell.strip() for cell in row.split("|")]
        assert cells[3] == ", ".join(ts.decoders), row
        assert cells[4] == ", ".join(DECODER_PACKAGES[p].license for p in ts.decoders), row
        assert cells[5] == (", ".join(ts.optional) or "-"), row


# --------------------------------------------------------------------------- licences: the default install
def _requirement_names(text: str) -> set[str]:
    return {re.split(r"[<>=!~;\[ ]", line.strip(), maxsplit=1)[0].lower() for line in text.splitlines() if line.strip()}


def test_default_install_decodes_with_permissive_packages_only():
    """Every package a syntax needs is permissive and in install_requires; the GPL one only in its extra."""
    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    required = _requirement_names(setup["options"]["install_requires"])
    extras = {name: _requirement_names(value) for name, value in setup["options.extras_require"].items()}
    for ts in TRANSFER_SYNTAXES:
        assert ts.decoders, ts.name
        for package in ts.decoders:
            info = DECODER_PACKAGES[package]
            assert info.permissive and info.extra is None and package in required, (ts.name, package)
        for package in ts.optional:
            info = DECODER_PACKAGES[package]
            assert info.extra and package in extras[info.extra] and package not in required, (ts.name, package)
    copyleft = [p.name for p in DECODER_PACKAGES.values() if not p.permissive]
    assert copyleft == ["pylibjpeg-libjpeg"] and DECODER_PACKAGES["pylibjpeg-libjpeg"].license == "GPL-3.0-only"
    assert "pylibjpeg-libjpeg" not in required and "pylibjpeg-libjpeg" in extras["dicom-gpl"]


def test_every_compressed_syntax_has_its_default_decoders_installed_here():
    """pydicom offers a plugin of every default package of every syntax in this environment (set up as the
    README says), so no syntax depends on an optional package."""
    for ts in TRANSFER_SYNTAXES:
        if ts.decoders == ("pydicom",):
            continue
        offered = {package for _, package in decoding_plugins(ts.uid)}
        assert set(ts.decoders) <= offered, (ts.name, offered)


class _OfferedPlugins:
    """A pydicom decoder as it looks with every package installed (the GPL extra too)."""

    def __init__(self, *plugins: str):
        self.available_plugins, self.is_available, self.is_native = plugins, True, False


@pytest.mark.parametrize("syntax,offered,expected", [
    (uid.JPEGExtended12Bit, ("gdcm", "pylibjpeg", "pillow", "medmat-gdcm"),
     [("gdcm", "python-gdcm"), ("medmat-gdcm", "python-gdcm"), ("pylibjpeg", "pylibjpeg-libjpeg")]),
    (uid.JPEGBaseline8Bit, ("gdcm", "pylibjpeg", "pillow"),
     [("pillow", "pillow"), ("gdcm", "python-gdcm"), ("pylibjpeg", "pylibjpeg-libjpeg")]),
    (uid.JPEGLosslessSV1, ("gdcm", "pylibjpeg"), [("gdcm", "python-gdcm"), ("pylibjpeg", "pylibjpeg-libjpeg")]),
    (uid.JPEGLSLossless, ("gdcm", "pylibjpeg", "pyjpegls"),
     [("pyjpegls", "pyjpegls"), ("pylibjpeg", "pylibjpeg-libjpeg")]),
    (uid.JPEG2000, ("gdcm", "pylibjpeg", "pillow"), [("pylibjpeg", "pylibjpeg-openjpeg"), ("pillow", "pillow")]),
    (uid.RLELossless, ("pylibjpeg", "pydicom"), [("pylibjpeg", "pylibjpeg-rle"), ("pydicom", "pydicom")]),
])
def test_gpl_extra_is_tried_last_and_gdcm_never_for_jpeg_ls_or_jpeg_2000(monkeypatch, syntax, offered, expected):
    """medmat's order, not pydicom's (which tries GDCM first everywhere): the default packages first, the
    GPL extra last, so installing it changes no decoded file that the default install decodes."""
    import pydicom.pixels

    monkeypatch.setattr(pydicom.pixels, "get_decoder", lambda ts: _OfferedPlugins(*offered))
    assert list(decoding_plugins(str(syntax))) == expected


def test_12bit_jpeg_extended_decodes_through_gdcm_as_dcmtk_does():
    """pydicom keeps 12-bit JPEG Extended from its GDCM plugin; medmat's plugin decodes it through GDCM's
    own API, to the very values DCMTK's dcmdjpeg 3.6.7 gives (sha256 of its little-endian uint16 pixels)."""
    path = FIXTURES / "dx12_window_jpeg_extended.dcm"
    pydicom_gdcm = pydicom.dcmread(path)
    pydicom_gdcm.pixel_array_options(decoding_plugin="gdcm")
    with pytest.raises(RuntimeError, match="12-bit"):
        pydicom_gdcm.pixel_array
    decoded = decode_pixel_array(pydicom.dcmread(path))
    assert (decoded.plugin, decoded.package) == ("medmat-gdcm", "python-gdcm")
    assert hashlib.sha256(decoded.array.astype("<u2").tobytes()).hexdigest() == (
        "89ac136552a3493e51e0305c5fd3a348ca37567ddfafb82f467e5cf612bd4755")


@pytest.mark.parametrize("name", ["MR_small_RLE.dcm", "MR_small_jpeg_ls_lossless.dcm", "MR_small_jp2klossless.dcm",
                                  "MR_small_bigendian.dcm", "MR_small_implicit.dcm"])
def test_other_toolkits_lossless_copies_of_one_image_give_one_image(name):
    """pydicom's own samples: one MR image in several syntaxes, written by other tools."""
    assert load_image(get_testdata_file(name)).pixel_hash == load_image(get_testdata_file("MR_small.dcm")).pixel_hash


# --------------------------------------------------------------------------- HTJ2K: OpenJPH's streams
HTJ2K_FIXTURES = {  # file: (transfer syntax, reversible, the OpenJPH that wrote it)
    "gray8_htj2k_lossless.dcm": (uid.HTJ2KLossless, True, "0.9.0"),
    "ct16_signed_window_htj2k_lossless.dcm": (uid.HTJ2KLossless, True, "0.28.1"),
    "gray12_mono1_voilut_htj2k_lossless_rpcl.dcm": (uid.HTJ2KLosslessRPCL, True, "0.28.1"),
    "dx12_window_htj2k_lossy.dcm": (uid.HTJ2K, False, "0.9.0"),
}


def _markers(codestream: bytes) -> dict[int, list[bytes]]:
    """The main-header marker segments of a JPEG 2000 codestream (marker -> bodies), up to the first SOT."""
    found: dict[int, list[bytes]] = {}
    at = 2  # after SOC
    while (marker := int.from_bytes(codestream[at:at + 2], "big")) != 0xFF90:
        length = int.from_bytes(codestream[at + 2:at + 4], "big")
        found.setdefault(marker, []).append(codestream[at + 4:at + 2 + length])
        at += 2 + length
    return found


@pytest.mark.parametrize("name", sorted(HTJ2K_FIXTURES))
def test_htj2k_fixtures_are_openjph_streams_as_their_syntax_requires(name):
    """An HT codestream (CAP marker) from OpenJPH, with the sign and precision of the DICOM header (PS3.5 8.2.4),
    reversible in the lossless syntaxes; the RPCL syntax with RPCL order, TLM markers and a base resolution
    of at most 64 (PS3.5 10.18)."""
    syntax, reversible, version = HTJ2K_FIXTURES[name]
    ds = pydicom.dcmread(FIXTURES / name)
    assert ds.file_meta.TransferSyntaxUID == syntax
    markers = _markers(_frames_of(name)[0])
    assert 0xFF50 in markers  # CAP: Part 15 (HT) capabilities
    assert any(f"OpenJPH Ver {version}".encode() in body for body in markers[0xFF64])
    ssiz = markers[0xFF51][0][36]
    assert (ssiz >> 7, (ssiz & 0x7F) + 1) == (ds.PixelRepresentation, ds.BitsStored)
    cod = markers[0xFF52][0]
    progression, decompositions, transform = cod[1], cod[5], cod[9]
    assert transform == (1 if reversible else 0)  # 5/3 reversible or 9/7 irreversible wavelet
    if syntax == uid.HTJ2KLosslessRPCL:
        assert progression == 2 and 0xFF55 in markers  # RPCL, TLM
        assert max(ds.Rows, ds.Columns) / 2 ** decompositions <= 64
    if syntax == uid.HTJ2K:
        assert ds.LossyImageCompression == "01" and ds.LossyImageCompressionMethod == "ISO_15444_15"


@pytest.mark.parametrize("name", sorted(HTJ2K_FIXTURES))
def test_htj2k_fixtures_display_as_the_other_fixtures_of_their_array(name):
    """After rescale, window, VOI LUT and MONOCHROME1, an HTJ2K file gives the 8-bit image that every other
    fixture of the same array gives (other syntaxes, other toolkits): the very image where both are lossless,
    within 4 levels (mean 0.5) where one is lossy (JPEG quality 90, JPEG-LS NEAR 2-3, HTJ2K qstep 0.002)."""
    source = _source_of(FIXTURES / name)
    out = _pixels(FIXTURES / name)
    others = [n for n in FIXTURE_FILES if _source_of(FIXTURES / n) == source and n != name]
    assert len(others) >= 3, others
    for other in others:
        diff = np.abs(out - _pixels(FIXTURES / other))
        if name in LOSSY_RAW_MAX or other in LOSSY_RAW_MAX:
            assert diff.max() <= 4 and diff.mean() < 0.5, other
        else:
            assert diff.max() == 0, other


# --------------------------------------------------------------------------- windowing against hand values
def test_voi_lut_sequence_and_monochrome1_by_hand():
    ds = pydicom.dcmread(_uncompressed("gray12_mono1_voilut"))
    item = ds.VOILUTSequence[0]
    entries, first = item.LUTDescriptor[0], item.LUTDescriptor[1]
    lut = np.asarray(item.LUTData, dtype=np.float64)
    stored = np.load(FIXTURES / "gray12_mono1_voilut.npy").astype(np.int64)
    shown = lut[np.clip(stored, first, first + entries - 1) - first]
    expected = 255 - np.clip(np.rint((shown - lut[0]) * 255.0 / (lut[-1] - lut[0])), 0, 255)
    assert np.array_equal(_pixels(_uncompressed("gray12_mono1_voilut")), expected)


def test_ct_rescale_and_window_by_hand():
    stored = np.load(FIXTURES / "ct16_signed_window.npy").astype(np.float64)
    hu = stored * 1 - 1024
    c, w = 40.0, 400.0
    expected = np.clip(np.rint(((hu - (c - 0.5)) / (w - 1) + 0.5) * 255), 0, 255)
    for name in ("ct16_signed_window_explicit_le.dcm", "ct16_signed_window_jpeg_lossless_sv1.dcm",
                 "ct16_signed_window_htj2k_lossless.dcm"):
        assert np.array_equal(_pixels(FIXTURES / name), expected), name


def _with(tmp_path: Path, source: str, **attrs) -> Path:
    ds = pydicom.dcmread(_uncompressed(source))
    for key, value in attrs.items():
        if value is None:
            del ds[key]
        else:
            setattr(ds, key, value)
    path = tmp_path / "edited.dcm"
    ds.save_as(path)
    return path


def test_sigmoid_and_linear_exact_windows_by_hand(tmp_path):
    stored = np.load(FIXTURES / "dx12_window.npy").astype(np.float64)
    values = stored - 1024
    c, w = 1000.0, 2500.0
    sigmoid = np.clip(np.rint(255.0 / (1 + np.exp(-4 * (values - c) / w))), 0, 255)
    assert np.array_equal(_pixels(_with(tmp_path, "dx12_window", VOILUTFunction="SIGMOID")), sigmoid)
    exact = np.clip(np.rint(((values - c) / w + 0.5) * 255), 0, 255)
    assert np.array_equal(_pixels(_with(tmp_path, "dx12_window", VOILUTFunction="LINEAR_EXACT")), exact)


def test_window_wins_over_voi_lut_and_a_forbidden_window_is_ignored(tmp_path):
    lut_only = _pixels(_uncompressed("gray12_mono1_voilut"))
    stored = np.load(FIXTURES / "gray12_mono1_voilut.npy").astype(np.float64)
    windowed = 255 - np.clip(np.rint(((stored - 1999.5) / 999 + 0.5) * 255), 0, 255)
    both = _with(tmp_path, "gray12_mono1_voilut", WindowCenter="2000", WindowWidth="1000")
    assert np.array_equal(_pixels(both), windowed)
    zero_width = _with(tmp_path, "gray12_mono1_voilut", WindowCenter="2000", WindowWidth="0")
    assert np.array_equal(_pixels(zero_width), lut_only)  # LINEAR needs width >= 1: the LUT applies


# --------------------------------------------------------------------------- what cannot be decoded
def _undecodable(tmp_path: Path, syntax: str) -> Path:
    ds = pydicom.dcmread(_uncompressed("gray8"))
    ds.file_meta.TransferSyntaxUID = syntax
    ds.PixelData = encapsulate([b"\x00\x00\x01\xb3" + bytes(60)])  # an MPEG-2 start code, then nothing
    ds["PixelData"].VR = "OB"
    path = tmp_path / "PAT0042_clip.dcm"
    ds.save_as(path)
    return path


@pytest.mark.parametrize("syntax,words", [
    (uid.MPEG2MPML, ["1.2.840.10008.1.2.4.100", "MPEG2 Main Profile / Main Level", "ffmpeg"]),
    (uid.MPEG4HP41, ["1.2.840.10008.1.2.4.102", "MPEG-4 AVC/H.264", "ffmpeg"]),
    ("1.2.826.0.1.3680043.9.9999.1", ["1.2.826.0.1.3680043.9.9999.1", "not a transfer syntax of the DICOM standard"]),
    (uid.JPEG2000MCLossless, ["1.2.840.10008.1.2.4.92", "Multi-component", "python-gdcm"]),
])
def test_undecodable_syntax_is_one_line_naming_it_and_the_decoder(tmp_path, syntax, words):
    path = _undecodable(tmp_path, syntax)
    with pytest.raises(ImageError) as info:
        load_image(path)
    err = info.value
    assert err.reason == "unsupported_dicom"
    assert "\n" not in err.detail and "PAT0042" not in err.detail and path.name in str(err)
    for word in words:
        assert word in err.detail, (word, err.detail)


def test_missing_plugin_names_the_package_to_install(monkeypatch):
    """As without python-gdcm: pydicom offers only Pillow, which decodes no 12-bit JPEG."""
    import pydicom.pixels

    class PillowOnly:
        is_available, is_native, available_plugins = True, False, ("pillow",)

    monkeypatch.setattr(pydicom.pixels, "get_decoder", lambda syntax: PillowOnly())
    with pytest.raises(ImageError) as info:
        load_image(FIXTURES / "dx12_window_jpeg_extended.dcm")
    assert info.value.reason == "unsupported_dicom"  # not "corrupt": the file is fine, a package is missing
    assert "1.2.840.10008.1.2.4.51" in info.value.detail and "install python-gdcm" in info.value.detail
    assert undecodable_detail(uid.JPEG2000, ("pylibjpeg-openjpeg",)).endswith(
        "install pylibjpeg-openjpeg (a medmat dependency: rerun scripts/setup.sh)")


def test_nema_12bit_jpeg_with_a_nonconformant_scan_header_decodes_as_dcmtk_decodes_it():
    """NEMA's NM1_JPLY (pydicom's JPEG-lossy.dcm): its scan header breaks the standard, which pylibjpeg-libjpeg
    refused; GDCM and DCMTK's dcmdjpeg 3.6.7 decode it alike (sha256 of the little-endian uint16 pixels)."""
    decoded = decode_pixel_array(pydicom.dcmread(get_testdata_file("JPEG-lossy.dcm")))
    assert decoded.package == "python-gdcm" and decoded.array.shape == (1024, 256)
    assert hashlib.sha256(decoded.array.astype("<u2").tobytes()).hexdigest() == (
        "d30242775a414c01d616447854ebe3f2b20259822894bcd6891f879bcdcbf313")
    assert load_image(get_testdata_file("JPEG-lossy.dcm")).width == 256


# --------------------------------------------------------------------------- damaged streams
def _frames_of(name: str) -> list[bytes]:
    from pydicom.encaps import generate_frames

    return list(generate_frames(pydicom.dcmread(FIXTURES / name).PixelData, number_of_frames=1))


@pytest.mark.parametrize("name", [n for n in FIXTURE_FILES if "jpeg" in n and "jpegls" not in n])
def test_jpeg_header_of_every_fixture_is_well_formed(name):
    """DCMTK's JPEG streams (baseline, extended, lossless) pass the header check that guards GDCM."""
    assert [jpeg_header_problem(frame) for frame in _frames_of(name)] == [None]


@pytest.mark.parametrize("damage,problem", [
    (lambda s: b"\x00" + s[1:], "does not start with a start-of-image marker"),
    (lambda s: s[:2] + b"\x12" * 17 + s[2:], "stray bytes between header segments (offset 2)"),
    (lambda s: s[:33], "ends before its first scan"),  # right after the frame header
    (lambda s: s[:2] + b"\xff\xe0\x00\x10JFIF\x00\x02\x01\x00\x00\x01\x00\x01\x00\x00" + s[2:],
     "JFIF header of version 2"),
    (lambda s: s[:2] + b"\xff\xdb\xff\xff" + s[2:], "(0xFFDB) that does not fit the stream"),
    (lambda s: s[:2] + b"\xff\xd0" + s[2:], "marker 0xFFD0 before its first scan"),
])
def test_jpeg_header_check_names_what_is_wrong(damage, problem):
    stream = _frames_of("gray8_jpeg_lossless_sv1.dcm")[0]
    assert problem in (jpeg_header_problem(damage(stream)) or "")


_DAMAGED_STREAMS = r'''
import json, sys, warnings
import pydicom
from pydicom.encaps import encapsulate, generate_frames
from medmat_builder.images import dicom_decoders
from medmat_builder.images.dicom_syntaxes import DECODER_PACKAGES
from medmat_builder.images import ImageError, load_image

warnings.simplefilter("ignore")
every_plugin = dicom_decoders.decoding_plugins
dicom_decoders.decoding_plugins = lambda uid: tuple(  # the default install: no optional extra
    p for p in every_plugin(uid) if p[1] not in DECODER_PACKAGES or not DECODER_PACKAGES[p[1]].extra)
fixtures, out = sys.argv[1], sys.argv[2]


def damaged(name, damage):
    ds = pydicom.dcmread(f"{fixtures}/{name}")
    frame = next(generate_frames(ds.PixelData, number_of_frames=1))
    ds.PixelData = encapsulate([damage(frame)])
    ds["PixelData"].VR = "OB"
    path = f"{out}/{name}"
    ds.save_as(path)
    return path


def patch(at, value):
    return lambda s: s[:at] + bytes([value]) + s[at + 1:]


stray = lambda s: s[:2] + b"\x12" * 17 + s[2:]  # as a header damage that GDCM aborts on
cases = [
    ("dx12_window_jpeg_extended.dcm", stray),
    ("gray8_jpeg_lossless_sv1.dcm", stray),
    ("gray8_jpeg_baseline.dcm", stray),
    ("ct16_signed_window_jpegls_lossless.dcm", lambda s: s[:1569]),  # pyjpegls loops forever on this cut
    ("ct16_signed_window_jpegls_lossless.dcm", patch(6, 240)),  # GDCM aborts on it
    ("ct16_signed_window_j2k_lossless_gdcm.dcm", patch(42, 88)),  # GDCM aborts on it
]
for name, damage in cases:
    try:
        load_image(damaged(name, damage))
        result = ["decoded", ""]
    except ImageError as err:
        result = [err.reason, err.detail]
    print(json.dumps([name, *result]), flush=True)
'''


def test_damaged_streams_are_corrupt_and_neither_abort_nor_hang_the_process(tmp_path):
    """Streams that make a decoder abort the process (GDCM) or loop forever (pyjpegls) are refused as
    ``corrupt``. In a child process, so that a regression fails this test rather than killing the session."""
    proc = subprocess.run([sys.executable, "-c", _DAMAGED_STREAMS, str(FIXTURES), str(tmp_path)],
                          capture_output=True, text=True, timeout=120, cwd=ROOT, env={"PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [reason for _, reason, _ in results] == ["corrupt"] * 6
    details = [detail for _, _, detail in results]
    assert details[0] == ("DICOM pixel data in JPEG Extended (Process 2 and 4), 12-bit (1.2.840.10008.1.2.4.51) "
                          "cannot be decoded: its JPEG stream has stray bytes between header segments (offset 2)")
    assert "JPEG Lossless, Process 14 [Selection Value 1]" in details[1] and "stray bytes" in details[1]
    assert "JPEG-LS Lossless" in details[3] and "does not end with an end-of-image marker" in details[3]
    assert all("cannot be decoded" in detail for detail in details)


def test_a_decoder_panic_counts_as_a_refusal(tmp_path, monkeypatch):
    """pylibjpeg-rle raises a Rust panic (a BaseException) on a segment that overruns the image: the next
    decoder (pydicom's own) gets the stream, and with none left the file is refused, not the build."""
    from medmat_builder.images import dicom_decoders

    ds = pydicom.dcmread(FIXTURES / "ct16_signed_window_rle.dcm")
    frame = _frames_of("ct16_signed_window_rle.dcm")[0]
    ds.PixelData = encapsulate([frame[:1074] + b"\x81\x00" + frame[1076:]])  # a 128-byte run ends segment 1
    path = tmp_path / "overrun.dcm"
    ds.save_as(path)
    with pytest.warns(UserWarning, match="non-conformant padding"):  # pydicom's decoder drops the overrun
        assert decode_pixel_array(pydicom.dcmread(path)).plugin == "pydicom"
    monkeypatch.setattr(dicom_decoders, "decoding_plugins", lambda syntax: (("pylibjpeg", "pylibjpeg-rle"),))
    with pytest.raises(dicom_decoders.PixelDataError, match="the pylibjpeg-rle decoder failed on it"):
        decode_pixel_array(pydicom.dcmread(path))
    with pytest.raises(ImageError) as info:
        load_image(path)
    assert info.value.reason == "corrupt" and "RLE Lossless (1.2.840.10008.1.2.5)" in info.value.detail
