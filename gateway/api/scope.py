"""Site scope checks shared by the route modules, with one answer per kind of refusal.

- 404 `not_found`: the object the URL names does not exist *or* lies outside the caller's
  sites; both answer the same text, so a caller cannot tell the two apart.
- 422 `ensure_member`: a user named in a body (assignee, roster entry, grid supervisor) does
  not exist, is disabled, or is not a user of the site; again one text for all three.
- 403 `ensure_may_grant`: a new user would get a higher role or more sites than its creator.

Each resource's own rules live in its route module; these are the pieces they share.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol, TypeVar

from fastapi import HTTPException, status

from gateway.api.permissions import may_grant
from gateway.auth import ALL_SITES, Principal, Role
from gateway.models import UserPublic
from gateway.runtime import Runtime
from gateway.store import NotFoundError


def not_found(kind: str, object_id: str | int) -> HTTPException:
    """The one 404 for an object that is missing or outside the caller's sites."""
    return HTTPException(status.HTTP_404_NOT_FOUND, f"{kind} {object_id!r} not found")


def ensure_visible(principal: Principal, site_id: str, kind: str, object_id: str | int) -> None:
    """404 (`not_found`) unless the caller's sites include `site_id`."""
    if not principal.can_see(site_id):
        raise not_found(kind, object_id)


class _OfSite(Protocol):
    @property
    def site_id(self) -> str: ...


_Object = TypeVar("_Object", bound=_OfSite)


async def load_visible(
    principal: Principal, kind: str, object_id: str | int, load: Callable[[], _Object]
) -> _Object:
    """What `load` returns (run in a worker thread), or the one 404 (`not_found`) when it
    raises `NotFoundError` or the object lies outside the caller's sites."""
    try:
        found = await asyncio.to_thread(load)
    except NotFoundError:
        raise not_found(kind, object_id) from None
    ensure_visible(principal, found.site_id, kind, object_id)
    return found


def ensure_site_in_scope(principal: Principal, site_id: str) -> None:
    """404 when a body names a site outside the caller's sites (as if it did not exist)."""
    if not principal.can_see(site_id):
        raise not_found("site", site_id)


def is_member(user: UserPublic | None, site_id: str) -> bool:
    """Whether `user` exists, is enabled and works at `site_id` (admins: every site)."""
    if user is None or user.disabled:
        return False
    return site_id in user.sites or ALL_SITES in user.sites


async def ensure_member(runtime: Runtime, username: str, site_id: str, field: str) -> None:
    """422 unless `username` is an enabled user of `site_id`."""
    user = await asyncio.to_thread(runtime.store.users.user, username)
    if not is_member(user, site_id):
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"{field}: {username!r} is not a user of site {site_id!r}",
        )


def ensure_may_grant(principal: Principal, role: Role, sites: list[str]) -> None:
    """403 unless the caller holds every permission of `role` and every site in `sites`."""
    if not may_grant(principal.role, role):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"a {principal.role.value} may not create a {role.value}",
        )
    if ALL_SITES not in principal.sites and not set(sites) <= principal.sites:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, "a new user may only get sites its creator has"
        )
