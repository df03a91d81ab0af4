"""Builders for contract messages used across the gateway tests."""

from __future__ import annotations

import hashlib
from typing import Literal

import contract as c

# Contract-only builders live in tests.support (benchmarks use them too); re-exported here.
from tests.support.messages import T0, event, heartbeat
from tests.support.seed import seed_site

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
