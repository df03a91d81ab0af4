"""`gateway.images.sniff_image`: real encoder output passes, anything else does not."""

from __future__ import annotations

import struct
import zlib

import pytest

from gateway.images import sniff_image
from tests.gateway.imagedata import encoded

HTML = b"<!doctype html><script>alert(1)</script>"


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


@pytest.mark.parametrize(
    ("ext", "kind"), [(".jpg", "image/jpeg"), (".png", "image/png"), (".webp", "image/webp")]
)
def test_real_images_are_recognised(ext: str, kind: str) -> None:
    assert sniff_image(encoded(ext)) == kind


def test_lossless_webp_is_recognised() -> None:
    import cv2
    import numpy as np

    ok, data = cv2.imencode(".webp", np.zeros((5, 7, 3), np.uint8), [cv2.IMWRITE_WEBP_QUALITY, 101])
    assert ok
    assert sniff_image(bytes(data.tobytes())) == "image/webp"


def _corrupt_png_crc() -> bytes:
    data = bytearray(encoded(".png"))
    data[29] ^= 0xFF  # inside IHDR's CRC
    return bytes(data)


def _zero_size_png() -> bytes:
    ihdr = struct.pack(">IIBBBBB", 0, 8, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", zlib.compress(b""))
        + _png_chunk(b"IEND", b"")
    )


@pytest.mark.parametrize(
    "data",
    [
        b"",
        HTML,
        b"\xff\xd8\xff" + HTML,
        b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + HTML,  # a JPEG header, then a page
        encoded(".jpg")[:-2],  # no EOI
        encoded(".jpg")[:100],
        encoded(".png")[:-12],  # no IEND
        encoded(".png") + HTML,  # trailing page
        _corrupt_png_crc(),
        _zero_size_png(),
        b"RIFF\x00\x00\x00\x00WEBP" + HTML,
        encoded(".webp")[:-10],
        b"GIF89a" + HTML,
    ],
)
def test_anything_else_is_refused(data: bytes) -> None:
    assert sniff_image(data) is None
