"""Metadata stripping: PNG and JPEG bytes without EXIF, XMP, IPTC, comments or text chunks, pixels untouched."""

from __future__ import annotations

import struct
from pathlib import Path

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


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
    if data.startswith(PNG_SIGNATURE):
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
