"""Ingest workers (`mqtt.ingest_processes`): several processes share the event subscription.

- A shared subscription hands one device's messages to different workers, so a track's
  start, updates and end may commit in any order: every order of one track's messages must
  leave the same tickets, links, evidence and audit trail (on SQLite and PostgreSQL).
- A real `guanjia gateway run` with two workers: every event is applied once, each
  device gets an Ack for every message (after the commit: the database holds it when the
  Ack arrives), the result equals applying the same messages in publication order, and
  the gateway process itself takes no events (status stays with it).
- The settings: workers share the event filter, the gateway process keeps the rest.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from pydantic import ValidationError
from sqlalchemy import create_engine, text

import contract as c
from gateway.ingest import IngestHandler
from gateway.metrics import WorkerCounters
from gateway.mqtt_settings import MqttSettings
from gateway.sla import DEFAULT_POLICIES
from gateway.store import Store, database_url, migrate
from tests.gateway.factories import T0, event, seed_site, topic_of
from tests.gateway.proc import AckListener, Publisher, start_gateway, wait_for
from tests.gateway.test_ingest_batch import fresh_db
from tests.support.broker import MosquittoBroker

SITE = "site-w"
DEVICES = ("cam-a", "cam-b", "cam-c", "cam-d")

FINAL_STATE = {
    "tickets": "SELECT dedup_key, state, event_count, resolved_by, active_key,"
    " condition_cleared_at IS NOT NULL FROM tickets ORDER BY dedup_key",
    "links": "SELECT event_id, ended, last_seq FROM ticket_events ORDER BY event_id",
    "evidence": "SELECT msg_id, phase, seq FROM evidence ORDER BY msg_id",
    "audit": "SELECT action, from_state, to_state FROM audit_log ORDER BY action, from_state",
    "processed": "SELECT msg_id FROM processed_messages ORDER BY msg_id",
}


def final_state(db_url: str) -> dict[str, list[tuple[Any, ...]]]:
    engine = create_engine(database_url(db_url))
    with engine.connect() as conn:
        out = {k: [tuple(r) for r in conn.execute(text(q))] for k, q in FINAL_STATE.items()}
    engine.dispose()
    return out


def track(device: str, event_id: str, updates: int, zone: str) -> list[tuple[str, bytes]]:
    phases = [c.EventPhase.START] + [c.EventPhase.UPDATE] * updates + [c.EventPhase.END]
    messages = [
        event(SITE, device, event_id, phase=phase, seq=seq, zone_id=zone, ts=T0 + seq)
        for seq, phase in enumerate(phases)
    ]
    return [(topic_of(m), c.encode(m)) for m in messages]


async def stale_worker_session(broker: MosquittoBroker, client_id: str) -> None:
    async with aiomqtt.Client(
        broker.host, broker.port, identifier=client_id, clean_session=False
    ) as client:
        await client.subscribe(MqttSettings().ingest_worker(3).worker_filters[0], qos=1)


def worker_events(metrics: str) -> dict[str, float]:
    """Events each worker counted, from the gateway's /metrics text."""
    found: dict[str, float] = {}
    for line in metrics.splitlines():
        if line.startswith("guanjia_worker_ingest_messages_total{") and 'channel="event"' in line:
            worker = line.split('worker="', 1)[1].split('"', 1)[0]
            found[worker] = found.get(worker, 0.0) + float(line.rsplit(" ", 1)[1])
    return found


def apply_in_order(db_url: str, messages: list[tuple[str, bytes]]) -> None:
    store = Store(db_url)
    seed_site(store, SITE, DEVICES)
    handler = IngestHandler(store, dict(DEFAULT_POLICIES), cooldown_s=600)
    try:
        for i, (topic, payload) in enumerate(messages):
            handler.handle(topic, payload, T0 + 10 + i)
    finally:
        store.close()


