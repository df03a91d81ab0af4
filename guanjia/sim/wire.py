"""Planned sends as MQTT publications, on the contract's topics. Pure: `t0` (the run's wall
clock start) and `now` are arguments.

Each `Outgoing` says what the end-to-end Ack will name it by (`ack_key`): an event or a
TelemetryBatch by its msg_id, a snapshot by its snapshot id; heartbeats and ESPHome states
get none (a heartbeat is QoS 0, and a stock ESPHome node never re-sends).
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

from contract import (
    BoxEvidence,
    CameraHealth,
    DetectionEvent,
    EventPhase,
    Heartbeat,
    ModelRef,
    ObjectCategory,
    SnapshotRef,
    TelemetryBatch,
    TelemetryPoint,
    encode,
    event_topic,
    heartbeat_topic,
    new_msg_id,
    snapshot_topic,
    telemetry_topic,
)
from contract.messages import EventCategory
from gateway.telemetry.esphome import prefix as esphome_prefix
from guanjia.sim.plan import EsphomeSend, EventSend, HeartbeatSend, Planned, TelemetrySend

SOFTWARE_VERSION = "sim-1"
MODEL = ModelRef(name="sim", version="1")

# A real 16x16 baseline JPEG (grey), so a snapshot passes every check a camera's would.
SNAPSHOT_JPEG = base64.b64decode(
    "/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDABALDA4MChAODQ4SERATGCgaGBYWGDEjJR0oOjM9PDkzODdASFxOQERX"
    "RTc4UG1RV19iZ2hnPk1xeXBkeFxlZ2P/2wBDARESEhgVGC8aGi9jQjhCY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2Nj"
    "Y2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2P/wAARCAAQABADASIAAhEBAxEB/8QAHwAAAQUBAQEBAQEAAAAAAAAA"
    "AAECAwQFBgcICQoL/8QAtRAAAgEDAwIEAwUFBAQAAAF9AQIDAAQRBRIhMUEGE1FhByJxFDKBkaEII0KxwRVS0fAk"
    "M2JyggkKFhcYGRolJicoKSo0NTY3ODk6Q0RFRkdISUpTVFVWV1hZWmNkZWZnaGlqc3R1dnd4eXqDhIWGh4iJipKT"
    "lJWWl5iZmqKjpKWmp6ipqrKztLW2t7i5usLDxMXGx8jJytLT1NXW19jZ2uHi4+Tl5ufo6erx8vP09fb3+Pn6/8QA"
    "HwEAAwEBAQEBAQEBAQAAAAAAAAECAwQFBgcICQoL/8QAtREAAgECBAQDBAcFBAQAAQJ3AAECAxEEBSExBhJBUQdh"
    "cRMiMoEIFEKRobHBCSMzUvAVYnLRChYkNOEl8RcYGRomJygpKjU2Nzg5OkNERUZHSElKU1RVVldYWVpjZGVmZ2hp"
    "anN0dXZ3eHl6goOEhYaHiImKkpOUlZaXmJmaoqOkpaanqKmqsrO0tba3uLm6wsPExcbHyMnK0tPU1dbX2Nna4uPk"
    "5ebn6Onq8vP09fb3+Pn6/9oADAMBAAIRAxEAPwAooooA/9k="
)
SNAPSHOT_SIZE = (16, 16)

_OBJECTS: dict[EventCategory, tuple[str, ObjectCategory]] = {
    EventCategory.ILLEGAL_PARKING: ("car", ObjectCategory.VEHICLE),
    EventCategory.FIRE_LANE_BLOCKED: ("truck", ObjectCategory.VEHICLE),
    EventCategory.LITTER: ("bag", ObjectCategory.LITTER_CANDIDATE),
    EventCategory.EBIKE_IN_ELEVATOR: ("motorcycle", ObjectCategory.TWO_WHEELER),
}
_UNITS = {"temperature": "C", "ambient_temperature": "C", "voltage": "V", "current": "A"}


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One MQTT publication and the key its Ack names (None: not acked end to end)."""

    device_id: str
    topic: str
    payload: bytes
    qos: int
    ack_key: str | None


