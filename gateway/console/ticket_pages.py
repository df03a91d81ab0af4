"""The ticket queue, a ticket's detail with its actions, and the images pages show.

Reads and writes go through `gateway.api.tickets` (the API's own service functions), so
site scope, a worker's own tickets, assignee membership and the state machine are checked in
one place. A form POST answers 303 back to the page it came from (`next`), with a notice.
"""

from __future__ import annotations

import asyncio
import re
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from gateway.api.deps import RuntimeDep, site_scope
from gateway.api.params import RowId
from gateway.api.permissions import Permission, allowed
from gateway.api.scope import is_member
from gateway.api.tickets import (
    TransitionBody,
    apply_transition,
    attach_photo,
    attachment_response,
    load_ticket,
    snapshot_response,
)
from gateway.auth import Principal, Role
from gateway.console.deps import ConsolePrincipalDep, form_action, page, safe_next
from gateway.console.render import render
from gateway.console.views import ACTION_PERMISSION, actions_for
from gateway.lifecycle import OPEN_STATE_VALUES, Action, TicketState
from gateway.residents.models import ResidentReportPublic
from gateway.runtime import Runtime
from gateway.sla import TicketCategory
from gateway.store import NotFoundError

router = APIRouter(prefix="/console", tags=["console"])

Reader = Annotated[Principal, Depends(page(Permission.READ_TICKETS))]
NOTICE_OF = (
    (re.compile(r"needs a site photo"), "notice.needs_photo"),
    (re.compile(r"needs a note|needs a reason"), "notice.needs_note"),
    (re.compile(r"needs an assignee"), "notice.needs_assignee"),
    (re.compile(r"is not a user of site"), "notice.not_member"),
    (re.compile(r"cannot \w+ a ticket|changed|conflict", re.IGNORECASE), "notice.wrong_state"),
    (re.compile(r"photo must be|upload a whole"), "notice.bad_photo"),
    (re.compile(r"own tickets"), "notice.not_yours"),
)
"""Service refusals → catalogue keys (the page shows the translation, not the English)."""


def notice_for(detail: str) -> str:
    """The catalogue key of a refusal's message (`notice.refused` when unknown)."""
    return next((key for pattern, key in NOTICE_OF if pattern.search(detail)), "notice.refused")


def back(next_path: str, notice: str) -> RedirectResponse:
    """303 to `next_path` with `?notice=key` (the page translates it)."""
    sep = "&" if "?" in next_path else "?"
    return RedirectResponse(f"{next_path}{sep}{urlencode({'notice': notice})}", status_code=303)


async def refused(
    request: Request,
    runtime: Runtime,
    principal: Principal,
    ticket_id: int,
    *,
    target: str,
    exc: HTTPException,
) -> Response:
    """A refused action answers with its own status (403, 409, 413, 415, 422; 404 as the
    error page) and the page it came from, showing why in the user's language."""
    if exc.status_code == 404:
        raise exc
    notice = notice_for(str(exc.detail))
    if target.startswith("/console/my/"):
        from gateway.console.butler import my_ticket

        page_ = await my_ticket(ticket_id, request, runtime, principal, notice=notice)
    else:
        page_ = await ticket_detail(
            ticket_id, request, runtime=runtime, principal=principal, notice=notice
        )
    page_.status_code = exc.status_code
    return page_


def _known(value: str | None, allowed: type[TicketState] | type[TicketCategory]) -> str | None:
    return value if value and value in {m.value for m in allowed} else None


