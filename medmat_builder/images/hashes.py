"""Ids and hashes of images: the stable image id, the pixel hash, the perceptual hash and its thumbnail.

- :func:`image_id`: a salted-hash id from the source key and the path (never the file name itself);
- :func:`pixel_hash` (128-bit xxh3) is over the decoded 8-bit pixels (mode, size and bytes), so the
  same picture stored as PNG, BMP or TIFF, or re-saved losslessly, has one hash; a non-cryptographic
  hash suffices to tell identical pixels apart and is about 10x cheaper than sha256 on megapixel images;
- :func:`fingerprint`: the 64-bit DCT perceptual hash (the value of ``imagehash.phash``) and the 32x32
  grey thumbnail it is computed from, from one box-reduced copy of the decoded image (no second decode).
  Near duplicates are decided from both in :mod:`medmat_builder.images.duplicates` (the hash proposes,
  the thumbnail confirms).
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import struct
from collections.abc import Callable, Iterable
from itertools import repeat
from operator import getitem
from pathlib import PurePosixPath

import numpy as np
import scipy.fft
import xxhash
from PIL import Image

_ID_DOMAIN = b"medmat-image-id-v1"


class UndecodableNameError(ValueError):
    """A path that is not valid UTF-8 (``os.listdir`` gives its bad bytes as surrogate escapes).

    Such a file gets no id: the build drops its record as ``undecodable_name`` (rename the file to
    keep it). ``printable`` shows the path with the bad bytes as ``\\xNN``.
    """

    def __init__(self, relpath: str):
        self.printable = printable_path(relpath)
        super().__init__(f"{self.printable}: file name is not valid UTF-8; rename the file to keep it")


def printable_path(path: str) -> str:
    """``path`` with bytes that are not UTF-8 (surrogate escapes) written as ``\\xNN``."""
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def image_id(source_key: str, relpath: str | PurePosixPath, *, salt: str | bytes = b"") -> str:
    """Stable 20-hex-digit id of an image from its source key and path relative to the source folder.

    The id is a hash, never the file name: DICOM and other medical file names often carry patient
    ids. It does not depend on where RAW lives (``relpath`` must be relative; backslashes and
    ``./`` are normalised). A short or guessable file name could be found again by hashing guesses;
    pass a private ``salt`` (same salt, same ids) when that matters. A path that is not valid UTF-8
    raises :class:`UndecodableNameError`.
    """
    rel = str(relpath).replace("\\", "/")
    while rel.startswith("./"):
        rel = rel[2:]
    if rel.startswith("/") or (len(rel) > 1 and rel[1] == ":"):
        raise ValueError("image_id needs a path relative to the source folder, not an absolute one")
    salt_b = salt.encode("utf-8") if isinstance(salt, str) else bytes(salt)
    try:
        rel_b = rel.encode("utf-8")
    except UnicodeEncodeError:
        raise UndecodableNameError(rel) from None
    h = _id_prefix(salt_b, source_key).copy()
    h.update(struct.pack(">Q", len(rel_b)))
    h.update(rel_b)
    return h.hexdigest()[:20]


def _small_sha256() -> Callable[..., "hashlib._Hash"]:
    """The sha256 constructor cheapest for short inputs. ``hashlib.sha256`` goes through OpenSSL, whose set-up
    of each hash object costs about as much as hashing a short key; CPython's own implementation (``_sha256``,
    ``_sha2`` from Python 3.12) gives the same digests at about half the cost per key. Falls back to hashlib's."""
    for name in ("_sha2", "_sha256"):
        try:
            return importlib.import_module(name).sha256
        except (ImportError, AttributeError):
            continue
    return hashlib.sha256


#: sha256 for the 100,000s of short keys a build hashes (image ids, seeded order and split keys): the same
#: digests as :func:`hashlib.sha256`, made faster (see :func:`_small_sha256`)
small_sha256 = _small_sha256()
_SMALL_HASH = type(small_sha256())
_ID_CHARS = slice(0, 20)


def image_ids(source_key: str, relpaths: Iterable[str]) -> list[str | None]:
    """:func:`image_id` (no salt) of each path of a source, in one call; ``None`` where that path needs
    :func:`image_id` itself (to normalise it, or to raise its error). Where every path is clean ASCII
    (the usual case, checked once on the joined paths) each id is hashed in one pass of C calls: the
    bytes hashed are the same as :func:`image_id`'s (the source's prefix, the length, the path)."""
    rels = relpaths if isinstance(relpaths, list) else list(relpaths)
    try:
        joined = "\0".join(rels)
    except TypeError:  # something else than a str: image_id decides
        return _image_ids_one_by_one(source_key, rels)
    if (not joined.isascii() or "\\" in joined or ":" in joined or joined.startswith(("./", "/"))
            or "\0./" in joined or "\0/" in joined):
        return _image_ids_one_by_one(source_key, rels)
    # ASCII: each path's UTF-8 bytes are its latin-1 bytes, as many as its characters; the prefix (bytes) is
    # spelled in latin-1 too, one per path length, so that prefix + length + path is one str to encode
    prefix = _id_prefix_bytes(b"", source_key).decode("latin-1")
    heads = {n: prefix + n.to_bytes(8, "big").decode("latin-1") for n in set(map(len, rels))}
    hashed = map(small_sha256, map(str.encode, map(str.__add__, map(heads.__getitem__, map(len, rels)), rels),
                                   repeat("latin-1")))
    return list(map(getitem, map(_SMALL_HASH.hexdigest, hashed), repeat(_ID_CHARS)))


