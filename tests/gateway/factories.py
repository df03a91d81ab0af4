"""Builders for contract messages used across the gateway tests."""

from __future__ import annotations

import hashlib
from typing import Literal

import contract as c
from gateway.models import GridPublic
from gateway.store import Store

# Contract-only builders live in tests.support (benchmarks use them too); re-exported here.
from tests.support.messages import T0, event, heartbeat

__all__ = [
    "T0",
    "event",
    "heartbeat",
    "jpeg",
    "pair",
    "seed_site",
    "snapshot_ref",
    "status",
    "topic_of",
]


def topic_of(message: c.Message) -> str:
    """The topic a device publishes `message` on."""
    if isinstance(message, c.DetectionEvent):
        return str(c.event_topic(message.site_id, message.device_id))
    if isinstance(message, c.Heartbeat):
        return str(c.heartbeat_topic(message.site_id, message.device_id))
    if isinstance(message, c.Status):
        return str(c.status_topic(message.site_id, message.device_id))
    if isinstance(message, c.TelemetryBatch):
        return str(c.telemetry_topic(message.site_id, message.device_id))
    if isinstance(message, c.CommandResult):
        return str(c.command_result_topic(message.site_id, message.device_id))
    raise TypeError(type(message))


def seed_site(store: Store, site_id: str, devices: tuple[str, ...] = ("cam-a",)) -> None:
    """One grid `g-<site>` (supervisor `sup-1`) owning zone-a, and the given devices in it."""
    store.upsert_grid(
        GridPublic(
            grid_id=f"g-{site_id}",
            site_id=site_id,
            name="Grid 1",
            supervisor="sup-1",
            zones=["zone-a"],
        )
    )
    for device_id in devices:
        store.upsert_device(device_id, site_id, "camera", grid_id=f"g-{site_id}", now=T0)


def status(
    site_id: str, device_id: str, state: Literal["online", "offline"], ts: float = T0
) -> c.Status:
    """A retained availability message (the LWT is one with state offline)."""
    return c.Status(ts=ts, site_id=site_id, device_id=device_id, state=state)


def jpeg(tag: bytes = b"", size: int = 100) -> bytes:
    """Bytes that pass the contract's snapshot check (JPEG SOI marker), `size` long."""
    body = b"\xff\xd8\xff\xe0" + tag
    return body + b"\x00" * max(0, size - len(body))


def snapshot_ref(snapshot_id: str, data: bytes) -> c.SnapshotRef:
    """The SnapshotRef an event carries for `data`."""
    return c.SnapshotRef(
        snapshot_id=snapshot_id,
        sha256=hashlib.sha256(data).hexdigest(),
        size_bytes=len(data),
        width=4,
        height=4,
    )


def pair(message: c.Message) -> tuple[str, bytes]:
    """(topic, payload) as the device would publish `message`."""
    return topic_of(message), c.encode(message)
