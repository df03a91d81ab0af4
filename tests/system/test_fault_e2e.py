"""Issue 8, findings 1 and 2, end to end: real `guanjia edge run` nodes deliver through a real
Mosquitto (the shipped config, provisioned passwords and ACL) to a real `guanjia gateway run`.

- Takeover: a rogue logs in with another device's credentials and the gateway's client id
  every 0.2 s while a node delivers; every event becomes a ticket, none twice, the node's
  outbox ends empty, and the gateway's connection is never taken.
- Broker restart: the node's events are at the broker (PUBACKed, not yet acked end to end)
  when the broker is restarted with the gateway down; every event becomes a ticket, none twice,
  the outbox ends empty. With a plain subscription the broker keeps them; with a shared one it
  drops them and only the node's re-sends bring them in.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.gateway.proc import GatewayProcess, start_gateway
from tests.gateway.test_multiprocess import prepare
from tests.support.broker import SHIPPED_MOSQUITTO_CONF, MosquittoBroker
from tests.system.harness import (
    GATEWAY,
    EdgeNode,
    Rogue,
    broker_publishes,
    delivered,
    gateway_takeovers,
    outbox_events,
    password_for,
    tail,
    wait_until,
)

pytestmark = pytest.mark.mqtt

NODE, ROGUE = "cam-b", "cam-rogue"
EVENTS = 40
SNAPSHOT_EVERY = 4


def shipped_broker(factory: Callable[..., MosquittoBroker], site_id: str) -> MosquittoBroker:
    users = {user: password_for(user) for user in (GATEWAY, NODE, ROGUE)}
    return factory(
        users, site_id=site_id, gateways=frozenset({GATEWAY}), shipped_config=SHIPPED_MOSQUITTO_CONF
    )


def gateway(
    tmp_path: Path, db_url: str, broker: MosquittoBroker, **settings: object
) -> GatewayProcess:
    return start_gateway(
        tmp_path, db_url, broker, GATEWAY, password=password_for(GATEWAY), **settings
    )


def all_in(node: EdgeNode, db_url: str) -> bool | str:
    """True once every event is in the gateway's database and the outbox is empty."""
    have = {e for d, e in delivered(db_url).events if d == node.device_id}
    depth = node.depth()
    return (have == node.event_ids and depth == 0) or f"{len(have)} events in, outbox {depth}"


def check_delivered_once(node: EdgeNode, db_url: str) -> None:
    result = delivered(db_url)
    assert result.events == {(node.device_id, e) for e in node.event_ids}
    assert result.evidence_rows == result.evidence_distinct == len(node.event_ids)  # 0 duplicates
    assert result.snapshots_linked == len(node.event_ids) // SNAPSHOT_EVERY
    assert node.depth() == 0


def test_rogue_with_the_gateways_client_id_loses_no_event_of_a_real_edge_node(
    broker_factory: Callable[..., MosquittoBroker], tmp_path: Path, sqlite_url: str, site_id: str
) -> None:
    broker = shipped_broker(broker_factory, site_id)
    prepare(sqlite_url, site_id, (NODE, ROGUE))
    node = EdgeNode(tmp_path / NODE, broker, site_id, NODE)
    node.seed(EVENTS, snapshot_every=SNAPSHOT_EVERY)
    gw = gateway(tmp_path, sqlite_url, broker)
    rogue = Rogue(broker, ROGUE)
    try:
        gw.wait_ready()
        rogue.start()
        wait_until(lambda: rogue.attempts >= 3, 10, "the rogue's first logins")
        node.start()
        try:
            wait_until(lambda: all_in(node, sqlite_url), 15, "every event in, outbox empty")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{tail(node.log)}\n{tail(gw.log)}") from exc
        rogue.stop()
        assert rogue.attempts >= 5
        assert rogue.connacks >= 5  # its password is valid: it got in, under its own id
        check_delivered_once(node, sqlite_url)
        # The broker never handed the gateway's session to the rogue.
        assert gateway_takeovers(broker) == 0
        health = gw.health()
        assert health is not None
        assert health["mqtt_connected"] is True
        print(f"takeover: {EVENTS} events, {broker_publishes(broker, NODE)} publishes")
        assert node.stop() == 0
    finally:
        rogue.stop()
        node.stop()
        gw.stop()


@pytest.mark.parametrize("share_group", [None, "guanjia"], ids=["plain", "shared"])
def test_broker_restart_with_the_gateway_down_loses_no_event_of_a_real_edge_node(
    broker_factory: Callable[..., MosquittoBroker],
    tmp_path: Path,
    sqlite_url: str,
    site_id: str,
    share_group: str | None,
) -> None:
    """Half the events reach the broker before the restart, half after it (the node was
    off meanwhile), all while the gateway is down. A shared subscription is gone after the
    restart, so the broker drops the second half: only the node's re-sends bring it in."""
    broker = shipped_broker(broker_factory, site_id)
    prepare(sqlite_url, site_id, (NODE,))
    settings = {"mqtt__share_group": share_group} if share_group else {}
    half = EVENTS // 2
    node = EdgeNode(tmp_path / NODE, broker, site_id, NODE)
    node.seed(half, snapshot_every=SNAPSHOT_EVERY)
    rows = half + half // SNAPSHOT_EVERY
    first = gateway(tmp_path, sqlite_url, broker, **settings)
    try:
        first.wait_ready()  # its session and subscription now exist at the broker
    finally:
        first.stop()
    second: GatewayProcess | None = None
    try:
        node.start()
        wait_until(lambda: broker_publishes(broker, NODE) >= half, 15, "the first half published")
        # At the broker (PUBACKed), not acked end to end: still in the outbox.
        assert node.depth() == rows
        broker.restart()  # SIGTERM: Mosquitto saves its sessions, then starts again
        assert node.stop() == 0
        assert node.depth() == rows
        node.seed(half, snapshot_every=SNAPSHOT_EVERY, first=half)
        before, outstanding = broker_publishes(broker, NODE), outbox_events(node.outbox_path)
        node.start()
        wait_until(
            lambda: broker_publishes(broker, NODE) >= before + outstanding,
            15,
            "the node's outbox published after the restart",
        )
        second = gateway(tmp_path, sqlite_url, broker, **settings)
        second.wait_ready()
        try:
            wait_until(lambda: all_in(node, sqlite_url), 15, "every event in, outbox empty")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{tail(node.log)}\n{tail(second.log)}") from exc
        check_delivered_once(node, sqlite_url)
        publishes = broker_publishes(broker, NODE)
        print(f"broker restart ({share_group}): {EVENTS} events, {publishes} publishes")
        assert node.stop() == 0
    finally:
        node.stop()
        if second is not None:
            second.stop()
