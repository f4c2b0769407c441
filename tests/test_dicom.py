"""DICOM transfer syntaxes and grey-level display: every syntax in use decodes, lossless ones to the very
pixels of the uncompressed file; windowing matches values computed by hand; what cannot be decoded is
refused with one line naming its syntax and what would decode it.

Fixtures: ``tests/fixtures/dicom/`` (synthetic, written once by DCMTK and GDCM, see its README) for the
syntaxes pydicom cannot encode; the others are encoded here with pydicom and its plugins.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom import uid
from pydicom.data import get_testdata_file
from pydicom.encaps import encapsulate

from medmat_builder.dicom import TRANSFER_SYNTAXES, undecodable_detail
from medmat_builder.images import ImageError, load_image

FIXTURES = Path(__file__).parent / "fixtures" / "dicom"
SOURCES = ("gray8", "rgb8", "gray12_mono1_voilut", "dx12_window", "ct16_signed_window")


def _source_of(path: Path) -> str:
    return next(s for s in SOURCES if path.name.startswith(s + "_"))


def _pixels(path: Path | str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(load_image(path).data))).astype(np.int64)


def _uncompressed(source: str) -> Path:
    return FIXTURES / f"{source}_explicit_le.dcm"


# Largest raw-value error of each lossy fixture against its source array (NEAR, quality 90 ...).
LOSSY_RAW_MAX = {
    "gray8_jpeg_baseline.dcm": 4,
    "rgb8_jpeg_baseline.dcm": 10,
    "dx12_window_jpeg_extended.dcm": 8,
    "gray12_mono1_voilut_jpegls_near_lossless.dcm": 2,
    "dx12_window_jpegls_near_lossless.dcm": 3,
}
FIXTURE_FILES = sorted(p.name for p in FIXTURES.glob("*.dcm"))


@pytest.mark.parametrize("name", FIXTURE_FILES)
def test_fixture_decodes_to_its_source(name):
    """Every fixture (DCMTK/GDCM-written) decodes; lossless ones to the source array and to the very
    8-bit output of the uncompressed file, lossy ones close to both."""
    path = FIXTURES / name
    source = _source_of(path)
    arr = pydicom.dcmread(path).pixel_array
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
            uid.ExplicitVRBigEndian} <= syntaxes
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
    err = np.abs(pydicom.dcmread(path).pixel_array.astype(np.int64) - expected)
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
    untested = {ts.name for ts in TRANSFER_SYNTAXES if ts.uid not in tested}
    assert all("High-Throughput" in name for name in untested), untested  # no HTJ2K encoder here
    doc = (Path(__file__).resolve().parents[1] / "docs" / "images.md").read_text()
    assert all(ts.uid in doc for ts in TRANSFER_SYNTAXES)


@pytest.mark.parametrize("name", ["MR_small_RLE.dcm", "MR_small_jpeg_ls_lossless.dcm", "MR_small_jp2klossless.dcm",
                                  "MR_small_bigendian.dcm", "MR_small_implicit.dcm"])
def test_other_toolkits_lossless_copies_of_one_image_give_one_image(name):
    """pydicom's own samples: one MR image in several syntaxes, written by other tools."""
    assert load_image(get_testdata_file(name)).pixel_hash == load_image(get_testdata_file("MR_small.dcm")).pixel_hash


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
    for name in ("ct16_signed_window_explicit_le.dcm", "ct16_signed_window_jpeg_lossless_sv1.dcm"):
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
    """As without pylibjpeg: pydicom offers only Pillow, which decodes no 12-bit JPEG."""
    import pydicom.pixels

    class PillowOnly:
        is_available, is_native, available_plugins = True, False, ("pillow",)

    monkeypatch.setattr(pydicom.pixels, "get_decoder", lambda syntax: PillowOnly())
    with pytest.raises(ImageError) as info:
        load_image(FIXTURES / "dx12_window_jpeg_extended.dcm")
    assert info.value.reason == "unsupported_dicom"  # not "corrupt": the file is fine, a package is missing
    assert "1.2.840.10008.1.2.4.51" in info.value.detail and "install pylibjpeg-libjpeg" in info.value.detail
    assert undecodable_detail(uid.JPEG2000, ("pylibjpeg-openjpeg",)).endswith(
        "install pylibjpeg-openjpeg (a medmat dependency: rerun scripts/setup.sh)")


def test_stream_that_every_decoder_rejects_is_corrupt_and_names_its_syntax():
    """NEMA's NM1_JPLY (pydicom's JPEG-lossy.dcm): a 12-bit JPEG whose scan header breaks the standard."""
    with pytest.raises(ImageError) as info:
        load_image(get_testdata_file("JPEG-lossy.dcm"))
    assert info.value.reason == "corrupt"
    assert "JPEG Extended (Process 2 and 4), 12-bit (1.2.840.10008.1.2.4.51)" in info.value.detail