def test_every_order_of_one_track_leaves_the_same_state(
    db_url: str, request: pytest.FixtureRequest
) -> None:
    messages = track("cam-a", "ev-order-0001", 2, "zone-a")
    states = []
    orders = list(itertools.permutations(range(len(messages))))
    # Every order on SQLite; on PostgreSQL (slower to set up) a spread of them.
    if not db_url.startswith("sqlite"):
        orders = orders[:: max(1, len(orders) // 4)]
    for n, order in enumerate(orders):
        url = fresh_db(db_url, f"order{n}", request)
        apply_in_order(url, [messages[i] for i in order])
        states.append(final_state(url))
    first = states[0]
    assert len(first["tickets"]) == 1
    assert first["tickets"][0][1] == "resolved", first["tickets"]
    assert len(first["evidence"]) == len(messages)
    for state in states[1:]:
        assert state == first


def test_workers_share_the_events_and_the_gateway_keeps_the_rest() -> None:
    plain = MqttSettings(ingest_processes=2, client_id="gw-1")
    # Without a share group only the workers share; the gateway's own stay plain (kept
    # across a broker restart).
    assert plain.ingest_worker(1).worker_filters == ["$share/guanjia-ingest/guanjia/v1/+/+/event"]
    assert plain.gateway_filters(plain.subscriptions) == [
        f for f in plain.subscriptions if not f.endswith("/event")
    ]
    assert MqttSettings(client_id="gw-1").gateway_filters(plain.subscriptions) == (
        plain.subscriptions
    )
    with pytest.raises(ValidationError, match="ingest_processes"):
        MqttSettings(ingest_processes=0)
    settings = MqttSettings(ingest_processes=2, share_group="g", client_id="gw-1")
    worker = settings.ingest_worker(2)
    assert worker.session_id == "gw-1-w2"
    assert worker.worker_filters == ["$share/g/guanjia/v1/+/+/event"]
    assert not any(f.endswith("/event") for f in settings.gateway_filters(settings.subscriptions))
    with_account = MqttSettings(ingest_processes=2, share_group="g", username="gateway-1")
    assert with_account.ingest_worker(1).username == "gateway-1-w1"


@pytest.mark.mqtt
def test_two_workers_apply_every_event_once_and_ack_it_after_the_commit(
    broker_factory: Callable[..., MosquittoBroker], tmp_path: Path, sqlite_url: str
) -> None:
    broker = broker_factory()
    migrate(sqlite_url)
    store = Store(sqlite_url)
    seed_site(store, SITE, DEVICES)
    store.close()
    # One key per track: the final state then does not depend on how tracks interleave.
    messages = [
        pair
        for i in range(60)
        for pair in track(DEVICES[i % len(DEVICES)], f"ev-work-{i:04d}", i % 3, f"z{i}")
    ]
    engine = create_engine(database_url(sqlite_url))

    def committed(msg_id: str) -> bool:
        with engine.connect() as conn:
            sql = text("SELECT 1 FROM processed_messages WHERE msg_id = :m")
            return conn.execute(sql, {"m": msg_id}).first() is not None

    # A worker session an earlier configuration left in the group: the gateway ends it, or
    # it would be handed a third of the events and never read them.
    asyncio.run(stale_worker_session(broker, "gw-work-w3"))
    listeners = {d: AckListener(broker, SITE, d, check=committed) for d in DEVICES}
    gateway = start_gateway(tmp_path, sqlite_url, broker, "gw-work", mqtt__ingest_processes=2)
    try:
        gateway.wait_ready()
        wait_for(
            lambda: all(f"as gw-work-w{i}" in broker.log_path.read_text() for i in (1, 2)),
            30,
            "both workers connected",
        )
        wait_for(lambda: "gw-work-w3" in gateway.log.read_text(), 30, "the stale session ended")
        publisher = Publisher(broker, "edge-work")
        for topic, payload in messages:
            publisher.client.publish(topic, payload, qos=1)
        sent = Counter(c.decode(c.DetectionEvent, p).msg_id for _, p in messages)
        wait_for(
            lambda: set().union(*(lst.msg_ids() for lst in listeners.values())) == set(sent),
            60,
            "an Ack for every event",
        )
        publisher.close()
        # The workers report their counters to the gateway process, which serves them.
        wait_for(
            lambda: sum(worker_events(gateway.metrics()).values()) >= len(messages),
            30,
            "the workers' counters on /metrics",
        )
        metrics = gateway.metrics()
    finally:
        gateway.stop()
        for listener in listeners.values():
            listener.close()
        engine.dispose()
    assert all(all(lst.committed_at_arrival) for lst in listeners.values())
    # The gateway process's own session takes no events while workers do; each worker's
    # count is served with its label, and together they count every event once.
    assert 'guanjia_ingest_messages_total{channel="event"' not in metrics
    per_worker = worker_events(metrics)
    assert set(per_worker) == {"1", "2"}, metrics
    assert sum(per_worker.values()) == len(messages)
    expected_url = sqlite_url.removesuffix(".db") + "-expected.db"
    migrate(expected_url)
    apply_in_order(expected_url, messages)
    got, expected = final_state(sqlite_url), final_state(expected_url)
    assert got == expected


def test_a_restarted_workers_counters_carry_on_from_its_last_report() -> None:
    counters = WorkerCounters()
    applied = ("guanjia_ingest_messages", {"channel": "event", "outcome": "applied"})
    counters.update(1, [(*applied, 40.0)])
    counters.update(2, [(*applied, 7.0), ("not_a_worker_counter", {}, 1.0)])
    counters.restarted(1)  # worker 1 died; its successor counts from zero
    counters.update(1, [(*applied, 5.0)])
    samples = {
        (s.labels["worker"], s.labels.get("outcome")): s.value
        for family in counters.collect()
        for s in family.samples
        if s.name.endswith("_total")
    }
    assert samples == {("1", "applied"): 45.0, ("2", "applied"): 7.0}
