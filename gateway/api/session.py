"""Login, the caller's identity, the live stream (SSE), health and metrics."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from gateway.api.deps import PrincipalDep, RuntimeDep, require
from gateway.api.permissions import Permission
from gateway.auth import Principal, issue_token, verify_password

router = APIRouter()

KEEPALIVE_S = 15.0


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
async def login(body: LoginBody, request: Request, runtime: RuntimeDep) -> TokenPublic:
    """Exchange a username and password for a JWT; rate-limited per user and client."""
    client = request.client.host if request.client else "unknown"
    now = time.time()
    wait = runtime.limiter.retry_after(body.username, client, now)
    if wait is not None:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            "too many failed logins; try later",
            headers={"Retry-After": str(int(wait) + 1)},
        )
    found = await asyncio.to_thread(runtime.store.user_credentials, body.username)
    ok = False
    if found is not None and not found[0].disabled:
        ok = await asyncio.to_thread(verify_password, found[1], body.password)
    if not ok or found is None:
        runtime.limiter.failed(body.username, client, now)
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "wrong username or password")
    runtime.limiter.succeeded(body.username, client)
    user = found[0]
    principal = Principal(user.username, user.role, frozenset(user.sites))
    ttl = runtime.settings.jwt_ttl_s
    token = issue_token(principal, runtime.settings.signing_key(), now, ttl)
    return TokenPublic(access_token=token, expires_at=now + ttl, role=user.role.value)


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


@router.get("/api/stream", tags=["stream"])
async def stream(
    request: Request,
    runtime: RuntimeDep,
    principal: Annotated[Principal, Depends(require(Permission.STREAM))],
    max_events: Annotated[int | None, Query(ge=1)] = None,
) -> StreamingResponse:
    """Server-sent events: alert and ticket changes in the caller's sites, as committed.

    The first event is `hello`. `max_events` closes the stream after that many events
    (`hello` included), for clients that poll.
    """
    queue = runtime.hub.subscribe()

    async def events() -> AsyncIterator[str]:
        sent = 0
        try:
            yield f"event: hello\ndata: {json.dumps({'user': principal.username})}\n\n"
            sent += 1
            while max_events is None or sent < max_events:
                try:
                    change = await asyncio.wait_for(queue.get(), KEEPALIVE_S)
                except TimeoutError:
                    if await request.is_disconnected():
                        return
                    yield ": keepalive\n\n"
                    continue
                if not principal.can_see(change.site_id):
                    continue
                yield f"event: {change.kind}\ndata: {change.model_dump_json()}\n\n"
                sent += 1
        finally:
            runtime.hub.unsubscribe(queue)

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


class Health(BaseModel):
    """Liveness and the ingest connection."""

    status: str
    database: bool
    mqtt_connected: bool | None


@router.get("/healthz", response_model=Health, tags=["system"])
async def healthz(request: Request, runtime: RuntimeDep, response: Response) -> Health:
    """200 when the database answers; reports whether ingest is connected."""
    try:
        await asyncio.to_thread(runtime.store.user_count)
        database = True
    except Exception:  # any failure to answer is "not healthy", whatever the driver says
        database = False
    ingest = getattr(request.app.state, "ingest", None)
    connected = ingest.connected.is_set() if ingest is not None else None
    if not database:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return Health(status="ok" if database else "down", database=database, mqtt_connected=connected)


@router.get("/metrics", tags=["system"])
async def metrics(runtime: RuntimeDep) -> Response:
    """Prometheus text format."""
    return Response(runtime.metrics.render(), media_type="text/plain; version=0.0.4")
