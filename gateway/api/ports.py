"""Switching a charging port on again: a person's action, audited.

The gateway cuts a dangerous port's relay by itself (`gateway.telemetry.cutoff`); only a
person switches it back on. `POST /api/devices/{device_id}/ports/{port}/enable`
``{"reason": "…"}`` needs `command_devices` and the device in the caller's sites (404
otherwise). It is refused (409) while any condition of that port is open and not cleared
(the port is still hot or over current: the database says so, whichever replica saw it),
and (422) for a device without a relay on that port. Otherwise it writes the command audit
row (``relay`` ``{"port": n, "state": "on", "reason": …}``, issued by
``operator:<username>``, as `POST …/commands` does) and an audit line on the port's open
tickets, and then publishes the switch-on: ESPHome ``switch/port<n>_relay/command`` ``ON``,
or a contract ``Command`` ``relay`` to our own nodes. A broker that is not reachable answers
503 and the audit row says ``unavailable``.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Request, status
from pydantic import BaseModel, ConfigDict, Field

from contract import Command, command_topic, encode
from gateway.api.commands import ISSUER_PREFIX, publish_recorded
from gateway.api.deps import RuntimeDep, require
from gateway.api.devices import device_in_scope
from gateway.api.permissions import Permission
from gateway.auth import Principal
from gateway.models import CommandPublic
from gateway.store.commands import PENDING
from gateway.telemetry.esphome import relay_command_topic
from gateway.telemetry.pipeline import RELAY_COMMAND

router = APIRouter(prefix="/api/devices", tags=["telemetry"])

COMMAND_TTL_S = 60.0
"""How long the node may still act on the switch-on (our own nodes refuse it later)."""


class PortEnable(BaseModel):
    """Why the port may be powered again (kept on the audit)."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=500)


@router.post("/{device_id}/ports/{port}/enable", response_model=CommandPublic, status_code=202)
async def enable_port(
    device_id: str,
    port: Annotated[int, Path(ge=1, le=32)],
    body: PortEnable,
    *,
    request: Request,
    runtime: RuntimeDep,
    principal: Annotated[Principal, Depends(require(Permission.COMMAND_DEVICES))],
) -> CommandPublic:
    """Switch a cut charging port on again (audited); 202 once the broker has it."""
    device = await device_in_scope(runtime, principal, device_id)
    telemetry = runtime.telemetry
    node = None if telemetry is None else await asyncio.to_thread(telemetry.node, device_id)
    if telemetry is None or node is None or node.profile.relay is None:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, f"device_id: {device_id!r} has no relay ports"
        )
    if port > node.profile.ports:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"port: {device_id!r} has ports 1-{node.profile.ports}",
        )
    open_now = await asyncio.to_thread(runtime.store.sensors.open_port_hazards, device_id, port)
    if open_now:
        ticket_id, condition = open_now[0]
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"port {port}: {condition} is still active (ticket {ticket_id}); it must clear "
            "before the port is switched on",
        )
    now = time.time()
    record = CommandPublic(
        command_id=uuid.uuid4().hex,
        site_id=device.site_id,
        device_id=device.device_id,
        name=RELAY_COMMAND,
        args={"port": port, "state": "on", "reason": body.reason},
        issued_by=f"{ISSUER_PREFIX}{principal.username}",
        issued_at=now,
        expires_at=now + COMMAND_TTL_S,
        state=PENDING,
    )
    if node.esphome:
        topic = relay_command_topic(device.site_id, device.device_id, f"port{port}_relay")
        payload = b"ON"
    else:
        command = Command(
            ts=now,
            site_id=device.site_id,
            device_id=device.device_id,
            command_id=record.command_id,
            name=RELAY_COMMAND,
            args={"port": port, "state": "on"},
            issued_by=record.issued_by,
            expires_at=record.expires_at,
        )
        topic, payload = (
            str(command_topic(device.site_id, device.device_id, RELAY_COMMAND)),
            encode(command),
        )
    await asyncio.to_thread(runtime.store.commands.record_command, record)
    await asyncio.to_thread(
        runtime.store.sensors.note_port_enabled,
        device.device_id,
        port,
        principal.username,
        body.reason,
        now,
    )
    sent = await publish_recorded(request, runtime, record, topic, payload, "port not switched on")
    await asyncio.to_thread(telemetry.port_enabled, device.device_id, port)
    return sent
