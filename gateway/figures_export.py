"""The figures as files: CSV (standard library) and XLSX (openpyxl, imported here only).

One row per group, times in minutes. A text cell that a spreadsheet would read as a formula
(starting with ``=``, ``+``, ``-`` or ``@``: a grid id may start with ``-``) is written with a
leading apostrophe, so opening an export never runs anything.
"""

from __future__ import annotations

import csv
import io

from openpyxl import Workbook

from gateway.figures import Figures
from gateway.figures_service import FigureReport

COLUMNS = (
    "group",
    "tickets",
    "response_median_min",
    "response_p90_min",
    "resolution_median_min",
    "resolution_p90_min",
    "sla_breach_rate",
    "resolved",
    "tier1_share",
    "tier2_share",
    "tier3_share",
    "ratings",
    "satisfaction_average",
    "rated_1",
    "rated_2",
    "rated_3",
    "rated_4",
    "rated_5",
    "resident_reports",
    "reports_per_1000_households",
)


PATROL_COLUMNS = (
    "patrol_checkpoints_done",
    "patrol_checkpoints_planned",
    "patrol_rounds_done",
    "patrol_rounds_planned",
    "patrol_rate",
)


def _patrol(report: FigureReport) -> list[float | int | None]:
    p = report.patrol
    assert p is not None
    return [p.checkpoints_done, p.checkpoints_planned, p.rounds_done, p.rounds_planned, p.rate]


def _minutes(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds / 60.0, 2)


def _safe(text: str) -> str:
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


def rows(report: FigureReport) -> list[list[str | float | int | None]]:
    """The table: one row per group, in `COLUMNS` order."""

    def row(f: Figures) -> list[str | float | int | None]:
        return [
            _safe(f.group),
            f.tickets,
            _minutes(f.response_median_s),
            _minutes(f.response_p90_s),
            _minutes(f.resolution_median_s),
            _minutes(f.resolution_p90_s),
            f.sla_breach_rate,
            f.resolved,
            *(f.resolved_share_by_tier.get(t) for t in ("1", "2", "3")),
            f.ratings,
            f.satisfaction_average,
            *(f.satisfaction_distribution.get(str(n), 0) for n in range(1, 6)),
            f.resident_reports,
            f.reports_per_1000_households,
        ]

    return [row(f) for f in report.groups]


def to_csv(report: FigureReport) -> str:
    """The figures as CSV (UTF-8 text; empty cells for figures without data)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    for values in rows(report):
        writer.writerow(["" if v is None else v for v in values])
    if report.patrol is not None:
        writer.writerow([])
        writer.writerow(PATROL_COLUMNS)
        writer.writerow(["" if v is None else v for v in _patrol(report)])
    return out.getvalue()


def to_xlsx(report: FigureReport) -> bytes:
    """The figures as an XLSX workbook: sheet ``figures``, and ``patrol`` when present."""
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "figures"
    sheet.append(list(COLUMNS))
    for values in rows(report):
        sheet.append(values)
    if report.patrol is not None:
        patrol = book.create_sheet("patrol")
        patrol.append(list(PATROL_COLUMNS))
        patrol.append(_patrol(report))
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
