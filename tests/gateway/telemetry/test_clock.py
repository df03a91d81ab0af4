"""Offline and low-battery detection with a fake clock, through the telemetry service to
tickets in the database (SQLite and PostgreSQL): silence past the profile's window opens a
`device_offline` ticket, hearing the node again clears it (auto-resolved); a battery under
20 % opens a `sensor_fault` ticket `low_battery`, which clears only above 30 %."""

from __future__ import annotations

from pathlib import Path

import contract as c
from gateway.lifecycle import TicketState
from gateway.sla import DEFAULT_POLICIES, TicketCategory
from gateway.store import Store
from gateway.telemetry.service import TelemetryService
from gateway.telemetry.settings import TelemetrySettings

SITE = "clk-site"
T0 = 1_800_000_000.0


def _battery(value: float, ts: float, seq: int) -> tuple[str, bytes]:
    batch = c.TelemetryBatch(
        msg_id=f"clk-{seq:08d}",
        ts=ts,
        site_id=SITE,
        device_id="smoke-1",
        sensor_kind="smoke_detector",
        points=[c.TelemetryPoint(metric="battery", value=value, ts=ts)],
    )
    return str(c.telemetry_topic(SITE, "smoke-1")), c.encode(batch)


def _tickets(store: Store, category: TicketCategory) -> list[tuple[str | None, str, bool]]:
    page = store.tickets.list_tickets(categories=[category.value])
    return [(t.zone_id, t.state.value, t.condition_cleared_at is not None) for t in page.items]


def test_offline_and_low_battery_with_a_fake_clock(store: Store, tmp_path: Path) -> None:
    store.devices.upsert_device("smoke-1", SITE, "smoke")
    store.sensors.set_sensor_node("smoke-1", "smoke_detector", esphome=False)
    service = TelemetryService(store, TelemetrySettings(), DEFAULT_POLICIES, path=tmp_path / "t.db")
    window = service.profiles["smoke_detector"].offline_after_s  # 3 × 60 s
    service.handle([_battery(80, T0, 1)], T0)
    service.tick(T0 + window - 1)
    assert _tickets(store, TicketCategory.DEVICE_OFFLINE) == []
    service.tick(T0 + window + 1)  # silent past the window
    assert _tickets(store, TicketCategory.DEVICE_OFFLINE) == [("offline", "new", False)]
    service.tick(T0 + window + 60)  # still silent: no second ticket
    assert len(_tickets(store, TicketCategory.DEVICE_OFFLINE)) == 1
    t1 = T0 + window + 120
    service.handle([_battery(19, t1, 2)], t1)  # heard again, and the battery is low
    offline = _tickets(store, TicketCategory.DEVICE_OFFLINE)
    assert offline == [("offline", TicketState.RESOLVED.value, True)]  # auto-resolved
    assert _tickets(store, TicketCategory.SENSOR_FAULT) == [("low_battery", "new", False)]
    service.handle([_battery(25, t1 + 60, 3)], t1 + 60)  # hysteresis: not yet clear
    assert _tickets(store, TicketCategory.SENSOR_FAULT) == [("low_battery", "new", False)]
    service.handle([_battery(31, t1 + 120, 4)], t1 + 120)
    [(zone, _, cleared)] = _tickets(store, TicketCategory.SENSOR_FAULT)
    assert (zone, cleared) == ("low_battery", True)
    service.close()


def test_the_clock_derives_the_embedded_store_once_a_period(store: Store, tmp_path: Path) -> None:
    """`derive_if_due` moves what was appended once `derive_interval_s` passed, not before."""
    store.devices.upsert_device("smoke-1", SITE, "smoke")
    store.sensors.set_sensor_node("smoke-1", "smoke_detector", esphome=False)
    settings = TelemetrySettings(derive_interval_s=10)
    service = TelemetryService(store, settings, DEFAULT_POLICIES, path=tmp_path / "t.db")
    service.handle([_battery(80, T0, 1)], T0)
    assert service.derive_if_due(T0) == 1  # the first tick derives
    service.handle([_battery(79, T0 + 1, 2)], T0 + 1)
    assert service.derive_if_due(T0 + 9.9) == 0  # not due: the reading waits, appended
    assert service.sqlite.count() == 2
    assert service.derive_if_due(T0 + 10) == 1
    service.close()


def test_a_flood_is_moved_before_the_period_ends(store: Store, tmp_path: Path) -> None:
    """`derive_after_points` readings appended since the last move: moved at the next tick,
    whatever the period."""
    store.devices.upsert_device("smoke-1", SITE, "smoke")
    store.sensors.set_sensor_node("smoke-1", "smoke_detector", esphome=False)
    settings = TelemetrySettings(derive_interval_s=3600, derive_after_points=1000)
    service = TelemetryService(store, settings, DEFAULT_POLICIES, path=tmp_path / "t.db")
    assert service.derive_if_due(T0) == 0  # the first tick: nothing appended yet
    batch = [_battery(80, T0 + i, i) for i in range(999)]
    service.handle(batch, T0 + 1)
    assert service.derive_if_due(T0 + 2) == 0  # 999 waiting, under the bound
    service.handle([_battery(80, T0 + 999, 999)], T0 + 3)
    assert service.derive_if_due(T0 + 4) == 1000
    service.close()
