"""Resident routes: the public report page's API (no account: a QR code's place token, a
tracking token) and operators' entry of hotline and WeChat-group reports.

Public routes check, before any work, in this order: the body size (`BodyLimitMiddleware`,
before the body is read: `REPORT_PATH` gets room for the photos, every other public route the
default 64 KiB), the client address's rate limit, the place token's HMAC; then the form, the
proof of work, the photos, and last the database (see `gateway.residents.service`).
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, status
from starlette.datastructures import UploadFile

from gateway.api.deps import ClientAddressDep, RuntimeDep, require
from gateway.api.params import RowId
from gateway.api.permissions import Permission
from gateway.api.scope import ensure_site_in_scope, load_visible, not_found
from gateway.auth import Principal
from gateway.residents.models import (
    ChallengePublic,
    OperatorReport,
    OperatorReportCreated,
    PlacePublic,
    RatingBody,
    RatingResult,
    ReportCreated,
    ResidentReportPublic,
    TrackingView,
)
from gateway.residents.service import (
    ReportForm,
    ReportNotFoundError,
    ReportRefusedError,
    ResidentService,
)
from gateway.runtime import Runtime
from gateway.store import ConflictError, NotFoundError
from gateway.store.residents import PlaceLimitError

router = APIRouter(tags=["residents"])

REPORT_PATH = re.compile(r"/api/public/places/[^/]+/reports/?")
"""The one public route with a large body (up to three photos)."""
FIELD_BYTES = 16 * 1024
"""Largest text field of the report form."""

_STATUS = {
    "rate_limited": status.HTTP_429_TOO_MANY_REQUESTS,
    "invalid": status.HTTP_422_UNPROCESSABLE_CONTENT,
    "proof": status.HTTP_403_FORBIDDEN,
    "photo_type": status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
    "photo_size": status.HTTP_413_CONTENT_TOO_LARGE,
}


def _service(runtime: Runtime) -> ResidentService:
    if runtime.residents is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "resident reports are off")
    return runtime.residents


def _refused(exc: ReportRefusedError) -> HTTPException:
    headers = None
    if exc.retry_after_s is not None:
        headers = {"Retry-After": str(max(1, math.ceil(exc.retry_after_s)))}
    return HTTPException(_STATUS[exc.kind], str(exc), headers=headers)


def _gone() -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, "not found")


@router.get("/api/public/places/{token}", response_model=PlacePublic)
async def public_place(token: str, runtime: RuntimeDep, client: ClientAddressDep) -> PlacePublic:
    """What a QR code's report page shows: site and place names, the categories to choose
    from, the photo limits and a proof-of-work challenge (public; per-address read limit)."""
    try:
        return _service(runtime).place(token, client, time.time())
    except ReportRefusedError as exc:
        raise _refused(exc) from None
    except ReportNotFoundError:
        raise _gone() from None


@router.get("/api/public/places/{token}/challenge", response_model=ChallengePublic)
async def public_challenge(
    token: str, runtime: RuntimeDep, client: ClientAddressDep
) -> ChallengePublic:
    """A fresh proof-of-work challenge for a QR code's site (public; per-address read limit)."""
    try:
        return _service(runtime).challenge(token, client, time.time())
    except ReportRefusedError as exc:
        raise _refused(exc) from None
    except ReportNotFoundError:
        raise _gone() from None


async def _form(request: Request, service: ResidentService) -> tuple[ReportForm, list[bytes]]:
    """The multipart form (category, description, phone, challenge, nonce) and the photos'
    bytes (each read up to one byte over the limit, so an oversized one is seen as such)."""
    max_photos = service.settings.max_photos
    form = await request.form(max_files=max_photos, max_fields=8, max_part_size=FIELD_BYTES)
    text: dict[str, str] = {}
    for name in ("category", "description", "phone", "challenge", "nonce"):
        value = form.get(name)
        if value is not None and not isinstance(value, str):
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"{name}: a text field")
        text[name] = value or ""
    photos: list[bytes] = []
    for n, item in enumerate(form.getlist("photos")):
        if not isinstance(item, UploadFile):
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"photos[{n}]: a file")
        data = await item.read(service.settings.max_photo_bytes + 1)
        photos.append(data)
    await form.close()
    return (
        ReportForm(
            category=text["category"],
            description=text["description"],
            phone=text["phone"] or None,
            challenge=text["challenge"],
            nonce=text["nonce"],
        ),
        photos,
    )


