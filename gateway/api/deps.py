"""Named FastAPI dependencies: the runtime, the caller, and permission checks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from gateway.api.permissions import Permission, allowed
from gateway.auth import ALL_SITES, Principal, TokenError, read_token
from gateway.runtime import Runtime

_bearer = HTTPBearer(auto_error=False)


def get_runtime(request: Request) -> Runtime:
    """The app's runtime."""
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def get_principal(
    request: Request,
    runtime: RuntimeDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The caller from `Authorization: Bearer …` (or `?access_token=` for EventSource)."""
    token = credentials.credentials if credentials else request.query_params.get("access_token")
    if not token:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "not authenticated",
            headers={"WWW-Authenticate": "Bearer"},
        )
    try:
        return read_token(token, runtime.settings.signing_key())
    except TokenError:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "invalid or expired token",
            headers={"WWW-Authenticate": "Bearer"},
        ) from None


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def require(permission: Permission) -> Callable[[Principal], Principal]:
    """A dependency that lets only roles holding `permission` through (403 otherwise)."""

    def check(principal: PrincipalDep) -> Principal:
        if not allowed(permission, principal.role):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"role {principal.role.value!r} may not {permission.value.replace('_', ' ')}",
            )
        return principal

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
