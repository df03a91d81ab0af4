"""Grid routes: micro-grids with their zones and supervisor, in the caller's sites.

Scope rules: the list shows the caller's sites only. `PUT /api/grids/{id}` creates or
replaces a grid of the caller's sites (a body site outside them is 404); an id taken by a
grid outside them is 409 "taken", and a grid never changes site (409). Its supervisor must be
an enabled user of the grid's site (422): tickets fall back to the supervisor.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, status

from gateway.api.deps import RuntimeDep, require, site_scope
from gateway.api.permissions import Permission
from gateway.api.scope import ensure_member, ensure_site_in_scope, load_visible
from gateway.auth import Principal
from gateway.models import GridPublic
from gateway.runtime import Runtime
from gateway.store import ConflictError

router = APIRouter(prefix="/api/grids", tags=["grids"])


async def grid_in_scope(runtime: Runtime, principal: Principal, grid_id: str) -> GridPublic:
    """The grid, or 404 when it is missing or outside the caller's sites."""
    return await load_visible(
        principal, "grid", grid_id, lambda: runtime.store.grids.get_grid(grid_id)
    )


@router.get("", response_model=list[GridPublic])
async def list_grids(
    runtime: RuntimeDep,
    principal: Annotated[Principal, Depends(require(Permission.READ_GRIDS))],
) -> list[GridPublic]:
    """Micro-grids with their zones."""
    return await asyncio.to_thread(runtime.store.grids.list_grids, site_scope(principal))


@router.put("/{grid_id}", response_model=GridPublic)
async def put_grid(
    grid_id: str,
    body: GridPublic,
    runtime: RuntimeDep,
    principal: Annotated[Principal, Depends(require(Permission.WRITE_GRIDS))],
) -> GridPublic:
    """Create or replace a grid, its supervisor and zones."""
    if body.grid_id != grid_id:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "grid_id must match the URL")
    ensure_site_in_scope(principal, body.site_id)
    if body.supervisor is not None:
        await ensure_member(runtime, body.supervisor, body.site_id, "supervisor")
    try:
        await asyncio.to_thread(runtime.store.grids.upsert_grid, body, site_scope(principal))
    except ConflictError as exc:  # taken outside the caller's sites, or a change of site
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    return await asyncio.to_thread(runtime.store.grids.get_grid, grid_id)
