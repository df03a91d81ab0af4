"""The residents' own pages (public, phone-first, no account): the report page a posted QR
code opens (`/r/{token}`) and the tracking page of one report (`/r/track/{token}`) with its
1–5 rating.

They call the same `ResidentService` as the public API and are limited the same way: every
page view and rating counts against the address's read limit (429 page with `Retry-After`).
The report itself is sent by the page's script (`static/resident.js`: it solves the proof of
work, scales large photos) to `POST /api/public/places/{token}/reports`, so the per-address
and per-place report limits, the body limit and the photo checks are the API's own.
"""

from __future__ import annotations

import asyncio
import time
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Form, HTTPException, Query, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from gateway.api.deps import ClientAddressDep, RuntimeDep
from gateway.console.deps import check_csrf
from gateway.console.render import PAGE_HEADERS, render
from gateway.residents.models import RatingBody
from gateway.residents.service import ReportNotFoundError, ReportRefusedError, ResidentService
from gateway.runtime import Runtime
from gateway.store import ConflictError

router = APIRouter(tags=["console"])

NOTICES = ("resident.rated", "resident.rated_low", "resident.rate_refused")
"""The notices the tracking page may be sent back with (nothing else is shown)."""


def _service(runtime: Runtime) -> ResidentService:
    if runtime.residents is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "resident reports are off")
    return runtime.residents


def _refused(exc: ReportRefusedError) -> HTTPException:
    if exc.kind == "rate_limited":
        return HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS, "rate limited", headers={"Retry-After": "60"}
        )
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc))


def _zone(runtime: Runtime, service: ResidentService, site_name: str) -> ZoneInfo:
    """The report's site's time zone (the view names the site, never its id)."""
    for site in service.sites.values():
        if site.name == site_name:
            return site.tz
    return runtime.settings.console.zone()


@router.get("/r/{token}", response_class=HTMLResponse)
async def report_page(
    token: str, request: Request, runtime: RuntimeDep, client: ClientAddressDep
) -> HTMLResponse:
    """The report form of the place a QR code names: category, description, up to 3 photos
    from the camera, an optional phone number (404 page for a code that is not valid)."""
    service = _service(runtime)
    try:
        place = service.place(token, client, time.time())
    except ReportRefusedError as exc:
        raise _refused(exc) from None
    except ReportNotFoundError:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such place") from None
    return render(
        request,
        "resident.html",
        {
            "place": place,
            "token": token,
            "max_description": service.settings.max_description_chars,
        },
    )


@router.get("/r/track/{token}", response_class=HTMLResponse)
async def tracking_page(
    token: str,
    request: Request,
    runtime: RuntimeDep,
    client: ClientAddressDep,
    notice: Annotated[str | None, Query(max_length=40)] = None,
) -> HTMLResponse:
    """A report's progress (steps and their times, no names, no ticket id, nobody's phone or
    text) and, once resolved and not yet rated, the rating form."""
    service = _service(runtime)
    try:
        view = await asyncio.to_thread(service.track, token, client, time.time())
    except ReportRefusedError as exc:
        raise _refused(exc) from None
    except ReportNotFoundError:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such report") from None
    return render(
        request,
        "track.html",
        {
            "view": view,
            "token": token,
            "notice": notice if notice in NOTICES else None,
            "zone": _zone(runtime, service, view.site_name),
        },
    )


@router.post("/r/track/{token}/rating", status_code=303)
async def rate(  # noqa: PLR0917 - FastAPI maps each form field to a parameter
    token: str,
    request: Request,
    runtime: RuntimeDep,
    client: ClientAddressDep,
    rating: Annotated[int, Form(ge=1, le=5)],
    comment: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    """The rating form (CSRF-checked like every console form): the service's `rate`, then
    back to the tracking page with what became of it."""
    await check_csrf(request)
    service = _service(runtime)
    try:
        body = RatingBody(rating=rating, comment=comment.strip() or None)
    except ValidationError:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "rating") from None
    try:
        result, changes = await asyncio.to_thread(service.rate, token, body, client, time.time())
    except ReportRefusedError as exc:
        raise _refused(exc) from None
    except ReportNotFoundError:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such report") from None
    except ConflictError:
        notice = "resident.rate_refused"
    else:
        if changes:
            runtime.feed.wake()
        notice = "resident.rated" if result.outcome == "recorded" else "resident.rated_low"
    response = RedirectResponse(f"{request.url.path.removesuffix('/rating')}?notice={notice}", 303)
    response.headers.update(PAGE_HEADERS)
    return response
