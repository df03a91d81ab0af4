"""End to end through a real Mosquitto and real `guanjia gateway run` processes.

- events over the broker become tickets; a message delivered twice is one ticket;
- a gateway killed -9 while it holds a delivered, uncommitted batch gets that batch again and
  drops re-sent events by msg_id (slow suite: a 10,000-event burst with a kill -9);
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
from tests.gateway.proc import Publisher, SqliteWriteLock, start_gateway, wait_for
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


def accepted_and_duplicates(metrics: str) -> tuple[float, float]:
    found = {
        outcome: sum(
            float(v)
            for v in re.findall(
                rf'guanjia_ingest_messages_total\{{channel="event",outcome="{outcome}"\}} (\S+)',
                metrics,
            )
        )
        for outcome in ("accepted", "duplicate")
    }
    return found["accepted"], found["duplicate"]


def test_kill_9_with_a_batch_held_uncommitted_redelivers_it_and_drops_resends(
    broker_factory: Callable[..., MosquittoBroker], tmp_path: Path, sqlite_url: str, site_id: str
) -> None:
    """Deterministic: the test holds SQLite's write lock, so the gateway holds a delivered,
    uncommitted batch (/healthz `ingest_pending`) when it is killed -9. The restarted gateway
    must get that batch again (an ack-before-commit loses it) and must drop the re-sends of
    events committed before (no dedup: duplicate evidence)."""
    broker = broker_factory()
    devices = tuple(f"cam-{i}" for i in range(10))
    prepare(sqlite_url, site_id, devices)
    gateway = start_gateway(tmp_path, sqlite_url, broker, "gw-kill")
    gateway.wait_ready()
    publisher = Publisher(broker, "edge-kill")

    messages = [
        event(site_id, devices[i % len(devices)], f"ev-kill-{i:05d}", zone_id=f"z{i % 50}")
        for i in range(400)
    ]

    def send(i: int) -> None:
        publisher.send(messages[i], str(c.event_topic(site_id, messages[i].device_id)))

    for i in range(200):
        send(i)
    publisher.flush()
    wait_for(lambda: counts(sqlite_url)["processed_messages"] == 200, 60, "the first 200")
    lock = SqliteWriteLock(sqlite_url)
    try:
        for i in range(200, 400):
            send(i)
        for i in range(100):
            send(i)  # re-sent, as an edge does that never saw its acks
        publisher.flush()

        def holding() -> bool | object:
            health = gateway.health() or {}
            return int(health.get("ingest_pending") or 0) > 0 or health

        wait_for(holding, 30, "a delivered, uncommitted batch")
        gateway.kill()
    finally:
        lock.release()
    assert counts(sqlite_url)["processed_messages"] == 200  # nothing committed while held
    gateway = start_gateway(tmp_path, sqlite_url, broker, "gw-kill")  # same session id
    try:
        gateway.wait_ready()
        wait_for(lambda: counts(sqlite_url)["processed_messages"] == 400, 60, "all 400 events")
        publisher.close()
        final = counts(sqlite_url)
        assert final["evidence"] == 400  # every event reflected once in a ticket
        assert final["dead_letters"] == 0
        assert final["tickets"] == 50  # i % 10 and i % 50: 50 distinct keys
        per_event = rows(sqlite_url, "SELECT event_id, count(*) FROM evidence GROUP BY event_id")
        assert len(per_event) == 400
        assert {n for _, n in per_event} == {1}

        def settled() -> bool | object:
            counted = accepted_and_duplicates(gateway.metrics())
            return counted == (200.0, 100.0) or counted

        # The restarted process accepted all 200 held or queued events (the held batch was
        # redelivered) and dropped exactly the 100 re-sends by msg_id.
        wait_for(settled, 10, "the new process's counters")
    finally:
        gateway.stop()


@pytest.mark.slow
def test_kill_9_in_the_middle_of_a_10000_event_burst_loses_and_duplicates_nothing(
    broker_factory: Callable[..., MosquittoBroker], tmp_path: Path, sqlite_url: str, site_id: str
) -> None:
    broker = broker_factory()
    devices = tuple(f"cam-{i}" for i in range(20))
    prepare(sqlite_url, site_id, devices)
    gateway = start_gateway(tmp_path, sqlite_url, broker, "gw-burst")
    gateway.wait_ready()
    publisher = Publisher(broker, "edge-burst")
    total = 10_000
    for i in range(total):
        device = devices[i % len(devices)]
        message = event(site_id, device, f"ev-burst-{i:05d}", zone_id=f"z{i % 100}")
        publisher.send(message, str(c.event_topic(site_id, device)))
    wait_for(lambda: counts(sqlite_url)["processed_messages"] >= 2000, 120, "a fifth", 0.05)
    gateway.kill()
    at_kill = counts(sqlite_url)["processed_messages"]
    publisher.flush(timeout=120)
    assert at_kill < total, "the burst finished before the kill: the test proves nothing"
    gateway = start_gateway(tmp_path, sqlite_url, broker, "gw-burst")
    try:
        gateway.wait_ready()
        wait_for(lambda: counts(sqlite_url)["processed_messages"] == total, 300, "all events")
        publisher.close()
        final = counts(sqlite_url)
        assert final["evidence"] == total
        assert final["dead_letters"] == 0
        assert final["tickets"] == 100  # i % 20 and i % 100: 100 distinct keys
        per_event = rows(sqlite_url, "SELECT count(*) FROM evidence GROUP BY event_id")
        assert {n for (n,) in per_event} == {1}
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
        start_gateway(
            tmp_path,
            db_url,
            broker,
            f"gw-{n}",
            policies=policies,
            sla_tick_s=0.2,
            mqtt__share_group="guanjia",  # load sharing (a broker restart loses it: docs)
        )
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
