"""Duty-roster routes: the shifts of a grid in the caller's sites.

Scope rules: the grid must be in the caller's sites (404 otherwise), and a roster entry
names an enabled user of the grid's site (422 otherwise, with the same text whether the user
is missing or works elsewhere): tickets are routed to whoever is on duty.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, status
from pydantic import BaseModel, ConfigDict, Field

from gateway.api.deps import RuntimeDep, require
from gateway.api.grids import grid_in_scope
from gateway.api.permissions import Permission
from gateway.api.scope import ensure_member
from gateway.auth import Principal
from gateway.models import ShiftPublic
from gateway.store import ConflictError

router = APIRouter(prefix="/api/grids", tags=["grids"])


class ShiftCreate(BaseModel):
    """A roster entry to add."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    username: str = Field(max_length=64)
    starts_at: float
    ends_at: float


@router.get("/{grid_id}/shifts", response_model=list[ShiftPublic])
async def list_shifts(
    grid_id: str,
    runtime: RuntimeDep,
    principal: Annotated[Principal, Depends(require(Permission.READ_GRIDS))],
) -> list[ShiftPublic]:
    """The grid's duty roster."""
    await grid_in_scope(runtime, principal, grid_id)
    return await asyncio.to_thread(runtime.store.grids.list_shifts, grid_id)


@router.post("/{grid_id}/shifts", response_model=ShiftPublic, status_code=201)
async def add_shift(
    grid_id: str,
    body: ShiftCreate,
    runtime: RuntimeDep,
    principal: Annotated[Principal, Depends(require(Permission.WRITE_GRIDS))],
) -> ShiftPublic:
    """Put a worker of the grid's site on duty for a grid."""
    grid = await grid_in_scope(runtime, principal, grid_id)
    await ensure_member(runtime, body.username, grid.site_id, "username")
    shift = ShiftPublic(grid_id=grid_id, **body.model_dump())
    try:
        return await asyncio.to_thread(runtime.store.grids.add_shift, shift)
    except ConflictError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
