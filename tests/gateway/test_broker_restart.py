"""Issue 8, finding 2: the gateway's subscription survives a broker restart.

Mosquitto 2.0 (persistence on) keeps plain persistent subscriptions across a graceful
restart and loses shared ones (``$share/…``), so events published after the restart, before
the gateway is back, went nowhere. A stock sensor node never re-sends what the broker
PUBACKed, so nothing but the gateway's own session can keep them. The default (one replica)
is a plain persistent subscription; several replicas each take a disjoint list of sites.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

import contract as c
from gateway.mqtt import MqttIngest
from gateway.mqtt_settings import MqttSettings
from tests.gateway.factories import event
from tests.gateway.proc import GatewayProcess, Publisher, start_gateway, wait_for
from tests.gateway.test_multiprocess import counts, prepare, rows
from tests.support.broker import MosquittoBroker

pytestmark = pytest.mark.mqtt


def register_session(broker: MosquittoBroker, client_id: str, sites: list[str]) -> None:
    """What a gateway's first start leaves at the broker (its session and subscriptions),
    made in-process by the same MqttIngest code, to spare a process start."""

    async def once() -> None:
        async def nothing(_batch: object) -> None:
            return None

        settings = MqttSettings(
            host=broker.host, port=broker.port, client_id=client_id, sites=sites
        )
        ingest = MqttIngest(settings, nothing)
        task = asyncio.create_task(ingest.run())
        await asyncio.wait_for(ingest.connected.wait(), 10)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(once())


def publish_events(broker: MosquittoBroker, site_id: str, device: str, n: int, tag: str) -> None:
    publisher = Publisher(broker, f"pub-{tag}")
    topic = str(c.event_topic(site_id, device))
    for i in range(n):
        publisher.send(event(site_id, device, f"ev-{tag}-{i:04d}", zone_id=f"z{i}"), topic)
    publisher.close()  # every PUBACK in: the publisher forgets them


def test_events_published_after_a_broker_restart_while_the_gateway_is_down_all_become_tickets(
    broker_factory: Callable[..., MosquittoBroker], tmp_path: Path, sqlite_url: str, site_id: str
) -> None:
    broker = broker_factory()
    prepare(sqlite_url, site_id, ("cam-a",))
    register_session(broker, "gw-restart", [])  # as a first `gateway run` would
    broker.restart()  # graceful (SIGTERM): Mosquitto writes its persistence file
    publish_events(broker, site_id, "cam-a", 50, "after")
    gateway = start_gateway(tmp_path, sqlite_url, broker, "gw-restart")
    try:
        gateway.wait_ready()
        wait_for(lambda: counts(sqlite_url)["tickets"] == 50, 30, "50 tickets")
        assert counts(sqlite_url)["evidence"] == 50
    finally:
        gateway.stop()


def test_two_replicas_on_disjoint_sites_survive_a_broker_restart(
    broker_factory: Callable[..., MosquittoBroker], tmp_path: Path, sqlite_url: str, site_id: str
) -> None:
    broker = broker_factory()
    site_a, site_b = f"{site_id}a", f"{site_id}b"
    prepare(sqlite_url, site_a, ("cam-a",))
    prepare(sqlite_url, site_b, ("cam-b",))

    register_session(broker, "gw-r1", [site_a])
    register_session(broker, "gw-r2", [site_b])
    broker.restart()
    publish_events(broker, site_a, "cam-a", 25, "a")
    publish_events(broker, site_b, "cam-b", 25, "b")
    gateways: list[GatewayProcess] = [
        start_gateway(tmp_path, sqlite_url, broker, "gw-r1", mqtt__sites=[site_a]),
        start_gateway(tmp_path, sqlite_url, broker, "gw-r2", mqtt__sites=[site_b]),
    ]
    try:
        for gw in gateways:
            gw.wait_ready()
        wait_for(lambda: counts(sqlite_url)["tickets"] == 50, 30, "50 tickets")
        # Each replica took exactly its own site's events.
        per_site = {
            row[0]: row[1]
            for row in rows(sqlite_url, "SELECT site_id, count(*) FROM tickets GROUP BY site_id")
        }
        assert per_site == {site_a: 25, site_b: 25}
        metrics = [gw.metrics() for gw in gateways]
        for text in metrics:
            assert 'guanjia_ingest_messages_total{channel="event",outcome="accepted"} 25.0' in text
    finally:
        for gw in gateways:
            gw.stop()


@pytest.mark.slow
def test_ten_broker_restarts_under_a_live_publisher_every_event_a_ticket(
    broker_factory: Callable[..., MosquittoBroker], tmp_path: Path, sqlite_url: str, site_id: str
) -> None:
    """Soak: a running gateway and a device that never re-sends; the broker is restarted
    gracefully ten times, with events published before each restart."""
    broker = broker_factory()
    prepare(sqlite_url, site_id, ("cam-a",))
    gateway = start_gateway(tmp_path, sqlite_url, broker, "gw-soak", mqtt__reconnect_s=0.2)
    try:
        gateway.wait_ready()
        publisher = Publisher(broker, "pub-soak")
        publisher.client.reconnect_delay_set(1, 1)
        topic = str(c.event_topic(site_id, "cam-a"))
        per_round, rounds = 30, 10
        for r in range(rounds):
            for i in range(per_round):
                n = r * per_round + i
                publisher.send(event(site_id, "cam-a", f"ev-soak-{n:05d}", zone_id=f"z{n}"), topic)
            publisher.flush()  # the broker has them all (PUBACK): the device forgets them
            broker.restart()
            wait_for(publisher.client.is_connected, 30, "the device back on the broker")
        publisher.close()
        total = per_round * rounds
        wait_for(lambda: counts(sqlite_url)["tickets"] == total, 120, f"{total} tickets")
        assert counts(sqlite_url)["evidence"] == total
    finally:
        gateway.stop()
