"""Login, stream tickets, the caller's identity, the live stream (SSE), health and metrics."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.types import Receive, Scope, Send

from gateway.api.deps import ClientAddressDep, PrincipalDep, RuntimeDep, require
from gateway.api.permissions import Permission
from gateway.auth import Principal, check_login, issue_stream_ticket, issue_token
from gateway.models import FeedEntry, UserPublic
from gateway.runtime import Runtime
from gateway.store import StoreUnavailableError

router = APIRouter()

KEEPALIVE_S = 15.0
"""A comment line after this long without a line keeps proxies from closing an idle stream,
and lets the server notice a client that went away."""
RETRY_AFTER_S = 5
"""Retry-After of a stream refused for lack of a slot."""


class LoginBody(BaseModel):
    """Credentials."""

    model_config = ConfigDict(extra="forbid")

    username: str = Field(max_length=64)
    password: str = Field(max_length=200)


class TokenPublic(BaseModel):
    """A bearer token."""

    access_token: str
    token_type: str = "bearer"  # noqa: S105 - the OAuth2 token type, not a secret
    expires_at: float
    role: str


@router.post("/api/login", response_model=TokenPublic, tags=["auth"])
async def login(
    body: LoginBody, runtime: RuntimeDep, address: ClientAddressDep, response: Response
) -> TokenPublic:
    """Exchange a username and password for an API token (see `gateway.login_limiter` for
    the limits: per user and address, per address, and a slow-down per user)."""
    now = time.time()
    user = await check_credentials(runtime, body.username, body.password, address, now)
    response.headers["Cache-Control"] = "no-store"  # a credential (RFC 6749 §5.1)
    ttl = runtime.settings.jwt_ttl_s
    token = issue_token(user.username, runtime.settings.signing_key(), now, ttl)
    return TokenPublic(access_token=token, expires_at=now + ttl, role=user.role.value)


async def check_credentials(
    runtime: Runtime, username: str, password: str, address: str, now: float
) -> UserPublic:
    """The enabled user `username` if `password` opens the account, within the login
    limits; HTTPException 429 (with Retry-After) or 401 otherwise. The API's login and the
    console's both come through here, so they share one set of counters."""
    # Counted before argon2 runs (an in-flight slot), so concurrent guesses cannot all pass
    # the check before any failure is counted; a success gives the slot back.
    decision = runtime.limiter.attempt(username, address, now)
    if decision.retry_after is not None:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            "too many failed logins; try later",
            headers={"Retry-After": str(int(decision.retry_after) + 1)},
        )
    if decision.delay_s:
        await asyncio.sleep(decision.delay_s)
    found = await asyncio.to_thread(runtime.store.users.user_credentials, username)
    usable = found if found is not None and not found[0].disabled else None
    # Exactly one argon2 verification whatever the user: a dummy hash stands in for unknown
    # and disabled users, so the answer's timing does not reveal which names exist.
    ok = await asyncio.to_thread(check_login, usable[1] if usable is not None else None, password)
    if not ok or usable is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "wrong username or password")
    runtime.limiter.succeeded(username, address, now)
    return usable[0]


class StreamTicketPublic(BaseModel):
    """A credential for `GET /api/stream?stream_ticket=…` only."""

    ticket: str
    expires_at: float


@router.post("/api/stream-ticket", response_model=StreamTicketPublic, tags=["stream"])
async def stream_ticket(
    runtime: RuntimeDep,
    principal: Annotated[Principal, Depends(require(Permission.STREAM))],
    response: Response,
) -> StreamTicketPublic:
    """A ticket for a browser's EventSource (which cannot send an Authorization header):
    valid `stream_ticket_ttl_s` (60 s) to open the stream as the caller, refused by every
    other route. Fetch a new one for each (re)connection."""
    now = time.time()
    ttl = runtime.settings.stream_ticket_ttl_s
    ticket = issue_stream_ticket(principal.username, runtime.settings.signing_key(), now, ttl)
    response.headers["Cache-Control"] = "no-store"
    return StreamTicketPublic(ticket=ticket, expires_at=now + ttl)


class MePublic(BaseModel):
    """Who the token belongs to."""

    username: str
    role: str
    sites: list[str]


@router.get("/api/me", response_model=MePublic, tags=["auth"])
async def me(principal: PrincipalDep) -> MePublic:
    """The caller's identity and scope."""
    return MePublic(
        username=principal.username, role=principal.role.value, sites=sorted(principal.sites)
    )


def _resume_from(header: str | None, query: int | None) -> int | None:
    """The id a reconnecting client saw last (EventSource sends the Last-Event-ID header;
    `?last_event_id=` serves clients that cannot set headers)."""
    if query is not None:
        return query
    if header is None:
        return None
    try:
        value = int(header.strip())
    except ValueError:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST, "Last-Event-ID must be an integer"
        ) from None
    if value < 0:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "Last-Event-ID must be >= 0")
    return value


