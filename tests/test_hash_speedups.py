"""The build's faster hashes give exactly the values of the reference implementations they replace."""

from __future__ import annotations

import os

import imagehash
import numpy as np
import pytest
import xxhash
from PIL import Image

from medmat_builder.build.settings import BuildSettings, default_num_proc
from medmat_builder.images.hashes import THUMBNAIL_SIDE, fingerprint, phash_of_thumbnail, pixel_hash


def thumbnails(count: int) -> list[np.ndarray]:
    """32x32 grey images of every kind that stresses a median split: noise, flat, gradients, binary, low contrast."""
    rng = np.random.default_rng(21)
    side = THUMBNAIL_SIDE
    out = []
    for i in range(count):
        kind = i % 6
        if kind == 0:
            a = rng.integers(0, 256, (side, side))
        elif kind == 1:
            a = np.full((side, side), rng.integers(0, 256))
        elif kind == 2:
            a = np.add.outer(np.arange(side), np.arange(side)) * rng.integers(1, 8) % 256
        elif kind == 3:
            a = np.clip(rng.normal(rng.integers(0, 256), rng.uniform(0.5, 20), (side, side)), 0, 255)
        elif kind == 4:
            a = rng.integers(0, 2, (side, side)) * 255
        else:  # smooth blobs, like a downscaled scan
            small = rng.integers(0, 256, (4, 4)).astype(np.uint8)
            a = np.asarray(Image.fromarray(small).resize((side, side), Image.Resampling.BILINEAR))
        out.append(np.asarray(a, dtype=np.uint8))
    return out


def test_phash_of_thumbnail_is_imagehash_phash_bit_for_bit():
    for a in thumbnails(3000):
        expected = int(str(imagehash.phash(Image.fromarray(a, "L"))), 16)
        assert phash_of_thumbnail(a.tobytes()) == expected


def test_fingerprint_of_photos_is_imagehash_phash_of_its_thumbnail():
    rng = np.random.default_rng(5)
    for i in range(60):
        w, h = int(rng.integers(40, 700)), int(rng.integers(40, 700))
        mode = ("L", "RGB")[i % 2]
        shape = (h, w) if mode == "L" else (h, w, 3)
        base = rng.integers(0, 256, (4, 4) + shape[2:]).astype(np.uint8)
        img = Image.fromarray(base, mode).resize((w, h), Image.Resampling.BILINEAR)
        phash, thumb = fingerprint(img)
        ref = Image.frombytes("L", (THUMBNAIL_SIDE, THUMBNAIL_SIDE), thumb)
        assert phash == int(str(imagehash.phash(ref)), 16)


@pytest.mark.parametrize("mode", ["L", "RGB", "grey RGB"])
def test_pixel_hash_is_unchanged(mode):
    """xxh3-128 over "mode:WxH:" and the packed 8-bit pixels, grey RGB hashed as L (the image_hash column)."""
    rng = np.random.default_rng(3)
    a = rng.integers(0, 256, (37, 53, 3) if mode != "L" else (37, 53), dtype=np.uint8)
    if mode == "grey RGB":
        a[..., 1] = a[..., 0]
        a[..., 2] = a[..., 0]
    img = Image.fromarray(a, "L" if mode == "L" else "RGB")
    packed, name = {"L": (a, "L"), "RGB": (a, "RGB"), "grey RGB": (a[..., 0], "L")}[mode]
    expected = xxhash.xxh3_128(f"{name}:53x37:".encode() + np.ascontiguousarray(packed).tobytes()).hexdigest()
    assert pixel_hash(img) == expected


def test_num_proc_defaults_to_the_machines_cores():
    assert default_num_proc() == (os.cpu_count() or 1)
    assert BuildSettings().num_proc == default_num_proc()
    assert "num_proc" not in BuildSettings().record().model_dump()


def degenerate_thumbnails(count: int) -> list[np.ndarray]:
    """Thumbnails whose DCT has exact ties or zeros: mirror-symmetric, few grey levels, one lit pixel, stripes."""
    rng = np.random.default_rng(8)
    side, half = THUMBNAIL_SIDE, THUMBNAIL_SIDE // 2
    out = []
    for i in range(count):
        kind = i % 6
        if kind == 0:
            a = rng.integers(0, 256, (side, half))
            a = np.hstack([a, a[:, ::-1]])
        elif kind == 1:
            a = rng.integers(0, 256, (half, side))
            a = np.vstack([a, a[::-1]])
        elif kind == 2:
            a = rng.integers(0, 3, (side, side)) * rng.integers(1, 120) + rng.integers(0, 10)
        elif kind == 3:
            a = np.zeros((side, side))
            a[rng.integers(0, side), rng.integers(0, side)] = rng.integers(1, 256)
        elif kind == 4:
            a = np.tile(rng.integers(0, 256, (1, side)), (side, 1))
        else:
            a = rng.integers(0, 256, (side, side))
            a = (a + a.T) // 2
        out.append(np.asarray(a, dtype=np.uint8))
    return out


