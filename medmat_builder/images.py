"""Open one raw image safely and turn it into the bytes a record carries.

Rules (issue 2 item 5, issue 7):

- **Keep or convert.** A file whose *content* is a PNG (8-bit grayscale or 8-bit RGB, single frame)
  or a JPEG (8-bit grayscale or YCbCr/RGB) keeps its compressed image data byte for byte, whatever
  its extension says; only its metadata segments (EXIF, XMP, IPTC, comments, PNG text chunks) are
  removed (:func:`strip_metadata`), since they can carry places, dates, devices or names.
  Everything else is converted to an 8-bit PNG (grayscale ``L`` or ``RGB``): TIFF, BMP, WEBP,
  single-frame GIF, palette/alpha/16-bit PNG, CMYK/YCCK JPEG, DICOM. Conversion is deterministic
  (same input, same bytes) and carries no metadata: the PNG holds only ``IHDR``, ``IDAT`` and ``IEND``.
- **8-bit mapping.** 16-bit and 32-bit/float images (PNG, TIFF) are stretched min-max to 0-255 per
  image (medical 16-bit files rarely use the full range). Palette images are expanded; alpha is
  composited over black (medical backgrounds are black; a fully opaque alpha changes nothing). CMYK
  uses Pillow's plain conversion (no colour management). An RGB result whose three channels are
  equal is stored as grayscale. An image whose EXIF says to rotate or mirror it (Orientation 2-8)
  is converted to a PNG with that orientation applied (its EXIF block does not travel), so every
  reader sees the image as displayed, the way sizes and hashes are computed; ``orientation`` tells
  the caller, which moves the image's boxes into that frame too
  (:func:`medmat_builder.boxes.orient_boxes`).
- **Multi-frame.** Animated GIF/APNG, multi-page TIFF and multi-frame DICOM are refused with reason
  ``multiframe``: which frame (or which slice of a volume) carries the label is a dataset decision,
  never a silent default. JPEG MPO files (a camera's primary JPEG plus previews) use the primary
  image and are converted.
- **DICOM** (``pydicom`` and its pixel-data plugins, see :mod:`medmat_builder.dicom` for the transfer
  syntaxes decoded): monochrome images through pydicom's Modality LUT, then VOI (the first Window
  Center/Width with its VOI LUT Function, else a VOI LUT sequence, else min-max), MONOCHROME1
  inverted (:func:`medmat_builder.dicom.render_monochrome`); palette colour is expanded; YBR is
  delivered as RGB. A transfer syntax that nothing installed decodes is refused with reason
  ``unsupported_dicom`` and a detail naming the syntax and what would decode it. Only pixels leave
  this module: no header value (other than a transfer syntax UID) reaches the output bytes, the ids,
  or any error message. Files whose header says Burned In Annotation = YES are refused
  (``unsupported``), since their pixels may show patient data.
- **Completeness.** Every image is fully decoded (``ImageFile.LOAD_TRUNCATED_IMAGES`` stays off);
  PNG chunk CRCs are checked up to ``IEND``. A pixel limit (:data:`MAX_IMAGE_PIXELS`) is checked
  from the header before any decoding, so a decompression bomb costs nothing.
- **Hashes.** ``pixel_hash`` (128-bit xxh3) is over the decoded 8-bit pixels (mode, size and bytes),
  so the same picture stored as PNG, BMP or TIFF, or re-saved losslessly, has one hash; a
  non-cryptographic hash suffices to tell identical pixels apart and is about 10x cheaper than
  sha256 on megapixel images. ``file_sha256`` is over the file bytes. ``phash`` (64-bit DCT perceptual
  hash, the value of ``imagehash.phash``) and ``thumbnail`` (the 32x32 grey image that hash is computed
  from, 1 KB) come from one box-reduced copy of the decoded image (:func:`fingerprint`): no second
  decode. Near duplicates are decided from both in :mod:`medmat_builder.duplicates` (the hash
  proposes, the thumbnail confirms).

Errors are :class:`ImageError` with a ``reason`` from :data:`IMAGE_ERROR_REASONS` (the same names as
the build report's drop reasons) and a message naming the file.
"""

from __future__ import annotations

import hashlib
import io
import struct
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Literal

import imagehash
import numpy as np
import xxhash
from PIL import Image, ImageOps, UnidentifiedImageError

