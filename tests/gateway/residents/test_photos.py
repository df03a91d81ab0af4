"""Resident photos lose their EXIF (GPS included) and anything that is not a photo is refused.
The JPEG with GPS EXIF is made here with Pillow, as a phone would write it."""

from __future__ import annotations

import io
import threading

import pytest
from PIL import Image

from gateway.images import sniff_image
from gateway.residents import photos
from gateway.residents.photos import PhotoError, clean_photo

GPS_IFD = 0x8825
ORIENTATION = 0x0112


def phone_jpeg(orientation: int = 1) -> bytes:
    """A 64 x 32 JPEG with GPS coordinates, a camera model and an orientation in its EXIF."""
    image = Image.new("RGB", (64, 32), (200, 40, 40))
    image.paste((40, 40, 200), (0, 0, 32, 32))
    exif = Image.Exif()
    exif[0x0110] = "PhoneModel X"  # Model
    exif[ORIENTATION] = orientation
    exif[GPS_IFD] = {
        1: "N",
        2: (31.0, 14.0, 7.5),
        3: "E",
        4: (121.0, 28.0, 30.2),
    }
    out = io.BytesIO()
    image.save(out, format="JPEG", exif=exif, comment=b"home")
    return out.getvalue()


def test_the_source_photo_really_carries_gps() -> None:
    with Image.open(io.BytesIO(phone_jpeg())) as image:
        gps = image.getexif().get_ifd(GPS_IFD)
    assert gps[1] == "N"
    assert b"PhoneModel" in phone_jpeg()


def test_clean_photo_strips_exif_gps_and_comments() -> None:
    cleaned = clean_photo(phone_jpeg())
    assert sniff_image(cleaned) == "image/jpeg"
    with Image.open(io.BytesIO(cleaned)) as image:
        assert dict(image.getexif()) == {}
        assert image.getexif().get_ifd(GPS_IFD) == {}
        assert "exif" not in image.info
        assert "comment" not in image.info
        assert image.size == (64, 32)
    assert b"Exif" not in cleaned
    assert b"PhoneModel" not in cleaned
    assert b"home" not in cleaned


def test_the_orientation_is_applied_to_the_pixels_before_it_is_dropped() -> None:
    with Image.open(io.BytesIO(clean_photo(phone_jpeg(orientation=6)))) as image:
        assert image.size == (32, 64)  # rotated upright


def test_png_and_webp_are_taken_and_stored_as_jpeg() -> None:
    for kind in ("PNG", "WEBP"):
        out = io.BytesIO()
        Image.new("RGB", (20, 10), (1, 2, 3)).save(out, format=kind)
        assert sniff_image(clean_photo(out.getvalue())) == "image/jpeg"


@pytest.mark.parametrize(
    "data",
    [b"<html><script>alert(1)</script></html>", b"GIF89a" + b"\x00" * 100, b"", b"\xff\xd8\xff"],
)
def test_what_is_not_a_photo_is_refused(data: bytes) -> None:
    with pytest.raises(PhotoError, match="not a JPEG"):
        clean_photo(data)


def test_a_huge_declared_image_is_refused_before_decoding() -> None:
    with pytest.raises(PhotoError, match="larger than"):
        clean_photo(phone_jpeg(), max_pixels=64 * 32 - 1)


def test_large_photos_are_scaled_down() -> None:
    out = io.BytesIO()
    Image.new("RGB", (3000, 1000), (9, 9, 9)).save(out, format="JPEG")
    with Image.open(io.BytesIO(clean_photo(out.getvalue(), max_side=600))) as image:
        assert image.size == (600, 200)


def _png(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("L", (width, height)).save(out, format="PNG", optimize=True)
    return out.getvalue()


def test_a_small_png_declaring_a_huge_picture_is_refused() -> None:
    """A PNG or WebP decodes whole (no reduced-scale decode as for a JPEG): a few KiB of
    PNG declaring 20 MP would cost the server ~0.8 s and ~150 MB for each of 3 photos, far
    more than the sender's proof of work."""
    bomb = _png(5000, 4000)
    assert len(bomb) < 64 * 1024
    with pytest.raises(PhotoError, match="larger than"):
        clean_photo(bomb)
    out = io.BytesIO()
    Image.new("RGB", (5000, 4000)).save(out, format="JPEG")  # a 20 MP phone JPEG is fine
    assert sniff_image(clean_photo(out.getvalue())) == "image/jpeg"


def test_photos_are_decoded_a_few_at_a_time() -> None:
    """However many reports arrive at once, at most `DECODE_SLOTS` photos are in memory
    decoded: the rest wait their turn."""
    taken = [photos.DECODE_SLOTS.acquire(blocking=False) for _ in range(photos.DECODE_WORKERS)]
    assert all(taken)
    done = threading.Event()

    def clean() -> None:
        clean_photo(phone_jpeg())
        done.set()

    worker = threading.Thread(target=clean)
    worker.start()
    try:
        assert not done.wait(0.5)  # every slot is taken: it waits
    finally:
        for _ in taken:
            photos.DECODE_SLOTS.release()
    assert done.wait(10)
    worker.join()