def _image_ids_one_by_one(source_key: str, rels: list) -> list[str | None]:
    """:func:`image_ids`, one path after the other (any paths)."""
    prefix = _id_prefix(b"", source_key)
    copy, out = prefix.copy, []
    for rel in rels:
        if type(rel) is not str or "\\" in rel or rel.startswith(("./", "/")) or rel[1:2] == ":":
            out.append(None)
            continue
        try:
            rel_b = rel.encode("utf-8")
        except UnicodeEncodeError:
            out.append(None)
            continue
        h = copy()
        h.update(len(rel_b).to_bytes(8, "big") + rel_b)  # the bytes of struct.pack(">Q", n) and the path
        out.append(h.hexdigest()[:20])
    return out


@functools.lru_cache(maxsize=256)
def _id_prefix(salt: bytes, source_key: str) -> "hashlib._Hash":
    """The hash state after the domain, the salt and the source key (the same for every image of a source)."""
    h = hashlib.sha256()
    h.update(_id_prefix_bytes(salt, source_key))
    return h


def _id_prefix_bytes(salt: bytes, source_key: str) -> bytes:
    """What an image id hashes before the path: the domain, the salt and the source key, each after its length."""
    return b"".join(struct.pack(">Q", len(part)) + part for part in (_ID_DOMAIN, salt, source_key.encode("utf-8")))


def pixel_hash(img: Image.Image) -> str:
    """xxh3-128 over mode, size and bytes of an 8-bit image (``L`` or ``RGB``; gray RGB counts as ``L``)."""
    mode = img.mode
    if mode == "L" and (pixels := _grey_pixels_in_place(img)) is not None:
        h = xxhash.xxh3_128()
        h.update(f"L:{img.width}x{img.height}:".encode())
        h.update(pixels)
        return h.hexdigest()
    # one copy of the pixels (:func:`_packed_bytes`) serves the grey check and the hash (``tobytes`` is
    # about 30 % cheaper than ``np.asarray`` on RGB images, whose array interface copies once more)
    shape = (img.height, img.width, 3) if mode == "RGB" else (img.height, img.width)
    arr = np.frombuffer(_packed_bytes(img), dtype=np.uint8).reshape(shape) if mode in ("L", "RGB") else np.asarray(img)
    if mode == "RGB" and is_gray(arr):
        arr, mode = np.ascontiguousarray(arr[..., 0]), "L"
    h = xxhash.xxh3_128()
    h.update(f"{mode}:{img.width}x{img.height}:".encode())
    h.update(arr)
    return h.hexdigest()


def _grey_pixels_in_place(img: Image.Image) -> memoryview | None:
    """The packed bytes of an ``L`` image where Pillow lays them out in one block, without a copy.

    Read through Pillow's Arrow export (zero-copy); None where that is not available (an image spread
    over several memory blocks, a Pillow or pyarrow without it): the caller then copies with ``tobytes``.
    """
    try:
        import pyarrow as pa
    except ImportError:
        return None
    try:
        arr = pa.array(img)
    except (ValueError, TypeError, AttributeError, pa.ArrowException):  # e.g. "rows are not contiguous"
        return None
    size = img.width * img.height
    if arr.type != pa.uint8() or arr.offset != 0 or len(arr) != size or arr.null_count:
        return None
    return memoryview(arr.buffers()[1])[:size]


def _packed_bytes(img: Image.Image) -> bytes:
    """``img.tobytes()`` for an ``L`` or ``RGB`` image, encoded into one buffer.

    ``tobytes`` encodes in 64 KB pieces and joins them (one more copy of the image, and a Python
    loop over the pieces); asking Pillow's raw encoder for the whole image at once gives the same
    bytes about a quarter faster on RGB images. Falls back to ``tobytes`` where Pillow's (internal)
    encoder interface differs.
    """
    img.load()  # an image opened but not yet decoded (``tobytes`` loads it too)
    try:
        return _encode_whole(img)
    except (AttributeError, TypeError, ValueError):
        return img.tobytes()


