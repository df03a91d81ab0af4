"""Device routes: the registry in the caller's sites, and the admin-only move between sites.

Scope rules:

- reads list and show devices of the caller's sites only (404 for any other);
- `POST /api/devices` registers or updates a device of the caller's sites and never moves
  one: an id registered at a site outside them is 409 "taken" (nothing more is said), at
  another site of theirs 409 naming the move route; its grid must be a grid of its site (422);
- `PUT /api/devices/{id}/site` (admins) is the one way a device changes site; like every
  write it checks site scope, on both ends: the device's current site and the target site
  must both be the caller's (404 otherwise, as for any object outside them).
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, status

from gateway.api.deps import RuntimeDep, require, site_scope
from gateway.api.params import Limit, Offset
from gateway.api.permissions import Permission
from gateway.api.scope import ensure_site_in_scope, load_visible, not_found
from gateway.auth import Principal
from gateway.models import DeviceCreate, DeviceMove, DevicePublic
from gateway.runtime import Runtime
from gateway.store import ConflictError, NotFoundError
from gateway.store.scope import OutOfScopeError, SiteChangeError

router = APIRouter(prefix="/api/devices", tags=["devices"])


async def device_in_scope(runtime: Runtime, principal: Principal, device_id: str) -> DevicePublic:
    """The device, or 404 when it is missing or outside the caller's sites."""
    return await load_visible(
        principal, "device", device_id, lambda: runtime.store.devices.get(device_id)
    )


@router.get("", response_model=list[DevicePublic])
async def list_devices(
    runtime: RuntimeDep,
    principal: Annotated[Principal, Depends(require(Permission.READ_DEVICES))],
    offset: Offset = 0,
    limit: Limit = 100,
) -> list[DevicePublic]:
    """Registered devices with online state and last health."""
    return await asyncio.to_thread(
        runtime.store.devices.list_devices, site_scope(principal), offset=offset, limit=limit
    )


@router.get("/{device_id}", response_model=DevicePublic)
async def get_device(
    device_id: str,
    runtime: RuntimeDep,
    principal: Annotated[Principal, Depends(require(Permission.READ_DEVICES))],
) -> DevicePublic:
    """One device."""
    return await device_in_scope(runtime, principal, device_id)


@router.post("", response_model=DevicePublic, status_code=201)
async def register_device(
    body: DeviceCreate,
    runtime: RuntimeDep,
    principal: Annotated[Principal, Depends(require(Permission.WRITE_DEVICES))],
) -> DevicePublic:
    """Register or update a device of the caller's sites (broker credentials come from
    `guanjia device add`). Never moves a device to another site: see `PUT …/site`."""
    ensure_site_in_scope(principal, body.site_id)
    try:
        await asyncio.to_thread(runtime.store.devices.register_device, body, site_scope(principal))
    except SiteChangeError as exc:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"{exc}; only an admin moves a device, with PUT /api/devices/{body.device_id}/site",
        ) from None
    except ConflictError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    except NotFoundError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
    return await asyncio.to_thread(runtime.store.devices.get, body.device_id)


@router.put("/{device_id}/site", response_model=DevicePublic)
async def move_device(
    device_id: str,
    body: DeviceMove,
    runtime: RuntimeDep,
    principal: Annotated[Principal, Depends(require(Permission.MOVE_DEVICES))],
) -> DevicePublic:
    """Move a device to another site (admins only), into a grid and zone there or none.

    Its broker account moves too: re-render the broker's ACL (any `guanjia device add` or
    `guanjia gateway mqtt-account` rewrites it) and reconfigure the node for its new site.
    """
    await device_in_scope(runtime, principal, device_id)
    ensure_site_in_scope(principal, body.site_id)
    try:
        await asyncio.to_thread(
            runtime.store.devices.move_device,
            device_id,
            body.site_id,
            grid_id=body.grid_id,
            zone_id=body.zone_id,
            scope=site_scope(principal),
        )
    except OutOfScopeError:  # left the caller's sites since the check above
        raise not_found("device", device_id) from None
    except NotFoundError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
    return await asyncio.to_thread(runtime.store.devices.get, device_id)
