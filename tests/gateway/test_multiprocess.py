"""End to end through a real Mosquitto and real `guanjia gateway run` processes.

- events over the broker become tickets; a message delivered twice is one ticket;
- a gateway killed -9 in the middle of a 1,000-event burst and restarted loses nothing and
  duplicates nothing;
- two gateways on one shared subscription with PostgreSQL process 2,000 events once each,
  open no duplicate tickets and escalate every SLA breach exactly once.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

import contract as c
from gateway.store import Store, database_url, migrate
from tests.gateway.factories import event, seed_site
from tests.gateway.proc import Publisher, start_gateway, wait_for
from tests.support.broker import MosquittoBroker

pytestmark = pytest.mark.mqtt


def counts(db_url: str) -> dict[str, int]:
    engine = create_engine(database_url(db_url))
    out = {}
    with engine.connect() as conn:
        for table in ("tickets", "evidence", "processed_messages", "dead_letters", "escalations"):
            out[table] = int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())
    engine.dispose()
    return out


def rows(db_url: str, sql: str) -> list[tuple[object, ...]]:
    engine = create_engine(database_url(db_url))
    with engine.connect() as conn:
        result = [tuple(r) for r in conn.execute(text(sql))]
    engine.dispose()
    return result


def prepare(db_url: str, site_id: str, devices: tuple[str, ...]) -> None:
    migrate(db_url)
    store = Store(db_url)
    seed_site(store, site_id, devices)
    store.close()


def test_events_over_broker_become_tickets_and_redelivery_is_one_ticket(
    broker_factory: Callable[..., MosquittoBroker], tmp_path: Path, sqlite_url: str, site_id: str
) -> None:
    broker = broker_factory()
    prepare(sqlite_url, site_id, ("cam-a",))
    gateway = start_gateway(tmp_path, sqlite_url, broker, "gw-e2e")
    try:
        gateway.wait_ready()
        publisher = Publisher(broker, "edge-e2e")
        topic = str(c.event_topic(site_id, "cam-a"))
        messages = [event(site_id, "cam-a", f"ev-e2e-{i:04d}", zone_id=f"z{i}") for i in range(20)]
        for message in messages:
            publisher.send(message, topic)
        publisher.send(messages[3], topic)  # the same message again (same msg_id)
        publisher.client.publish(topic, b"{garbage", qos=1).wait_for_publish(10)
        publisher.close()
        wait_for(lambda: counts(sqlite_url)["tickets"] == 20, 30, "20 tickets")
        wait_for(lambda: counts(sqlite_url)["dead_letters"] == 1, 10, "the dead letter")
        assert counts(sqlite_url)["evidence"] == 20
        metrics = gateway.metrics()
        assert re.search(
            r'guanjia_ingest_messages_total\{channel="event",outcome="duplicate"\} 1', metrics
        )
    finally:
        gateway.stop()


def test_kill_9_during_1000_event_burst_loses_and_duplicates_nothing(
    broker_factory: Callable[..., MosquittoBroker], tmp_path: Path, sqlite_url: str, site_id: str
) -> None:
    broker = broker_factory()
    devices = tuple(f"cam-{i}" for i in range(10))
    prepare(sqlite_url, site_id, devices)
    gateway = start_gateway(tmp_path, sqlite_url, broker, "gw-kill")
    gateway.wait_ready()
    publisher = Publisher(broker, "edge-kill")
    total = 1000
    for i in range(total):
        device = devices[i % len(devices)]
        message = event(site_id, device, f"ev-kill-{i:05d}", zone_id=f"z{i % 50}")
        publisher.send(message, str(c.event_topic(site_id, device)))
    # Batched ingest drains 1,000 events in well under a second: kill at the first sign of
    # progress, while the publisher may still be sending (the rest queue at the broker).
    wait_for(lambda: counts(sqlite_url)["processed_messages"] >= 20, 60, "some progress", 0.01)
    gateway.kill()
    at_kill = counts(sqlite_url)["processed_messages"]
    publisher.flush()
    assert at_kill < total, "the burst finished before the kill: the test proves nothing"
    gateway = start_gateway(tmp_path, sqlite_url, broker, "gw-kill")  # same session id
    try:
        gateway.wait_ready()
        wait_for(lambda: counts(sqlite_url)["processed_messages"] == total, 120, "all events")
        publisher.close()
        final = counts(sqlite_url)
        assert final["evidence"] == total  # every event reflected once in a ticket
        assert final["dead_letters"] == 0
        # One ticket per (device, zone) key: i % 10 and i % 50 give 50 distinct keys.
        assert final["tickets"] == 50
        per_event = rows(sqlite_url, "SELECT event_id, count(*) FROM evidence GROUP BY event_id")
        assert len(per_event) == total
        assert {n for _, n in per_event} == {1}
    finally:
        gateway.stop()


@pytest.mark.postgres
def test_two_gateways_shared_subscription_postgres_once_each(
    broker_factory: Callable[..., MosquittoBroker],
    tmp_path: Path,
    isolated_postgres_url: str,
    site_id: str,
) -> None:
    db_url = isolated_postgres_url
    broker = broker_factory()
    devices = tuple(f"cam-{i}" for i in range(20))
    prepare(db_url, site_id, devices)
    # Tight SLA windows so both replicas race to escalate while the test watches.
    policies = {"illegal_parking": {"ack_within_s": 1, "resolve_within_s": 2}}
    gateways = [
        start_gateway(tmp_path, db_url, broker, f"gw-{n}", policies=policies, sla_tick_s=0.2)
        for n in (1, 2)
    ]
    try:
        for gw in gateways:
            gw.wait_ready()
        publisher = Publisher(broker, "edge-two")
        total = 2000
        for i in range(total):
            device = devices[i % len(devices)]
            message = event(site_id, device, f"ev-two-{i:05d}", zone_id=f"z{i % 10}")
            publisher.send(message, str(c.event_topic(site_id, device)))
        publisher.close()

        def processed() -> bool | int:
            n = counts(db_url)["processed_messages"]
            return n == total or n

        wait_for(processed, 180, "all events")
        # 20 devices × 10 zones, but i % 20 fixes i % 10: 20 distinct keys.
        keys = len({(i % 20, i % 10) for i in range(total)})

        def escalated() -> bool | int:
            n = counts(db_url)["escalations"]
            return n == 3 * keys or n

        wait_for(escalated, 30, "all escalations")
        final = counts(db_url)
        assert final["evidence"] == total
        assert final["tickets"] == keys
        escalate_audit = rows(
            db_url,
            "SELECT ticket_id, detail FROM audit_log WHERE action = 'escalate'",
        )
        per_breach = Counter(
            (tid, detail["breach"])  # type: ignore[index]
            for tid, detail in escalate_audit
        )
        assert len(per_breach) == 3 * keys
        assert set(per_breach.values()) == {1}
        # Both replicas took part, and their own counters add up to the exactly-once total.
        accepted: list[float] = []
        breaches: list[float] = []
        for gw in gateways:
            metrics = gw.metrics()
            accepted.append(
                sum(
                    float(v)
                    for v in re.findall(
                        r'guanjia_ingest_messages_total\{channel="event",'
                        r'outcome="accepted"\} (\S+)',
                        metrics,
                    )
                )
            )
            breaches.append(
                sum(
                    float(v)
                    for v in re.findall(r"guanjia_sla_breaches_total\{[^}]*\} (\S+)", metrics)
                )
            )
        assert all(p > 0 for p in accepted), accepted
        assert sum(accepted) == total
        assert sum(breaches) == 3 * keys
    finally:
        for gw in gateways:
            gw.stop()