def _encode_whole(img: Image.Image) -> bytes:
    """The packed pixels of a loaded 8-bit image from Pillow's raw encoder, asked for all of them at once."""
    encoder = Image._getencoder(img.mode, "raw", img.mode)
    try:
        encoder.setimage(img.im, (0, 0, *img.size))
        size = img.width * img.height * len(img.getbands())
        chunks = []
        while True:
            _, status, data = encoder.encode(max(size, 1 << 16))
            if data:
                chunks.append(data)
            if status:
                break
    finally:
        encoder.cleanup()
    if status < 0:
        raise RuntimeError(f"encoder error {status} while reading the pixels of a {img.mode} image")
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def is_gray(arr: np.ndarray) -> bool:
    """Are the three channels of an RGB array equal? A sparse sample rejects colour images cheaply."""
    sample = arr[::16, ::16]
    if not (np.array_equal(sample[..., 0], sample[..., 1]) and np.array_equal(sample[..., 0], sample[..., 2])):
        return False
    return bool(np.array_equal(arr[..., 0], arr[..., 1]) and np.array_equal(arr[..., 0], arr[..., 2]))


PHASH_WORKING_SIZE = 128


#: Side of the grey thumbnail behind the perceptual hash (``imagehash.phash``'s 32x32 working image).
THUMBNAIL_SIDE = 32


def fingerprint(img: Image.Image) -> tuple[int, bytes]:
    """64-bit DCT perceptual hash and the 32x32 grey thumbnail it is computed from, in one pass.

    The decoded image is first box-reduced (:meth:`PIL.Image.Image.reduce`, integer factor) to at
    least :data:`PHASH_WORKING_SIZE` pixels a side, so the grey conversion and the LANCZOS resize to
    32x32 work on a small image (about 8x faster on 512 px images than on the full one). That 32x32
    grey image is the one ``imagehash.phash`` works on (it converts to grey and LANCZOS-resizes to
    32x32 itself, which leaves this thumbnail as it is), so the hash is computed once, from it, and the
    thumbnail is returned beside it as 1,024 bytes (row-major ``uint8``).
    """
    factor = min(img.width, img.height) // PHASH_WORKING_SIZE
    small = img.reduce(factor) if factor > 1 else img  # reduce first: converting a small image is cheap
    thumb = small.convert("L").resize((THUMBNAIL_SIDE, THUMBNAIL_SIDE), Image.Resampling.LANCZOS)
    data = thumb.tobytes()
    return phash_of_thumbnail(data), data


#: The 8 lowest rows of the unnormalised 32-point DCT-II (``scipy.fft.dct``'s default): ``2 cos(pi k (2n+1) / 64)``.
_DCT_LOW = 2 * np.cos(np.pi * np.arange(8)[:, None] * (2 * np.arange(THUMBNAIL_SIDE)[None, :] + 1)
                      / (2 * THUMBNAIL_SIDE))
_DCT_LOW_T = np.ascontiguousarray(_DCT_LOW.T)


#: A coefficient closer than this to the median is too close to call from the matrix product (whose
#: rounding, about 1e-10 here, differs from the FFT's): the FFT decides, as in ``imagehash.phash``.
_TIE_MARGIN = 1e-5


def phash_of_thumbnail(thumbnail: bytes) -> int:
    """``imagehash.phash`` of a 32x32 grey thumbnail (1,024 ``uint8`` bytes, row-major), bit for bit.

    The same steps as ``imagehash.phash`` (2-D DCT-II of the pixels, the 8x8 lowest frequencies, each
    bit set when above their median, first coefficient as the highest bit). The 8x8 block is two small
    matrix products with the first 8 DCT rows; where a coefficient lies within :data:`_TIE_MARGIN` of
    the median (flat or symmetric thumbnails, whose exact ties the FFT's rounding decides), it is taken
    from ``scipy.fft.dct`` instead, as ``imagehash`` computes it, so every bit is the same.
    """
    pixels = np.frombuffer(thumbnail, dtype=np.uint8).reshape(THUMBNAIL_SIDE, THUMBNAIL_SIDE).astype(np.float64)
    low = _DCT_LOW @ pixels @ _DCT_LOW_T
    ranked = np.sort(low, axis=None)
    # the coefficients nearest the median are the two it lies between
    if ranked[32] - ranked[31] < 2 * _TIE_MARGIN:
        low = scipy.fft.dct(scipy.fft.dct(pixels, axis=0), axis=1)[:8, :8]
        ranked = np.sort(low, axis=None)
    median = (ranked[31] + ranked[32]) / 2  # what numpy.median gives for 64 values, without its overhead
    return int.from_bytes(np.packbits(low > median).tobytes(), "big")


def perceptual_hash(img: Image.Image) -> int:
    """64-bit DCT perceptual hash (``imagehash.phash`` of the box-reduced image) as an unsigned int."""
    return fingerprint(img)[0]


# --------------------------------------------------------------------------- public helpers
def phash_distance(a: int, b: int) -> int:
    """Number of differing bits between two 64-bit perceptual hashes."""
    return int(a ^ b).bit_count()