def _sse(entry: FeedEntry) -> str:
    return f"id: {entry.id}\nevent: {entry.kind}\ndata: {entry.data}\n\n"


@router.get("/api/stream", tags=["stream"])
async def stream(
    request: Request,
    runtime: RuntimeDep,
    principal: Annotated[Principal, Depends(require(Permission.STREAM, stream=True))],
    max_events: Annotated[int | None, Query(ge=1)] = None,
    last_event_id: Annotated[int | None, Query(ge=0)] = None,
) -> StreamingResponse:
    """Server-sent events: ticket and device changes in the caller's sites, from every
    replica, in commit order. Authenticate with a Bearer token, or (EventSource) with
    `?stream_ticket=` from POST /api/stream-ticket; the user is checked when the stream opens
    and re-read every `stream_recheck_s`: once disabled, gone, or given another role or
    other sites, the stream sends `end` (with the reason) and closes. At most
    `stream_max_per_user` open streams per user and `stream_max_total` in all (429 beyond).

    The first event is `hello`; each change carries its feed id as the SSE `id`. A client
    that reconnects with `Last-Event-ID` (or `?last_event_id=`) first gets every change it
    missed; if some were already pruned it gets a `reset` event and should reload through
    the REST API. `max_events` closes the stream after that many events (`hello` included),
    for clients that poll.
    """
    resume = _resume_from(request.headers.get("last-event-id"), last_event_id)
    feed = follow_feed(request, runtime, principal, resume)

    async def events() -> AsyncIterator[str]:
        sent = 0
        async for item in feed:
            if isinstance(item, FeedHello):
                hello = {"user": principal.username, "last_event_id": item.last_event_id}
                yield f"event: hello\ndata: {json.dumps(hello)}\n\n"
            elif item == "reset":
                yield "event: reset\ndata: {}\n\n"
            elif item == "keepalive":
                yield ": keepalive\n\n"
                continue
            elif isinstance(item, FeedEnd):
                yield f"event: end\ndata: {json.dumps({'reason': item.reason})}\n\n"
                return
            elif isinstance(item, FeedEntry):
                yield _sse(item)
            sent += 1
            # Close right after the last one: waiting for the next item would hold a polling
            # client until the next change or keepalive (up to KEEPALIVE_S).
            if max_events is not None and sent >= max_events:
                return

    return sse_response(runtime, principal, events())


class _SlotResponse(StreamingResponse):
    """An SSE response that gives its stream slot back when it ends, however it ends: the
    events ran out, the client went away, or the body never started (a generator's
    `finally` does not run then, so the slot is not released there)."""

    def __init__(self, content: AsyncIterator[str], release: Callable[[], None]) -> None:
        super().__init__(
            content,
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
        self._release = release

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._release()


def sse_response(
    runtime: Runtime, principal: Principal, events: AsyncIterator[str]
) -> StreamingResponse:
    """`events` as an SSE response holding one of the replica's stream slots for the
    caller (`stream_max_per_user`, `stream_max_total`), or 429 with the reason when none is
    free. The API's stream and the console's both come through here."""
    reason = runtime.streams.acquire(principal.username)
    if reason is not None:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            reason,
            headers={"Retry-After": str(RETRY_AFTER_S)},
        )
    released = False

    def release() -> None:
        nonlocal released
        if not released:
            released = True
            runtime.streams.release(principal.username)

    return _SlotResponse(events, release)


@dataclass(frozen=True)
class FeedHello:
    """First item of `follow_feed`: where the stream starts."""

    last_event_id: int


@dataclass(frozen=True)
class FeedEnd:
    """Last item of `follow_feed` when the caller may no longer hold the stream."""

    reason: str


async def withdrawn(runtime: Runtime, principal: Principal) -> str | None:
    """Why `principal` may no longer hold its stream open, or None: the user is disabled or
    gone, or has another role or other sites (the stream ends either way; a reconnect, if
    still allowed, gets the new scope, so a stream never has to be re-scoped in place)."""
    try:
        found = await asyncio.to_thread(runtime.store.users.user_credentials, principal.username)
    except StoreUnavailableError:  # the database away is not a reason to cut everyone off
        return None
    if found is None or found[0].disabled:
        return "user is disabled or gone"
    user = found[0]
    if Principal(user.username, user.role, frozenset(user.sites)) != principal:
        return "role or sites changed; reconnect"
    return None


