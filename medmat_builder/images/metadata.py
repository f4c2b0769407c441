"""Metadata stripping: PNG and JPEG bytes without EXIF, XMP, IPTC, comments or text chunks, pixels untouched."""

from __future__ import annotations

import struct
from pathlib import Path

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


#: JPEG segments kept by :func:`strip_metadata`: APP0 (JFIF), APP2 (ICC colour profile) and APP14
#: (Adobe: tells RGB from YCbCr). Other APPn (APP1 EXIF/XMP, APP13 IPTC, vendor data) and COM go.
_JPEG_KEEP_APP = {0xE0, 0xE2, 0xEE}


#: PNG ancillary chunks that may carry free text, dates or camera data; dropped by :func:`strip_metadata`.
PNG_DROP = {b"tEXt", b"zTXt", b"iTXt", b"eXIf", b"tIME"}


def strip_metadata(data: bytes, name: str | Path = "<bytes>") -> bytes:
    """PNG or JPEG bytes without their metadata (EXIF, XMP, IPTC, comments, text chunks), pixels untouched.

    Only container segments are removed; the compressed image data is copied as it is, so the
    decoded pixels are bit-identical. Metadata can name devices, places, dates or people (a phone
    photo's GPS position, a comment with a patient name), and nothing in it is needed for a record.
    Raises ``ValueError`` when the segment structure is not the expected one (stray bytes between
    segments, which decoders tolerate); callers then convert the decoded pixels instead.
    """
    view = memoryview(data)  # slices of it are not copies: the kept segments are copied once, by the join
    if data.startswith(PNG_SIGNATURE):
        out, pos, dropped = [view[:8]], 8, False
        while pos + 8 <= len(data):
            length, ctype = struct.unpack_from(">I4s", data, pos)
            end = pos + 12 + length
            if ctype in PNG_DROP:
                dropped = True
            else:
                out.append(view[pos:end])
            pos = end
            if ctype == b"IEND":
                break
        return _joined(data, out, dropped or pos != len(data))
    if not data.startswith(b"\xff\xd8"):
        raise ValueError(f"{name}: strip_metadata takes PNG or JPEG bytes")
    out, pos, dropped = [view[:2]], 2, False
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            raise ValueError(f"{name}: JPEG marker expected at byte {pos}")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte (dropped)
            pos, dropped = pos + 1, True
            continue
        if marker == 0xDA:  # start of scan: the rest is image data (and later scans), copied as is
            out.append(view[pos:])
            return _joined(data, out, dropped)
        if marker in (0x01, *range(0xD0, 0xD8)):  # markers without a length
            out.append(view[pos : pos + 2])
            pos += 2
            continue
        (length,) = struct.unpack_from(">H", data, pos + 2)
        end = pos + 2 + length
        is_app = 0xE0 <= marker <= 0xEF
        if marker == 0xFE or (is_app and marker not in _JPEG_KEEP_APP):
            dropped = True
        else:
            out.append(view[pos:end])
        pos = end
    raise ValueError(f"{name}: JPEG ends before its image data")


def _joined(data: bytes, parts: list[memoryview], changed: bool) -> bytes:
    """``data`` itself when every byte of it was kept (no copy), else the kept ``parts`` joined."""
    return b"".join(parts) if changed else data
