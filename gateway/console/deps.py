"""The console's caller (from the session cookie), its permission checks and CSRF check.

The same `Permission` table as the API: `page(p)` is the console's `require(p)`. A caller
without a valid session is sent to the login page (`LoginRequired`, answered 303); a role
without the permission gets 403, as from the API.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status

from gateway.api.deps import RuntimeDep
from gateway.api.permissions import Permission, allowed
from gateway.auth import CONSOLE_AUDIENCE, Principal, TokenError, read_token
from gateway.console.session import CSRF_COOKIE, CSRF_FIELD, SESSION_COOKIE, csrf_ok


class LoginRequiredError(Exception):
    """No valid console session: the handler answers 303 to the login page."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


def safe_next(value: str | None, default: str = "/console") -> str:
    """A redirect target from a form or query: console paths and the residents' pages
    (`/r/…`) only (no other site, no scheme-relative `//host`), else `default`."""
    if not value or not value.startswith(("/console", "/r/")) or value.startswith("//"):
        return default
    if any(c in value for c in "\\\r\n"):
        return default
    return value


async def get_console_principal(request: Request, runtime: RuntimeDep) -> Principal:
    """The signed-in user as the database has them now (role, sites, enabled)."""
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        raise LoginRequiredError(here)
    try:
        username = read_token(token, runtime.settings.signing_key(), CONSOLE_AUDIENCE)
    except TokenError:
        raise LoginRequiredError(here) from None
    found = await asyncio.to_thread(runtime.store.users.user_credentials, username)
    if found is None or found[0].disabled:
        raise LoginRequiredError(here)
    user = found[0]
    principal = Principal(user.username, user.role, frozenset(user.sites))
    request.state.console_principal = principal
    return principal


ConsolePrincipalDep = Annotated[Principal, Depends(get_console_principal)]


def _forbid(permission: Permission, principal: Principal) -> None:
    if not allowed(permission, principal.role):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"role {principal.role.value!r} may not {permission.value.replace('_', ' ')}",
        )


def page(permission: Permission) -> Callable[[Principal], Principal]:
    """A dependency: the caller, if their role holds `permission` (403 otherwise)."""

    def check_page(principal: ConsolePrincipalDep) -> Principal:
        _forbid(permission, principal)
        return principal

    check_page.permission = permission  # type: ignore[attr-defined]
    return check_page


async def check_csrf(request: Request) -> None:
    """403 unless the form's CSRF field matches the CSRF cookie (`gateway.console.session`)."""
    form = await request.form()
    field = form.get(CSRF_FIELD)
    key = request.app.state.runtime.settings.signing_key()
    if not csrf_ok(
        key, request.cookies.get(CSRF_COOKIE), field if isinstance(field, str) else None
    ):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "csrf")


def form_action(permission: Permission) -> Callable[..., Awaitable[Principal]]:
    """A dependency for a form POST: signed in (else 303 to login), role holds `permission`
    (else 403), then the CSRF check (else 403) — before the route does anything."""

    async def check_form(request: Request, principal: ConsolePrincipalDep) -> Principal:
        _forbid(permission, principal)
        await check_csrf(request)
        return principal

    check_form.permission = permission  # type: ignore[attr-defined]
    return check_form
