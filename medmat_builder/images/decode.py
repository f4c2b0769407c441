"""Open one raw image safely and turn it into the bytes a record carries (:func:`load_image`).

- **Keep or convert.** A file whose *content* is a PNG (8-bit grayscale or 8-bit RGB, single frame)
  or a JPEG (8-bit grayscale or YCbCr/RGB) keeps its compressed image data byte for byte, whatever
  its extension says; only its metadata segments are removed
  (:func:`~medmat_builder.images.metadata.strip_metadata`), since they can carry places, dates,
  devices or names. Everything else is converted to an 8-bit PNG (:mod:`medmat_builder.images.convert`):
  TIFF, BMP, WEBP, single-frame GIF, palette/alpha/16-bit PNG, CMYK/YCCK JPEG, DICOM
  (:mod:`medmat_builder.images.dicom`), and photos whose EXIF turns them (``orientation`` tells the
  caller, which moves the image's boxes into that frame too).
- **Multi-frame.** Animated GIF/APNG, multi-page TIFF and multi-frame DICOM are refused with reason
  ``multiframe``: which frame (or which slice of a volume) carries the label is a dataset decision,
  never a silent default. JPEG MPO files (a camera's primary JPEG plus previews) use the primary
  image and are converted.
- **Completeness.** Every image is fully decoded (``ImageFile.LOAD_TRUNCATED_IMAGES`` stays off);
  PNG chunk CRCs are checked up to ``IEND``. A pixel limit (:data:`MAX_IMAGE_PIXELS`) is checked
  from the header before any decoding, so a decompression bomb costs nothing. Only allow-listed
  Pillow parsers run (:data:`PIL_FORMATS`).
- **Hashes.** The pixel hash, the perceptual hash and its thumbnail come from the decoded pixels
  (:mod:`medmat_builder.images.hashes`), with no second decode.

Errors are :class:`~medmat_builder.images.loaded.ImageError` with a ``reason`` (the same names as the
build report's drop reasons) and a message naming the file.
"""

from __future__ import annotations

import io
import struct
import warnings
import zlib
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from medmat_builder.images.convert import apply_exif_orientation, collapse_gray, encode_png, to_8bit
from medmat_builder.images.dicom import NotDicom, load_dicom, looks_like_dicom
from medmat_builder.images.loaded import ImageError, LoadedImage, fail
from medmat_builder.images.metadata import PNG_DROP, PNG_SIGNATURE, strip_metadata

#: Largest accepted image, in pixels (width x height x frames), checked from the header before decoding.
#: Below Pillow's own warning threshold, so this limit is the one that applies.
MAX_IMAGE_PIXELS = 80_000_000

#: Formats Pillow may parse. An allow-list keeps exotic parsers (EPS runs Ghostscript) out of reach.
#: (A JPEG holding several pictures opens as "MPO" through the JPEG entry.)
PIL_FORMATS = ("PNG", "JPEG", "TIFF", "BMP", "DIB", "GIF", "WEBP", "PPM", "JPEG2000")


DICOM_EXTENSIONS = (".dcm", ".dicom", ".dic", "")


