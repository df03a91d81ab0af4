"""The figures a community is judged by, from ticket facts. Pure: the store reads the facts
(`gateway.store.figures`), this computes; a test recomputes them from raw rows.

Definitions (docs/residents.md, "Figures"):

- **response time**: ``acknowledged_at − created_at`` of acknowledged tickets;
- **resolution time**: ``resolved_at − created_at`` of resolved (or closed) tickets;
- **median** is the middle value (the mean of the two middle ones for an even count);
  **p90** is the nearest-rank 90th percentile (the ⌈0.9·n⌉-th smallest);
- **SLA breach rate**: tickets with at least one recorded breach / tickets;
- **share resolved at each 721 tier**: resolved tickets by the tier that owned them when
  resolved (1 property service, 2 management, 3 government) / resolved tickets; the field's
  target is 70/20/10;
- **satisfaction**: mean of the residents' 1–5 ratings, and how many gave each;
- **resident reports** (complaints): tickets from the QR page, hotline or WeChat group; per
  1,000 households when the site file gives its households.
"""

from __future__ import annotations

import datetime as dt
import math
import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field


@dataclass(frozen=True)
class TicketFacts:
    """What the figures need of one ticket."""

    ticket_id: int
    site_id: str
    grid_id: str | None
    category: str
    created_at: float
    acknowledged_at: float | None
    resolved_at: float | None
    tier: int
    breached: bool
    channel: str | None  # qr | hotline | wechat for resident reports, else None
    rating: int | None


class GroupBy(StrEnum):
    """How figures are split."""

    SITE = "site"
    GRID = "grid"
    CATEGORY = "category"
    QUARTER = "quarter"


class Figures(BaseModel):
    """The figures of one group of tickets."""

    model_config = ConfigDict(extra="forbid")

    group: str
    tickets: int
    response_median_s: float | None
    response_p90_s: float | None
    resolution_median_s: float | None
    resolution_p90_s: float | None
    sla_breach_rate: float | None
    resolved: int
    resolved_share_by_tier: dict[str, float] = Field(description="'1', '2', '3' → share")
    ratings: int
    satisfaction_average: float | None
    satisfaction_distribution: dict[str, int] = Field(description="'1'…'5' → count")
    resident_reports: int
    reports_per_1000_households: float | None


def p90(values: Sequence[float]) -> float | None:
    """Nearest-rank 90th percentile (None for no values)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[math.ceil(0.9 * len(ordered)) - 1]


def median(values: Sequence[float]) -> float | None:
    """The median (None for no values)."""
    return statistics.median(values) if values else None


def compute(group: str, facts: Sequence[TicketFacts], households: int | None) -> Figures:
    """The figures of `facts`."""
    response = [f.acknowledged_at - f.created_at for f in facts if f.acknowledged_at is not None]
    resolved = [f for f in facts if f.resolved_at is not None]
    resolution = [f.resolved_at - f.created_at for f in resolved if f.resolved_at is not None]
    ratings = [f.rating for f in facts if f.rating is not None]
    reports = sum(1 for f in facts if f.channel is not None)
    return Figures(
        group=group,
        tickets=len(facts),
        response_median_s=median(response),
        response_p90_s=p90(response),
        resolution_median_s=median(resolution),
        resolution_p90_s=p90(resolution),
        sla_breach_rate=sum(f.breached for f in facts) / len(facts) if facts else None,
        resolved=len(resolved),
        resolved_share_by_tier={
            str(t): sum(1 for f in resolved if f.tier == t) / len(resolved) for t in (1, 2, 3)
        }
        if resolved
        else {},
        ratings=len(ratings),
        satisfaction_average=statistics.fmean(ratings) if ratings else None,
        satisfaction_distribution={str(n): ratings.count(n) for n in range(1, 6)},
        resident_reports=reports,
        reports_per_1000_households=1000.0 * reports / households if households else None,
    )


def quarter(at: float, tz: ZoneInfo) -> str:
    """The quarter of a time in the site's zone: ``2026Q1``."""
    day = dt.datetime.fromtimestamp(at, tz)
    return f"{day.year}Q{(day.month - 1) // 3 + 1}"


def grouped(
    facts: Iterable[TicketFacts],
    by: GroupBy,
    tz: ZoneInfo,
    households: Callable[[str], int | None],
) -> list[Figures]:
    """Figures per group, sorted by group name; `households(site_id)` for per-1,000 rates
    (used only when grouping by site or quarter of one site)."""
    key: Callable[[TicketFacts], str] = {
        GroupBy.SITE: lambda f: f.site_id,
        GroupBy.GRID: lambda f: f.grid_id or "(none)",
        GroupBy.CATEGORY: lambda f: f.category,
        GroupBy.QUARTER: lambda f: quarter(f.created_at, tz),
    }[by]
    groups: dict[str, list[TicketFacts]] = {}
    sites: dict[str, set[str]] = {}
    for fact in facts:
        groups.setdefault(key(fact), []).append(fact)
        sites.setdefault(key(fact), set()).add(fact.site_id)
    out = []
    for name in sorted(groups):
        only = sites[name]
        per_site = by in (GroupBy.SITE, GroupBy.QUARTER) and len(only) == 1
        out.append(compute(name, groups[name], households(next(iter(only))) if per_site else None))
    return out
