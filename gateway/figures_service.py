"""The figures as the API and the console's figures page ask for them: a period, a scope, a
split (`gateway.figures` computes; `gateway.store.figures` reads; rounds add completion)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict

from gateway.figures import Figures, GroupBy, grouped
from gateway.figures_pdf import MonthlyReport, monthly_pdf
from gateway.rounds.models import CompletionPublic
from gateway.rounds.service import RoundsService
from gateway.sites import SiteConfig
from gateway.store import Store

DEFAULT_TZ = ZoneInfo("Asia/Shanghai")


class FigureReport(BaseModel):
    """Figures of the tickets created in [start, end) in scope, split by `group_by`; patrol
    completion when the scope is one site with rounds."""

    model_config = ConfigDict(extra="forbid")

    sites: list[str] | None
    start: float
    end: float
    group_by: GroupBy
    groups: list[Figures]
    patrol: CompletionPublic | None


class FiguresService:
    """Figures over the store and the site files."""

    def __init__(
        self, store: Store, sites: Mapping[str, SiteConfig], rounds: RoundsService
    ) -> None:
        self.store = store
        self.sites = sites
        self.rounds = rounds

    def report(
        self,
        *,
        sites: Sequence[str] | None,
        start: float,
        end: float,
        group_by: GroupBy,
        grid_id: str | None = None,
        category: str | None = None,
        now: float,
    ) -> FigureReport:
        """The figures of a period (`sites` None: every site)."""
        facts = self.store.figures.figure_facts(
            sites=sites, start=start, end=end, grid_id=grid_id, category=category
        )
        one = self.sites.get(sites[0]) if sites is not None and len(sites) == 1 else None
        tz = one.tz if one is not None else DEFAULT_TZ

        def households(site_id: str) -> int | None:
            site = self.sites.get(site_id)
            return site.households if site is not None else None

        patrol = None
        if one is not None and one.rounds.schedules and grid_id is None and category is None:
            patrol = self.rounds.completion(one.site_id, start, end, now)
        return FigureReport(
            sites=list(sites) if sites is not None else None,
            start=start,
            end=end,
            group_by=group_by,
            groups=grouped(facts, group_by, tz, households),
            patrol=patrol,
        )

    def monthly(self, site_id: str, month: str, now: float) -> MonthlyReport:
        """The figures of one calendar month (``YYYY-MM``, the site's time zone) for its
        monthly report; ValueError for a malformed month."""
        found = re.fullmatch(r"(\d{4})-(\d{2})", month)
        if found is None or not 1 <= int(found[2]) <= 12:
            raise ValueError("month: YYYY-MM, e.g. 2026-03")
        year, number = int(found[1]), int(found[2])
        site = self.sites.get(site_id)
        tz = site.tz if site is not None else DEFAULT_TZ
        start = dt.datetime(year, number, 1, tzinfo=tz).timestamp()
        following = dt.datetime(year + number // 12, number % 12 + 1, 1, tzinfo=tz)
        end = following.timestamp()

        def split(by: GroupBy) -> FigureReport:
            return self.report(sites=[site_id], start=start, end=end, group_by=by, now=now)

        whole = split(GroupBy.SITE)
        return MonthlyReport(
            site_name=f"{site.name} ({site_id})" if site is not None else site_id,
            month=month,
            site=whole.groups[0] if whole.groups else None,
            grids=split(GroupBy.GRID).groups,
            categories=split(GroupBy.CATEGORY).groups,
            patrol=whole.patrol,
        )

    def monthly_pdf(self, site_id: str, month: str, now: float) -> bytes:
        """The monthly report of a site as PDF bytes (`monthly`, drawn)."""
        return monthly_pdf(self.monthly(site_id, month, now))