# --------------------------------------------------------------------------- loading
def load_image(path: str | Path, *, max_pixels: int = MAX_IMAGE_PIXELS) -> LoadedImage:
    """Read, fully decode and check one image file; keep it if PNG/JPEG 8-bit L/RGB, else convert to PNG.

    Raises :class:`ImageError` (reason in :data:`IMAGE_ERROR_REASONS`, message naming the file).
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise fail("corrupt", path, "file not found") from None
    except OSError as exc:
        raise fail("corrupt", path, f"cannot be read ({exc.strerror or type(exc).__name__})") from None
    return load_image_bytes(data, path, max_pixels=max_pixels)


def load_image_bytes(data: bytes, name: str | Path = "<bytes>", *, max_pixels: int = MAX_IMAGE_PIXELS) -> LoadedImage:
    """Like :func:`load_image` for bytes already in memory; ``name`` is used in messages."""
    if len(data) == 0:
        raise fail("empty", name, "zero-byte file")
    if looks_like_dicom(data):
        return load_dicom(data, name, max_pixels)
    try:
        return _load_pillow(data, name, max_pixels)
    except _NotPillow:
        pass
    ext = Path(str(name)).suffix.lower()
    if ext in DICOM_EXTENSIONS or ext not in _KNOWN_PIL_EXTENSIONS:
        # DICOM without the 128-byte preamble ("DICM" magic), as some old exporters write it.
        try:
            return load_dicom(data, name, max_pixels, force=True)
        except NotDicom:
            pass
    raise fail("corrupt", name, f"content is not a readable image (extension {ext or 'none'!r})")


_KNOWN_PIL_EXTENSIONS = (".png", ".jpg", ".jpeg", ".jpe", ".jfif", ".tif", ".tiff", ".bmp", ".dib", ".gif",
                         ".webp", ".ppm", ".pgm", ".pbm", ".jp2", ".j2k")


def _pil_formats() -> list[str]:
    Image.init()
    return [f for f in PIL_FORMATS if f in Image.OPEN]


class _NotPillow(Exception):
    pass


# --------------------------------------------------------------------------- Pillow formats
def _check_png_chunks(data: bytes, name: str | Path) -> tuple[int, int, bool, bool]:
    """Walk PNG chunks (CRC checked) up to IEND; return (bit depth, colour type, has acTL, bare).

    ``bare``: no chunk that :func:`strip_metadata` drops and nothing after IEND, so stripping would
    give ``data`` itself (the keep path then skips that second walk over the chunks)."""
    pos, n = 8, len(data)
    view = memoryview(data)
    bit_depth = color_type = -1
    animated = False
    bare = True
    while True:
        if pos + 12 > n:
            raise fail("truncated", name, "PNG ends before its IEND chunk")
        length, ctype = struct.unpack_from(">I4s", data, pos)
        end = pos + 12 + length
        if length > 0x7FFFFFFF:
            raise fail("corrupt", name, "PNG chunk length is invalid")
        if end > n:
            raise fail("truncated", name, f"PNG chunk {ctype.decode('latin-1')!r} is cut short")
        (crc,) = struct.unpack_from(">I", data, pos + 8 + length)
        if zlib.crc32(view[pos + 4 : pos + 8 + length]) != crc:  # type and body, read in place (no copy)
            raise fail("corrupt", name, f"PNG chunk {ctype.decode('latin-1')!r} fails its CRC check")
        if ctype == b"IHDR" and length >= 13:
            bit_depth, color_type = data[pos + 16], data[pos + 17]
        elif ctype == b"acTL":
            animated = True
        elif ctype == b"IEND":
            return bit_depth, color_type, animated, bare and end == n
        elif ctype in PNG_DROP:
            bare = False
        pos = end


_SIGNATURES = (
    (b"\xff\xd8", "JPEG"), (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"), (b"BM", "BMP"),
    (b"GIF87a", "GIF"), (b"GIF89a", "GIF"),
)


def _load_pillow(data: bytes, name: str | Path, max_pixels: int) -> LoadedImage:
    png_info = _check_png_chunks(data, name) if data.startswith(PNG_SIGNATURE) else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit applies below
        warnings.simplefilter("ignore", UserWarning)  # "Corrupt EXIF data" and the like: decoding decides
        try:
            im = Image.open(io.BytesIO(data), formats=_pil_formats())
        except UnidentifiedImageError:
            if png_info is not None:
                raise fail("corrupt", name, "PNG header cannot be parsed") from None
            for sig, fmt in _SIGNATURES:
                if data.startswith(sig):
                    if fmt == "JPEG" and b"\xff\xd9" not in data:
                        raise fail("truncated", name, "JPEG file is cut short (no end-of-image marker)") from None
                    if fmt == "TIFF" and (len(data) < 8 or struct.unpack(
                            "<I" if data[:2] == b"II" else ">I", data[4:8])[0] >= len(data)):
                        raise fail("truncated", name, "TIFF file is cut short (its directory is missing)") from None
                    raise fail("corrupt", name, f"{fmt} header cannot be parsed") from None
            raise _NotPillow() from None
        except Image.DecompressionBombError:
            raise fail("too_large", name, "image dimensions exceed the decompression-bomb limit") from None
        except (OSError, SyntaxError, ValueError, struct.error, EOFError) as exc:
            raise _classify_decode_error(exc, name) from None

        fmt = im.format or "?"
        width, height = im.size
        if width <= 0 or height <= 0:
            raise fail("corrupt", name, f"{fmt} header gives an empty size {width}x{height}")
        if width * height > max_pixels:
            raise fail("too_large", name, f"{fmt} is {width}x{height} pixels, over the limit of {max_pixels:,}")

        if fmt == "PNG" and png_info is not None:
            if png_info[2]:
                raise fail("multiframe", name, "animated PNG (APNG); refusing to pick a frame")
        try:
            frames = getattr(im, "n_frames", 1)
        except (OSError, EOFError, ValueError, struct.error) as exc:
            raise _classify_decode_error(exc, name) from None
        if frames > 1 and fmt != "MPO":
            what = {"GIF": "animated GIF", "TIFF": "multi-page TIFF", "WEBP": "animated WEBP"}.get(fmt, f"multi-frame {fmt}")
            raise fail("multiframe", name, f"{what} with {frames} frames; refusing to pick a frame")
        try:
            im.load()
        except Image.DecompressionBombError:
            raise fail("too_large", name, "image exceeds the decompression-bomb limit") from None
        except (OSError, SyntaxError, ValueError, struct.error, EOFError, zlib.error) as exc:
            raise _classify_decode_error(exc, name, fmt) from None

    keep = False
    if fmt == "PNG" and png_info is not None:
        keep = png_info[0] == 8 and png_info[1] in (0, 2) and im.mode in ("L", "RGB")
    elif fmt == "JPEG":
        keep = im.mode in ("L", "RGB")

    oriented, orientation = apply_exif_orientation(im)
    if orientation != 1:
        keep = False  # the EXIF block goes (strip_metadata), so the orientation is baked into a PNG
    try:
        pixels = to_8bit(oriented)
    except (OSError, ValueError) as exc:
        raise fail("unsupported", name, f"{fmt} mode {im.mode!r} cannot be mapped to 8-bit ({exc})") from None

    if keep:
        try:
            if png_info is not None and png_info[3]:  # nothing to strip (found by the CRC walk)
                out, out_fmt = data, "png"
            else:
                out, out_fmt = strip_metadata(data, name), ("png" if fmt == "PNG" else "jpeg")
        except ValueError:  # an odd segment layout: the decoded pixels go to a PNG instead
            keep = False
    if not keep:
        pixels = collapse_gray(pixels)
        out, out_fmt = encode_png(pixels), "png"
    return LoadedImage.of(pixels, out, out_fmt, file_data=data, kept_original=keep, source_format=fmt,
                          orientation=orientation)


def _classify_decode_error(exc: BaseException, name: str | Path, fmt: str = "image") -> ImageError:
    text = str(exc)
    if "truncated" in text.lower() or isinstance(exc, EOFError) or "end of file" in text.lower():
        return fail("truncated", name, f"{fmt} file is cut short ({text or type(exc).__name__})")
    if "not supported" in text.lower() or "unsupported" in text.lower() or "decoder" in text.lower():
        return fail("unsupported", name, f"{fmt} cannot be decoded here ({text})")
    return fail("corrupt", name, f"{fmt} cannot be decoded ({text or type(exc).__name__})")
