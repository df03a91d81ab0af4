"""Issue 9, must show: the time-series server stopped for 30 s during a flood of readings,
through a real `guanjia gateway run` process. The points are buffered up to the bound and
delivered afterwards, the rest dropped and counted on /metrics; the embedded store misses
nothing; and event ingest is not held up (each event's ticket is timed, publish to commit,
before and during the outage)."""

from __future__ import annotations

import re
import statistics
import threading
import time
import uuid
from pathlib import Path

import pytest

import contract as c
from gateway.store import Store, migrate
from gateway.telemetry.sqlite_store import SqliteTelemetryStore
from tests.gateway.factories import event
from tests.gateway.proc import Publisher, start_gateway, wait_for
from tests.support.broker import MosquittoBroker
from tests.support.victoria import VictoriaMetrics

pytestmark = [pytest.mark.mqtt, pytest.mark.slow]

SITE = "site"  # the broker fixture's site
NODES = 100
PER_SECOND = 200  # messages of 10 points: 2,000 points/s
BUFFER = 20_000
POINTS = {"voltage": 220.0, "current": 2.0, "power": 440.0, "temperature": 30.0, "energy": 1.5}


def _reading(device: str, ts: float, seq: int) -> c.TelemetryBatch:
    return c.TelemetryBatch(
        msg_id=f"out-{device}-{seq:07d}",
        ts=ts,
        site_id=SITE,
        device_id=device,
        sensor_kind="charging_monitor",
        points=[
            c.TelemetryPoint(metric=f"port{p}_{m}", value=v + seq % 5 * 0.1, ts=ts)
            for p in (1, 2)
            for m, v in POINTS.items()
        ],
    )


def _gauge(metrics: str, store: str, fate: str) -> float:
    found = re.search(
        rf'guanjia_telemetry_points\{{fate="{fate}",store="{store}"\}} ([0-9.e+]+)', metrics
    )
    return float(found.group(1)) if found else -1.0


@pytest.mark.timeout(400)
def test_influx_outage_during_a_flood_buffers_drops_counted_events_unaffected(
    tmp_path: Path, mqtt_broker: MosquittoBroker, victoria: VictoriaMetrics
) -> None:
    db = f"sqlite:///{tmp_path / 'gw.db'}"
    migrate(db)
    store = Store(db)
    nodes = [f"shed-{i}" for i in range(NODES)]
    for device in nodes:
        store.devices.upsert_device(device, SITE, "charging")
        store.sensors.set_sensor_node(device, "charging_monitor", esphome=False)
    store.devices.upsert_device("cam-0", SITE, "camera")
    gateway = start_gateway(
        tmp_path,
        db,
        mqtt_broker,
        "gw-outage-" + uuid.uuid4().hex[:6],
        TELEMETRY_TICK_S=0.5,
        TELEMETRY__PATH=str(tmp_path / "t.db"),
        TELEMETRY__INFLUX_URL=victoria.url,
        TELEMETRY__INFLUX_ORG="guanjia",
        TELEMETRY__INFLUX_BUCKET="telemetry",
        TELEMETRY__INFLUX_TOKEN="test",
        TELEMETRY__INFLUX_FLUSH_INTERVAL_S=0.5,
        TELEMETRY__INFLUX_MAX_BUFFER=BUFFER,
    )
    try:
        gateway.wait_ready(60)
        readings = Publisher(mqtt_broker, "flood-" + uuid.uuid4().hex[:6])
        events = Publisher(mqtt_broker, "events-" + uuid.uuid4().hex[:6])
        sent_at: dict[str, float] = {}
        published = 0
        stop = threading.Event()

        def flood() -> None:
            nonlocal published
            seq = 0
            while not stop.is_set():
                second = time.monotonic()
                now = time.time()
                for i in range(PER_SECOND):
                    device = nodes[i % NODES]
                    message = _reading(device, now + i / PER_SECOND, seq)
                    readings.send(message, str(c.telemetry_topic(SITE, device)))
                    seq += 1
                readings.flush()
                published += PER_SECOND
                stop.wait(max(0.0, 1.0 - (time.monotonic() - second)))

        def one_event(tag: str) -> None:
            zone = f"z-{tag}"
            message = event(SITE, "cam-0", f"event-{tag}-xxxx", zone_id=zone, ts=time.time())
            sent_at[zone] = time.time()
            events.send(message, str(c.event_topic(SITE, "cam-0")))

        flooding = threading.Thread(target=flood, daemon=True)
        flooding.start()
        for i in range(5):  # before: the server up
            one_event(f"before-{i}")
            time.sleep(1.0)
        victoria.stop()
        for i in range(30):  # the server away for 30 s, readings still coming
            one_event(f"during-{i}")
            time.sleep(1.0)
        victoria.start()
        for i in range(5):
            one_event(f"after-{i}")
            time.sleep(1.0)
        stop.set()
        flooding.join(30)
        events.flush()
        total_points = published * 10

        embedded = SqliteTelemetryStore(tmp_path / "t.db")
        wait_for(lambda: embedded.count() == total_points, 120, "every point in the embedded store")
        embedded.close()

        def delivered() -> bool:
            metrics = gateway.metrics()
            return (
                _gauge(metrics, "influxdb", "buffered") == 0
                and _gauge(metrics, "influxdb", "written") > 0
            )

        wait_for(delivered, 120, "InfluxDB's buffer delivered after the outage")
        metrics = gateway.metrics()
        written = _gauge(metrics, "influxdb", "written")
        dropped = _gauge(metrics, "influxdb", "dropped")
        assert _gauge(metrics, "embedded", "written") == total_points
        assert dropped > 0  # 30 s × 2,000 points/s is more than the 20,000 it may hold
        assert written + dropped == total_points
        assert written >= BUFFER  # the buffer's worth was held and delivered afterwards
        wait_for(lambda: victoria.count() == written, 60, "VictoriaMetrics to have them")

        assert store.tickets.list_tickets(limit=1).total == len(
            sent_at
        )  # readings in range: no ticket
        tickets = store.tickets.list_tickets(device_id="cam-0", limit=200).items
        created = {t.zone_id: t.created_at for t in tickets}
        assert set(created) == set(sent_at)  # every event became a ticket
        latency = {zone: created[zone] - sent for zone, sent in sent_at.items()}
        for phase in ("before", "during", "after"):
            values = [v for z, v in latency.items() if z.startswith(f"z-{phase}")]
            print(
                f"event → ticket {phase:<6} the outage: p50 {statistics.median(values) * 1000:.0f}"
                f" ms, max {max(values) * 1000:.0f} ms ({len(values)} events)"
            )
        print(f"points {total_points}: InfluxDB written {written:.0f}, dropped {dropped:.0f}")
        # Generous: an event stuck behind readings (or the InfluxDB writer) takes seconds.
        assert max(latency.values()) < 3.0
        readings.close()
        events.close()
    finally:
        gateway.stop()
        store.close()
