"""The butler's phone view (390×844, one thumb): my tickets, accept, where it is, a photo
from the camera, resolve with a note. The same service functions as the API: a worker
sees and works only the tickets assigned to them."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse

from gateway.api.deps import RuntimeDep, site_scope
from gateway.api.params import RowId
from gateway.api.permissions import Permission
from gateway.api.tickets import ensure_may_work_on, load_ticket
from gateway.auth import Principal
from gateway.console.deps import page
from gateway.console.render import render
from gateway.console.views import actions_for
from gateway.lifecycle import OPEN_STATE_VALUES

router = APIRouter(prefix="/console", tags=["console"])

Worker = Annotated[Principal, Depends(page(Permission.WORK))]
MY_LIMIT = 100
"""Most tickets the phone lists (a butler's day is a few dozen)."""


@router.get("/my", response_class=HTMLResponse)
async def my_tickets(request: Request, runtime: RuntimeDep, principal: Worker) -> HTMLResponse:
    """Open tickets assigned to me, the nearest deadline first."""
    found = await asyncio.to_thread(
        runtime.store.tickets.list_tickets,
        sites=site_scope(principal),
        states=list(OPEN_STATE_VALUES),
        assignee=principal.username,
        sort="deadline",
        limit=MY_LIMIT,
    )
    return render(request, "my.html", {"tickets": found.items})


@router.get("/my/{ticket_id}", response_class=HTMLResponse)
async def my_ticket(
    ticket_id: RowId,
    request: Request,
    runtime: RuntimeDep,
    principal: Worker,
    notice: Annotated[str | None, Query(pattern=r"^notice\.[a-z_]+$")] = None,
) -> HTMLResponse:
    """One of my tickets: where, the snapshot, accept / photo / resolve."""
    ticket = await load_ticket(runtime, principal, ticket_id)
    ensure_may_work_on(principal, ticket)
    snapshot = next((e for e in reversed(ticket.evidence) if e.snapshot_id), None)
    return render(
        request,
        "my_ticket.html",
        {
            "ticket": ticket,
            "actions": [a.value for a in actions_for(principal, ticket)],
            "snapshot": snapshot,
            "notice": notice,
        },
    )
