"""Alerts: the one shape every ticket source is turned into before it touches a ticket.

Edge detections, sensor telemetry rules and heartbeat timeouts each become an `Alert`; the
store then opens, merges, updates or clears tickets from alerts alone. Pure.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import pairwise

from contract import DetectionEvent, EventCategory, EventPhase, Severity, TelemetryBatch
from gateway.sla import TicketCategory

SMOKE_METRIC = "smoke_obscuration"
SMOKE_ALARM_PERCENT_PER_M = 4.0
"""Obscuration at which a point-type smoke detector alarms (EN 54-7 detectors alarm between
about 0.5 and 10 %/m; 4 is a mid-range default)."""
TEMPERATURE_METRIC = "temperature"
RATE_OF_RISE_C_PER_MIN = 8.3
"""Heat detectors' classic rate-of-rise threshold (15 °F per minute)."""


@dataclass(frozen=True)
class Alert:
    """One observation that concerns a ticket.

    `event_id` is stable across a condition's start → update → end; `msg_id` is unique per
    message and is what makes a redelivery harmless. Both are the device's choice, so the
    store keys them by (site, device).
    """

    msg_id: str
    site_id: str
    device_id: str
    category: TicketCategory
    zone_id: str | None
    severity: Severity
    event_id: str
    phase: EventPhase
    seq: int
    ts: float
    snapshot_id: str | None = None
    snapshot_sha256: str | None = None  # the SnapshotRef's promise, checked against the JPEG
    snapshot_size: int | None = None
    detail: dict[str, object] = field(default_factory=dict)

    @property
    def dedup_key(self) -> str:
        """(site, device, category, zone): at most one open ticket per key."""
        return dedup_key(self.site_id, self.device_id, self.category, self.zone_id)


def dedup_key(
    site_id: str, device_id: str, category: TicketCategory, zone_id: str | None = None
) -> str:
    """The key of the one ticket that may be open for (site, device, category, zone)."""
    return f"{site_id}|{device_id}|{category.value}|{zone_id or '-'}"


_TICKET_CATEGORY = {c: TicketCategory(c.value) for c in EventCategory}
"""Each detection category's ticket category (looked up, not converted, per event)."""


def from_detection(event: DetectionEvent) -> Alert:
    """The alert an edge DetectionEvent carries."""
    return Alert(
        msg_id=event.msg_id,
        site_id=event.site_id,
        device_id=event.device_id,
        category=_TICKET_CATEGORY[event.category],
        zone_id=event.zone_id,
        severity=event.severity,
        event_id=event.event_id,
        phase=event.phase,
        seq=event.seq,
        ts=event.ts,
        snapshot_id=event.snapshot.snapshot_id if event.snapshot else None,
        snapshot_sha256=event.snapshot.sha256 if event.snapshot else None,
        snapshot_size=event.snapshot.size_bytes if event.snapshot else None,
        detail={
            "camera_id": event.camera_id,
            "track_id": event.track_id,
            "object_class": event.object_class,
            "score": event.score,
            "dwell_s": event.dwell_s,
            "started_at": event.started_at,
            "ended_at": event.ended_at,
            # Built by hand: model_dump per box was a fifth of the decode cost in ingest.
            "boxes": [{"ts": b.ts, "box": b.box, "score": b.score} for b in event.boxes],
            "model": {"name": event.model.name, "version": event.model.version},
        },
    )


def from_telemetry(batch: TelemetryBatch) -> list[Alert]:
    """Fire alarms from a sensor batch: smoke over threshold, or heat rising too fast.

    One alert per batch at most; its event id is per device so repeated alarms while a ticket
    is open merge into it.
    """
    reasons: list[str] = []
    for point in batch.points:
        if point.metric == SMOKE_METRIC and point.value >= SMOKE_ALARM_PERCENT_PER_M:
            reasons.append(f"smoke {point.value:g} %/m >= {SMOKE_ALARM_PERCENT_PER_M:g}")
            break
    temps = sorted((p.ts, p.value) for p in batch.points if p.metric == TEMPERATURE_METRIC)
    for (t0, v0), (t1, v1) in pairwise(temps):
        if t1 > t0 and (v1 - v0) / ((t1 - t0) / 60.0) >= RATE_OF_RISE_C_PER_MIN:
            reasons.append(f"temperature rising {(v1 - v0) / ((t1 - t0) / 60.0):.1f} C/min")
            break
    if not reasons:
        return []
    return [
        Alert(
            msg_id=batch.msg_id,
            site_id=batch.site_id,
            device_id=batch.device_id,
            category=TicketCategory.FIRE_ALARM,
            zone_id=None,
            severity=Severity.URGENT,
            event_id=f"fire-{batch.device_id}-{batch.msg_id}",
            phase=EventPhase.START,
            seq=0,
            ts=batch.ts,
            detail={"sensor_kind": batch.sensor_kind, "reasons": reasons},
        )
    ]


def offline_alert(site_id: str, device_id: str, last_seen: float, now: float) -> Alert:
    """A maintenance alert for a device whose heartbeats stopped."""
    return Alert(
        msg_id=f"offline-{device_id}-{last_seen:.3f}",
        site_id=site_id,
        device_id=device_id,
        category=TicketCategory.DEVICE_OFFLINE,
        zone_id=None,
        severity=Severity.NORMAL,
        event_id=f"offline-{device_id}-{last_seen:.3f}",
        phase=EventPhase.START,
        seq=0,
        ts=now,
        detail={"last_seen": last_seen},
    )


def online_alert(site_id: str, device_id: str, offline_event_id: str, now: float) -> Alert:
    """The `end` of a device-offline condition, when the device is heard again."""
    return Alert(
        msg_id=f"online-{offline_event_id}",
        site_id=site_id,
        device_id=device_id,
        category=TicketCategory.DEVICE_OFFLINE,
        zone_id=None,
        severity=Severity.NORMAL,
        event_id=offline_event_id,
        phase=EventPhase.END,
        seq=1,
        ts=now,
        detail={"back_online_at": now},
    )
