"""`gateway.telemetry.handover`: with `HANDOVER` set, the service hands the committed
messages' points over instead of appending them (the receiver process appends them,
tests/gateway/test_receiver_ingest.py), counts them for the clock's move bound and for
/metrics, and the work, appended elsewhere, stores each message once."""

from __future__ import annotations

from pathlib import Path

import msgspec

import contract as c
from gateway.receiver_wire import ReplyFrame, encode_frame
from gateway.sla import DEFAULT_POLICIES
from gateway.store import Store
from gateway.telemetry.handover import HANDOVER, StoreWork
from gateway.telemetry.points import Point
from gateway.telemetry.service import TelemetryService
from gateway.telemetry.settings import TelemetrySettings
from gateway.telemetry.sqlite_store import SqliteTelemetryStore

SITE = "ho-site"
T0 = 1_800_000_000.0


def _reading(seq: int, ts: float) -> tuple[str, bytes]:
    batch = c.TelemetryBatch(
        msg_id=f"ho-{seq:08d}",
        ts=ts,
        site_id=SITE,
        device_id="smoke-1",
        sensor_kind="smoke_detector",
        points=[
            c.TelemetryPoint(metric="battery", value=80.0, ts=ts),
            c.TelemetryPoint(metric="temperature", value=21.5, ts=ts),
        ],
    )
    return str(c.telemetry_topic(SITE, "smoke-1")), c.encode(batch)


def test_handed_over_points_are_appended_by_whoever_took_them_each_message_once(
    store: Store, tmp_path: Path
) -> None:
    store.devices.upsert_device("smoke-1", SITE, "smoke")
    store.sensors.set_sensor_node("smoke-1", "smoke_detector", esphome=False)
    settings = TelemetrySettings(derive_interval_s=3600, derive_after_points=1000)
    path = tmp_path / "t.db"
    service = TelemetryService(store, settings, DEFAULT_POLICIES, path=path)
    assert service.derive_if_due(T0) == 0  # the first tick
    work: list[StoreWork] = []
    token = HANDOVER.set(work)
    try:
        service.handle([_reading(i, T0 + i) for i in range(3)], T0 + 3)
    finally:
        HANDOVER.reset(token)
    assert service.sqlite.count() == 0, "handed over, not appended here"
    [item] = work
    assert [key for key, _ in item.messages] == [(SITE, "smoke-1", f"ho-{i:08d}") for i in range(3)]
    assert item.points == 6
    assert item.recheck == []
    assert service.points_written == 6  # /metrics and the clock's bound count them

    # The work crosses the socket in the reply and is appended by another writer.
    body = encode_frame(ReplyFrame(1, [], None, work))[4:]  # past the length prefix
    [crossed] = msgspec.msgpack.decode(body, type=ReplyFrame).store
    assert crossed == item
    assert all(isinstance(p, Point) for _, points in crossed.messages for p in points)
    receiver = SqliteTelemetryStore(path)
    written = receiver.write_messages(crossed.messages, recheck=crossed.recheck, now=crossed.now)
    assert len(written) == 6
    assert service.sqlite.count() == 6

    # A redelivery: the claims call every message a duplicate; the work asks for a recheck,
    # and the store keeps each message once.
    again: list[StoreWork] = []
    token = HANDOVER.set(again)
    try:
        service.handle([_reading(i, T0 + i) for i in range(3)], T0 + 4)
    finally:
        HANDOVER.reset(token)
    [redelivered] = again
    assert sorted(redelivered.recheck) == sorted(key for key, _ in item.messages)
    written = receiver.write_messages(
        redelivered.messages, recheck=redelivered.recheck, now=redelivered.now
    )
    assert written == []
    assert service.sqlite.count() == 6

    # Without the handover the service appends where it commits, as in one process.
    service.handle([_reading(10, T0 + 10)], T0 + 10)
    assert service.sqlite.count() == 8
    receiver.close()
    service.close()
