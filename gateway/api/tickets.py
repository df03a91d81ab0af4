"""Ticket routes: list (filter, sort, paginate), detail, transitions, photos, snapshots."""

from __future__ import annotations

import asyncio
import re
import time
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Response, UploadFile, status
from pydantic import BaseModel, ConfigDict, Field

from gateway.api.deps import PrincipalDep, RuntimeDep, ensure_site, require, site_scope
from gateway.api.params import Offset, RowId
from gateway.api.permissions import Permission
from gateway.api.scope import ensure_member, ensure_visible, load_visible, not_found
from gateway.auth import Principal, Role
from gateway.images import sniff_image
from gateway.lifecycle import Action, TicketState, TransitionError
from gateway.models import AttachmentPublic, TicketDetail, TicketPage, TicketPublic
from gateway.runtime import Runtime
from gateway.sla import TicketCategory
from gateway.store import ConflictError, NotFoundError

router = APIRouter(prefix="/api/tickets", tags=["tickets"])

Reader = Annotated[Principal, Depends(require(Permission.READ_TICKETS))]


class TransitionBody(BaseModel):
    """Optional details of a transition."""

    model_config = ConfigDict(extra="forbid")

    assignee: str | None = Field(default=None, description="Who is dispatched (dispatch).")
    note: str | None = Field(
        default=None, max_length=4000, description="Resolution note / written plan / reason."
    )


@router.get("", response_model=TicketPage)
async def list_tickets(
    runtime: RuntimeDep,
    principal: Reader,
    *,
    state: Annotated[list[TicketState] | None, Query()] = None,
    category: Annotated[list[TicketCategory] | None, Query()] = None,
    site_id: str | None = None,
    grid_id: str | None = None,
    assignee: str | None = None,
    device_id: str | None = None,
    sort: str = "-created_at",
    offset: Offset = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> TicketPage:
    """Tickets in the caller's sites; `sort` is a field name, `-` for descending."""
    sites = site_scope(principal)
    if site_id is not None:
        ensure_site(principal, site_id)
        sites = [site_id]
    try:
        return await asyncio.to_thread(
            runtime.store.tickets.list_tickets,
            sites=sites,
            states=[s.value for s in state] if state else None,
            categories=[c.value for c in category] if category else None,
            grid_id=grid_id,
            assignee=assignee,
            device_id=device_id,
            sort=sort,
            offset=offset,
            limit=limit,
        )
    except ValueError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None


def ensure_may_work_on(principal: Principal, ticket: TicketPublic) -> None:
    """Workers hold the WORK permission for their own tickets only (403 otherwise)."""
    if principal.role is Role.WORKER and ticket.assignee != principal.username:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "workers act only on their own tickets")


async def load_ticket(runtime: Runtime, principal: Principal, ticket_id: int) -> TicketDetail:
    """The ticket, or 404 when it is missing or outside the caller's sites (the API and the
    console both read tickets through here)."""
    return await load_visible(
        principal, "ticket", ticket_id, lambda: runtime.store.tickets.get_ticket(ticket_id)
    )


@router.get("/{ticket_id}", response_model=TicketDetail)
async def get_ticket(ticket_id: RowId, runtime: RuntimeDep, principal: Reader) -> TicketDetail:
    """A ticket with its evidence, audit log, escalations and photos."""
    return await load_ticket(runtime, principal, ticket_id)


async def apply_transition(
    runtime: Runtime,
    principal: Principal,
    ticket_id: int,
    action: Action,
    body: TransitionBody | None,
) -> TicketPublic:
    """Apply `action` as `principal` (role checked by the caller's route; site scope, a
    worker's own tickets, the assignee's membership and the state machine checked here):
    404, 403, 422 or 409 as HTTPException."""
    ticket = await load_ticket(runtime, principal, ticket_id)
    ensure_may_work_on(principal, ticket)
    body = body or TransitionBody()
    if action is Action.DISPATCH and body.assignee is not None:
        await ensure_member(runtime, body.assignee, ticket.site_id, "assignee")
    try:
        updated, changes = await asyncio.to_thread(
            runtime.store.tickets.transition,
            ticket_id,
            action,
            principal.username,
            time.time(),
            assignee=body.assignee,
            note=body.note,
            policy=runtime.settings.policies[ticket.category],
        )
    except (TransitionError, ConflictError) as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    if changes:
        runtime.feed.wake()  # the change is in the feed; push it to consoles now
    return updated


def _transition_route(action: Action, permission: Permission) -> None:
    # The permission goes in `dependencies`: a closure variable inside an annotation would not
    # resolve under postponed evaluation of annotations.
    async def route(
        ticket_id: RowId,
        runtime: RuntimeDep,
        principal: PrincipalDep,
        body: TransitionBody | None = None,
    ) -> TicketPublic:
        return await apply_transition(runtime, principal, ticket_id, action, body)

    route.__name__ = f"{action.value}_ticket"
    route.__doc__ = f"Apply `{action.value}` to a ticket (audit-logged)."
    router.add_api_route(
        f"/{{ticket_id}}/{action.value}",
        route,
        methods=["POST"],
        response_model=TicketPublic,
        name=f"{action.value}_ticket",
        dependencies=[Depends(require(permission))],
    )


