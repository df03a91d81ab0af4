"""Property test on SQLite and PostgreSQL: generated ESPHome messages and TelemetryBatches
(malformed, out of range, unknown metrics and ports, unknown devices) through the real
telemetry service. Never a crash; every unreadable message dead-lettered with its reason,
every bad reading flagged and never stored; only valid readings reach the store."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import contract as c
from gateway.sla import DEFAULT_POLICIES
from gateway.store import Store
from gateway.telemetry.profiles import load_profiles
from gateway.telemetry.service import TelemetryService
from gateway.telemetry.settings import TelemetrySettings

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


@pytest.fixture
def service(store: Store, tmp_path: Path) -> Iterator[TelemetryService]:
    for device, kind in (("shed-1", "esphome"), ("smoke-1", "smoke")):
        store.upsert_device(device, SITE, kind)
    store.set_sensor_node("shed-1", "charging_monitor", esphome=True)
    store.set_sensor_node("smoke-1", "smoke_detector", esphome=False)
    made = TelemetryService(
        store, TelemetrySettings(), DEFAULT_POLICIES, path=tmp_path / "telemetry.db"
    )
    yield made
    made.close()


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    esp=st.lists(st.tuples(esphome_topics, payloads), min_size=1, max_size=8),
    batch_points=st.lists(points, min_size=1, max_size=8),
)
def test_fuzz_telemetry_never_crashes_and_stores_only_valid_readings(
    service: TelemetryService,
    esp: list[tuple[str, bytes]],
    batch_points: list[c.TelemetryPoint],
) -> None:
    store = service.store
    dead_before = store.dead_letter_count()
    counted_before = service.dead_letters
    service.handle_esphome(esp, T0)
    assert store.dead_letter_count() - dead_before == service.dead_letters - counted_before
    batch = c.TelemetryBatch(
        ts=T0, site_id=SITE, device_id="smoke-1", sensor_kind="smoke_detector", points=batch_points
    )
    alerts = service.alerts_for_batch(batch, T0)
    assert alerts is not None
    assert service.sink.flush()
    # Nothing out of its metric's valid range, nor any unknown series, was stored.
    for device, profile in (("shed-1", "charging_monitor"), ("smoke-1", "smoke_detector")):
        spec = PROFILES[profile]
        for latest in service.sqlite.latest(device):
            resolved = spec.resolve(latest.series)
            assert resolved is not None, latest.series
            metric = spec.metric(resolved[0])
            assert metric is not None
            assert math.isfinite(latest.value)
            assert metric.min is None or latest.value >= metric.min
            assert metric.max is None or latest.value <= metric.max
