"""What an uploaded "photo" really is: JPEG, PNG, WebP, or refused.

Pure and standard-library only (the gateway has no imaging library, and one is not needed
for this): the magic bytes name the format, then a structural walk checks the file is built
as that format says, with a non-empty picture in it —

- JPEG: SOI, then well-formed marker segments up to the start of scan, including a frame
  header (SOFn) with non-zero width and height, and an EOI marker after the scan;
- PNG: the signature, then chunks with valid lengths and CRCs from IHDR (non-zero size)
  through at least one IDAT to IEND, nothing after;
- WebP: a RIFF container whose size matches the data, holding a VP8, VP8L or VP8X chunk
  with its own signature and a non-zero size.

This refuses HTML, scripts and anything else renamed `.png`, and truncated files. It does not
decode pixels, so a crafted polyglot (a valid image that is also something else) can pass:
that is why photos are stored and served only as the type found here, with `nosniff` and a
sandboxing Content-Security-Policy (see docs/security.md).
"""

from __future__ import annotations

import struct
import zlib

JPEG, PNG, WEBP = "image/jpeg", "image/png", "image/webp"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_STANDALONE = {0x01, *range(0xD0, 0xD8)}  # TEM and RSTn carry no length
_MAX_CHUNKS = 100_000


def sniff_image(data: bytes) -> str | None:
    """The media type of a well-formed JPEG, PNG or WebP, else None."""
    if data.startswith(b"\xff\xd8\xff"):
        return JPEG if _is_jpeg(data) else None
    if data.startswith(PNG_SIGNATURE):
        return PNG if _is_png(data) else None
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return WEBP if _is_webp(data) else None
    return None


def _is_jpeg(data: bytes) -> bool:  # noqa: PLR0911 - one early exit per broken rule
    pos, frame = 2, False
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return False
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte before a marker
            pos += 1
            continue
        if marker in _STANDALONE:
            pos += 2
            continue
        if marker in (0xD8, 0xD9):  # a second SOI, or EOI before any scan
            return False
        (length,) = struct.unpack_from(">H", data, pos + 2)
        if length < 2 or pos + 2 + length > len(data):
            return False
        if marker in _SOF:
            if length < 8:
                return False
            height, width = struct.unpack_from(">HH", data, pos + 5)
            frame = width > 0 and height > 0
            if not frame:
                return False
        if marker == 0xDA:  # start of scan: entropy-coded data up to EOI follows
            return frame and data.find(b"\xff\xd9", pos + 2 + length) != -1
        pos += 2 + length
    return False


def _is_png(data: bytes) -> bool:  # noqa: PLR0911 - one early exit per broken rule
    pos, first, seen_data = len(PNG_SIGNATURE), True, False
    for _ in range(_MAX_CHUNKS):
        if pos + 12 > len(data):
            return False
        length, kind = struct.unpack_from(">I4s", data, pos)
        end = pos + 12 + length
        if end > len(data):
            return False
        body = data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack_from(">I", data, pos + 8 + length)
        if zlib.crc32(kind + body) != crc:
            return False
        if first:
            if kind != b"IHDR" or length != 13:
                return False
            width, height = struct.unpack_from(">II", body)
            if width == 0 or height == 0:
                return False
            first = False
        seen_data = seen_data or kind == b"IDAT"
        if kind == b"IEND":
            return bool(seen_data and end == len(data))
        pos = end
    return False


def _is_webp(data: bytes) -> bool:  # noqa: PLR0911 - one early exit per broken rule
    (riff_size,) = struct.unpack_from("<I", data, 4)
    if riff_size + 8 != len(data) or len(data) < 30:
        return False
    kind = data[12:16]
    (chunk_size,) = struct.unpack_from("<I", data, 16)
    if 20 + chunk_size > len(data):
        return False
    body = data[20 : 20 + chunk_size]
    if kind == b"VP8 ":
        if len(body) < 10 or body[3:6] != b"\x9d\x01\x2a":
            return False
        width, height = struct.unpack_from("<HH", body, 6)
        return bool(width & 0x3FFF and height & 0x3FFF)
    if kind == b"VP8L":
        # 14-bit width-1 and height-1 follow the signature: any value is a real size.
        return len(body) >= 5 and body[0] == 0x2F
    if kind == b"VP8X":
        return len(body) >= 10 and chunk_size >= 10
    return False
