"""The butler's patrol rounds on the phone (390×844): today's rounds of a site, a checkpoint
(opened by scanning its tag's QR code, or by a tap in the list) with its checklist, and the
scan: every item ticked passed or failed, a photo where the checklist wants one. A failed
item opens a ticket at the checkpoint (the rounds service decides; this only shows it).

The same service calls and permissions as `gateway.api.rounds`: reading is `read_rounds`,
recording a scan `do_rounds`, and every route checks the site against the caller's sites.
"""

from __future__ import annotations

import asyncio
import time
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.datastructures import UploadFile

from gateway.api.deps import RuntimeDep
from gateway.api.permissions import Permission
from gateway.api.scope import ensure_site_in_scope
from gateway.auth import Principal
from gateway.console import views
from gateway.console.deps import form_action, page
from gateway.console.render import render
from gateway.rounds.models import CheckpointPublic
from gateway.rounds.service import MAX_PHOTO_BYTES, RoundsError, RoundsService, UnknownError
from gateway.runtime import Runtime

router = APIRouter(prefix="/console/rounds", tags=["console"])

Reader = Annotated[Principal, Depends(page(Permission.READ_ROUNDS))]
ITEM_FIELD = "item."
"""Each checklist item's field: `item.<item_id>` = `pass` | `fail`."""
NOTICES = ("notice.scan_saved", "notice.scan_failed_items", "notice.bad_photo")


def _service(runtime: Runtime) -> RoundsService:
    if runtime.rounds is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "rounds are off")
    return runtime.rounds


def _sites(runtime: Runtime, principal: Principal) -> list[str]:
    """The sites with rounds this caller may see."""
    return sorted(s for s in _service(runtime).sites if principal.can_see(s))


@router.get("", response_class=HTMLResponse)
async def rounds_today(
    request: Request,
    runtime: RuntimeDep,
    principal: Reader,
    site: Annotated[str | None, Query(max_length=64)] = None,
    notice: Annotated[str | None, Query(max_length=40)] = None,
) -> HTMLResponse:
    """Today's rounds of one site (the caller's first site with rounds unless `site`): each
    round's state and window, its checkpoints, done or still to scan."""
    sites = _sites(runtime, principal)
    site_id = site or (sites[0] if sites else None)
    today = None
    if site_id is not None:
        ensure_site_in_scope(principal, site_id)
        try:
            today = await asyncio.to_thread(_service(runtime).today, site_id, time.time())
        except UnknownError:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no rounds at this site") from None
    return render(
        request,
        "rounds.html",
        {
            "sites": sites,
            "site_id": site_id,
            "today": today,
            "notice": notice if notice in NOTICES else None,
        },
    )


def _checkpoint_page(
    request: Request,
    site_id: str,
    found: CheckpointPublic,
    *,
    notice: str | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    return render(
        request,
        "rounds_checkpoint.html",
        {
            "site_id": site_id,
            "found": found,
            "may_scan": views.may(request.state.console_principal, Permission.DO_ROUNDS),
            "photo_required": any(i.photo_required for i in found.checkpoint.checklist),
            "notice": notice if notice in NOTICES else None,
            "error": error,
        },
        status_code=status_code,
    )


def _checkpoint(runtime: Runtime, site_id: str, tag_id: str) -> CheckpointPublic:
    try:
        return _service(runtime).checkpoint(site_id, tag_id)
    except UnknownError:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such checkpoint") from None


@router.get("/{site_id}/checkpoints/{tag_id}", response_class=HTMLResponse)
async def checkpoint(
    site_id: str,
    tag_id: str,
    request: Request,
    *,
    runtime: RuntimeDep,
    principal: Reader,
    notice: Annotated[str | None, Query(max_length=40)] = None,
) -> HTMLResponse:
    """A checkpoint by its tag (what the tag's QR code opens): its checklist as a form."""
    ensure_site_in_scope(principal, site_id)
    return _checkpoint_page(request, site_id, _checkpoint(runtime, site_id, tag_id), notice=notice)


@router.post("/{site_id}/scans", status_code=303, response_class=HTMLResponse)
async def record_scan(
    site_id: str,
    request: Request,
    runtime: RuntimeDep,
    principal: Annotated[Principal, Depends(form_action(Permission.DO_ROUNDS))],
) -> Response:
    """Record a scan (CSRF-checked form): `tag_id`, `item.<id>` = pass | fail for every
    checklist item, optional `note`, a `file` photo where required."""
    ensure_site_in_scope(principal, site_id)
    form = await request.form()
    tag_id = form.get("tag_id")
    note = form.get("note")
    if not isinstance(tag_id, str) or not isinstance(note, str | None):
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "tag_id: a text field")
    found = _checkpoint(runtime, site_id, tag_id)
    results = {
        key.removeprefix(ITEM_FIELD): value == "pass"
        for key, value in form.multi_items()
        if key.startswith(ITEM_FIELD) and value in ("pass", "fail")
    }
    upload = form.get("file")
    photo = await upload.read(MAX_PHOTO_BYTES + 1) if isinstance(upload, UploadFile) else None
    try:
        result, changes = await asyncio.to_thread(
            _service(runtime).record_scan,
            site_id,
            tag_id,
            principal.username,
            results=results,
            note=(note or "").strip()[:2000] or None,
            photo=photo or None,
            now=time.time(),
        )
    except RoundsError as exc:
        return _checkpoint_page(
            request,
            site_id,
            found,
            error="rounds.err_photo" if str(exc).startswith("photo") else "rounds.err_ticks",
            status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
        )
    if changes:
        runtime.feed.wake()
    notice = "notice.scan_failed_items" if result.ticket_ids else "notice.scan_saved"
    query = urlencode({"site": site_id, "notice": notice})
    return RedirectResponse(f"/console/rounds?{query}", status_code=303)
