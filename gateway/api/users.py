"""User routes: console users sharing a site with the caller, and creating users.

Scope rules: the list shows users sharing a site with the caller (admins: all). A new user
gets no higher role than its creator (every permission of the new role must be one the
creator holds: 403) and no site its creator lacks (403); only admins have `*`, and admins
have exactly `*` (422).
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, status

from gateway.api.deps import RuntimeDep, require
from gateway.api.permissions import Permission
from gateway.api.scope import ensure_may_grant
from gateway.auth import ALL_SITES, Principal, hash_password
from gateway.models import UserCreate, UserPublic
from gateway.store import ConflictError

router = APIRouter(prefix="/api/users", tags=["users"])


@router.get("", response_model=list[UserPublic])
async def list_users(
    runtime: RuntimeDep,
    principal: Annotated[Principal, Depends(require(Permission.READ_USERS))],
) -> list[UserPublic]:
    """Console users sharing a site with the caller (all of them for admins); a non-admin
    sees only the sites it shares with each user, not the others they work at."""
    everyone = await asyncio.to_thread(runtime.store.users.list_users)
    if ALL_SITES in principal.sites:
        return everyone
    return [
        u.model_copy(update={"sites": [s for s in u.sites if s in principal.sites]})
        for u in everyone
        if set(u.sites) & principal.sites
    ]


@router.post("", response_model=UserPublic, status_code=201)
async def create_user(
    body: UserCreate,
    runtime: RuntimeDep,
    principal: Annotated[Principal, Depends(require(Permission.WRITE_USERS))],
) -> UserPublic:
    """Create a console user with at most the caller's role and sites."""
    ensure_may_grant(principal, body.role, body.sites)
    password_hash = await asyncio.to_thread(hash_password, body.password)
    try:
        return await asyncio.to_thread(
            runtime.store.users.create_user,
            body.username,
            password_hash,
            body.role,
            body.sites,
            body.display_name,
        )
    except ConflictError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
