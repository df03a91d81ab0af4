"""Patrol round routes: today's rounds of a site, a checkpoint by its scanned tag, and a scan
with its checklist ticks and photo (a multipart upload: `SCAN_PATH` has its own body limit
and needs a valid token before its body is read)."""

from __future__ import annotations

import asyncio
import json
import re
import time
from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, HTTPException, UploadFile, status

from gateway.api.deps import RuntimeDep, require
from gateway.api.permissions import Permission
from gateway.api.scope import ensure_site_in_scope
from gateway.auth import Principal
from gateway.rounds.models import CheckpointPublic, RoundsToday, ScanResult
from gateway.rounds.service import MAX_PHOTO_BYTES, RoundsError, RoundsService, UnknownError
from gateway.runtime import Runtime

router = APIRouter(prefix="/api/sites/{site_id}/rounds", tags=["rounds"])

SCAN_PATH = re.compile(r"/api/sites/[^/]+/rounds/scans/?")
"""The scan upload (a photo): its own body limit, token checked before the body is read."""

Reader = Annotated[Principal, Depends(require(Permission.READ_ROUNDS))]


def _service(runtime: Runtime) -> RoundsService:
    if runtime.rounds is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "rounds are off")
    return runtime.rounds


@router.get("/today", response_model=RoundsToday)
async def rounds_today(site_id: str, runtime: RuntimeDep, principal: Reader) -> RoundsToday:
    """The site's rounds today (site time zone): each round's state and checkpoints."""
    ensure_site_in_scope(principal, site_id)
    try:
        return await asyncio.to_thread(_service(runtime).today, site_id, time.time())
    except UnknownError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None


@router.get("/checkpoints/{tag_id}", response_model=CheckpointPublic)
async def checkpoint_by_tag(
    site_id: str, tag_id: str, runtime: RuntimeDep, principal: Reader
) -> CheckpointPublic:
    """The checkpoint a scanned QR tag belongs to, with its checklist."""
    ensure_site_in_scope(principal, site_id)
    try:
        return _service(runtime).checkpoint(site_id, tag_id)
    except UnknownError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None


@router.post("/scans", response_model=ScanResult, status_code=201)
async def record_scan(  # noqa: PLR0917 - FastAPI maps each form field to a parameter
    site_id: str,
    runtime: RuntimeDep,
    principal: Annotated[Principal, Depends(require(Permission.DO_ROUNDS))],
    tag_id: Annotated[str, Form(max_length=64)],
    results: Annotated[str, Form(max_length=8000, description='JSON: {"item_id": true, …}')],
    note: Annotated[str | None, Form(max_length=2000)] = None,
    photo: Annotated[UploadFile | None, File()] = None,
) -> ScanResult:
    """A checkpoint scanned: every checklist item ticked true (passed) or false, a photo
    where the checklist needs one. A failed item opens a ticket at the checkpoint."""
    ensure_site_in_scope(principal, site_id)
    try:
        ticks = json.loads(results)
    except ValueError:
        ticks = None
    if not isinstance(ticks, dict) or not all(isinstance(v, bool) for v in ticks.values()):
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, 'results: a JSON object {"item_id": true}'
        )
    data = await photo.read(MAX_PHOTO_BYTES + 1) if photo is not None else None
    try:
        result, changes = await asyncio.to_thread(
            _service(runtime).record_scan,
            site_id,
            tag_id,
            principal.username,
            results=ticks,
            note=note,
            photo=data,
            now=time.time(),
        )
    except UnknownError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    except RoundsError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
    if changes:
        runtime.feed.wake()
    return result
