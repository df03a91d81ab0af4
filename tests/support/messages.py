"""Builders of valid contract messages, for tests and benchmarks alike (contract only)."""

from __future__ import annotations

import uuid

import contract as c

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
