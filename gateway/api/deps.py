"""Named FastAPI dependencies: the runtime, the caller, and permission checks."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, HTTPException, Query, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from gateway.api.permissions import Permission, allowed
from gateway.api.proxies import client_address, networks
from gateway.auth import (
    ALL_SITES,
    API_AUDIENCE,
    STREAM_AUDIENCE,
    Principal,
    TokenError,
    read_token,
)
from gateway.runtime import Runtime

_bearer = HTTPBearer(auto_error=False)
_UNAUTHENTICATED = {"WWW-Authenticate": "Bearer"}


def get_runtime(request: Request) -> Runtime:
    """The app's runtime."""
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def get_client_address(request: Request, runtime: RuntimeDep) -> str:
    """The client's address (X-Forwarded-For only from a configured proxy)."""
    peer = request.client.host if request.client else None
    trusted = networks(tuple(runtime.settings.trusted_proxies))
    return client_address(peer, request.headers.getlist("x-forwarded-for"), trusted)


ClientAddressDep = Annotated[str, Depends(get_client_address)]


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail, headers=_UNAUTHENTICATED)


async def _principal_of(runtime: Runtime, token: str, audience: str) -> Principal:
    """The user a token names, as the database has them now: a disabled or deleted user is
    refused and a changed role or site list applies at once (a token carries no role).
    No cache: one primary-key read per request is cheaper than reasoning about staleness."""
    try:
        username = read_token(token, runtime.settings.signing_key(), audience)
    except TokenError:
        raise _unauthorized("invalid or expired token") from None
    found = await asyncio.to_thread(runtime.store.users.user_credentials, username)
    if found is None or found[0].disabled:
        raise _unauthorized("user is disabled or gone")
    user = found[0]
    return Principal(user.username, user.role, frozenset(user.sites))


async def get_principal(
    runtime: RuntimeDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The caller from `Authorization: Bearer <API token>`, and only from there: a token in
    a URL ends up in access logs, proxies' logs and browser history."""
    if credentials is None:
        raise _unauthorized("not authenticated")
    return await _principal_of(runtime, credentials.credentials, API_AUDIENCE)


PrincipalDep = Annotated[Principal, Depends(get_principal)]


async def get_stream_principal(
    runtime: RuntimeDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    stream_ticket: Annotated[
        str | None,
        Query(description="A stream ticket from POST /api/stream-ticket (for EventSource)."),
    ] = None,
) -> Principal:
    """The stream's caller: a Bearer API token, or else `?stream_ticket=`, a ticket valid
    for a minute that opens this stream only (EventSource cannot send headers)."""
    if credentials is not None:
        return await _principal_of(runtime, credentials.credentials, API_AUDIENCE)
    if stream_ticket:
        return await _principal_of(runtime, stream_ticket, STREAM_AUDIENCE)
    raise _unauthorized("not authenticated")


StreamPrincipalDep = Annotated[Principal, Depends(get_stream_principal)]


def _check_role(permission: Permission, principal: Principal) -> Principal:
    if not allowed(permission, principal.role):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"role {principal.role.value!r} may not {permission.value.replace('_', ' ')}",
        )
    return principal


def require(permission: Permission, *, stream: bool = False) -> Callable[[Principal], Principal]:
    """A dependency that lets only roles holding `permission` through (403 otherwise);
    `stream=True` also accepts a stream ticket (the SSE route only)."""
    # Two module-level annotations, not one built here: FastAPI resolves postponed
    # annotations in the module's globals, where a closure variable is not visible.
    if stream:

        def check_stream(principal: StreamPrincipalDep) -> Principal:
            return _check_role(permission, principal)

        check = check_stream
    else:

        def check_api(principal: PrincipalDep) -> Principal:
            return _check_role(permission, principal)

        check = check_api
    check.permission = permission  # type: ignore[attr-defined]
    return check


def site_scope(principal: Principal) -> list[str] | None:
    """Sites the caller may see, or None for all."""
    if ALL_SITES in principal.sites:
        return None
    return sorted(principal.sites)


def ensure_site(principal: Principal, site_id: str) -> None:
    """404 (not 403: do not reveal other sites' objects) outside the caller's scope."""
    if not principal.can_see(site_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "not found")
