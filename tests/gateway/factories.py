"""Builders for contract messages used across the gateway tests."""

from __future__ import annotations

import hashlib
import uuid
from typing import Literal

import contract as c
from gateway.models import GridPublic
from gateway.store import Store

T0 = 1_795_300_000.0


def event(
    site_id: str,
    device_id: str,
    event_id: str,
    *,
    phase: c.EventPhase = c.EventPhase.START,
    seq: int = 0,
    category: c.EventCategory = c.EventCategory.ILLEGAL_PARKING,
    zone_id: str = "zone-a",
    severity: c.Severity = c.Severity.NORMAL,
    ts: float = T0,
    snapshot: c.SnapshotRef | None = None,
    msg_id: str | None = None,
) -> c.DetectionEvent:
    """A valid DetectionEvent."""
    return c.DetectionEvent(
        msg_id=msg_id or uuid.uuid4().hex,
        ts=ts,
        site_id=site_id,
        device_id=device_id,
        event_id=event_id,
        phase=phase,
        seq=seq,
        category=category,
        severity=severity,
        camera_id="cam-1",
        zone_id=zone_id,
        track_id=7,
        object_class="car",
        object_category=c.ObjectCategory.VEHICLE,
        score=0.9,
        boxes=[c.BoxEvidence(ts=ts, box=(0.1, 0.2, 0.3, 0.4), score=0.9)],
        dwell_s=120.0,
        started_at=ts - 120,
        ended_at=ts if phase is c.EventPhase.END else None,
        model=c.ModelRef(name="yolox_nano", version="0.1"),
        snapshot=snapshot,
    )


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


def heartbeat(
    site_id: str, device_id: str, ts: float = T0, interval_s: float = 30.0
) -> c.Heartbeat:
    """A minimal valid heartbeat."""
    return c.Heartbeat(
        ts=ts,
        site_id=site_id,
        device_id=device_id,
        interval_s=interval_s,
        uptime_s=10.0,
        software_version="0.1.0",
    )


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