@router.get("/queue", response_class=HTMLResponse)
async def queue(
    request: Request,
    *,
    runtime: RuntimeDep,
    principal: Reader,
    site: Annotated[str | None, Query(max_length=64)] = None,
    grid: Annotated[str | None, Query(max_length=64)] = None,
    category: Annotated[str | None, Query(max_length=64)] = None,
    state: Annotated[str | None, Query(max_length=32)] = None,
    assignee: Annotated[str | None, Query(max_length=64)] = None,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> HTMLResponse:
    """Tickets of the caller's sites sorted by the deadline that runs now, with filters.
    Without a status filter it lists open tickets."""
    sites = site_scope(principal)
    if site:
        # A site outside the caller's scope lists nothing (as if it had no tickets).
        sites = [site] if principal.can_see(site) else []
    state_value = _known(state, TicketState)
    states = [state_value] if state_value else list(OPEN_STATE_VALUES)
    category_value = _known(category, TicketCategory)
    limit = runtime.settings.console.queue_page
    found = await asyncio.to_thread(
        runtime.store.tickets.list_tickets,
        sites=sites,
        states=states,
        categories=[category_value] if category_value else None,
        grid_id=grid or None,
        assignee=assignee or None,
        sort="deadline",
        offset=offset,
        limit=limit,
    )
    filters = {
        "site": site or "",
        "grid": grid or "",
        "category": category_value or "",
        "state": state_value or "",
        "assignee": assignee or "",
    }
    query = {k: v for k, v in filters.items() if v}
    return render(
        request,
        "queue.html",
        {
            "page": found,
            "filters": filters,
            "states": [s.value for s in TicketState],
            "categories": [c.value for c in TicketCategory],
            "sites": sorted(principal.sites - {"*"}),
            "prev_url": f"/console/queue?{urlencode({**query, 'offset': max(0, offset - limit)})}"
            if offset > 0
            else None,
            "next_url": f"/console/queue?{urlencode({**query, 'offset': offset + limit})}"
            if offset + limit < found.total
            else None,
        },
    )


async def _assignees(
    runtime: Runtime, principal: Principal, site_id: str, grid_id: str | None
) -> list[str]:
    """Names the dispatch form suggests: the grid's roster (readable by every role, as
    GET /api/grids/{id}/shifts) and, for roles that may list users, the site's workers."""
    names: set[str] = set()
    if grid_id:
        shifts = await asyncio.to_thread(runtime.store.grids.list_shifts, grid_id)
        names |= {s.username for s in shifts}
    if allowed(Permission.READ_USERS, principal.role):
        users = await asyncio.to_thread(runtime.store.users.list_users)
        names |= {u.username for u in users if u.role is Role.WORKER and is_member(u, site_id)}
    return sorted(names)


@router.get("/tickets/{ticket_id}", response_class=HTMLResponse)
async def ticket_detail(
    ticket_id: RowId,
    request: Request,
    *,
    runtime: RuntimeDep,
    principal: Reader,
    notice: Annotated[str | None, Query(pattern=r"^notice\.[a-z_]+$")] = None,
) -> HTMLResponse:
    """Snapshot with boxes, the event timeline, the actions this role may take now, photos
    and the audit trail."""
    ticket = await load_ticket(runtime, principal, ticket_id)  # checks the site first
    actions = [a.value for a in actions_for(principal, ticket)]
    report = await _resident_report(runtime, ticket_id)
    assignees = (
        await _assignees(runtime, principal, ticket.site_id, ticket.grid_id)
        if "dispatch" in actions
        else []
    )
    return render(
        request,
        "ticket.html",
        {
            "ticket": ticket,
            "actions": actions,
            "assignees": assignees,
            "notice": notice,
            "snapshots": [e for e in ticket.evidence if e.snapshot_id],
            "report": report,
        },
    )


async def _resident_report(runtime: Runtime, ticket_id: int) -> ResidentReportPublic | None:
    """What a resident reported on the ticket (the caller checked its site); None for a
    ticket no resident reported."""
    if runtime.residents is None:
        return None
    try:
        return await asyncio.to_thread(runtime.residents.report_of, ticket_id)
    except NotFoundError:
        return None


def _action_route(action: Action) -> None:
    async def route(
        ticket_id: RowId,
        request: Request,
        *,
        runtime: RuntimeDep,
        principal: ConsolePrincipalDep,
        assignee: Annotated[str | None, Form(max_length=64)] = None,
        note: Annotated[str | None, Form(max_length=4000)] = None,
        next: Annotated[str | None, Form(max_length=500)] = None,
    ) -> Response:
        target = safe_next(next, f"/console/tickets/{ticket_id}")
        body = TransitionBody(assignee=assignee or None, note=note or None)
        try:
            await apply_transition(runtime, principal, ticket_id, action, body)
        except HTTPException as exc:
            return await refused(request, runtime, principal, ticket_id, target=target, exc=exc)
        return RedirectResponse(target, status_code=303)

    route.__name__ = f"console_{action.value}"
    route.__doc__ = f"Apply `{action.value}` (the form's CSRF field checked first); 303 back."
    router.add_api_route(
        f"/tickets/{{ticket_id}}/{action.value}",
        route,
        methods=["POST"],
        status_code=303,
        response_class=HTMLResponse,
        name=f"console_{action.value}",
        # In `dependencies`: a closure variable inside an annotation would not resolve under
        # postponed evaluation of annotations (as in gateway.api.tickets).
        dependencies=[Depends(form_action(ACTION_PERMISSION[action]))],
    )


for _action in Action:
    _action_route(_action)


@router.post("/tickets/{ticket_id}/photos", status_code=303, response_class=HTMLResponse)
async def upload_photo(
    ticket_id: RowId,
    request: Request,
    *,
    file: UploadFile,
    runtime: RuntimeDep,
    principal: Annotated[Principal, Depends(form_action(Permission.WORK))],
    next: Annotated[str | None, Form(max_length=500)] = None,
) -> Response:
    """A site photo from the phone's camera or gallery (same checks as the API upload)."""
    target = safe_next(next, f"/console/tickets/{ticket_id}")
    data = await file.read(runtime.settings.max_photo_bytes + 1)
    try:
        await attach_photo(runtime, principal, ticket_id, data)
    except HTTPException as exc:
        return await refused(request, runtime, principal, ticket_id, target=target, exc=exc)
    return back(target, "notice.photo_saved")


@router.get("/tickets/{ticket_id}/snapshots/{snapshot_id}")
async def snapshot(
    ticket_id: RowId, snapshot_id: str, runtime: RuntimeDep, principal: Reader
) -> Response:
    """An evidence snapshot (as GET /api/tickets/{id}/snapshots/{sid}, by session cookie)."""
    return await snapshot_response(runtime, principal, ticket_id, snapshot_id)


@router.get("/tickets/{ticket_id}/attachments/{attachment_id}")
async def attachment(
    ticket_id: RowId, attachment_id: RowId, runtime: RuntimeDep, principal: Reader
) -> Response:
    """A ticket photo (as GET /api/tickets/{id}/attachments/{aid}, by session cookie)."""
    return await attachment_response(runtime, principal, ticket_id, attachment_id)
