"""Devices, grids with zones, duty rosters, users, dead letters and webhooks."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, status
from pydantic import BaseModel, ConfigDict, Field, HttpUrl

from gateway.api.deps import RuntimeDep, ensure_site, require, site_scope
from gateway.api.permissions import Permission
from gateway.auth import ALL_SITES, Principal, Role, hash_password
from gateway.models import (
    DeadLetterPublic,
    DeviceCreate,
    DevicePublic,
    GridPublic,
    ShiftPublic,
    UserCreate,
    UserPublic,
)
from gateway.sla import TicketCategory
from gateway.store import ConflictError, NotFoundError

router = APIRouter(prefix="/api")


@router.get("/devices", response_model=list[DevicePublic], tags=["devices"])
async def list_devices(
    runtime: RuntimeDep,
    principal: Annotated[Principal, Depends(require(Permission.READ_DEVICES))],
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[DevicePublic]:
    """Registered devices with online state and last health."""
    return await asyncio.to_thread(
        runtime.store.list_devices, site_scope(principal), offset=offset, limit=limit
    )


@router.get("/devices/{device_id}", response_model=DevicePublic, tags=["devices"])
async def get_device(
    device_id: str,
    runtime: RuntimeDep,
    principal: Annotated[Principal, Depends(require(Permission.READ_DEVICES))],
) -> DevicePublic:
    """One device."""
    try:
        device = await asyncio.to_thread(runtime.store.get_device, device_id)
    except NotFoundError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    ensure_site(principal, device.site_id)
    return device


@router.post("/devices", response_model=DevicePublic, status_code=201, tags=["devices"])
async def register_device(
    body: DeviceCreate,
    runtime: RuntimeDep,
    principal: Annotated[Principal, Depends(require(Permission.WRITE_DEVICES))],
) -> DevicePublic:
    """Register or update a device (broker credentials come from `guanjia device add`)."""
    ensure_site(principal, body.site_id)
    try:
        await asyncio.to_thread(
            runtime.store.upsert_device,
            body.device_id,
            body.site_id,
            body.kind,
            location=body.location,
            zone_id=body.zone_id,
            grid_id=body.grid_id,
        )
    except NotFoundError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
    return await asyncio.to_thread(runtime.store.get_device, body.device_id)


@router.get("/grids", response_model=list[GridPublic], tags=["grids"])
async def list_grids(
    runtime: RuntimeDep,
    principal: Annotated[Principal, Depends(require(Permission.READ_GRIDS))],
) -> list[GridPublic]:
    """Micro-grids with their zones."""
    return await asyncio.to_thread(runtime.store.list_grids, site_scope(principal))


@router.put("/grids/{grid_id}", response_model=GridPublic, tags=["grids"])
async def put_grid(
    grid_id: str,
    body: GridPublic,
    runtime: RuntimeDep,
    principal: Annotated[Principal, Depends(require(Permission.WRITE_GRIDS))],
) -> GridPublic:
    """Create or replace a grid, its supervisor and zones."""
    if body.grid_id != grid_id:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "grid_id must match the URL")
    ensure_site(principal, body.site_id)
    await asyncio.to_thread(runtime.store.upsert_grid, body)
    return await asyncio.to_thread(runtime.store.get_grid, grid_id)


async def _grid_in_scope(runtime: RuntimeDep, principal: Principal, grid_id: str) -> None:
    try:
        grid = await asyncio.to_thread(runtime.store.get_grid, grid_id)
    except NotFoundError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    ensure_site(principal, grid.site_id)


@router.get("/grids/{grid_id}/shifts", response_model=list[ShiftPublic], tags=["grids"])
async def list_shifts(
    grid_id: str,
    runtime: RuntimeDep,
    principal: Annotated[Principal, Depends(require(Permission.READ_GRIDS))],
) -> list[ShiftPublic]:
    """The grid's duty roster."""
    await _grid_in_scope(runtime, principal, grid_id)
    return await asyncio.to_thread(runtime.store.list_shifts, grid_id)


class ShiftCreate(BaseModel):
    """A roster entry to add."""

    model_config = ConfigDict(extra="forbid")

    username: str
    starts_at: float
    ends_at: float


@router.post("/grids/{grid_id}/shifts", response_model=ShiftPublic, status_code=201, tags=["grids"])
async def add_shift(
    grid_id: str,
    body: ShiftCreate,
    runtime: RuntimeDep,
    principal: Annotated[Principal, Depends(require(Permission.WRITE_GRIDS))],
) -> ShiftPublic:
    """Put a worker on duty for a grid."""
    await _grid_in_scope(runtime, principal, grid_id)
    shift = ShiftPublic(grid_id=grid_id, **body.model_dump())
    try:
        return await asyncio.to_thread(runtime.store.add_shift, shift)
    except ConflictError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None


@router.get("/users", response_model=list[UserPublic], tags=["users"])
async def list_users(
    runtime: RuntimeDep,
    principal: Annotated[Principal, Depends(require(Permission.READ_USERS))],
) -> list[UserPublic]:
    """Console users sharing a site with the caller (all of them for admins)."""
    everyone = await asyncio.to_thread(runtime.store.list_users)
    if ALL_SITES in principal.sites:
        return everyone
    return [u for u in everyone if set(u.sites) & set(principal.sites)]


@router.post("/users", response_model=UserPublic, status_code=201, tags=["users"])
async def create_user(
    body: UserCreate,
    runtime: RuntimeDep,
    _principal: Annotated[Principal, Depends(require(Permission.WRITE_USERS))],
) -> UserPublic:
    """Create a console user (admins only)."""
    if body.role is Role.ADMIN and body.sites != [ALL_SITES]:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "admins have sites ['*']")
    password_hash = await asyncio.to_thread(hash_password, body.password)
    try:
        return await asyncio.to_thread(
            runtime.store.create_user,
            body.username,
            password_hash,
            body.role,
            body.sites,
            body.display_name,
        )
    except ConflictError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None


@router.get("/dead-letters", response_model=list[DeadLetterPublic], tags=["ingest"])
async def list_dead_letters(
    runtime: RuntimeDep,
    principal: Annotated[Principal, Depends(require(Permission.READ_DEAD_LETTERS))],
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[DeadLetterPublic]:
    """Refused messages of the caller's sites, newest first, with the reason."""
    return await asyncio.to_thread(
        runtime.store.list_dead_letters, site_scope(principal), offset=offset, limit=limit
    )


class WebhookCreate(BaseModel):
    """A chat-bot webhook for a grid and/or category."""

    model_config = ConfigDict(extra="forbid")

    url: HttpUrl
    flavour: str = Field(pattern="^(wecom|dingtalk|feishu)$")
    grid_id: str | None = None
    category: TicketCategory | None = None


class WebhookCreated(BaseModel):
    """The new webhook's id."""

    id: int


@router.post("/webhooks", response_model=WebhookCreated, status_code=201, tags=["webhooks"])
async def add_webhook(
    body: WebhookCreate,
    runtime: RuntimeDep,
    _principal: Annotated[Principal, Depends(require(Permission.WRITE_WEBHOOKS))],
) -> WebhookCreated:
    """Notify a WeCom / DingTalk / Feishu group of new tickets and escalations."""
    hook_id = await asyncio.to_thread(
        runtime.store.add_webhook,
        str(body.url),
        body.flavour,
        body.grid_id,
        body.category.value if body.category else None,
    )
    return WebhookCreated(id=hook_id)
