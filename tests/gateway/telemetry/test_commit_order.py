"""Points are stored only after the ingest transaction that took their message committed,
and each message exactly once (SQLite and PostgreSQL gateway databases):

- a batch whose transaction rolls back stores no point (it is retried, then stored once);
- a gateway that dies after the commit and before the point write (its process gone, its
  in-memory state with it) loses nothing: the broker redelivers the unacknowledged
  messages to the restarted gateway, the database calls them duplicates, their points are
  written then — and a message whose points were written before the death is not written
  twice.

The death is a new `TelemetryService` on the same database and embedded file after the old
one was dropped between its steps (`tests/gateway/telemetry/test_end_to_end.py` and the
MQTT ack tests cover the broker's redelivery itself)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

import contract as c
from gateway.main import build_runtime
from gateway.readings import ingest_readings
from gateway.sla import DEFAULT_POLICIES
from gateway.store import IngestTx, Store, StoreUnavailableError
from gateway.telemetry.service import TelemetryService
from gateway.telemetry.settings import TelemetrySettings
from tests.gateway.apphelpers import settings_for

T = TypeVar("T")
SITE = "co-site"


class RollingBack(Store):
    """A real store whose next ingest transaction runs its work and then rolls back, as a
    database that fails the COMMIT does."""

    fail_next = False

    def ingest(self, work: Callable[[IngestTx], T], now: float, attempts: int = 4) -> T:
        if not self.fail_next:
            return super().ingest(work, now, attempts)
        self.fail_next = False
        with self.ingest_tx(now) as tx:
            work(tx)
            raise StoreUnavailableError("commit failed")


def _service(db_url: str, path: Path) -> TelemetryService:
    store = RollingBack(db_url)
    return TelemetryService(store, TelemetrySettings(), DEFAULT_POLICIES, path=path)


def _batch(device: str, i: int, t0: float) -> tuple[str, bytes]:
    message = c.TelemetryBatch(
        msg_id=f"co-{device}-{i:06d}",
        ts=t0 + i,
        site_id=SITE,
        device_id=device,
        sensor_kind="charging_monitor",
        points=[
            c.TelemetryPoint(metric="port1_voltage", value=220.0 + i, ts=t0 + i),
            c.TelemetryPoint(metric="port1_current", value=2.0, ts=t0 + i),
        ],
    )
    return str(c.telemetry_topic(SITE, device)), c.encode(message)


@pytest.fixture
def registered(store: Store) -> Store:
    for device in ("shed-1", "shed-2"):
        store.devices.upsert_device(device, SITE, "charging")
        store.sensors.set_sensor_node(device, "charging_monitor", esphome=False)
    return store


def test_rolled_back_batch_stores_no_point_then_once(
    registered: Store, db_url: str, tmp_path: Path
) -> None:
    service = _service(db_url, tmp_path / "t.db")
    assert isinstance(service.store, RollingBack)
    t0 = time.time()
    batch = [_batch("shed-1", i, t0) for i in range(5)]
    service.store.fail_next = True
    prepared = service.prepare(batch, t0)
    with pytest.raises(StoreUnavailableError):
        service.commit(prepared)
    assert service.store_points(prepared) == 0  # not committed: nothing to store
    assert service.sqlite.count() == 0
    # the MQTT edge holds the batch and retries it: stored once
    retried = service.handle(batch, t0 + 1)
    assert len(retried.fresh) == 5
    assert service.sqlite.count() == 10
    again = service.handle(batch, t0 + 2)  # a redelivery after that: duplicates, no points
    assert (len(again.fresh), len(again.duplicates)) == (0, 5)
    assert service.sqlite.count() == 10
    service.close()
    service.store.close()


def test_gateway_dying_between_commit_and_point_write_loses_nothing(
    registered: Store, db_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "t.db"
    t0 = time.time()
    first = [_batch("shed-1", i, t0) for i in range(4)]
    second = [_batch("shed-2", i, t0) for i in range(3)]
    old = _service(db_url, path)
    old.handle(first, t0)  # committed and written
    committed = old.commit(old.prepare(second, t0))  # committed ...
    assert len(committed.fresh) == 3
    old.sqlite.close()  # ... and the process dies before writing the points
    old.store.close()
    assert registered.inbox.dead_letter_count() == 0

    new = _service(db_url, path)  # restarted; the broker redelivers everything unacked
    redelivered = new.handle(first + second, t0 + 60)
    assert (len(redelivered.fresh), len(redelivered.duplicates)) == (0, 7)
    expected = {("shed-1", f"co-shed-1-{i:06d}") for i in range(4)}
    expected |= {("shed-2", f"co-shed-2-{i:06d}") for i in range(3)}
    assert {(d, m) for _, d, m in redelivered.duplicates} == expected
    assert new.sqlite.count() == 14  # 7 messages × 2 points: none lost, none twice
    latest = {x.series: x.value for x in new.sqlite.latest("shed-2")}
    assert latest == {"port1_voltage": 222.0, "port1_current": 2.0}
    # every redelivered message is acked (committed), so the devices forget them
    assert len(redelivered.acked) == 7
    new.close()
    new.store.close()


class BrokenOnce(Store):
    """A real store whose next ingest transaction fails with a bug, not an outage."""

    fail_next = True

    def ingest(self, work: Callable[[IngestTx], T], now: float, attempts: int = 4) -> T:
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("a bug in the telemetry transaction")
        return super().ingest(work, now, attempts)


def test_a_failing_telemetry_batch_goes_to_the_event_ingest_not_round_and_round(
    registered: Store, db_url: str, tmp_path: Path
) -> None:
    """A batch whose transaction fails for a bug is handed to the event ingest (which splits
    it and dead-letters only what fails there) instead of being redelivered for ever."""
    runtime = build_runtime(settings_for(db_url, telemetry=TelemetrySettings(path=tmp_path / "t")))
    assert runtime.telemetry is not None
    runtime.telemetry.store = BrokenOnce(db_url)
    t0 = time.time()
    batch = [_batch("shed-1", i, t0) for i in range(3)]
    outbound = asyncio.run(ingest_readings(runtime, batch))  # no exception for the edge
    [ack] = [json.loads(o.payload) for o in outbound if o.topic.endswith("/ack")]
    assert sorted(ack["msg_ids"]) == [f"co-shed-1-{i:06d}" for i in range(3)]
    assert runtime.telemetry.sqlite.count() == 0  # the event ingest stores no points
    again = runtime.telemetry.handle(batch, t0 + 1)  # committed there: duplicates now
    assert len(again.duplicates) == 3
    runtime.telemetry.close()
    runtime.telemetry.store.close()
    runtime.store.close()
