"""Property test on SQLite and PostgreSQL: generated ESPHome messages and TelemetryBatches
(malformed, out of range, unknown metrics and ports, unknown devices, bytes that are no
batch at all) through the gateway's real telemetry ingest (`gateway.readings`). Never a
crash; every unreadable message dead-lettered with its reason, every bad reading flagged and
never stored; only valid readings reach the store."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import contract as c
from gateway.main import build_runtime
from gateway.readings import ingest_readings
from gateway.runtime import Runtime
from gateway.telemetry.profiles import load_profiles
from gateway.telemetry.settings import TelemetrySettings
from tests.gateway.apphelpers import settings_for

SITE = "fz-site"
PROFILES = load_profiles()
T0 = 1_800_000_000.0

names = st.sampled_from(
    [
        *(f"port{p}_{m}" for p in (0, 1, 4, 5) for m in ("temperature", "current", "relay")),
        "ambient_temperature",
        "smoke_alarm",
        "battery",
        "co_ppm",
        "humidity",
        "",
        "x" * 70,
    ]
)
numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=-50, max_value=300),
    st.sampled_from([0.0, 1.0, 0.5, 70.0, 1e308]),
)
payloads = st.one_of(
    numbers.map(lambda v: repr(v).encode()),
    st.sampled_from(
        [b"ON", b"OFF", b"on", b"online", b"offline", b"nan", b"", b"\xff\xfe", b"\x00"]
    ),
    st.binary(max_size=30),
)
esphome_topics = st.builds(
    lambda dev, comp, name, tail: f"esphome/{SITE}/{dev}/{comp}/{name}/{tail}",
    st.sampled_from(["shed-1", "smoke-1", "ghost"]),
    st.sampled_from(["sensor", "binary_sensor", "switch", "light"]),
    names,
    st.sampled_from(["state", "state", "command"]),
) | st.sampled_from([f"esphome/{SITE}/shed-1/status", f"esphome/{SITE}/x", "esphome/a/b/c/d/e/f/g"])

points = st.builds(
    lambda name, value, port: c.TelemetryPoint(
        metric=name or "m", value=value, ts=T0, tags={} if port is None else {"port": port}
    ),
    names.filter(lambda n: n == "" or (len(n) <= 64 and n[0].isalpha())),
    st.floats(allow_nan=False, allow_infinity=False, min_value=-1e6, max_value=1e6),
    st.sampled_from([None, None, "1", "2", "9", "x"]),
)


raw_telemetry = st.one_of(
    st.binary(max_size=40),
    st.sampled_from(
        [
            b"{}",
            b"[]",
            b'{"schema": "guanjia.telemetry_batch/1"}',
            b'{"schema": "guanjia.telemetry_batch/1", "msg_id": "m-00000001", "ts": NaN}',
            b'{"schema": "guanjia.telemetry_batch/2", "msg_id": "m-00000001"}',
        ]
    ),
)


@pytest.fixture
def runtime(db_url: str, tmp_path: Path) -> Iterator[Runtime]:
    made = build_runtime(
        settings_for(db_url, telemetry=TelemetrySettings(path=tmp_path / "telemetry.db"))
    )
    store = made.store
    for device, kind in (("shed-1", "esphome"), ("smoke-1", "smoke"), ("cam-1", "camera")):
        store.devices.upsert_device(device, SITE, kind)
    store.sensors.set_sensor_node("shed-1", "charging_monitor", esphome=True)
    store.sensors.set_sensor_node("smoke-1", "smoke_detector", esphome=False)
    yield made
    assert made.telemetry is not None
    made.telemetry.close()
    store.close()


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    esp=st.lists(st.tuples(esphome_topics, payloads), min_size=1, max_size=8),
    batch_points=st.lists(points, min_size=1, max_size=8),
    device=st.sampled_from(["smoke-1", "cam-1", "ghost"]),
    raw=raw_telemetry,
)
def test_fuzz_telemetry_never_crashes_and_stores_only_valid_readings(
    runtime: Runtime,
    esp: list[tuple[str, bytes]],
    batch_points: list[c.TelemetryPoint],
    device: str,
    raw: bytes,
) -> None:
    """Through the gateway's real telemetry ingest, on SQLite and PostgreSQL."""
    store, telemetry = runtime.store, runtime.telemetry
    assert telemetry is not None
    dead_before, flagged_before = store.inbox.dead_letter_count(), telemetry.flagged
    over_quota_before = runtime.handler.dropped
    batch = c.TelemetryBatch(
        ts=T0, site_id=SITE, device_id=device, sensor_kind="smoke_detector", points=batch_points
    )
    good = (str(c.telemetry_topic(SITE, device)), c.encode(batch))
    bad = (str(c.telemetry_topic(SITE, "smoke-1")), raw)
    asyncio.run(ingest_readings(runtime, [*esp, good, bad]))
    dead = store.inbox.dead_letter_count() - dead_before
    # Unreadable ESPHome messages, the unreadable raw payload and an unknown device's batch
    # are dead letters with a reason; an ESPHome reading the profile does not know, or out
    # of range, is flagged (not stored).
    over_quota = runtime.handler.dropped - over_quota_before  # 60 letters a device a minute
    assert dead + over_quota >= 1  # `raw` is never a valid TelemetryBatch
    if device == "smoke-1":
        stored = telemetry.sqlite.stored((SITE, device, batch.msg_id))
        assert stored  # committed and written, whatever its readings were
    refused = telemetry.flagged - flagged_before
    assert refused >= 0
    # Nothing out of its metric's valid range, nor any unknown series, was stored.
    for node, profile in (("shed-1", "charging_monitor"), ("smoke-1", "smoke_detector")):
        spec = PROFILES[profile]
        for latest in telemetry.sqlite.latest(node):
            resolved = spec.resolve(latest.series)
            assert resolved is not None, latest.series
            metric = spec.metric(resolved[0])
            assert metric is not None
            assert math.isfinite(latest.value)
            assert metric.min is None or latest.value >= metric.min
            assert metric.max is None or latest.value <= metric.max