def test_phash_of_degenerate_thumbnails_is_imagehash_phash_bit_for_bit():
    """Exact ties among the DCT coefficients are decided as imagehash's FFT decides them."""
    for a in degenerate_thumbnails(1200):
        expected = int(str(imagehash.phash(Image.fromarray(a, "L"))), 16)
        assert phash_of_thumbnail(a.tobytes()) == expected


def test_pixel_hash_of_grey_images_read_in_place_is_unchanged():
    """``L`` images hashed from Pillow's memory (Arrow export) or copied (several blocks, crops): one value."""
    rng = np.random.default_rng(11)
    images = []
    for _ in range(40):
        w, h = int(rng.integers(1, 600)), int(rng.integers(1, 600))
        images.append(Image.fromarray(rng.integers(0, 256, (h, w), dtype=np.uint8), "L"))
        larger = Image.fromarray(rng.integers(0, 256, (h + 4, w + 6), dtype=np.uint8), "L")
        images.append(larger.crop((3, 2, 3 + w, 2 + h)))
    images.append(Image.new("L", (5000, 4000), 7))  # over Pillow's 16 MB block: not one contiguous block
    for img in images:
        expected = xxhash.xxh3_128(f"L:{img.width}x{img.height}:".encode() + img.tobytes()).hexdigest()
        assert pixel_hash(img) == expected


def test_pixel_hash_of_rgb_images_read_in_one_piece_is_unchanged():
    """``RGB`` and ``L`` pixels read with one encoder call: the value ``tobytes`` gives, also unloaded and cropped."""
    import io

    rng = np.random.default_rng(12)
    images = []
    for _ in range(30):
        w, h = int(rng.integers(1, 700)), int(rng.integers(1, 700))
        a = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        images.append(Image.fromarray(a, "RGB"))
        images.append(Image.fromarray(np.repeat(a[..., :1], 3, axis=2), "RGB"))  # grey RGB: hashed as L
        images.append(Image.fromarray(a, "RGB").crop((0, 0, max(1, w - 2), max(1, h - 1))))
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (90, 70, 3), dtype=np.uint8), "RGB").save(buf, "PNG")
    images.append(Image.open(io.BytesIO(buf.getvalue())))  # opened, not yet decoded
    images.append(Image.new("RGB", (3000, 2000), (1, 2, 3)))  # over Pillow's 16 MB block
    images.append(Image.new("L", (5000, 4000), 9))
    for img in images:
        raw = img.tobytes()
        arr = np.frombuffer(raw, dtype=np.uint8)
        name = img.mode
        if name == "RGB" and (arr[0::3] == arr[1::3]).all() and (arr[0::3] == arr[2::3]).all():
            raw, name = arr[0::3].tobytes(), "L"
        expected = xxhash.xxh3_128(f"{name}:{img.width}x{img.height}:".encode() + raw).hexdigest()
        assert pixel_hash(img) == expected


def test_thumbnail_edges_are_the_reference_laplacian_bit_for_bit():
    """ThumbnailEdges.of (integer Laplacian, table-rounded 2x2 means) gives the values of the float reference."""
    from medmat_builder.images.duplicates import _EDGE_STEPS, ThumbnailEdges, _as_thumbnails, _halve, _laplacian

    for a in thumbnails(1200) + degenerate_thumbnails(600):
        t = _as_thumbnails(a.tobytes())
        fine, rms = _laplacian(t)
        fine, rms = fine[0], float(rms[0])
        q = np.clip(np.rint(fine * (_EDGE_STEPS / max(rms, 1e-6))), -127, 127)
        edges = ThumbnailEdges.of(a.tobytes())
        assert edges.fine_bytes == fine.tobytes()
        assert edges.rms == rms and edges.mean == float(t.mean())
        assert edges.half_bytes == _halve(t).astype(np.uint8).tobytes()
        assert edges.quantized_bytes == q.astype(np.int8).tobytes()
        assert edges.quantized_norm == float(np.sqrt(np.dot(q, q)))