def _event(send: EventSend, site_id: str, t0: float, now: float) -> list[Outgoing]:
    out = []
    ref = None
    if send.snapshot_id is not None:
        ref = SnapshotRef(
            snapshot_id=send.snapshot_id,
            sha256=hashlib.sha256(SNAPSHOT_JPEG).hexdigest(),
            size_bytes=len(SNAPSHOT_JPEG),
            width=SNAPSHOT_SIZE[0],
            height=SNAPSHOT_SIZE[1],
        )
        snap = str(snapshot_topic(site_id, send.device_id, send.snapshot_id))
        out.append(Outgoing(send.device_id, snap, SNAPSHOT_JPEG, 1, send.snapshot_id))
    object_class, object_category = _OBJECTS.get(send.category, ("object", ObjectCategory.VEHICLE))
    started_at = t0 + send.started_at
    message = DetectionEvent(
        msg_id=new_msg_id(),
        ts=now,
        site_id=site_id,
        device_id=send.device_id,
        event_id=send.event_id,
        phase=send.phase,
        seq=send.seq,
        category=send.category,
        severity=send.severity,
        camera_id="cam0",
        zone_id=send.zone_id,
        track_id=send.seq if send.phase is EventPhase.START else 1,
        object_class=object_class,
        object_category=object_category,
        score=0.8,
        boxes=[BoxEvidence(ts=now, box=(0.2, 0.3, 0.5, 0.7), score=0.8)],
        dwell_s=max(0.0, now - started_at),
        started_at=started_at,
        ended_at=now if send.phase is EventPhase.END else None,
        model=MODEL,
        snapshot=ref,
    )
    topic = str(event_topic(site_id, send.device_id))
    out.append(Outgoing(send.device_id, topic, encode(message), 1, message.msg_id))
    return out


def _heartbeat(send: HeartbeatSend, site_id: str, t0: float, now: float) -> Outgoing:
    message = Heartbeat(
        ts=now,
        site_id=site_id,
        device_id=send.device_id,
        interval_s=send.interval_s,
        uptime_s=max(0.0, now - t0),
        software_version=SOFTWARE_VERSION,
        cameras=[
            CameraHealth(
                camera_id="cam0",
                online=True,
                fps=5.0,
                frames_read=int(max(0.0, now - t0) * 5),
                frames_dropped=0,
                reconnects=0,
                detector_duty=0.3,
            )
        ],
        model=MODEL,
    )
    topic = str(heartbeat_topic(site_id, send.device_id))
    return Outgoing(send.device_id, topic, encode(message), 0, None)


def _telemetry(send: TelemetrySend, site_id: str, now: float) -> Outgoing:
    message = TelemetryBatch(
        ts=now,
        site_id=site_id,
        device_id=send.device_id,
        sensor_kind=send.sensor_kind,
        points=[
            TelemetryPoint(
                metric=metric,
                value=value,
                ts=now,
                unit=_UNITS.get(metric),
                tags={} if port is None else {"port": str(port)},
            )
            for metric, value, port in send.readings
        ],
    )
    topic = str(telemetry_topic(site_id, send.device_id))
    return Outgoing(send.device_id, topic, encode(message), 1, message.msg_id)


def _esphome(send: EsphomeSend, site_id: str) -> list[Outgoing]:
    base = esphome_prefix(site_id, send.device_id)
    return [
        Outgoing(send.device_id, f"{base}/{component}/{object_id}/state", text.encode(), 1, None)
        for component, object_id, text in send.states
    ]


def to_wire(send: Planned, site_id: str, t0: float, now: float) -> list[Outgoing]:
    """The publications of one planned send, in the order they must go out (a snapshot
    before the event that references it)."""
    if isinstance(send, EventSend):
        return _event(send, site_id, t0, now)
    if isinstance(send, HeartbeatSend):
        return [_heartbeat(send, site_id, t0, now)]
    if isinstance(send, TelemetrySend):
        return [_telemetry(send, site_id, now)]
    return _esphome(send, site_id)
