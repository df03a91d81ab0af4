"""Two gateway replicas, each with its own rule state, on one database (SQLite and
PostgreSQL): a shared subscription splits a device's readings between them, so both see
the condition open and each raises its own transition. The database still holds one open
ticket per (device, condition): the open-ticket key is unique, and a replica that loses the
race retries and merges into the winner's ticket."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.sla import DEFAULT_POLICIES, TicketCategory
from gateway.store import Store
from gateway.telemetry.service import TelemetryService
from gateway.telemetry.settings import TelemetrySettings

SITE = "rp-site"
DEVICES = [f"shed-{i}" for i in range(12)]


@pytest.fixture
def replicas(store: Store, db_url: str, tmp_path: Path) -> Iterator[list[TelemetryService]]:
    for device in DEVICES:
        store.devices.upsert_device(device, SITE, "charging")
        store.sensors.set_sensor_node(device, "charging_monitor", esphome=True)
    made = []
    for name in ("a", "b"):
        # each replica its own Store (connection pool) and its own embedded file
        made.append(
            TelemetryService(
                Store(db_url),
                TelemetrySettings(),
                DEFAULT_POLICIES,
                path=tmp_path / f"{name}.telemetry.db",
            )
        )
    yield made
    for service in made:
        service.close()
        service.store.close()


def _hot(device: str, value: float) -> tuple[str, bytes]:
    return (f"esphome/{SITE}/{device}/sensor/port1_temperature/state", f"{value}".encode())


def _open(store: Store, device: str | None = None) -> list[tuple[str, str | None]]:
    page = store.tickets.list_tickets(
        categories=[TicketCategory.CHARGING_HAZARD.value], device_id=device, limit=200
    )
    return [(t.device_id, t.zone_id) for t in page.items]


def test_replicas_splitting_readings_keep_one_ticket_per_condition(
    store: Store, replicas: list[TelemetryService]
) -> None:
    a, b = replicas
    t0 = time.time()
    device = DEVICES[0]
    # readings alternate between the replicas, as a shared subscription hands them out
    for i, value in enumerate([75.0, 76.0, 77.0, 78.0]):
        (a if i % 2 == 0 else b).handle([_hot(device, value)], t0 + i)
    assert _open(store, device) == [(device, "port1_over_temperature")]
    # one replica sees it cool down, the other still hot: still one ticket, never two
    a.handle([_hot(device, 40.0)], t0 + 10)
    b.handle([_hot(device, 79.0)], t0 + 11)
    b.handle([_hot(device, 40.0)], t0 + 12)
    assert _open(store, device) == [(device, "port1_over_temperature")]


@pytest.mark.timeout(120)
def test_replicas_opening_at_once_never_double_a_ticket(
    store: Store, replicas: list[TelemetryService]
) -> None:
    t0 = time.time()
    start = threading.Barrier(len(replicas))
    failures: list[BaseException] = []

    def run(service: TelemetryService, offset: float) -> None:
        try:
            start.wait(10)
            for round_ in range(3):
                batch = [_hot(device, 80.0 + round_) for device in DEVICES]
                service.handle(batch, t0 + round_ + offset)
        except BaseException as exc:  # reported below, not lost in the thread
            failures.append(exc)

    threads = [
        threading.Thread(target=run, args=(service, i * 0.001))
        for i, service in enumerate(replicas)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert failures == []
    found = _open(store)
    assert sorted(found) == sorted((d, "port1_over_temperature") for d in DEVICES)