for _action, _permission in (
    (Action.ACKNOWLEDGE, Permission.ACKNOWLEDGE),
    (Action.DISPATCH, Permission.DISPATCH),
    (Action.START, Permission.WORK),
    (Action.RESOLVE, Permission.WORK),
    (Action.CLOSE, Permission.CLOSE),
    (Action.REOPEN, Permission.CLOSE),
):
    _transition_route(_action, _permission)


PHOTO_UPLOAD_PATH = re.compile(r"/api/tickets/[^/]+/photos/?")
"""The one route that takes a large body (`gateway.api.limits` gives it its own limit and
requires a token before reading it)."""

USER_CONTENT_POLICY = "default-src 'none'; sandbox"
"""Content-Security-Policy of photos and snapshots: should one ever be opened as a page, it
may load nothing and run nothing."""


def user_content(data: bytes) -> Response:
    """Stored user bytes, served as the image type their bytes show; anything else (rows
    stored before uploads were checked) only as an opaque download."""
    kind = sniff_image(data)
    headers = {"Content-Security-Policy": USER_CONTENT_POLICY}
    if kind is None:
        headers["Content-Disposition"] = "attachment"
        return Response(data, media_type="application/octet-stream", headers=headers)
    return Response(data, media_type=kind, headers=headers)


@router.post("/{ticket_id}/photos", response_model=AttachmentPublic, status_code=201)
async def upload_photo(
    ticket_id: RowId,
    file: UploadFile,
    runtime: RuntimeDep,
    principal: Annotated[Principal, Depends(require(Permission.WORK))],
) -> AttachmentPublic:
    """Attach a site photo: a real JPEG, PNG or WebP (checked from its bytes, stored as the
    type found there), at most `max_photo_bytes` (5 MiB)."""
    data = await file.read(runtime.settings.max_photo_bytes + 1)
    return await attach_photo(runtime, principal, ticket_id, data)


async def attach_photo(
    runtime: Runtime, principal: Principal, ticket_id: int, data: bytes
) -> AttachmentPublic:
    """Store `data` as a photo of the ticket after the scope, own-ticket, size and image
    checks (413, 415 as HTTPException); the API and the console upload through here."""
    ticket = await load_ticket(runtime, principal, ticket_id)
    ensure_may_work_on(principal, ticket)
    limit = runtime.settings.max_photo_bytes
    if len(data) > limit or not data:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, f"photo must be 1 to {limit} bytes")
    content_type = await asyncio.to_thread(sniff_image, data)
    if content_type is None:
        raise HTTPException(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, "upload a whole JPEG, PNG or WebP image"
        )
    return await asyncio.to_thread(
        runtime.store.tickets.add_attachment,
        ticket_id,
        data,
        content_type=content_type,
        actor=principal.username,
        now=time.time(),
    )


@router.get("/{ticket_id}/attachments/{attachment_id}")
async def get_attachment(
    ticket_id: RowId, attachment_id: RowId, runtime: RuntimeDep, principal: Reader
) -> Response:
    """A ticket photo."""
    return await attachment_response(runtime, principal, ticket_id, attachment_id)


async def attachment_response(
    runtime: Runtime, principal: Principal, ticket_id: int, attachment_id: int
) -> Response:
    """A ticket photo as `user_content`, or 404 (missing or outside the caller's sites)."""
    try:
        _, data, site_id = await asyncio.to_thread(
            runtime.store.tickets.attachment, ticket_id, attachment_id
        )
    except NotFoundError:
        raise not_found("attachment", attachment_id) from None
    ensure_visible(principal, site_id, "attachment", attachment_id)
    return user_content(data)


@router.get("/{ticket_id}/snapshots/{snapshot_id}")
async def get_snapshot(
    ticket_id: RowId, snapshot_id: str, runtime: RuntimeDep, principal: Reader
) -> Response:
    """An evidence snapshot (JPEG from the edge) referenced by this ticket."""
    return await snapshot_response(runtime, principal, ticket_id, snapshot_id)


async def snapshot_response(
    runtime: Runtime, principal: Principal, ticket_id: int, snapshot_id: str
) -> Response:
    """An evidence snapshot of the ticket as `user_content`, or 404."""
    ticket = await load_ticket(runtime, principal, ticket_id)
    if snapshot_id not in {e.snapshot_id for e in ticket.evidence}:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such snapshot on this ticket")
    try:
        data = await asyncio.to_thread(
            runtime.store.tickets.snapshot, ticket.site_id, ticket.device_id, snapshot_id
        )
    except NotFoundError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    return user_content(data)
