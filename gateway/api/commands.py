"""Commands to devices: the one authorised, audited way a person actuates a node.

`POST /api/devices/{device_id}/commands` needs `command_devices` (see the permission table)
and the device in the caller's sites. The gateway makes the command id, sets `issued_by` to
``operator:<the caller's username>`` (never from the body; ``operator:`` is the prefix edge
nodes accept by default, `commands.allowed_issuers`), validates the message against the
contract, writes the audit row, and only then publishes it (QoS 1) on the ingest's MQTT
connection. A broker that is not reachable answers 503 and the audit row says
``unavailable``.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, status
from pydantic import ValidationError

from contract import MAX_MESSAGE_BYTES, Command, command_topic, encode
from gateway.api.deps import RuntimeDep, require
from gateway.api.devices import device_in_scope
from gateway.api.params import Limit, Offset
from gateway.api.permissions import Permission
from gateway.auth import Principal
from gateway.models import CommandCreate, CommandPublic
from gateway.mqtt import MqttIngest, PublishUnavailableError
from gateway.runtime import Runtime
from gateway.store.commands import PENDING, SENT, UNAVAILABLE

router = APIRouter(prefix="/api/devices", tags=["commands"])

ISSUER_PREFIX = "operator:"
"""`issued_by` is this plus the caller's username: a person, through the gateway."""


def _build(record: CommandPublic) -> bytes:
    """The contract message of `record`, encoded; 422 if the contract refuses it."""
    try:
        command = Command(
            ts=record.issued_at,
            site_id=record.site_id,
            device_id=record.device_id,
            command_id=record.command_id,
            name=record.name,
            args=record.args,
            issued_by=record.issued_by,
            expires_at=record.expires_at,
        )
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "(command)"
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, f"{where}: {first['msg']}"
        ) from None
    payload = encode(command)
    if len(payload) > MAX_MESSAGE_BYTES:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"args: the command is {len(payload)} bytes; at most {MAX_MESSAGE_BYTES}",
        )
    return payload


@router.post("/{device_id}/commands", response_model=CommandPublic, status_code=202)
async def send_command(
    device_id: str,
    body: CommandCreate,
    request: Request,
    runtime: RuntimeDep,
    principal: Annotated[Principal, Depends(require(Permission.COMMAND_DEVICES))],
) -> CommandPublic:
    """Send a command to a device (audited); 202 once the broker has it (the device answers
    on `cmd_result`), 503 when the broker is not reachable."""
    device = await device_in_scope(runtime, principal, device_id)
    now = time.time()
    record = CommandPublic(
        command_id=uuid.uuid4().hex,
        site_id=device.site_id,
        device_id=device.device_id,
        name=body.name,
        args=body.args,
        issued_by=f"{ISSUER_PREFIX}{principal.username}",
        issued_at=now,
        expires_at=now + body.expires_in_s,
        state=PENDING,
    )
    payload = _build(record)
    topic = str(command_topic(record.site_id, record.device_id, record.name))
    await asyncio.to_thread(runtime.store.commands.record_command, record)
    return await publish_recorded(request, runtime, record, topic, payload, "command not sent")


async def publish_recorded(  # noqa: PLR0917 - the recorded command and where it goes
    request: Request,
    runtime: Runtime,
    record: CommandPublic,
    topic: str,
    payload: bytes,
    refusal: str,
) -> CommandPublic:
    """Publish a command already in the audit and record the outcome there: `sent`, or
    `unavailable` and a 503 starting with `refusal` when the broker cannot take it."""
    ingest: MqttIngest | None = getattr(request.app.state, "ingest", None)
    try:
        if ingest is None:
            raise PublishUnavailableError("MQTT is not enabled on this gateway")
        await ingest.publish(topic, payload, qos=1)
    except PublishUnavailableError as exc:
        await asyncio.to_thread(
            runtime.store.commands.finish_command, record.command_id, UNAVAILABLE
        )
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, f"{refusal}: {exc}") from None
    await asyncio.to_thread(runtime.store.commands.finish_command, record.command_id, SENT)
    return record.model_copy(update={"state": SENT})


@router.get("/{device_id}/commands", response_model=list[CommandPublic])
async def list_commands(
    device_id: str,
    runtime: RuntimeDep,
    principal: Annotated[Principal, Depends(require(Permission.READ_DEVICES))],
    offset: Offset = 0,
    limit: Limit = 100,
) -> list[CommandPublic]:
    """The commands sent to a device, newest first: who, what, when, and its answer."""
    device = await device_in_scope(runtime, principal, device_id)
    return await asyncio.to_thread(
        runtime.store.commands.list_commands,
        device.site_id,
        device.device_id,
        offset=offset,
        limit=limit,
    )