from medmat_builder.dicom import (
    PixelDataError,
    decode_pixel_array,
    decoder_problem,
    render_monochrome,
    transfer_syntax_name,
    undecodable_detail,
)

#: Largest accepted image, in pixels (width x height x frames), checked from the header before decoding.
#: Below Pillow's own warning threshold, so this limit is the one that applies.
MAX_IMAGE_PIXELS = 80_000_000

ImageReason = Literal["corrupt", "truncated", "empty", "too_large", "unsupported", "unsupported_dicom", "multiframe"]
IMAGE_ERROR_REASONS: tuple[str, ...] = (
    "corrupt", "truncated", "empty", "too_large", "unsupported", "unsupported_dicom", "multiframe",
)

#: Formats Pillow may parse. An allow-list keeps exotic parsers (EPS runs Ghostscript) out of reach.
#: (A JPEG holding several pictures opens as "MPO" through the JPEG entry.)
PIL_FORMATS = ("PNG", "JPEG", "TIFF", "BMP", "DIB", "GIF", "WEBP", "PPM", "JPEG2000")
DICOM_EXTENSIONS = (".dcm", ".dicom", ".dic", "")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_COMPRESS_LEVEL = 6


class ImageError(Exception):
    """An image that cannot be used; ``reason`` is one of :data:`IMAGE_ERROR_REASONS`.

    ``str(err)`` is ``"<path>: <detail>"``. ``detail`` alone never holds a path or a DICOM header
    value, so it is safe to write into a build report.
    """

    def __init__(self, reason: str, message: str, *, path: str | Path | None = None, detail: str | None = None):
        if reason not in IMAGE_ERROR_REASONS:
            raise ValueError(f"unknown image error reason {reason!r}")
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.path = str(path) if path is not None else None
        self.detail = detail if detail is not None else message

    def __reduce__(self):  # keep reason/detail across process pools
        return (_rebuild_image_error, (self.reason, self.message, self.path, self.detail))


def _rebuild_image_error(reason: str, message: str, path: str | None, detail: str) -> ImageError:
    return ImageError(reason, message, path=path, detail=detail)


def _fail(reason: str, path: Path | str, detail: str) -> ImageError:
    return ImageError(reason, f"{path}: {detail}", path=path, detail=detail)


@dataclass(frozen=True)
class LoadedImage:
    """An image ready for a record: ``data`` is PNG or JPEG bytes (``format``)."""

    data: bytes
    format: Literal["png", "jpeg"]
    width: int
    height: int
    #: xxh3-128 of the decoded 8-bit pixels (mode, size, bytes): equal for pixel-identical images.
    pixel_hash: str
    #: 64-bit perceptual hash (imagehash.phash) as an int; compare with :func:`phash_distance`.
    phash: int
    #: The grey :data:`THUMBNAIL_SIDE` x :data:`THUMBNAIL_SIDE` image (uint8, row-major) the perceptual
    #: hash is computed from; :mod:`medmat_builder.duplicates` compares it to confirm a near duplicate.
    thumbnail: bytes
    #: sha256 of the file as read from disk.
    file_sha256: str
    #: True when ``data`` is the original image data (with its metadata segments removed, see
    #: :func:`strip_metadata`), False when it was converted to PNG.
    kept_original: bool
    #: What the file really was ("PNG", "JPEG", "TIFF", "DICOM" ...), whatever its extension.
    source_format: str
    #: EXIF Orientation (2-8) applied to the stored pixels, or 1 when none was: boxes drawn on the
    #: file's stored pixel grid move with :func:`medmat_builder.boxes.orient_boxes`.
    orientation: int = 1


# --------------------------------------------------------------------------- public helpers
def phash_distance(a: int, b: int) -> int:
    """Number of differing bits between two 64-bit perceptual hashes."""
    return int(a ^ b).bit_count()


_ID_DOMAIN = b"medmat-image-id-v1"