async def follow_feed(
    request: Request, runtime: Runtime, principal: Principal, resume: int | None
) -> AsyncIterator[FeedHello | FeedEntry | FeedEnd | str]:
    """The change feed as the caller may see it, for an SSE route: a `FeedHello`, then what a
    reconnecting client missed since `resume` (with "reset" if part of it was pruned), then
    live entries; "keepalive" after `KEEPALIVE_S` of silence. Entries of sites outside the
    caller's scope are never yielded. Ends when the client goes away, and with a `FeedEnd`
    when a re-read of the user every `stream_recheck_s` finds them `withdrawn`. The API's
    stream and the console's both come through here."""
    # Subscribe before reading the backlog, so nothing committed in between is missed; the
    # id check below drops what both paths deliver.
    queue = runtime.hub.subscribe()
    start = runtime.feed.last_id

    async def backlog(last: int) -> AsyncIterator[FeedEntry | None]:
        """What a reconnecting client missed (None first if part of it was pruned)."""
        oldest = await asyncio.to_thread(runtime.store.feed.oldest_change_id)
        if oldest is None or oldest > last + 1:
            yield None
        while last < start:
            entries = await asyncio.to_thread(runtime.store.feed.changes_after, last, 500)
            if not entries:
                return
            for entry in entries:
                last = entry.id
                yield entry

    last = start if resume is None else resume
    try:
        yield FeedHello(last)
        if last < start:
            async for missed in backlog(last):
                if missed is None:
                    yield "reset"
                    continue
                last = missed.id
                if principal.can_see(missed.site_id):
                    yield missed
        async for item in _live(request, runtime, principal, queue, last):
            yield item
    finally:
        runtime.hub.unsubscribe(queue)


async def _live(
    request: Request,
    runtime: Runtime,
    principal: Principal,
    queue: asyncio.Queue[FeedEntry],
    last: int,
) -> AsyncIterator[FeedEntry | FeedEnd | str]:
    """`follow_feed`'s live part: entries after `last` from `queue`, keepalives, and the
    periodic re-read of the user (`withdrawn`)."""
    loop = asyncio.get_running_loop()
    recheck_s = runtime.settings.stream_recheck_s
    next_check = loop.time() + recheck_s
    quiet_until = loop.time() + KEEPALIVE_S
    while True:
        # Checked between entries too, not only when idle: a busy stream would otherwise
        # never reach a quiet moment to notice a disabled user.
        if loop.time() >= next_check:
            reason = await withdrawn(runtime, principal)
            if reason is not None:
                yield FeedEnd(reason)
                return
            next_check = loop.time() + recheck_s
        wait = max(0.0, min(next_check, quiet_until) - loop.time())
        try:
            entry = await asyncio.wait_for(queue.get(), wait)
        except TimeoutError:
            if loop.time() >= quiet_until:
                if await request.is_disconnected():
                    return
                yield "keepalive"
                quiet_until = loop.time() + KEEPALIVE_S
            continue
        if entry.id <= last:
            continue  # already sent from the backlog
        last = entry.id
        if principal.can_see(entry.site_id):
            yield entry
            quiet_until = loop.time() + KEEPALIVE_S


class Health(BaseModel):
    """Liveness, the ingest connection and the ingest's state (docs/gateway.md "Health")."""

    status: str
    database: bool
    mqtt_connected: bool | None
    ingest: str | None = None  # connecting | running | stalled | failed; None when disabled
    ingest_pending: int | None = None  # messages held uncommitted right now
    ingest_failure: str | None = None  # the error that stopped it, until it recovers


@router.get("/healthz", response_model=Health, tags=["system"])
async def healthz(request: Request, runtime: RuntimeDep, response: Response) -> Health:
    """200 when the database answers; reports whether ingest is connected."""
    try:
        await asyncio.to_thread(runtime.store.users.user_count)
        database = True
    except Exception:  # any failure to answer is "not healthy", whatever the driver says
        database = False
    ingest = getattr(request.app.state, "ingest", None)
    if ingest is None:
        return Health(status="ok" if database else "down", database=database, mqtt_connected=None)
    # Ingest that failed or cannot commit is down (503) although the API answers: alerts
    # pile up at the broker. A broker away is not (mqtt_connected says so; restarting the
    # gateway would not help).
    ingest_up = ingest.state.value not in ("failed", "stalled")
    if not (database and ingest_up):
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return Health(
        status="ok" if database and ingest_up else "down",
        database=database,
        mqtt_connected=ingest.connected.is_set(),
        ingest=ingest.state.value,
        ingest_pending=ingest.pending,
        ingest_failure=ingest.failure,
    )


@router.get("/metrics", tags=["system"])
async def metrics(runtime: RuntimeDep) -> Response:
    """Prometheus text format."""
    return Response(runtime.metrics.render(), media_type="text/plain; version=0.0.4")
