"""The live alert wall: open tickets newest first, pushed over the console's SSE stream.

`/console/stream` is the API's change feed (`gateway.api.session.follow_feed`: any replica,
Last-Event-ID resume, the caller's sites only) with each ticket change rendered as the wall
card it becomes, so the page swaps HTML in and runs no templates of its own.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, StreamingResponse

from gateway.api.deps import RuntimeDep, site_scope
from gateway.api.params import RowId
from gateway.api.permissions import Permission
from gateway.api.session import FeedEnd, FeedHello, follow_feed, sse_response
from gateway.api.tickets import load_ticket
from gateway.auth import Principal
from gateway.console.deps import page
from gateway.console.render import base_context, environment, render
from gateway.console.views import actions_for
from gateway.lifecycle import OPEN_STATE_VALUES
from gateway.models import Change, FeedEntry, TicketDetail, TicketPublic
from gateway.runtime import Runtime

router = APIRouter(prefix="/console", tags=["console"])

Watcher = Annotated[Principal, Depends(page(Permission.ACKNOWLEDGE))]
RETRY_MS = 2000
"""How soon a browser reconnects after the stream drops (the SSE `retry:` field)."""


def thumbnail_of(ticket: TicketDetail) -> str | None:
    """The newest evidence snapshot's id (the wall's thumbnail), None without one."""
    for item in reversed(ticket.evidence):
        if item.snapshot_id:
            return item.snapshot_id
    return None


def card_context(principal: Principal, ticket: TicketDetail | TicketPublic) -> dict[str, object]:
    """What `_card.html` needs for one ticket."""
    detail = ticket if isinstance(ticket, TicketDetail) else None
    return {
        "ticket": ticket,
        "thumb": thumbnail_of(detail) if detail is not None else None,
        "actions": [a.value for a in actions_for(principal, ticket)],
        "open": ticket.state.value in OPEN_STATE_VALUES,
    }


async def _open_tickets(runtime: Runtime, principal: Principal, limit: int) -> list[TicketDetail]:
    page_ = await asyncio.to_thread(
        runtime.store.tickets.list_tickets,
        sites=site_scope(principal),
        states=list(OPEN_STATE_VALUES),
        sort="-created_at",
        limit=limit,
    )
    return [await load_ticket(runtime, principal, t.id) for t in page_.items]


@router.get("/wall", response_class=HTMLResponse)
async def wall(request: Request, runtime: RuntimeDep, principal: Watcher) -> HTMLResponse:
    """The wall screen (1280×720 and up): open alerts, newest first, live."""
    limit = runtime.settings.console.wall_cards
    tickets = await _open_tickets(runtime, principal, limit)
    return render(
        request,
        "wall.html",
        {"cards": [card_context(principal, t) for t in tickets], "max_cards": limit},
    )


@router.get("/wall/cards", response_class=HTMLResponse)
async def wall_cards(request: Request, runtime: RuntimeDep, principal: Watcher) -> HTMLResponse:
    """The wall's cards alone: the page reloads them after a reconnect, so nothing missed
    while the stream was down stays missing."""
    limit = runtime.settings.console.wall_cards
    tickets = await _open_tickets(runtime, principal, limit)
    return render(request, "_cards.html", {"cards": [card_context(principal, t) for t in tickets]})


@router.get("/wall/cards/{ticket_id}", response_class=HTMLResponse)
async def wall_card(
    ticket_id: RowId, request: Request, runtime: RuntimeDep, principal: Watcher
) -> HTMLResponse:
    """One card (what the one-click acknowledge swaps in)."""
    ticket = await load_ticket(runtime, principal, ticket_id)
    return render(request, "_card.html", card_context(principal, ticket))


def _resume(request: Request) -> int | None:
    raw = request.headers.get("last-event-id", "").strip()
    return int(raw) if raw.isdigit() else None


@router.get("/stream")
async def stream(
    request: Request,
    runtime: RuntimeDep,
    principal: Watcher,
    max_events: Annotated[int | None, Query(ge=1)] = None,
) -> StreamingResponse:
    """Server-sent events for the wall: `card` (a ticket's card as HTML, `id` = feed id),
    `hello` on (re)connect and `reset` when the backlog was pruned (reload the cards).
    `max_events` closes it after that many events (`hello` included), as on /api/stream."""
    context = base_context(request, principal)
    template = environment().get_template("_card.html")
    feed = follow_feed(request, runtime, principal, _resume(request))

    async def card(entry: FeedEntry) -> str | None:
        change = Change.model_validate_json(entry.data)
        if change.kind != "ticket" or change.ticket_id is None:
            return None
        ticket = await load_ticket(runtime, principal, change.ticket_id)
        html = template.render({**context, **card_context(principal, ticket), "now": time.time()})
        data = "".join(f"data: {line}\n" for line in html.splitlines() if line.strip())
        return f"id: {entry.id}\nevent: card\n{data}\n"

    async def text_of(item: FeedHello | FeedEntry | FeedEnd | str) -> str | None:
        if isinstance(item, FeedHello):
            return f"event: hello\ndata: {json.dumps({'last_event_id': item.last_event_id})}\n\n"
        if item == "reset":
            return "event: reset\ndata: {}\n\n"
        if isinstance(item, FeedEntry):
            try:
                return await card(item)
            except HTTPException:  # a ticket gone since: skip it, keep streaming
                return None
        return None

    async def events() -> AsyncIterator[str]:
        yield f"retry: {RETRY_MS}\n\n"
        sent = 0
        async for item in feed:
            if item == "keepalive":
                yield ": keepalive\n\n"
                continue
            if isinstance(item, FeedEnd):
                # The user was disabled or changed: end here; the browser's reconnect then
                # meets the login page (or the new scope) like any other request.
                yield f"event: end\ndata: {json.dumps({'reason': item.reason})}\n\n"
                return
            text = await text_of(item)
            if text is None:
                continue
            yield text
            sent += 1
            if max_events is not None and sent >= max_events:
                return

    return sse_response(runtime, principal, events())
