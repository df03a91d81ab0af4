"""Operators enter hotline calls and WeChat-group (有话好好说) reports into the same form
flow as the residents' QR page: `runtime.residents.enter`, the channel recorded, the ticket
opened with its category's SLA clock and routed by the place. The answer shows the ticket and
the tracking link to send to the resident (shown once: only its hash is stored).

Same permission as `POST /api/sites/{site}/reports` (`enter_reports`) and the same site
scope check.
"""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.responses import HTMLResponse
from pydantic import ValidationError

from gateway.api.deps import RuntimeDep
from gateway.api.permissions import Permission
from gateway.api.scope import ensure_site_in_scope
from gateway.auth import Principal
from gateway.console.deps import form_action, page
from gateway.console.render import render
from gateway.residents.models import RESIDENT_CATEGORIES, Channel, OperatorReport
from gateway.residents.service import ReportNotFoundError, ReportRefusedError, ResidentService
from gateway.runtime import Runtime

router = APIRouter(prefix="/console/reports", tags=["console"])

Entering = Annotated[Principal, Depends(page(Permission.ENTER_REPORTS))]
CHANNELS = (Channel.HOTLINE.value, Channel.WECHAT.value)
FIELDS = ("site_id", "place_id", "channel", "category", "description", "phone")


def _service(runtime: Runtime) -> ResidentService:
    if runtime.residents is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "resident reports are off")
    return runtime.residents


def _form_context(
    runtime: Runtime, principal: Principal, site: str | None, values: dict[str, str]
) -> dict[str, Any]:
    service = _service(runtime)
    sites = sorted(s for s in service.sites if principal.can_see(s))
    site_id = site if site in sites else (sites[0] if sites else None)
    places = service.sites[site_id].places if site_id is not None else []
    return {
        "sites": sites,
        "site_id": site_id,
        "places": places,
        "channels": CHANNELS,
        "categories": [c.value for c in RESIDENT_CATEGORIES],
        "values": values,
    }


@router.get("/new", response_class=HTMLResponse)
async def new_report(
    request: Request,
    runtime: RuntimeDep,
    principal: Entering,
    site: Annotated[str | None, Query(max_length=64)] = None,
) -> HTMLResponse:
    """The entry form for a hotline call or a WeChat-group message."""
    if site is not None:
        ensure_site_in_scope(principal, site)
    return render(request, "report_new.html", _form_context(runtime, principal, site, {}))


@router.post("", status_code=201, response_class=HTMLResponse)
async def enter_report(
    request: Request,
    runtime: RuntimeDep,
    principal: Annotated[Principal, Depends(form_action(Permission.ENTER_REPORTS))],
) -> HTMLResponse:
    """Open the ticket (CSRF-checked form); the page shows it and the tracking link."""
    form = await request.form()
    values = {k: v.strip() for k in FIELDS if isinstance(v := form.get(k), str)}
    site_id = values.get("site_id", "")
    ensure_site_in_scope(principal, site_id)
    service = _service(runtime)

    def again(message: str) -> HTMLResponse:
        context = _form_context(runtime, principal, site_id, values)
        return render(
            request,
            "report_new.html",
            {**context, "error": message},
            status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
        )

    try:
        body = OperatorReport(
            place_id=values.get("place_id", ""),
            channel=values.get("channel", ""),
            category=values.get("category", ""),
            description=values.get("description", ""),
            phone=values.get("phone") or None,
        )
    except ValidationError:
        return again("report.invalid")
    try:
        created, changes = await asyncio.to_thread(
            service.enter, site_id, body, principal.username, time.time()
        )
    except (ReportRefusedError, ReportNotFoundError):
        return again("report.invalid")
    if changes:
        runtime.feed.wake()
    base = service.settings.public_base_url.rstrip("/")
    return render(
        request,
        "report_created.html",
        {"created": created, "tracking_url": base + created.tracking_path, "site_id": site_id},
        status_code=status.HTTP_201_CREATED,
    )
