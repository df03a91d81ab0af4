"""The figures page: response and resolution times (median, p90), SLA breach rate, share
resolved at each 721 tier, reports per 1,000 households, satisfaction and patrol completion
per site / grid / category / quarter, with charts; CSV / XLSX downloads; and the low
ratings flagged for the supervisor.

The same calls and permission as `GET /api/figures` (`read_figures`): the page and the
download call the API's own route functions, so the period bound, the site scope and the
figures are computed in one place. The download is a console route because the API's wants a
Bearer token, which a link in a page cannot send.
"""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.responses import HTMLResponse, Response

from gateway.api import figures as figures_api
from gateway.api.deps import RuntimeDep, site_scope
from gateway.api.params import SiteIdQuery
from gateway.api.permissions import Permission
from gateway.auth import Principal
from gateway.console.deps import page
from gateway.console.render import PAGE_HEADERS, render, translator
from gateway.figures import GroupBy
from gateway.sla import TicketCategory

router = APIRouter(prefix="/console/figures", tags=["console"])

Reader = Annotated[Principal, Depends(page(Permission.READ_FIGURES))]
PERIODS = (7, 30, 90, 365)
"""The periods the page offers (days back from now)."""
DAY_S = 86400.0


def _site(site: str | None) -> str | None:
    return site or None


@router.get("", response_class=HTMLResponse)
async def figures_page(  # noqa: PLR0917 - FastAPI maps each query parameter to one
    request: Request,
    runtime: RuntimeDep,
    principal: Reader,
    days: Annotated[int, Query(ge=1, le=366)] = 30,
    site: SiteIdQuery = None,
    grid: Annotated[str | None, Query(max_length=64)] = None,
    category: Annotated[TicketCategory | None, Query()] = None,
    group_by: Annotated[GroupBy, Query()] = GroupBy.SITE,
) -> HTMLResponse:
    """The figures of the last `days` days, split by `group_by`."""
    now = time.time()
    start, end = now - days * DAY_S, now + 1.0
    report = await figures_api.figures(
        runtime,
        principal,
        start=start,
        end=end,
        site_id=_site(site),
        grid_id=grid or None,
        category=category,
        group_by=group_by,
    )
    flagged = []
    if runtime.residents is not None:
        scope = [site] if site else site_scope(principal)
        flagged = await asyncio.to_thread(runtime.residents.flagged, scope)
    query = {
        "start": int(start),
        "end": int(end),
        "group_by": group_by.value,
        **({"site_id": site} if site else {}),
        **({"grid_id": grid} if grid else {}),
        **({"category": category.value} if category else {}),
    }
    satisfaction = [
        sum(g.satisfaction_distribution.get(str(n), 0) for g in report.groups) for n in range(1, 6)
    ]
    t = translator(request)
    labels = [
        t.label("category", g.group) if group_by is GroupBy.CATEGORY else g.group
        for g in report.groups
    ]
    sites = sorted(runtime.figures.sites) if runtime.figures is not None else []
    return render(
        request,
        "figures.html",
        {
            "report": report,
            "days": days,
            "periods": PERIODS,
            "filters": {
                "site": site or "",
                "grid": grid or "",
                "category": category.value if category else "",
                "group_by": group_by.value,
            },
            "sites": [s for s in sites if principal.can_see(s)],
            "categories": [c.value for c in TicketCategory],
            "group_bys": [g.value for g in GroupBy],
            "export": {
                f: f"/console/figures/export?{urlencode({**query, 'format': f})}"
                for f in ("csv", "xlsx")
            },
            "satisfaction": satisfaction,
            "labels": labels,
            "flagged": flagged,
        },
    )


@router.get("/export")
async def export(  # noqa: PLR0917 - FastAPI maps each query parameter to one
    runtime: RuntimeDep,
    principal: Reader,
    start: Annotated[float, Query(ge=0)],
    end: Annotated[float, Query(gt=0)],
    format: Annotated[Literal["csv", "xlsx"], Query()] = "csv",
    site_id: SiteIdQuery = None,
    grid_id: Annotated[str | None, Query(max_length=64)] = None,
    category: Annotated[TicketCategory | None, Query()] = None,
    group_by: Annotated[GroupBy, Query()] = GroupBy.SITE,
) -> Response:
    """The figures as CSV or XLSX: `GET /api/figures/export`, by session cookie."""
    if runtime.figures is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "figures are off")
    response = await figures_api.export_figures(
        runtime,
        principal,
        start=start,
        end=end,
        format=format,
        site_id=site_id,
        grid_id=grid_id,
        category=category,
        group_by=group_by,
    )
    response.headers["Cache-Control"] = PAGE_HEADERS["Cache-Control"]
    return response