@router.post("/api/public/places/{token}/reports", response_model=ReportCreated, status_code=201)
async def public_report(
    token: str, request: Request, runtime: RuntimeDep, client: ClientAddressDep
) -> ReportCreated:
    """A resident's report (public, multipart/form-data): `category`, `description`, optional
    `phone`, the solved `challenge` and its `nonce`, up to 3 `photos`. Answers the tracking
    token once; it is the resident's only way back to the report."""
    service = _service(runtime)
    now = time.time()
    try:
        service.allow_report(client, now)
        service.check_place(token)
    except ReportRefusedError as exc:
        raise _refused(exc) from None
    except ReportNotFoundError:
        raise _gone() from None
    form, photos = await _form(request, service)
    try:
        created, changes = await asyncio.to_thread(service.submit, token, form, photos, now)
    except ReportRefusedError as exc:
        raise _refused(exc) from None
    except ReportNotFoundError:
        raise _gone() from None
    except PlaceLimitError as exc:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS, str(exc), headers={"Retry-After": "600"}
        ) from None
    except ConflictError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    if changes:
        runtime.feed.wake()
    return created


@router.get("/api/public/track/{token}", response_model=TrackingView)
async def public_track(token: str, runtime: RuntimeDep, client: ClientAddressDep) -> TrackingView:
    """A report's progress for its tracking link: category, place, state and the times of its
    steps; no ticket id, names, phone or text (public; per-address read limit)."""
    try:
        return await asyncio.to_thread(_service(runtime).track, token, client, time.time())
    except ReportRefusedError as exc:
        raise _refused(exc) from None
    except ReportNotFoundError:
        raise _gone() from None


@router.post("/api/public/track/{token}/rating", response_model=RatingResult)
async def public_rating(
    token: str, body: RatingBody, runtime: RuntimeDep, client: ClientAddressDep
) -> RatingResult:
    """The resident's one 1–5 rating of resolved work, with a comment; a low rating reopens
    the ticket or flags it for the supervisor (site file). 409 before resolution or twice."""
    try:
        result, changes = await asyncio.to_thread(
            _service(runtime).rate, token, body, client, time.time()
        )
    except ReportRefusedError as exc:
        raise _refused(exc) from None
    except ReportNotFoundError:
        raise _gone() from None
    except ConflictError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    if changes:
        runtime.feed.wake()
    return result


@router.post("/api/sites/{site_id}/reports", response_model=OperatorReportCreated, status_code=201)
async def enter_report(
    site_id: str,
    body: OperatorReport,
    runtime: RuntimeDep,
    principal: Annotated[Principal, Depends(require(Permission.ENTER_REPORTS))],
) -> OperatorReportCreated:
    """An operator enters a hotline call or WeChat-group report (channel recorded) into the
    same ticket flow; the answer's tracking link can be sent to the resident."""
    ensure_site_in_scope(principal, site_id)
    try:
        created, changes = await asyncio.to_thread(
            _service(runtime).enter, site_id, body, principal.username, time.time()
        )
    except ReportRefusedError as exc:
        raise _refused(exc) from None
    except ReportNotFoundError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
    if changes:
        runtime.feed.wake()
    return created


@router.get("/api/tickets/{ticket_id}/report", response_model=ResidentReportPublic)
async def ticket_report(
    ticket_id: RowId,
    runtime: RuntimeDep,
    principal: Annotated[Principal, Depends(require(Permission.READ_TICKETS))],
) -> ResidentReportPublic:
    """What the resident reported on this ticket: channel, place, description, phone, the
    operator who entered it, the rating (404 for tickets no resident reported)."""
    await load_visible(
        principal, "ticket", ticket_id, lambda: runtime.store.tickets.get_ticket(ticket_id)
    )
    try:
        return await asyncio.to_thread(_service(runtime).report_of, ticket_id)
    except NotFoundError:
        raise not_found("report of ticket", ticket_id) from None