def image_id(source_key: str, relpath: str | PurePosixPath, *, salt: str | bytes = b"") -> str:
    """Stable 20-hex-digit id of an image from its source key and path relative to the source folder.

    The id is a hash, never the file name: DICOM and other medical file names often carry patient
    ids. It does not depend on where RAW lives (``relpath`` must be relative; backslashes and
    ``./`` are normalised). A short or guessable file name could be found again by hashing guesses;
    pass a private ``salt`` (same salt, same ids) when that matters.
    """
    rel = str(relpath).replace("\\", "/")
    while rel.startswith("./"):
        rel = rel[2:]
    if rel.startswith("/") or (len(rel) > 1 and rel[1] == ":"):
        raise ValueError("image_id needs a path relative to the source folder, not an absolute one")
    salt_b = salt.encode("utf-8") if isinstance(salt, str) else bytes(salt)
    h = hashlib.sha256()
    for part in (_ID_DOMAIN, salt_b, source_key.encode("utf-8"), rel.encode("utf-8")):
        h.update(struct.pack(">Q", len(part)))
        h.update(part)
    return h.hexdigest()[:20]


def pixel_hash(img: Image.Image) -> str:
    """xxh3-128 over mode, size and bytes of an 8-bit image (``L`` or ``RGB``; gray RGB counts as ``L``)."""
    arr = np.asarray(img)  # one copy of the pixels serves the grey check and the hash
    mode = img.mode
    if mode == "RGB" and _is_gray(arr):
        arr, mode = np.ascontiguousarray(arr[..., 0]), "L"
    h = xxhash.xxh3_128()
    h.update(f"{mode}:{img.width}x{img.height}:".encode())
    h.update(arr)
    return h.hexdigest()


def _is_gray(arr: np.ndarray) -> bool:
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
    return int(str(imagehash.phash(thumb)), 16), thumb.tobytes()


def perceptual_hash(img: Image.Image) -> int:
    """64-bit DCT perceptual hash (``imagehash.phash`` of the box-reduced image) as an unsigned int."""
    return fingerprint(img)[0]


def encode_png(img: Image.Image) -> bytes:
    """Deterministic PNG of an ``L``/``RGB`` image: fixed compression, no metadata chunks."""
    arr = np.asarray(img)
    fresh = Image.fromarray(np.ascontiguousarray(arr), mode=None)  # drops info: no ICC, dpi, text
    buf = io.BytesIO()
    fresh.save(buf, format="PNG", compress_level=_PNG_COMPRESS_LEVEL, optimize=False)
    return buf.getvalue()


#: JPEG segments kept by :func:`strip_metadata`: APP0 (JFIF), APP2 (ICC colour profile) and APP14
#: (Adobe: tells RGB from YCbCr). Other APPn (APP1 EXIF/XMP, APP13 IPTC, vendor data) and COM go.
_JPEG_KEEP_APP = {0xE0, 0xE2, 0xEE}
#: PNG ancillary chunks that may carry free text, dates or camera data; dropped by :func:`strip_metadata`.
_PNG_DROP = {b"tEXt", b"zTXt", b"iTXt", b"eXIf", b"tIME"}


def strip_metadata(data: bytes, name: str | Path = "<bytes>") -> bytes:
    """PNG or JPEG bytes without their metadata (EXIF, XMP, IPTC, comments, text chunks), pixels untouched.

    Only container segments are removed; the compressed image data is copied as it is, so the
    decoded pixels are bit-identical. Metadata can name devices, places, dates or people (a phone
    photo's GPS position, a comment with a patient name), and nothing in it is needed for a record.
    Raises ``ValueError`` when the segment structure is not the expected one (stray bytes between
    segments, which decoders tolerate); callers then convert the decoded pixels instead.
    """
    if data.startswith(_PNG_SIGNATURE):
        out, pos = [data[:8]], 8
        while pos + 8 <= len(data):
            length, ctype = struct.unpack(">I4s", data[pos : pos + 8])
            end = pos + 12 + length
            if ctype not in _PNG_DROP:
                out.append(data[pos:end])
            pos = end
            if ctype == b"IEND":
                break
        return b"".join(out)
    if not data.startswith(b"\xff\xd8"):
        raise ValueError(f"{name}: strip_metadata takes PNG or JPEG bytes")
    out, pos = [data[:2]], 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            raise ValueError(f"{name}: JPEG marker expected at byte {pos}")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0xDA:  # start of scan: the rest is image data (and later scans), copied as is
            out.append(data[pos:])
            return b"".join(out)
        if marker in (0x01, *range(0xD0, 0xD8)):  # markers without a length
            out.append(data[pos : pos + 2])
            pos += 2
            continue
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        end = pos + 2 + length
        is_app = 0xE0 <= marker <= 0xEF
        if not (marker == 0xFE or (is_app and marker not in _JPEG_KEEP_APP)):
            out.append(data[pos:end])
        pos = end
    raise ValueError(f"{name}: JPEG ends before its image data")


