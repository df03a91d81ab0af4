"""The monthly report of a site as a PDF, for the property company's meeting (Pillow draws the
pages; no other PDF library). Pages: the site's figures, the figures per grid, per category,
and two charts — resolution by 721 tier against the 70/20/10 target, and satisfaction.

Labels are drawn with Pillow's built-in font unless `font` names a TrueType/OpenType file; the
built-in font has no Chinese glyphs, so the report's own labels are English and a Chinese site
name is printed only with such a font.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from gateway.figures import Figures, compute
from gateway.rounds.models import CompletionPublic

PAGE = (1240, 1754)  # A4 at 150 dpi
MARGIN = 80
Face = ImageFont.FreeTypeFont | ImageFont.ImageFont


@dataclass(frozen=True)
class MonthlyReport:
    """What the PDF shows: the month's figures for the site, per grid and per category."""

    site_name: str
    month: str  # 2026-03
    site: Figures | None
    grids: Sequence[Figures]
    categories: Sequence[Figures]
    patrol: CompletionPublic | None


def _text(value: float | int | None, kind: str = "") -> str:
    if value is None:
        return "-"
    if kind == "min":
        return f"{value / 60:.1f}"
    if kind == "%":
        return f"{100 * value:.1f}%"
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def _pair(first: float | None, second: float | None) -> str:
    return f"{_text(first, 'min')} / {_text(second, 'min')}"


def _printable(text: str, unicode: bool) -> str:
    # The built-in font draws a box for each glyph it lacks: leave them out instead.
    return text if unicode else "".join(ch for ch in text if ch.isascii()).strip()


class _Pages:
    def __init__(self, font: Path | None) -> None:
        self.unicode = font is not None
        self.face: Face = (
            ImageFont.truetype(str(font), 24) if font else ImageFont.load_default(size=24)
        )
        self.big: Face = (
            ImageFont.truetype(str(font), 40) if font else ImageFont.load_default(size=40)
        )
        self.pages: list[Image.Image] = []

    def new(self, title: str) -> ImageDraw.ImageDraw:
        page = Image.new("RGB", PAGE, "white")
        self.pages.append(page)
        draw = ImageDraw.Draw(page)
        draw.text((MARGIN, MARGIN), _printable(title, self.unicode), fill="black", font=self.big)
        return draw

    def table(
        self, draw: ImageDraw.ImageDraw, top: int, header: list[str], rows: list[list[str]]
    ) -> None:
        width = (PAGE[0] - 2 * MARGIN) // len(header)
        for r, row in enumerate([header, *rows]):
            y = top + 40 * r
            for c, cell in enumerate(row):
                draw.text(
                    (MARGIN + c * width, y),
                    _printable(cell, self.unicode),
                    fill="black",
                    font=self.face,
                )
            if r == 0:
                draw.line((MARGIN, y + 34, PAGE[0] - MARGIN, y + 34), fill="black", width=2)

    def bars(
        self,
        draw: ImageDraw.ImageDraw,
        top: int,
        title: str,
        bars: list[tuple[str, float, float | None]],
    ) -> None:
        """Horizontal bars (label, value 0..1, target or None)."""
        draw.text((MARGIN, top), title, fill="black", font=self.face)
        full = PAGE[0] - 2 * MARGIN - 200
        for n, (label, value, target) in enumerate(bars):
            y = top + 50 + 60 * n
            draw.text((MARGIN, y + 8), label, fill="black", font=self.face)
            x0 = MARGIN + 200
            draw.rectangle((x0, y, x0 + int(full * value), y + 36), fill=(60, 110, 200))
            draw.text(
                (x0 + int(full * value) + 10, y + 8),
                f"{100 * value:.0f}%",
                fill="black",
                font=self.face,
            )
            if target is not None:
                tx = x0 + int(full * target)
                draw.line((tx, y - 6, tx, y + 42), fill=(200, 40, 40), width=4)


_HEADER = [
    "group",
    "tickets",
    "resp. med",
    "resp. p90",
    "res. med",
    "res. p90",
    "breach",
    "satisf.",
]


def _row(f: Figures) -> list[str]:
    return [
        f.group,
        str(f.tickets),
        _text(f.response_median_s, "min"),
        _text(f.response_p90_s, "min"),
        _text(f.resolution_median_s, "min"),
        _text(f.resolution_p90_s, "min"),
        _text(f.sla_breach_rate, "%"),
        _text(f.satisfaction_average),
    ]


def monthly_pdf(report: MonthlyReport, font: Path | None = None) -> bytes:
    """The report as PDF bytes (four A4 pages)."""
    pages = _Pages(font)
    draw = pages.new(f"{report.site_name} - monthly report {report.month}")
    site = report.site if report.site is not None else compute(report.month, [], None)
    summary = [
        ("tickets", _text(site.tickets)),
        ("resident reports", _text(site.resident_reports)),
        ("reports per 1,000 households", _text(site.reports_per_1000_households)),
        ("response median / p90 (min)", _pair(site.response_median_s, site.response_p90_s)),
        ("resolution median / p90 (min)", _pair(site.resolution_median_s, site.resolution_p90_s)),
        ("SLA breach rate", _text(site.sla_breach_rate, "%")),
        ("satisfaction (1-5)", f"{_text(site.satisfaction_average)} ({site.ratings} ratings)"),
        ("patrol completion", _text(report.patrol.rate if report.patrol else None, "%")),
    ]
    pages.table(draw, MARGIN + 100, ["figure", "", "value"], [[k, "", v] for k, v in summary])
    draw = pages.new("per grid")
    pages.table(draw, MARGIN + 100, _HEADER, [_row(f) for f in report.grids])
    draw = pages.new("per category")
    pages.table(draw, MARGIN + 100, _HEADER, [_row(f) for f in report.categories])
    draw = pages.new("charts")
    shares = site.resolved_share_by_tier
    pages.bars(
        draw,
        MARGIN + 100,
        "resolved at each 721 tier (red: the 70/20/10 target)",
        [
            (f"tier {t}", shares.get(str(t), 0.0), target)
            for t, target in ((1, 0.7), (2, 0.2), (3, 0.1))
        ],
    )
    dist = site.satisfaction_distribution
    total = sum(dist.values()) or 1
    pages.bars(
        draw,
        MARGIN + 450,
        "satisfaction: share of ratings",
        [(f"{n} stars", dist.get(str(n), 0) / total, None) for n in range(5, 0, -1)],
    )
    out = io.BytesIO()
    pages.pages[0].save(
        out, format="PDF", resolution=150.0, save_all=True, append_images=pages.pages[1:]
    )
    return out.getvalue()
