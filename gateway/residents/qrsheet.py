"""Printable sheets of a site's QR codes (``guanjia site qr``): one cell per place, its code
and its id and name below. The one module that imports segno (codes) and Pillow for drawing.

PDF: A4 pages at 150 dpi, 3 × 4 codes a page; PNG: one image with every code. The label is
drawn with Pillow's built-in font unless `font` names a TrueType/OpenType file; the built-in
font has no Chinese glyphs, so a name that is not ASCII is printed only with such a font.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import segno
from PIL import Image, ImageDraw, ImageFont

PAGE = (1240, 1754)  # A4 at 150 dpi
COLUMNS, ROWS = 3, 4
CELL = (PAGE[0] // COLUMNS, (PAGE[1] - 100) // ROWS)
QR_SIDE = 330


@dataclass(frozen=True)
class Code:
    """One place's code: the URL it holds and its label lines."""

    url: str
    place_id: str
    name: str


def _qr_image(url: str) -> Image.Image:
    buffer = io.BytesIO()
    # Error correction M survives a scuffed sticker; a border of 4 modules is the standard's.
    segno.make_qr(url, error="m").save(buffer, kind="png", scale=10, border=4)
    buffer.seek(0)
    with Image.open(buffer) as image:
        return image.convert("L").resize((QR_SIDE, QR_SIDE), Image.Resampling.NEAREST)


def _font(font: Path | None) -> Face:
    if font is not None:
        return ImageFont.truetype(str(font), 26)
    return ImageFont.load_default(size=26)


Face = ImageFont.FreeTypeFont | ImageFont.ImageFont


def _cell(code: Code, font: Face, unicode: bool) -> Image.Image:
    cell = Image.new("L", CELL, 255)
    cell.paste(_qr_image(code.url), ((CELL[0] - QR_SIDE) // 2, 10))
    draw = ImageDraw.Draw(cell)
    lines = [code.place_id]
    if unicode or code.name.isascii():
        lines.append(code.name)
    for n, line in enumerate(lines):
        width = draw.textlength(line, font=font)
        draw.text(((CELL[0] - width) / 2, QR_SIDE + 20 + 32 * n), line, fill=0, font=font)
    return cell


def _pages(
    title: str, codes: Sequence[Code], font: Path | None, per_page: int
) -> list[Image.Image]:
    face = _font(font)
    pages: list[Image.Image] = []
    for first in range(0, max(len(codes), 1), per_page):
        chunk = codes[first : first + per_page]
        rows = -(-len(chunk) // COLUMNS) if per_page != COLUMNS * ROWS else ROWS
        page = Image.new("L", (PAGE[0], 100 + CELL[1] * max(rows, 1)), 255)
        draw = ImageDraw.Draw(page)
        heading = title if font is not None or title.isascii() else _ascii(title)
        draw.text((40, 30), heading, fill=0, font=face)
        for n, code in enumerate(chunk):
            x, y = (n % COLUMNS) * CELL[0], 100 + (n // COLUMNS) * CELL[1]
            page.paste(_cell(code, face, font is not None), (x, y))
        pages.append(page)
    return pages


def _ascii(text: str) -> str:
    # The built-in font draws a box for each glyph it lacks: leave them out instead.
    return "".join(ch for ch in text if ch.isascii()).strip()


def write_sheet(path: Path, title: str, codes: Sequence[Code], font: Path | None = None) -> int:
    """Write the sheet as PDF or PNG (by `path`'s suffix); the number of pages written."""
    suffix = path.suffix.lower()
    if suffix == ".pdf":
        pages = _pages(title, codes, font, COLUMNS * ROWS)
        rgb = [p.convert("RGB") for p in pages]
        rgb[0].save(path, format="PDF", resolution=150.0, save_all=True, append_images=rgb[1:])
        return len(rgb)
    if suffix == ".png":
        (page,) = _pages(title, codes, font, max(len(codes), 1))
        page.save(path, format="PNG")
        return 1
    raise ValueError("must end in .pdf or .png")