# --------------------------------------------------------------------------- loading
def load_image(path: str | Path, *, max_pixels: int = MAX_IMAGE_PIXELS) -> LoadedImage:
    """Read, fully decode and check one image file; keep it if PNG/JPEG 8-bit L/RGB, else convert to PNG.

    Raises :class:`ImageError` (reason in :data:`IMAGE_ERROR_REASONS`, message naming the file).
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise _fail("corrupt", path, "file not found") from None
    except OSError as exc:
        raise _fail("corrupt", path, f"cannot be read ({exc.strerror or type(exc).__name__})") from None
    return load_image_bytes(data, path, max_pixels=max_pixels)


def load_image_bytes(data: bytes, name: str | Path = "<bytes>", *, max_pixels: int = MAX_IMAGE_PIXELS) -> LoadedImage:
    """Like :func:`load_image` for bytes already in memory; ``name`` is used in messages."""
    if len(data) == 0:
        raise _fail("empty", name, "zero-byte file")
    file_hash = hashlib.sha256(data).hexdigest()
    ext = Path(str(name)).suffix.lower()
    if _looks_like_dicom(data):
        return _load_dicom(data, name, file_hash, max_pixels)
    try:
        return _load_pillow(data, name, file_hash, max_pixels)
    except _NotPillow:
        pass
    if ext in DICOM_EXTENSIONS or ext not in _KNOWN_PIL_EXTENSIONS:
        # DICOM without the 128-byte preamble ("DICM" magic), as some old exporters write it.
        try:
            return _load_dicom(data, name, file_hash, max_pixels, force=True)
        except _NotDicom:
            pass
    raise _fail("corrupt", name, f"content is not a readable image (extension {ext or 'none'!r})")


_KNOWN_PIL_EXTENSIONS = (".png", ".jpg", ".jpeg", ".jpe", ".jfif", ".tif", ".tiff", ".bmp", ".dib", ".gif",
                         ".webp", ".ppm", ".pgm", ".pbm", ".jp2", ".j2k")


def _pil_formats() -> list[str]:
    Image.init()
    return [f for f in PIL_FORMATS if f in Image.OPEN]


class _NotPillow(Exception):
    pass


class _NotDicom(Exception):
    pass


# --------------------------------------------------------------------------- Pillow formats
def _check_png_chunks(data: bytes, name: str | Path) -> tuple[int, int, bool]:
    """Walk PNG chunks (CRC checked) up to IEND; return (bit depth, colour type, has acTL)."""
    pos, n = 8, len(data)
    bit_depth = color_type = -1
    animated = False
    while True:
        if pos + 12 > n:
            raise _fail("truncated", name, "PNG ends before its IEND chunk")
        length, ctype = struct.unpack(">I4s", data[pos : pos + 8])
        end = pos + 12 + length
        if length > 0x7FFFFFFF:
            raise _fail("corrupt", name, "PNG chunk length is invalid")
        if end > n:
            raise _fail("truncated", name, f"PNG chunk {ctype.decode('latin-1')!r} is cut short")
        body = data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : end])
        if zlib.crc32(ctype + body) & 0xFFFFFFFF != crc:
            raise _fail("corrupt", name, f"PNG chunk {ctype.decode('latin-1')!r} fails its CRC check")
        if ctype == b"IHDR" and length >= 13:
            bit_depth, color_type = body[8], body[9]
        elif ctype == b"acTL":
            animated = True
        elif ctype == b"IEND":
            return bit_depth, color_type, animated
        pos = end


_SIGNATURES = (
    (b"\xff\xd8", "JPEG"), (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"), (b"BM", "BMP"),
    (b"GIF87a", "GIF"), (b"GIF89a", "GIF"),
)


def _load_pillow(data: bytes, name: str | Path, file_hash: str, max_pixels: int) -> LoadedImage:
    png_info = _check_png_chunks(data, name) if data.startswith(_PNG_SIGNATURE) else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit applies below
        warnings.simplefilter("ignore", UserWarning)  # "Corrupt EXIF data" and the like: decoding decides
        try:
            im = Image.open(io.BytesIO(data), formats=_pil_formats())
        except UnidentifiedImageError:
            if png_info is not None:
                raise _fail("corrupt", name, "PNG header cannot be parsed") from None
            for sig, fmt in _SIGNATURES:
                if data.startswith(sig):
                    if fmt == "JPEG" and b"\xff\xd9" not in data:
                        raise _fail("truncated", name, "JPEG file is cut short (no end-of-image marker)") from None
                    if fmt == "TIFF" and (len(data) < 8 or struct.unpack(
                            "<I" if data[:2] == b"II" else ">I", data[4:8])[0] >= len(data)):
                        raise _fail("truncated", name, "TIFF file is cut short (its directory is missing)") from None
                    raise _fail("corrupt", name, f"{fmt} header cannot be parsed") from None
            raise _NotPillow() from None
        except Image.DecompressionBombError:
            raise _fail("too_large", name, "image dimensions exceed the decompression-bomb limit") from None
        except (OSError, SyntaxError, ValueError, struct.error, EOFError) as exc:
            raise _classify_decode_error(exc, name) from None

        fmt = im.format or "?"
        width, height = im.size
        if width <= 0 or height <= 0:
            raise _fail("corrupt", name, f"{fmt} header gives an empty size {width}x{height}")
        if width * height > max_pixels:
            raise _fail("too_large", name, f"{fmt} is {width}x{height} pixels, over the limit of {max_pixels:,}")

        if fmt == "PNG" and png_info is not None:
            if png_info[2]:
                raise _fail("multiframe", name, "animated PNG (APNG); refusing to pick a frame")
        try:
            frames = getattr(im, "n_frames", 1)
        except (OSError, EOFError, ValueError, struct.error) as exc:
            raise _classify_decode_error(exc, name) from None
        if frames > 1 and fmt != "MPO":
            what = {"GIF": "animated GIF", "TIFF": "multi-page TIFF", "WEBP": "animated WEBP"}.get(fmt, f"multi-frame {fmt}")
            raise _fail("multiframe", name, f"{what} with {frames} frames; refusing to pick a frame")
        try:
            im.load()
        except Image.DecompressionBombError:
            raise _fail("too_large", name, "image exceeds the decompression-bomb limit") from None
        except (OSError, SyntaxError, ValueError, struct.error, EOFError, zlib.error) as exc:
            raise _classify_decode_error(exc, name, fmt) from None

    keep = False
    if fmt == "PNG" and png_info is not None:
        keep = png_info[0] == 8 and png_info[1] in (0, 2) and im.mode in ("L", "RGB")
    elif fmt == "JPEG":
        keep = im.mode in ("L", "RGB")

    oriented, orientation = _apply_exif_orientation(im)
    if orientation != 1:
        keep = False  # the EXIF block goes (strip_metadata), so the orientation is baked into a PNG
    try:
        pixels = _to_8bit(oriented)
    except (OSError, ValueError) as exc:
        raise _fail("unsupported", name, f"{fmt} mode {im.mode!r} cannot be mapped to 8-bit ({exc})") from None

    if keep:
        try:
            out, out_fmt = strip_metadata(data, name), ("png" if fmt == "PNG" else "jpeg")
        except ValueError:  # an odd segment layout: the decoded pixels go to a PNG instead
            keep = False
    if not keep:
        pixels = _collapse_gray(pixels)
        out, out_fmt = encode_png(pixels), "png"
    phash, thumbnail = fingerprint(pixels)
    return LoadedImage(
        data=out,
        format=out_fmt,
        width=pixels.width,
        height=pixels.height,
        pixel_hash=pixel_hash(pixels),
        phash=phash,
        thumbnail=thumbnail,
        file_sha256=file_hash,
        kept_original=keep,
        source_format=fmt,
        orientation=orientation,
    )


def _apply_exif_orientation(im: Image.Image) -> tuple[Image.Image, int]:
    """The image as displayed and the EXIF Orientation applied (1: none; 2-8: mirrored and/or rotated)."""
    try:
        value = im.getexif().get(0x0112, 1)
        if value not in range(2, 9):  # 1 is "as stored"; other values mean nothing: use stored orientation
            return im, 1
        return ImageOps.exif_transpose(im), int(value)
    except Exception:  # a broken EXIF block must not lose the image; use stored orientation
        return im, 1


def _classify_decode_error(exc: BaseException, name: str | Path, fmt: str = "image") -> ImageError:
    text = str(exc)
    if "truncated" in text.lower() or isinstance(exc, EOFError) or "end of file" in text.lower():
        return _fail("truncated", name, f"{fmt} file is cut short ({text or type(exc).__name__})")
    if "not supported" in text.lower() or "unsupported" in text.lower() or "decoder" in text.lower():
        return _fail("unsupported", name, f"{fmt} cannot be decoded here ({text})")
    return _fail("corrupt", name, f"{fmt} cannot be decoded ({text or type(exc).__name__})")


def _to_8bit(im: Image.Image) -> Image.Image:
    """Map any Pillow mode to 8-bit ``L`` or ``RGB`` (see the module rules)."""
    mode = im.mode
    if mode in ("L", "RGB"):
        return im
    if mode == "1":
        return im.convert("L")
    if mode in ("P", "PA"):
        has_alpha = mode == "PA" or "transparency" in im.info
        im = im.convert("RGBA" if has_alpha else "RGB")
        mode = im.mode
        if mode == "RGB":
            return im
    if mode in ("RGBA", "RGBa", "LA", "La"):
        rgba = im.convert("RGBA")
        black = Image.new("RGBA", im.size, (0, 0, 0, 255))
        flat = Image.alpha_composite(black, rgba).convert("RGB")
        return flat.convert("L") if mode.startswith("L") else flat
    if mode.startswith("I") or mode == "F":
        arr = np.asarray(im)
        return Image.fromarray(_minmax_to_uint8(arr.astype(np.float64)), mode="L")
    if mode in ("RGB;16", "RGBA;16") or mode.endswith(";16"):
        arr = np.asarray(im).astype(np.float64)
        return Image.fromarray(_minmax_to_uint8(arr[..., :3]), mode="RGB")
    return im.convert("RGB")  # CMYK, YCbCr, LAB, HSV


def _collapse_gray(img: Image.Image) -> Image.Image:
    if img.mode != "RGB":
        return img
    arr = np.asarray(img)
    if _is_gray(arr):
        return Image.fromarray(np.ascontiguousarray(arr[..., 0]), mode="L")
    return img


def _minmax_to_uint8(arr: np.ndarray) -> np.ndarray:
    arr = np.nan_to_num(arr.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    lo, hi = float(arr.min()), float(arr.max())
    if hi <= lo:
        return np.zeros(arr.shape, dtype=np.uint8)
    return np.clip(np.rint((arr - lo) * (255.0 / (hi - lo))), 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------- DICOM
def _looks_like_dicom(data: bytes) -> bool:
    return len(data) >= 132 and data[128:132] == b"DICM"


def _load_dicom(data: bytes, name: str | Path, file_hash: str, max_pixels: int, *, force: bool = False) -> LoadedImage:
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
                raise _NotDicom() from None
            raise _fail("corrupt", name, "DICOM file cannot be parsed") from None
        except EOFError:
            raise _fail("truncated", name, "DICOM file ends inside its header") from None
        except Exception:
            if force:
                raise _NotDicom() from None
            raise _fail("corrupt", name, "DICOM file cannot be parsed") from None
        if force and not any(tag in ds for tag in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
            if len(ds) == 0 or "SOPClassUID" not in ds and "Rows" not in ds:
                raise _NotDicom()
        if "PixelData" not in ds:
            sop = ds.get("SOPClassUID") or getattr(getattr(ds, "file_meta", None), "MediaStorageSOPClassUID", None)
            if len(ds) == 0 or "Image Storage" in str(getattr(sop, "name", "")):
                raise _fail("truncated", name, "DICOM image file ends before its pixel data")
            raise _fail("unsupported", name, "DICOM object has no (integer) pixel data (not an image object)")
        if str(ds.get("BurnedInAnnotation", "")).strip().upper() == "YES":
            raise _fail("unsupported", name, "DICOM says Burned In Annotation = YES: its pixels may show patient data")
        try:
            frames = int(ds.get("NumberOfFrames") or 1)
            rows, cols = int(ds.Rows), int(ds.Columns)
        except (AttributeError, TypeError, ValueError):
            raise _fail("corrupt", name, "DICOM header lacks a valid Rows/Columns/Number of Frames") from None
        if frames > 1:
            raise _fail("multiframe", name, f"multi-frame DICOM with {frames} frames; refusing to pick a frame")
        if rows <= 0 or cols <= 0:
            raise _fail("corrupt", name, f"DICOM header gives an empty size {cols}x{rows}")
        if rows * cols > max_pixels:
            raise _fail("too_large", name, f"DICOM is {cols}x{rows} pixels, over the limit of {max_pixels:,}")
        photometric = str(ds.get("PhotometricInterpretation", "")).strip().upper()
        _ensure_transfer_syntax(ds)
        tsyntax = str(ds.file_meta.TransferSyntaxUID)
        problem = decoder_problem(tsyntax)
        if problem is not None:
            raise _fail("unsupported_dicom", name, problem)
        ts_name = f"{transfer_syntax_name(tsyntax)} ({tsyntax})"
        try:
            arr = decode_pixel_array(ds).array
        except PixelDataError as exc:  # no decoder may be given this stream (its text holds no header value)
            raise _fail("corrupt", name, f"DICOM pixel data in {ts_name} cannot be decoded: {exc}") from None
        except NotImplementedError:
            raise _fail("unsupported_dicom", name, undecodable_detail(tsyntax)) from None
        except ValueError as exc:
            if "less than expected" in str(exc) or "truncat" in str(exc).lower():
                raise _fail("truncated", name, "DICOM pixel data is shorter than its header says") from None
            raise _fail("corrupt", name, f"DICOM pixel data in {ts_name} cannot be decoded") from None
        except Exception:  # every installed decoder refused the data: a damaged or non-conformant stream
            raise _fail("corrupt", name, f"DICOM pixel data in {ts_name} cannot be decoded "
                                         "(the installed decoders reject it: damaged or non-conformant)") from None

        if photometric in ("MONOCHROME1", "MONOCHROME2"):
            if arr.ndim != 2:
                raise _fail("unsupported", name, f"{photometric} DICOM with pixel array shape {arr.shape}")
            img = Image.fromarray(np.ascontiguousarray(render_monochrome(arr, ds)), mode="L")
        elif photometric == "PALETTE COLOR":
            rgb = np.asarray(apply_color_lut(arr, ds))
            img = Image.fromarray(_scale_color(rgb, 16 if rgb.max(initial=0) > 255 else 8), mode="RGB")
        elif photometric in ("RGB", "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT", "YBR_PARTIAL_420"):
            if arr.ndim != 3 or arr.shape[-1] != 3:
                raise _fail("unsupported", name, f"colour DICOM with pixel array shape {arr.shape}")
            bits = int(ds.get("BitsStored") or ds.get("BitsAllocated") or 8)
            img = Image.fromarray(_scale_color(arr, bits), mode="RGB")
        else:
            raise _fail("unsupported", name, f"DICOM photometric interpretation {photometric or 'missing'!r} is not supported")

    img = _collapse_gray(img)
    phash, thumbnail = fingerprint(img)
    return LoadedImage(
        data=encode_png(img),
        format="png",
        width=img.width,
        height=img.height,
        pixel_hash=pixel_hash(img),
        phash=phash,
        thumbnail=thumbnail,
        file_sha256=file_hash,
        kept_original=False,
        source_format="DICOM",
    )


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


def _scale_color(arr: np.ndarray, bits: int) -> np.ndarray:
    if arr.dtype == np.uint8 and bits <= 8:
        return np.ascontiguousarray(arr)
    top = float(2 ** max(bits, 1) - 1)
    return np.clip(np.rint(arr.astype(np.float64) * (255.0 / top)), 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------- synthetic images
FAKE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif", ".webp", ".dcm")


def fake_pixels(seed: int, size: tuple[int, int] = (64, 64), *, color: bool = False) -> np.ndarray:
    """A clearly synthetic, seed-determined uint8 picture (smooth gradient plus discs), H x W (x 3)."""
    width, height = size
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    angle = rng.uniform(0, 2 * np.pi)
    base = 60 + 60 * (np.cos(angle) * xx / max(width, 1) + np.sin(angle) * yy / max(height, 1))
    for _ in range(int(rng.integers(2, 5))):
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        r = rng.uniform(0.08, 0.3) * min(width, height)
        base = base + rng.uniform(60, 120) * (((xx - cx) ** 2 + (yy - cy) ** 2) < r * r)
    gray = np.clip(base, 0, 255).astype(np.uint8)
    if not color:
        return gray
    tint = rng.uniform(0.6, 1.0, size=3)
    return np.clip(gray[..., None] * tint[None, None, :], 0, 255).astype(np.uint8)


def write_fake_image(
    source: np.ndarray | int,
    ext: str = ".png",
    *,
    size: tuple[int, int] = (64, 64),
    color: bool = False,
    rescale_slope: float = 1.0,
    rescale_intercept: float = 0.0,
    window: tuple[float, float] | None = None,
    photometric: str = "MONOCHROME2",
) -> bytes:
    """Encode a synthetic image (an array, or a seed for :func:`fake_pixels`) as a file of type ``ext``.

    Deterministic: same arguments, same bytes. ``.png`` keeps a ``uint16`` array as a 16-bit PNG.
    ``.dcm`` writes a Secondary Capture object with no identifying attributes at all (patient and
    study fields empty, UIDs derived from the pixels); integer arrays are stored as they are, with the
    given rescale, window and photometric interpretation. ``.gif`` writes a single frame.
    """
    arr = fake_pixels(source, size, color=color) if isinstance(source, (int, np.integer)) else np.asarray(source)
    ext = ext.lower() if ext.startswith(".") else "." + ext.lower()
    if ext == ".dcm":
        return _fake_dicom(arr, rescale_slope, rescale_intercept, window, photometric)
    if arr.dtype != np.uint8 and not (ext in (".png", ".tif", ".tiff") and arr.dtype == np.uint16 and arr.ndim == 2):
        arr = _minmax_to_uint8(arr)
    img = Image.fromarray(np.ascontiguousarray(arr))
    buf = io.BytesIO()
    if ext == ".png":
        img.save(buf, format="PNG", compress_level=_PNG_COMPRESS_LEVEL)
    elif ext in (".jpg", ".jpeg"):
        img.save(buf, format="JPEG", quality=92)
    elif ext in (".tif", ".tiff"):
        img.save(buf, format="TIFF", compression="tiff_deflate")
    elif ext == ".bmp":
        img.save(buf, format="BMP")
    elif ext == ".gif":
        img.save(buf, format="GIF")
    elif ext == ".webp":
        img.save(buf, format="WEBP", lossless=True)
    else:
        raise ValueError(f"write_fake_image: unsupported extension {ext!r}; use one of {', '.join(FAKE_EXTENSIONS)}")
    return buf.getvalue()


def _fake_dicom(arr: np.ndarray, slope: float, intercept: float, window: tuple[float, float] | None,
                photometric: str) -> bytes:
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    digest = hashlib.sha256(arr.tobytes() + str(arr.shape).encode() + str(arr.dtype).encode()).hexdigest()
    sop_uid = generate_uid(entropy_srcs=["medmat-fake-sop", digest])
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"  # Secondary Capture Image Storage
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = generate_uid(entropy_srcs=["medmat-fake-implementation"])
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = sop_uid
    ds.StudyInstanceUID = generate_uid(entropy_srcs=["medmat-fake-study", digest])
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=["medmat-fake-series", digest])
    ds.Modality = "OT"
    ds.PatientName = ""
    ds.PatientID = ""
    ds.ImageComments = "SYNTHETIC medmat demo image; not patient data"
    ds.Rows, ds.Columns = int(arr.shape[0]), int(arr.shape[1])
    if arr.ndim == 3:
        data = np.ascontiguousarray(arr.astype(np.uint8))
        ds.SamplesPerPixel = 3
        ds.PhotometricInterpretation = "RGB"
        ds.PlanarConfiguration = 0
        ds.BitsAllocated = ds.BitsStored = 8
        ds.HighBit = 7
        ds.PixelRepresentation = 0
    else:
        if arr.dtype == np.uint8:
            data, bits, signed = arr, 8, 0
        elif arr.dtype in (np.int16, np.int32, np.int64, np.int8) and arr.min(initial=0) < 0:
            data, bits, signed = arr.astype("<i2"), 16, 1
        else:
            data, bits, signed = arr.astype("<u2"), 16, 0
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = photometric
        ds.BitsAllocated = ds.BitsStored = bits
        ds.HighBit = bits - 1
        ds.PixelRepresentation = signed
        if slope != 1.0 or intercept != 0.0:
            ds.RescaleSlope = f"{slope:g}"
            ds.RescaleIntercept = f"{intercept:g}"
        if window is not None:
            ds.WindowCenter = f"{window[0]:g}"
            ds.WindowWidth = f"{window[1]:g}"
        data = np.ascontiguousarray(data)
    ds.PixelData = data.tobytes()
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()
