"""Rollouts: start one for a site (or a group of its devices), watch it, pause, resume, cancel.

Scope: a rollout belongs to one site; the caller must have that site (404 otherwise, as for
every object of another site). Starting one needs the artifact in the registry, every
device of a group registered at the site (422 naming the others), and `models.public_url`.
Planning runs in the gateway's periodic step (`gateway.rollouts.service`); the first wave is
sent at once.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, status

from gateway.api.deps import RuntimeDep, ensure_site, require, site_scope
from gateway.api.params import Limit, Offset
from gateway.api.permissions import Permission
from gateway.auth import Principal
from gateway.mqtt import MqttIngest
from gateway.rollouts.plan import RolloutState, plan_waves
from gateway.rollouts.records import RolloutCreate, RolloutPublic
from gateway.rollouts.service import RolloutService, send_all
from gateway.runtime import Runtime
from gateway.store import ConflictError, NotFoundError

router = APIRouter(prefix="/api/rollouts", tags=["rollouts"])


def service_of(runtime: Runtime) -> RolloutService:
    """The rollout service of this process."""
    return RolloutService(runtime.store, runtime.settings.models, runtime.settings.signing_key())


def _publisher(request: Request) -> Callable[[str, bytes], Awaitable[None]] | None:
    ingest: MqttIngest | None = getattr(request.app.state, "ingest", None)
    return None if ingest is None else ingest.publish


async def _visible(runtime: Runtime, principal: Principal, rollout_id: str) -> RolloutPublic:
    try:
        rollout = await asyncio.to_thread(runtime.store.rollouts.get_rollout, rollout_id)
    except NotFoundError:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "not found") from None
    ensure_site(principal, rollout.site_id)
    return rollout


@router.post("", response_model=RolloutPublic, status_code=201)
async def start_rollout(
    body: RolloutCreate,
    request: Request,
    runtime: RuntimeDep,
    principal: Annotated[Principal, Depends(require(Permission.ROLL_OUT_MODELS))],
) -> RolloutPublic:
    """Start a rollout; the canary wave is commanded before this answers."""
    ensure_site(principal, body.site_id)
    store = runtime.store
    if runtime.settings.models.public_url is None:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            "models.public_url: not set; nodes could not download the artifact",
        )
    try:
        await asyncio.to_thread(store.rollouts.get_artifact, body.artifact_sha256)
    except NotFoundError:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"artifact_sha256: {body.artifact_sha256} is not in the registry",
        ) from None
    if body.device_ids is not None:
        found = await asyncio.to_thread(
            store.rollouts.devices_at_site, body.site_id, body.device_ids
        )
        unknown = sorted(set(body.device_ids) - found)
        if unknown:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT,
                f"device_ids: not devices of site {body.site_id}: {unknown[:10]}",
            )
        targets = list(body.device_ids)
    else:
        targets = await asyncio.to_thread(store.rollouts.devices_of_site, body.site_id, body.kind)
    if not targets:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"site_id: site {body.site_id} has no {body.kind} devices",
        )
    rollout_id = uuid.uuid4().hex
    now = time.time()
    await asyncio.to_thread(
        store.rollouts.create_rollout,
        rollout_id,
        body.site_id,
        body.artifact_sha256,
        body.policy,
        plan_waves(targets, body.policy),
        principal.username,
        now,
    )
    service = service_of(runtime)
    outgoing = await asyncio.to_thread(service.step, rollout_id, now)
    await send_all(store, outgoing, _publisher(request))
    return await asyncio.to_thread(store.rollouts.get_rollout, rollout_id)


@router.get("", response_model=list[RolloutPublic])
async def list_rollouts(
    runtime: RuntimeDep,
    principal: Annotated[Principal, Depends(require(Permission.READ_DEVICES))],
    offset: Offset = 0,
    limit: Limit = 100,
) -> list[RolloutPublic]:
    """Rollouts of the caller's sites, newest first, with device counts per state."""
    return await asyncio.to_thread(
        runtime.store.rollouts.list_rollouts, site_scope(principal), offset=offset, limit=limit
    )


@router.get("/{rollout_id}", response_model=RolloutPublic)
async def get_rollout(
    rollout_id: str,
    runtime: RuntimeDep,
    principal: Annotated[Principal, Depends(require(Permission.READ_DEVICES))],
) -> RolloutPublic:
    """A rollout with every device's state and reason."""
    return await _visible(runtime, principal, rollout_id)


async def _managed(
    rollout_id: str,
    runtime: RuntimeDep,
    principal: Annotated[Principal, Depends(require(Permission.ROLL_OUT_MODELS))],
) -> RolloutPublic:
    return await _visible(runtime, principal, rollout_id)


ManagedRollout = Annotated[RolloutPublic, Depends(_managed)]
"""The rollout of the path, for a caller who may roll out models at its site (404 otherwise)."""


async def _move(
    runtime: Runtime, rollout: RolloutPublic, allowed: tuple[RolloutState, ...], to: RolloutState
) -> RolloutPublic:
    moved = await asyncio.to_thread(
        runtime.store.rollouts.set_rollout_state, rollout.rollout_id, allowed, to, time.time()
    )
    if not moved:
        raise HTTPException(
            status.HTTP_409_CONFLICT, f"rollout is {rollout.state.value}; cannot {to.value}"
        )
    return await asyncio.to_thread(runtime.store.rollouts.get_rollout, rollout.rollout_id)


@router.post("/{rollout_id}/pause", response_model=RolloutPublic)
async def pause_rollout(rollout: ManagedRollout, runtime: RuntimeDep) -> RolloutPublic:
    """Send no further commands; devices already on their way go on and report."""
    return await _move(runtime, rollout, (RolloutState.RUNNING,), RolloutState.PAUSED)


@router.post("/{rollout_id}/resume", response_model=RolloutPublic)
async def resume_rollout(rollout: ManagedRollout, runtime: RuntimeDep) -> RolloutPublic:
    """Continue a paused rollout where it stopped."""
    return await _move(runtime, rollout, (RolloutState.PAUSED,), RolloutState.RUNNING)


@router.post("/{rollout_id}/cancel", response_model=RolloutPublic)
async def cancel_rollout(
    rollout: ManagedRollout, request: Request, runtime: RuntimeDep
) -> RolloutPublic:
    """End the rollout now (running, paused): unsent devices are cancelled, devices on their
    way are told to stop; 409 once it has ended."""
    try:
        outgoing = await asyncio.to_thread(
            service_of(runtime).cancel, rollout.rollout_id, time.time()
        )
    except ConflictError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    await send_all(runtime.store, outgoing, _publisher(request))
    return await asyncio.to_thread(runtime.store.rollouts.get_rollout, rollout.rollout_id)
