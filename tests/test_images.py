"""load_image on hostile and odd inputs; DICOM rendering and de-identification; hashes and ids."""

from __future__ import annotations

import io
import pickle
import struct
import zlib
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image, ImageOps
from pydicom.data import get_testdata_file

from medmat_builder.images import (
    IMAGE_ERROR_REASONS,
    THUMBNAIL_SIDE,
    DuplicateIndex,
    ImageError,
    fake_pixels,
    fingerprint,
    image_id,
    load_image,
    phash_distance,
    write_fake_image,
)
from medmat_builder.images.deid import identifying_values, identifying_values_of_file, leaked_values


# --------------------------------------------------------------------------- helpers
def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    p = tmp_path / name
    p.write_bytes(data)
    return p


def _encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _decode(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


def _png_chunks(data: bytes) -> list[bytes]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, types = 8, []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        types.append(data[pos + 4 : pos + 8])
        pos += 12 + length
    return types


def _chunk(ctype: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + ctype + body + struct.pack(">I", zlib.crc32(ctype + body) & 0xFFFFFFFF)


def _reason(path: Path, **kw) -> str:
    with pytest.raises(ImageError) as info:
        load_image(path, **kw)
    err = info.value
    assert err.reason in IMAGE_ERROR_REASONS
    assert path.name in str(err), "the message must name the file"
    assert str(path) not in err.detail, "detail (what the report stores) must not hold the path"
    return err.reason


@pytest.fixture
def gray() -> np.ndarray:
    return fake_pixels(7, (96, 80))


@pytest.fixture
def rgb() -> np.ndarray:
    return fake_pixels(11, (96, 80), color=True)


# --------------------------------------------------------------------------- broken files
def test_zero_byte(tmp_path):
    assert _reason(_write(tmp_path, "empty.png", b"")) == "empty"


def test_missing_file_is_an_image_error(tmp_path):
    assert _reason(tmp_path / "nope.png") == "corrupt"


@pytest.mark.parametrize("progressive", [False, True])
def test_truncated_jpeg(tmp_path, rgb, progressive):
    data = _encode(Image.fromarray(rgb), "JPEG", quality=90, progressive=progressive)
    assert _reason(_write(tmp_path, "half.jpg", data[: len(data) // 2])) == "truncated"
    assert _reason(_write(tmp_path, "no_eoi.jpg", data[:-2])) == "truncated"


def test_truncated_png(tmp_path, rgb):
    data = _encode(Image.fromarray(rgb), "PNG")
    assert _reason(_write(tmp_path, "half.png", data[: len(data) // 2])) == "truncated"
    # Pillow decodes a PNG without IEND happily; we must not.
    assert _reason(_write(tmp_path, "no_iend.png", data[:-12])) == "truncated"


@pytest.mark.parametrize("ext,keep", [(".png", 8), (".png", 40), (".jpg", 3), (".tif", 0), (".bmp", 0), (".gif", 0)])
def test_files_cut_anywhere_are_truncated(tmp_path, ext, keep):
    data = write_fake_image(5, ext, size=(64, 64))
    cut = data[:keep] if keep else data[: len(data) // 2]
    assert _reason(_write(tmp_path, f"cut{ext}", cut)) == "truncated"


def test_dicom_cut_in_its_header_is_truncated(tmp_path):
    data = Path(get_testdata_file("CT_small.dcm")).read_bytes()
    for keep in (132, 400, len(data) // 2):
        assert _reason(_write(tmp_path, "cut.dcm", data[:keep])) == "truncated"


def test_png_crc_damage_is_corrupt(tmp_path, rgb):
    data = bytearray(_encode(Image.fromarray(rgb), "PNG"))
    data[40] ^= 0xFF  # inside the first IDAT
    assert _reason(_write(tmp_path, "bitflip.png", bytes(data))) == "corrupt"


def test_garbage_with_image_extension_is_corrupt(tmp_path):
    assert _reason(_write(tmp_path, "noise.jpg", bytes(range(256)) * 8)) == "corrupt"
    assert _reason(_write(tmp_path, "text.png", b"<html>not found</html>")) == "corrupt"


def test_image_error_pickles_with_reason(tmp_path):
    with pytest.raises(ImageError) as info:
        load_image(_write(tmp_path, "empty.png", b""))
    again = pickle.loads(pickle.dumps(info.value))
    assert (again.reason, again.detail, str(again)) == (info.value.reason, info.value.detail, str(info.value))


# --------------------------------------------------------------------------- kept as they are
def test_png_and_jpeg_are_kept_byte_for_byte(tmp_path, gray, rgb):
    for arr in (gray, rgb):
        png = _encode(Image.fromarray(arr), "PNG")
        out = load_image(_write(tmp_path, "a.png", png))
        assert (out.data, out.format, out.kept_original) == (png, "png", True)
        assert (out.width, out.height) == (96, 80)
        jpg = _encode(Image.fromarray(arr), "JPEG", quality=90)
        out = load_image(_write(tmp_path, "a.jpg", jpg))
        assert (out.data, out.format, out.kept_original) == (jpg, "jpeg", True)


def test_wrong_extension_follows_content(tmp_path, rgb):
    jpg = _encode(Image.fromarray(rgb), "JPEG", quality=90)
    out = load_image(_write(tmp_path, "really_a_jpeg.png", jpg))
    assert (out.format, out.source_format, out.data) == ("jpeg", "JPEG", jpg)
    png = _encode(Image.fromarray(rgb), "PNG")
    out = load_image(_write(tmp_path, "really_a_png.jpg", png))
    assert (out.format, out.data) == ("png", png)
    bmp = _encode(Image.fromarray(rgb), "BMP")
    out = load_image(_write(tmp_path, "really_a_bmp.jpg", bmp))
    assert (out.format, out.source_format, out.kept_original) == ("png", "BMP", False)
    assert np.array_equal(_decode(out.data), rgb)


# --------------------------------------------------------------------------- converted
def test_cmyk_jpeg_becomes_rgb_png(tmp_path):
    cmyk = np.zeros((32, 32, 4), np.uint8)
    cmyk[:, :16, 0] = 255  # cyan on the left
    cmyk[:, 16:, 2] = 255  # yellow on the right
    data = _encode(Image.fromarray(cmyk, mode="CMYK"), "JPEG", quality=95)
    out = load_image(_write(tmp_path, "cmyk.jpg", data))
    assert (out.format, out.kept_original, out.source_format) == ("png", False, "JPEG")
    px = _decode(out.data).astype(int)
    assert px.shape == (32, 32, 3)
    assert np.allclose(px[16, 4], [0, 255, 255], atol=12)
    assert np.allclose(px[16, 28], [255, 255, 0], atol=12)


def test_16bit_gray_png_is_stretched_to_8bit(tmp_path):
    ramp = np.tile(np.arange(0, 4096, 64, dtype=np.uint16), (8, 1))  # a 12-bit detector in 16-bit PNG
    data = write_fake_image(ramp, ".png")
    assert data[24] == 16  # IHDR bit depth
    out = load_image(_write(tmp_path, "ct16.png", data))
    px = _decode(out.data)
    assert (out.format, out.kept_original, px.dtype) == ("png", False, np.uint8)
    assert px.min() == 0 and px.max() == 255
    assert np.all(np.diff(px[0].astype(int)) >= 0)


def test_16bit_rgb_png_is_converted(tmp_path):
    w, h = 4, 3
    raw = b"".join(b"\x00" + bytes(range(w * 6)) for _ in range(h))
    png = (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
           + _chunk(b"IDAT", zlib.compress(raw)) + _chunk(b"IEND", b""))
    out = load_image(_write(tmp_path, "rgb16.png", png))
    assert (out.kept_original, out.format) == (False, "png")
    assert _png_chunks(out.data)[0] == b"IHDR" and out.data[24] == 8


def test_palette_png_with_transparency(tmp_path):
    idx = np.zeros((16, 16), np.uint8)
    idx[4:12, 4:12] = 1
    pal = Image.fromarray(idx, mode="P")
    pal.putpalette([255, 255, 255, 200, 30, 30] + [0] * (254 * 3))
    data = _encode(pal, "PNG", transparency=0)  # index 0 (white) is transparent
    out = load_image(_write(tmp_path, "pal.png", data))
    px = _decode(out.data)
    assert (out.kept_original, px.shape) == (False, (16, 16, 3))
    assert px[0, 0].tolist() == [0, 0, 0]  # transparent over black
    assert px[8, 8].tolist() == [200, 30, 30]


def test_palette_png_without_transparency_and_rgba(tmp_path, rgb):
    pal = Image.fromarray(rgb).quantize(16)
    out = load_image(_write(tmp_path, "p.png", _encode(pal, "PNG")))
    assert not out.kept_original
    assert np.array_equal(_decode(out.data), np.asarray(pal.convert("RGB")))
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
    out = load_image(_write(tmp_path, "opaque_rgba.png", _encode(Image.fromarray(rgba), "PNG")))
    assert np.array_equal(_decode(out.data), rgb)  # opaque alpha changes nothing


def test_tiff_bmp_webp_gif_convert_to_identical_pixels(tmp_path, gray, rgb):
    ref = {"L": load_image(_write(tmp_path, "g.png", write_fake_image(gray, ".png"))),
           "RGB": load_image(_write(tmp_path, "c.png", write_fake_image(rgb, ".png")))}
    for ext in (".tif", ".bmp", ".webp", ".gif"):
        for mode, arr in (("L", gray), ("RGB", rgb)):
            if ext == ".gif" and mode == "RGB":
                continue  # GIF quantises colour; grey levels fit its palette exactly
            out = load_image(_write(tmp_path, f"x{ext}", write_fake_image(arr, ext)))
            assert (out.format, out.kept_original) == ("png", False), ext
            assert np.array_equal(_decode(out.data), arr), ext
            assert out.pixel_hash == ref[mode].pixel_hash, f"{ext} {mode}: same pixels must share the pixel hash"
            assert out.file_sha256 != ref[mode].file_sha256


def test_16bit_tiff(tmp_path):
    arr = (np.arange(64 * 32, dtype=np.uint16).reshape(32, 64) * 13) % 40000
    out = load_image(_write(tmp_path, "x.tif", write_fake_image(arr, ".tif")))
    px = _decode(out.data)
    assert px.dtype == np.uint8 and px.min() == 0 and px.max() == 255


def test_converted_png_is_deterministic_and_metadata_free(tmp_path, rgb):
    img = Image.fromarray(rgb)
    img.info["dpi"] = (300, 300)
    tif = _encode(img, "TIFF", compression="tiff_lzw", dpi=(300, 300), description="Patient DOE^JOHN")
    p = _write(tmp_path, "meta.tif", tif)
    a, b = load_image(p), load_image(p)
    assert a.data == b.data and a == b
    assert set(_png_chunks(a.data)) == {b"IHDR", b"IDAT", b"IEND"}
    assert b"DOE" not in a.data


# --------------------------------------------------------------------------- limits and frames
def test_decompression_bomb_header_is_refused_before_decoding(tmp_path):
    # 100,000 x 100,000 grey PNG claimed by the header; the IDAT is tiny. Decoding would need 10 GB.
    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 0, 0, 0, 0)
    png = (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(b"\x00" * 1000))
           + _chunk(b"IEND", b""))
    assert _reason(_write(tmp_path, "bomb.png", png)) == "too_large"


def test_real_compressed_bomb_with_a_small_limit(tmp_path):
    data = _encode(Image.new("L", (3000, 3000)), "PNG", optimize=True)
    assert len(data) < 50_000  # tiny file, 9 Mpx of pixels
    p = _write(tmp_path, "zeros.png", data)
    assert _reason(p, max_pixels=1_000_000) == "too_large"
    assert load_image(p).width == 3000  # under the default limit it is a normal image


def test_animated_gif_and_multipage_tiff_are_refused(tmp_path):
    frames = [Image.fromarray(fake_pixels(s, (32, 32))) for s in range(3)]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    assert _reason(_write(tmp_path, "anim.gif", buf.getvalue())) == "multiframe"
    buf = io.BytesIO()
    frames[0].save(buf, format="TIFF", save_all=True, append_images=frames[1:])
    assert _reason(_write(tmp_path, "pages.tif", buf.getvalue())) == "multiframe"
    buf = io.BytesIO()
    frames[0].save(buf, format="PNG", save_all=True, append_images=frames[1:])
    assert _reason(_write(tmp_path, "anim.png", buf.getvalue())) == "multiframe"


def test_single_frame_gif_is_converted(tmp_path, gray):
    out = load_image(_write(tmp_path, "one.gif", write_fake_image(gray, ".gif")))
    assert out.format == "png" and np.array_equal(_decode(out.data), gray)


def test_exif_orientation_is_applied_to_size_and_hashes(tmp_path, rgb):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    data = _encode(Image.fromarray(rgb), "JPEG", quality=95, exif=exif)
    out = load_image(_write(tmp_path, "rot.jpg", data))
    assert (out.width, out.height) == (80, 96)  # stored 96 wide, shown 80 wide
    # the orientation is baked in: a PNG as displayed, for every reader (the EXIF block does not travel)
    assert (out.format, out.kept_original, out.orientation) == ("png", False, 6)  # boxes must move too
    shown = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))))
    assert np.array_equal(_decode(out.data), shown)
    assert not Image.open(io.BytesIO(out.data)).getexif()


@pytest.mark.parametrize("value", [1, 0, 9, 200])
def test_normal_or_meaningless_exif_orientation_keeps_the_image_as_stored(tmp_path, rgb, value):
    exif = Image.Exif()
    exif[0x0112] = value
    data = _encode(Image.fromarray(rgb), "JPEG", quality=95, exif=exif)
    out = load_image(_write(tmp_path, "photo.jpg", data))
    assert (out.width, out.height, out.orientation, out.kept_original) == (96, 80, 1, True)


def test_kept_jpeg_and_png_lose_their_metadata_not_their_pixels(tmp_path, rgb):
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"  # Make
    exif[0x9003] = "2021:03:04 10:11:12"  # DateTimeOriginal
    exif[0x8825] = {1: "N", 2: (52.0, 31.0, 12.0)}  # GPS latitude
    jpeg = _encode(Image.fromarray(rgb), "JPEG", quality=90, exif=exif, comment=b"Patient DOE^JOHN",
                   icc_profile=b"\x00fake-icc")
    out = load_image(_write(tmp_path, "photo.jpg", jpeg))
    assert out.kept_original and out.format == "jpeg" and len(out.data) < len(jpeg)
    for needle in (b"PhoneMaker", b"2021:03:04", b"DOE^JOHN", b"Exif"):
        assert needle not in out.data, needle
    again = Image.open(io.BytesIO(out.data))
    assert not again.getexif() and again.info.get("icc_profile") == b"\x00fake-icc"  # colour profile stays
    assert np.array_equal(_decode(out.data), _decode(jpeg))  # compressed data untouched: same pixels
    assert out.pixel_hash == load_image(_write(tmp_path, "plain.jpg", _encode(Image.fromarray(rgb), "JPEG",
                                                                              quality=90))).pixel_hash

    # stray bytes between two segments (decoders skip them): the segment walk cannot vouch for the
    # file, so the decoded pixels go to a PNG instead; nothing of the metadata travels either way
    app0_end = 4 + int.from_bytes(jpeg[4:6], "big")
    odd = jpeg[:app0_end] + b"\x00\x00" + jpeg[app0_end:]
    out = load_image(_write(tmp_path, "odd.jpg", odd))
    assert (out.format, out.kept_original) == ("png", False) and b"DOE^JOHN" not in out.data
    assert np.array_equal(_decode(out.data), _decode(jpeg))

    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "Patient DOE^JOHN")
    info.add_itxt("Author", "Dr. Who")
    png = _encode(Image.fromarray(rgb), "PNG", pnginfo=info)
    out = load_image(_write(tmp_path, "meta.png", png))
    assert out.kept_original and b"DOE" not in out.data and b"Dr. Who" not in out.data
    assert not {b"tEXt", b"iTXt"} & set(_png_chunks(out.data))
    assert np.array_equal(_decode(out.data), rgb)


# --------------------------------------------------------------------------- duplicates
def test_pixel_identical_detection_across_encodings(tmp_path, rgb):
    png_a = _encode(Image.fromarray(rgb), "PNG", compress_level=1)
    png_b = _encode(Image.fromarray(rgb), "PNG", compress_level=9)
    assert png_a != png_b
    a = load_image(_write(tmp_path, "a.png", png_a))
    b = load_image(_write(tmp_path, "b.png", png_b))
    assert a.pixel_hash == b.pixel_hash and a.file_sha256 != b.file_sha256
    # A JPEG and a lossless PNG of its decoded pixels are the same picture.
    jpg = _encode(Image.fromarray(rgb), "JPEG", quality=80)
    j = load_image(_write(tmp_path, "c.jpg", jpg))
    p = load_image(_write(tmp_path, "c.png", _encode(Image.open(io.BytesIO(jpg)), "PNG")))
    assert j.pixel_hash == p.pixel_hash
    assert j.pixel_hash != a.pixel_hash


def test_gray_stored_as_rgb_has_the_gray_pixel_hash(tmp_path, gray):
    a = load_image(_write(tmp_path, "g.png", write_fake_image(gray, ".png")))
    b = load_image(_write(tmp_path, "g3.png", write_fake_image(np.dstack([gray] * 3), ".png")))
    assert a.pixel_hash == b.pixel_hash


def test_near_duplicates_need_hash_and_thumbnail(tmp_path):
    base_arr = fake_pixels(3, (256, 256))
    base = load_image(_write(tmp_path, "base.png", write_fake_image(base_arr, ".png")))
    small = Image.fromarray(base_arr).resize((160, 160), Image.Resampling.BILINEAR)
    copy = load_image(_write(tmp_path, "copy.jpg", _encode(small, "JPEG", quality=70)))
    other = load_image(_write(tmp_path, "other.png", write_fake_image(4, ".png", size=(256, 256))))
    assert copy.pixel_hash != base.pixel_hash
    index = DuplicateIndex()
    index.add(base.pixel_hash, base.phash, base.thumbnail)
    match = index.check(copy.pixel_hash, copy.phash, copy.thumbnail)
    assert match is not None and match.kind == "near_duplicate" and match.entry == 0
    assert match.phash_distance == phash_distance(base.phash, copy.phash) and match.edge_correlation > 0.95
    assert index.check(other.pixel_hash, other.phash, other.thumbnail) is None
    assert 0 <= base.phash < 2**64 and len(base.thumbnail) == THUMBNAIL_SIDE**2


def test_fingerprint_is_imagehash_phash_of_its_thumbnail():
    import imagehash

    img = Image.fromarray(fake_pixels(9, (600, 520), color=True))
    phash, thumb = fingerprint(img)
    reduced = img.reduce(4)  # box-reduced to at least 128 px a side, as the build does
    assert phash == int(str(imagehash.phash(reduced.convert("L"))), 16)
    expected = reduced.convert("L").resize((THUMBNAIL_SIDE, THUMBNAIL_SIDE), Image.Resampling.LANCZOS)
    assert thumb == expected.tobytes()


# --------------------------------------------------------------------------- DICOM
def _ct(tmp_path: Path, stored: np.ndarray, **kw) -> np.ndarray:
    out = load_image(_write(tmp_path, "ct.dcm", write_fake_image(stored, ".dcm", **kw)))
    assert (out.format, out.source_format, out.kept_original) == ("png", "DICOM", False)
    return _decode(out.data)


def test_dicom_ct_rescale_then_window(tmp_path):
    hu = np.array([[-1000, -160, -100, 40, 180, 240, 1000, 3000]], dtype=np.int32)
    stored = ((hu + 1024) // 2).astype(np.uint16)  # slope 2, intercept -1024
    px = _ct(tmp_path, stored, rescale_slope=2, rescale_intercept=-1024, window=(40, 400)).astype(int)[0]
    assert px[0] == 0 and px[1] == 0  # at or below center - width/2
    assert px[6] == 255 and px[7] == 255 and px[5] == 255
    assert abs(px[3] - 128) <= 1  # the window center is mid-grey
    expected = np.clip(np.rint(((hu[0] - 39.5) / 399 + 0.5) * 255), 0, 255)
    assert np.array_equal(px, expected)


def test_dicom_without_window_uses_min_max_and_monochrome1_inverts(tmp_path):
    stored = np.array([[100, 200, 300, 400]], dtype=np.uint16)
    m2 = _ct(tmp_path, stored)[0]
    assert m2.tolist() == [0, 85, 170, 255]
    m1 = _ct(tmp_path, stored, photometric="MONOCHROME1")[0]
    assert m1.tolist() == [255, 170, 85, 0]


def test_pydicom_ct_and_mr_samples(tmp_path):
    ct_path = get_testdata_file("CT_small.dcm")
    ds = pydicom.dcmread(ct_path)
    out = load_image(ct_path)
    px = _decode(out.data)
    assert px.shape == (ds.Rows, ds.Columns) and px.min() == 0 and px.max() == 255  # no window: min-max
    hu = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    expected = np.rint((hu - hu.min()) * 255.0 / (hu.max() - hu.min()))
    assert np.array_equal(px, expected)

    mr_path = get_testdata_file("MR_small.dcm")
    mr = pydicom.dcmread(mr_path)
    c, w = float(mr.WindowCenter), float(mr.WindowWidth)
    px = _decode(load_image(mr_path).data).astype(int)
    expected = np.clip(np.rint(((mr.pixel_array.astype(float) - (c - 0.5)) / (w - 1) + 0.5) * 255), 0, 255)
    assert np.array_equal(px, expected)


@pytest.mark.parametrize("name", ["SC_rgb_rle_2frame.dcm", "rtdose.dcm"])
def test_multiframe_dicom_is_refused(name):
    with pytest.raises(ImageError) as info:
        load_image(get_testdata_file(name))
    assert info.value.reason == "multiframe" and name in str(info.value)


def test_truncated_and_non_image_dicom():
    with pytest.raises(ImageError) as info:
        load_image(get_testdata_file("MR_truncated.dcm"))
    assert info.value.reason == "truncated"
    with pytest.raises(ImageError) as info:
        load_image(get_testdata_file("rtplan.dcm"))
    assert info.value.reason == "unsupported"


def test_dicom_colour_and_palette(tmp_path):
    out = load_image(get_testdata_file("SC_rgb_rle.dcm"))
    assert _decode(out.data).shape == (100, 100, 3)
    out = load_image(get_testdata_file("examples_palette.dcm"))
    assert _decode(out.data).ndim == 3


def test_dicom_without_preamble_is_read(tmp_path):
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset

    ds = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    fp = DicomBytesIO()
    fp.is_little_endian, fp.is_implicit_VR = True, False
    write_dataset(fp, pydicom.Dataset(ds))  # no preamble, no "DICM", no file meta
    raw = fp.getvalue()
    assert raw[128:132] != b"DICM"
    out = load_image(_write(tmp_path, "IMG0001", raw))  # no extension, as many PACS exports
    assert out.pixel_hash == load_image(get_testdata_file("MR_small.dcm")).pixel_hash


def test_non_images_are_not_mistaken_for_dicom(tmp_path):
    assert _reason(_write(tmp_path, "notes.txt", b"patient list\n" * 50)) == "corrupt"
    assert _reason(_write(tmp_path, "junk.dcm", bytes(range(256)) * 4)) == "corrupt"


def test_burned_in_annotation_is_refused(tmp_path):
    ds = pydicom.dcmread(io.BytesIO(write_fake_image(1, ".dcm")))
    ds.BurnedInAnnotation = "YES"
    buf = io.BytesIO()
    ds.save_as(buf)
    assert _reason(_write(tmp_path, "burned.dcm", buf.getvalue())) == "unsupported"


def test_fake_dicom_carries_no_identifiers_and_is_deterministic():
    a, b = write_fake_image(5, ".dcm"), write_fake_image(5, ".dcm")
    assert a == b
    ds = pydicom.dcmread(io.BytesIO(a))
    assert str(ds.PatientName) == "" and str(ds.PatientID) == ""
    assert "SYNTHETIC" in ds.ImageComments


DEID_SAMPLES = ["CT_small.dcm", "MR_small.dcm", "JPEG2000.dcm", "SC_rgb_rle.dcm", "examples_palette.dcm",
                "liver_1frame.dcm", "rtdose_1frame.dcm"]
REFUSED_SAMPLES = ["rtdose.dcm", "SC_rgb_rle_2frame.dcm", "MR_truncated.dcm", "rtplan.dcm"]


@pytest.mark.filterwarnings("ignore:Invalid value for VR")
@pytest.mark.parametrize("name", DEID_SAMPLES + REFUSED_SAMPLES)
def test_no_identifying_dicom_value_reaches_any_output(name, tmp_path):
    path = Path(get_testdata_file(name))
    secrets = identifying_values_of_file(path)
    if name in ("CT_small.dcm", "MR_small.dcm"):
        assert {"CompressedSamples^CT1", "CompressedSamples^MR1"} & secrets  # the sample really carries them
    # Copy under a file name that is itself a patient id: ids and details must not show it.
    ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
    patient = str(ds.get("PatientID", "")) or "PAT0042"
    copy = _write(tmp_path, f"{patient}_{name}", path.read_bytes())
    secrets |= {patient}
    outputs: list[bytes | str] = [image_id("some_source", f"scans/{copy.name}")]
    try:
        out = load_image(copy)
    except ImageError as exc:
        assert name in REFUSED_SAMPLES, f"{name}: {exc}"
        outputs.append(exc.detail)
    else:
        assert name in DEID_SAMPLES
        assert set(_png_chunks(out.data)) == {b"IHDR", b"IDAT", b"IEND"}
        outputs += [out.data, out.pixel_hash, out.file_sha256, str(out.phash)]
    assert leaked_values(outputs, secrets) == []


def test_identifying_values_sees_names_dates_and_sequences():
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"), stop_before_pixels=True)
    found = identifying_values(ds)
    assert str(ds.PatientName) in found and str(ds.StudyDate) in found and str(ds.SOPInstanceUID) in found


# --------------------------------------------------------------------------- ids
def test_image_id_is_stable_hash_without_file_name():
    a = image_id("kvasir_v2", "train/polyps/PAT123456_img.dcm")
    assert a == image_id("kvasir_v2", "./train/polyps/PAT123456_img.dcm")
    assert a == image_id("kvasir_v2", "train\\polyps\\PAT123456_img.dcm")
    assert len(a) == 20 and all(c in "0123456789abcdef" for c in a)
    assert "PAT" not in a and "123456" not in a
    assert a != image_id("kvasir_v1", "train/polyps/PAT123456_img.dcm")
    assert a != image_id("kvasir_v2", "train/polyps/PAT123457_img.dcm")
    assert a != image_id("kvasir_v2", "train/polyps/PAT123456_img.dcm", salt="secret")
    # Length-prefixed parts: moving a character between key and path changes the id.
    assert image_id("ab", "c/d.png") != image_id("a", "bc/d.png")
    with pytest.raises(ValueError):
        image_id("kvasir_v2", "/home/me/raw/kvasir_v2/x.png")


def test_write_fake_image_every_extension_is_deterministic_and_loadable(tmp_path):
    for ext in (".png", ".jpg", ".tif", ".bmp", ".gif", ".webp", ".dcm"):
        a = write_fake_image(9, ext, size=(40, 30))
        assert a == write_fake_image(9, ext, size=(40, 30)), ext
        out = load_image(_write(tmp_path, f"f{ext}", a))
        assert (out.width, out.height) == (40, 30), ext
    assert write_fake_image(9, ".png") != write_fake_image(10, ".png")
    with pytest.raises(ValueError):
        write_fake_image(1, ".xyz")


def test_image_ids_at_once_equal_image_id_one_by_one():
    from medmat_builder.images.hashes import image_ids

    clean = [f"d{i % 7}/img_{i}.png" for i in range(300)] + ["a" * 300, "b" * 128, "", "x\x00y.png"]
    for key in ("src", "clé", "k" * 200):
        assert image_ids(key, clean) == [image_id(key, rel) for rel in clean]
        assert image_ids(key, iter(clean)) == image_ids(key, clean)
    odd = ["é/ü.png", "./a.png", "/abs.png", "c:/x.png", "a\\b.png", "\udcff.png", "ok.png", "a:b.png"]
    for rel, got in zip(odd, image_ids("src", odd)):
        if got is not None:
            assert got == image_id("src", rel)
    assert image_ids("src", odd)[0] == image_id("src", "é/ü.png")
    assert image_ids("src", odd)[6] == image_id("src", "ok.png")
