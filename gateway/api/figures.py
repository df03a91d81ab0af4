"""The figures route: response and resolution times, SLA breaches, 721 tiers, satisfaction,
resident reports and patrol completion, per site / grid / category / quarter."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Response, status

from gateway.api.deps import RuntimeDep, require, site_scope
from gateway.api.params import SiteIdPath, SiteIdQuery
from gateway.api.permissions import Permission
from gateway.api.scope import ensure_site_in_scope
from gateway.auth import Principal
from gateway.figures import GroupBy
from gateway.figures_export import to_csv, to_xlsx
from gateway.figures_service import FigureReport
from gateway.runtime import Runtime
from gateway.sla import TicketCategory

router = APIRouter(prefix="/api/figures", tags=["figures"])

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
MAX_PERIOD_S = 366 * 86400.0
"""The longest period one request may cover (the facts are read into memory)."""


@router.get("", response_model=FigureReport)
async def figures(
    runtime: RuntimeDep,
    principal: Annotated[Principal, Depends(require(Permission.READ_FIGURES))],
    *,
    start: Annotated[float, Query(ge=0, description="Period start (Unix seconds).")],
    end: Annotated[float, Query(gt=0, description="Period end, exclusive.")],
    site_id: SiteIdQuery = None,
    grid_id: str | None = None,
    category: TicketCategory | None = None,
    group_by: GroupBy = GroupBy.SITE,
) -> FigureReport:
    """Figures of the tickets created in [start, end) at the caller's sites (or `site_id`)."""
    return await _report(runtime, principal, start, end, site_id, grid_id, category, group_by)


@router.get("/export")
async def export_figures(
    runtime: RuntimeDep,
    principal: Annotated[Principal, Depends(require(Permission.READ_FIGURES))],
    *,
    start: Annotated[float, Query(ge=0, description="Period start (Unix seconds).")],
    end: Annotated[float, Query(gt=0, description="Period end, exclusive.")],
    format: Annotated[Literal["csv", "xlsx"], Query()] = "csv",
    site_id: SiteIdQuery = None,
    grid_id: str | None = None,
    category: TicketCategory | None = None,
    group_by: GroupBy = GroupBy.SITE,
) -> Response:
    """The same figures as a CSV or XLSX download (times in minutes)."""
    report = await _report(runtime, principal, start, end, site_id, grid_id, category, group_by)
    name = f"figures-{site_id or 'all'}-{int(start)}-{int(end)}.{format}"
    headers = {"Content-Disposition": f'attachment; filename="{name}"'}
    if format == "xlsx":
        data = await asyncio.to_thread(to_xlsx, report)
        return Response(data, media_type=XLSX, headers=headers)
    return Response(to_csv(report), media_type="text/csv; charset=utf-8", headers=headers)


@router.get("/monthly/{site_id}")
async def monthly_report(
    site_id: SiteIdPath,
    runtime: RuntimeDep,
    principal: Annotated[Principal, Depends(require(Permission.READ_FIGURES))],
    month: Annotated[str, Query(pattern=r"^\d{4}-\d{2}$", description="YYYY-MM, site time.")],
) -> Response:
    """A site's monthly report as PDF: its figures, per grid, per category, and charts of the
    721 tiers and satisfaction (for the property company's meeting)."""
    ensure_site_in_scope(principal, site_id)
    if runtime.figures is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "figures are off")
    try:
        data = await asyncio.to_thread(runtime.figures.monthly_pdf, site_id, month, time.time())
    except ValueError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
    name = f"report-{site_id}-{month}.pdf"
    return Response(
        data,
        media_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


async def _report(  # noqa: PLR0917 - the query parameters, passed on
    runtime: Runtime,
    principal: Principal,
    start: float,
    end: float,
    site_id: str | None,
    grid_id: str | None,
    category: TicketCategory | None,
    group_by: GroupBy,
) -> FigureReport:
    if not 0 < end - start <= MAX_PERIOD_S:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, "end: after start, at most 366 days later"
        )
    sites = site_scope(principal)
    if site_id is not None:
        ensure_site_in_scope(principal, site_id)
        sites = [site_id]
    if runtime.figures is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "figures are off")
    return await asyncio.to_thread(
        runtime.figures.report,
        sites=sites,
        start=start,
        end=end,
        group_by=group_by,
        grid_id=grid_id,
        category=category.value if category is not None else None,
        now=time.time(),
    )
