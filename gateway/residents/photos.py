"""Resident photos: checked, then re-encoded without any metadata. The one module that
imports Pillow.

A phone photo carries EXIF: the GPS position of the resident's home, the phone's model and
serial, the time. The bytes are first checked structurally (`gateway.images.sniff_image`:
JPEG, PNG or WebP, else refused), then decoded with a pixel bound (a small file can declare a
huge image), turned upright by its EXIF orientation, scaled down to `max_side`, and written
as a fresh JPEG from the pixels alone: no EXIF (GPS included), no XMP, no ICC, no comments.

Decoding is the expensive part of a public report, so it is bounded twice: by pixels per
format (a JPEG decodes at 1/2 to 1/8 scale, its cost follows its bytes; a PNG or WebP decodes
whole, its cost follows its declared size, which a few KiB of PNG can make 40 MP), and by
`DECODE_WORKERS` photos decoded at once in the process, so a burst of reports from many
addresses queues instead of holding hundreds of MB each.
"""

from __future__ import annotations

import io
import threading

from PIL import Image, ImageOps, UnidentifiedImageError

from gateway.images import JPEG, sniff_image

MAX_PIXELS = 40_000_000
"""Largest JPEG decoded (a 12 MP phone photo is 12,000,000; decoded at reduced scale)."""
MAX_FULL_PIXELS = 16_000_000
"""Largest PNG or WebP decoded (these decode whole; a phone screenshot is 3-6 MP)."""
DECODE_WORKERS = 2
"""Photos decoded at once in this process (one per core of a small gateway)."""
DECODE_SLOTS = threading.BoundedSemaphore(DECODE_WORKERS)
MAX_SIDE = 2000
"""Stored photos are at most this many pixels on their long side (a 12 MP 4000 x 3000 phone
photo decodes straight to 2000 x 1500)."""


class PhotoError(ValueError):
    """A file that is not a usable photo (the message is for the resident)."""


def clean_photo(
    data: bytes,
    *,
    max_pixels: int = MAX_PIXELS,
    max_full_pixels: int = MAX_FULL_PIXELS,
    max_side: int = MAX_SIDE,
) -> bytes:
    """A metadata-free JPEG of the photo in `data`, or PhotoError. Waits for one of the
    `DECODE_SLOTS`."""
    kind = sniff_image(data)
    if kind is None:
        raise PhotoError("not a JPEG, PNG or WebP photo")
    bound = max_pixels if kind == JPEG else max_full_pixels
    with DECODE_SLOTS:
        return _clean(data, bound, max_side)


def _clean(data: bytes, max_pixels: int, max_side: int) -> bytes:
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.width * image.height > max_pixels:
                raise PhotoError(f"photo larger than {max_pixels} pixels")
            # A JPEG decodes straight at 1/2, 1/4 or 1/8 scale when that still covers the
            # stored size (libjpeg's DCT scaling): a 12 MP photo costs a quarter of a decode.
            scale = max_side / max(image.width, image.height)
            if scale < 1:
                image.draft("RGB", (int(image.width * scale), int(image.height * scale)))
            upright = ImageOps.exif_transpose(image)
            pixels = upright.convert("RGB")
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
        raise PhotoError("the photo could not be read") from exc
    pixels.thumbnail((max_side, max_side))
    # convert() and thumbnail() carry `info` (EXIF, XMP, comments, ICC) along, and save()
    # writes some of it back unless told otherwise: only the pixels go out.
    pixels.info = {}
    out = io.BytesIO()
    pixels.save(out, format="JPEG", quality=85)
    return out.getvalue()


CLEAN_TYPE = JPEG
"""What `clean_photo` returns."""
