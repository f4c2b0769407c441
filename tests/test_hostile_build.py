"""Hostile raw files go through a whole build: each is converted correctly or dropped with its reason,
the ledger adds up (no record lost), and no image is in both train and test (no leak)."""

from __future__ import annotations

import hashlib
import io
import struct
import zlib
from pathlib import Path

import datasets
import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.data import get_testdata_file
from pydicom.encaps import encapsulate

from medmat_builder.build import build
from medmat_builder.images import fake_pixels, image_id

DICOM_FIXTURES = Path(__file__).parent / "fixtures" / "dicom"


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def hostile_files() -> dict[str, tuple[bytes, str | None]]:
    """name -> (bytes, expected drop reason or None when the image must be kept, converted if needed).

    Every file is named ``*.jpeg`` whatever it holds: the folder layout asks for .jpeg, so each is
    also a wrong-extension case.
    """
    rgb = lambda seed: Image.fromarray(fake_pixels(seed, (40, 32), color=True))  # noqa: E731
    grey16 = Image.fromarray(fake_pixels(3, (40, 32)).astype(np.uint16) * 257)  # 16-bit grey
    palette = rgb(4).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    frames = [rgb(s) for s in (5, 6, 7)]
    gif = io.BytesIO()
    frames[0].save(gif, format="GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)
    bomb = (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", 100_000, 100_000, 8, 0, 0, 0, 0))
            + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 1000)) + _png_chunk(b"IEND", b""))
    jpeg = _encode(rgb(8), "JPEG", quality=90)
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker-X"  # Make
    exif[0x8825] = {1: "N", 2: (52.0, 31.0, 12.0)}  # GPS position
    rotated = Image.Exif()
    rotated[0x0112] = 6  # shown rotated by 90 degrees
    dicom = io.BytesIO()
    pydicom.dcmread(get_testdata_file("CT_small.dcm")).save_as(dicom)
    video = pydicom.dcmread(DICOM_FIXTURES / "gray8_explicit_le.dcm")  # a DICOM whose pixels are an MPEG-2 clip
    video.file_meta.TransferSyntaxUID = pydicom.uid.MPEG2MPML
    video.PixelData = encapsulate([b"\x00\x00\x01\xb3" + bytes(60)])
    video["PixelData"].VR = "OB"
    mpeg2 = io.BytesIO()
    video.save_as(mpeg2)
    return {
        "cmyk.jpeg": (_encode(rgb(1).convert("CMYK"), "JPEG"), None),
        "phone_photo.jpeg": (_encode(rgb(11), "JPEG", quality=90, exif=exif, comment=b"Patient DOE^JANE"), None),
        "rotated_photo.jpeg": (_encode(rgb(12), "JPEG", quality=90, exif=rotated), None),
        "sixteen_bit_png.jpeg": (_encode(grey16, "PNG"), None),
        "palette_png.jpeg": (_encode(palette, "PNG"), None),
        "tiff.jpeg": (_encode(rgb(9), "TIFF"), None),
        "bmp.jpeg": (_encode(rgb(10), "BMP"), None),
        "ct_dicom.jpeg": (dicom.getvalue(), None),
        "jpeg_lossless_dicom.jpeg": ((DICOM_FIXTURES / "ct16_signed_window_jpeg_lossless_sv1.dcm").read_bytes(), None),
        "jpeg_p14_mono1_dicom.jpeg": (
            (DICOM_FIXTURES / "gray12_mono1_voilut_jpeg_lossless_p14.dcm").read_bytes(), None),
        "mpeg2_dicom.jpeg": (mpeg2.getvalue(), "unsupported_dicom"),
        "animated.jpeg": (gif.getvalue(), "multiframe"),
        "bomb.jpeg": (bomb, "too_large"),
        "empty.jpeg": (b"", "empty"),
        "truncated.jpeg": (jpeg[: len(jpeg) // 3], "truncated"),
        "text.jpeg": (b"id,label\n1,normal\n", "corrupt"),
    }


@pytest.fixture()
def hostile_export(tmp_path, mini_raw_copy, mini_registry):
    folder = mini_raw_copy / "toy_folders" / "train" / "NORMAL"
    files = hostile_files()
    for name, (data, _) in files.items():
        (folder / name).write_bytes(data)
    result = build(["subset_01"], mini_raw_copy, tmp_path / "out", registry=mini_registry)
    return tmp_path / "out", result.report.configs["subset_01"], files


def test_hostile_files_are_converted_or_counted(hostile_export):
    out, report, files = hostile_export
    led = report.sources["toy_folders"]
    assert led.raw == 41 + len(files) == led.accounted  # nothing lost
    for name, (_, reason) in files.items():
        if reason is not None:
            assert led.dropped[reason] == 1, reason
            assert led.examples[reason][0][0] == f"train/NORMAL/{name}"  # the report names the file
    # an undecodable DICOM: the report's detail names its transfer syntax and what would decode it
    assert "1.2.840.10008.1.2.4.100 (MPEG2 Main Profile / Main Level)" in led.examples["unsupported_dicom"][0][1]
    assert "ffmpeg" in led.examples["unsupported_dicom"][0][1]
    ds = datasets.load_dataset(str(out), "subset_01")
    train_ids = set(ds["train"]["id"])
    for name, (_, reason) in files.items():  # train is under the cap: every usable file is kept
        rid = f"subset_01-{image_id('toy_folders', f'train/NORMAL/{name}')}"
        assert (rid in train_ids) == (reason is None), name
    for ex in ds["train"]:  # every kept image decodes, as 8-bit L or RGB, and carries no EXIF
        assert ex["image"].mode in ("L", "RGB")
        assert not ex["image"].getexif()


def test_hostile_build_has_no_leak_and_no_dicom_header(hostile_export):
    out, _, _ = hostile_export
    ds = datasets.load_dataset(str(out), "subset_01")
    digest = lambda e: hashlib.sha256(e["image"].convert("RGB").tobytes()).hexdigest()  # noqa: E731
    assert not {digest(e) for e in ds["train"]} & {digest(e) for e in ds["test"]}
    header = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    identifying = [str(header.PatientName), str(header.PatientID), str(header.StudyDate),
                   "PhoneMaker-X", "DOE^JANE"]  # and what the photos' EXIF and comment said
    for f in out.rglob("*"):
        if f.is_file():
            data = f.read_bytes()
            assert not any(v.encode() in data for v in identifying if v), f
