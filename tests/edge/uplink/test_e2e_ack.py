"""End-to-end delivery: a row leaves the outbox only when the gateway's Ack names it.

The gateway is played by `tests.support.ack_gateway.AckingGateway`, a real MQTT client that acks
what it "commits" and can withhold acks (a broker that PUBACKed and then lost the message).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import contract as c
from edge.outbox import Outbox
from edge.uplink import AckPolicy, Uplink
from tests.edge.uplink.support import DEVICE, Subscriber, link_options, make_event, wait_until
from tests.support.ack_gateway import AckingGateway
from tests.support.broker import MosquittoBroker

pytestmark = pytest.mark.mqtt

FAST = AckPolicy(timeout_s=0.5, max_timeout_s=2.0, window=1000)


@pytest.fixture
def running() -> Iterator[list[Callable[[], None]]]:
    stops: list[Callable[[], None]] = []
    yield stops
    for stop in reversed(stops):
        stop()


def _uplink(
    broker: MosquittoBroker,
    site_id: str,
    db: Path,
    running: list[Callable[[], None]],
    policy: AckPolicy = FAST,
) -> tuple[Uplink, Outbox]:
    outbox = Outbox(db)
    uplink = Uplink(link_options(broker, site_id), outbox, acks=policy)
    uplink.start()
    running.append(outbox.close)
    running.append(uplink.stop)
    return uplink, outbox


def test_puback_alone_keeps_the_row_until_an_ack_names_it(
    mqtt_broker: MosquittoBroker, site_id: str, tmp_path: Path, running: list[Callable[[], None]]
) -> None:
    # No gateway: the broker PUBACKs every publish, nobody acks end to end.
    sub = Subscriber(mqtt_broker, [c.subscription(c.Channel.EVENT, site_id=site_id)]).start()
    running.append(sub.stop)
    uplink, outbox = _uplink(mqtt_broker, site_id, tmp_path / "o.db", running, AckPolicy())
    for n in range(10):
        uplink.send_event(*make_event(site_id, n))
    wait_until(lambda: len(sub.received("event")) == 10, 10, "10 events on the broker")
    wait_until(lambda: uplink.stats().awaiting_ack == 10, 5, "10 PUBACKed, awaiting acks")
    assert outbox.stats().depth == 10
    # MQTT 5: Mosquitto announces Receive Maximum 20, below the configured 32 in flight.
    assert uplink.link.send_window == 20
    assert uplink.stats().acked == 0

    # The Ack the gateway would send for these, published by hand: the rows go.
    rows = outbox.peek(limit=100)
    ack = c.Ack(
        ts=time.time(), site_id=site_id, device_id=DEVICE, msg_ids=[r.msg_id for r in rows[:4]]
    )
    sub.publish(str(c.ack_topic(site_id, DEVICE)), c.encode(ack))
    wait_until(lambda: outbox.stats().depth == 6, 5, "4 rows deleted by the ack")
    assert [r.seq for r in outbox.peek(limit=100)] == [r.seq for r in rows[4:]]
    assert uplink.stats().acked == 4


def test_ack_for_another_device_is_ignored_and_logged(
    mqtt_broker: MosquittoBroker,
    site_id: str,
    tmp_path: Path,
    running: list[Callable[[], None]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    sub = Subscriber(mqtt_broker, [c.subscription(c.Channel.EVENT, site_id=site_id)]).start()
    running.append(sub.stop)
    uplink, outbox = _uplink(mqtt_broker, site_id, tmp_path / "o.db", running, AckPolicy())
    event, _ = make_event(site_id, 1)
    uplink.send_event(event)
    wait_until(lambda: uplink.stats().awaiting_ack == 1, 10, "PUBACKed")
    caplog.set_level(logging.WARNING, logger="edge.delivery")
    topic = str(c.ack_topic(site_id, DEVICE))
    for site, device in ((site_id, "someone-else"), ("other-site", DEVICE)):
        ack = c.Ack(ts=time.time(), site_id=site, device_id=device, msg_ids=[event.msg_id])
        sub.publish(topic, c.encode(ack))
    sub.publish(topic, b'{"schema": "guanjia.ack/1"}')  # not an Ack at all
    wait_until(lambda: caplog.text.count("ignored an ack") >= 3, 5, "three ignored acks")
    assert outbox.stats().depth == 1
    good = c.Ack(ts=time.time(), site_id=site_id, device_id=DEVICE, msg_ids=[event.msg_id])
    sub.publish(topic, c.encode(good))
    wait_until(lambda: outbox.stats().depth == 0, 5, "the right ack deletes the row")


def test_withheld_acks_are_resent_until_acked_none_lost(
    mqtt_broker: MosquittoBroker, site_id: str, tmp_path: Path, running: list[Callable[[], None]]
) -> None:
    gateway = AckingGateway(mqtt_broker, site_id, withhold_first=15).start()
    running.append(gateway.stop)
    uplink, outbox = _uplink(mqtt_broker, site_id, tmp_path / "o.db", running)
    produced = [make_event(site_id, n, snapshot=n % 5 == 0) for n in range(40)]
    for event, jpeg in produced:
        uplink.send_event(event, jpeg)
    msg_ids = {event.msg_id for event, _ in produced}
    snapshot_ids = {e.snapshot.snapshot_id for e, _ in produced if e.snapshot is not None}
    wait_until(lambda: outbox.stats().depth == 0, 30, "every row acked end to end")

    assert len(gateway.withheld) == 15
    assert set(gateway.committed_msg_ids) == msg_ids  # none lost
    assert set(gateway.committed_snapshot_ids) == snapshot_ids
    # Every withheld message was re-sent (a second copy arrived) and then committed.
    for key in gateway.withheld:
        copies = gateway.received_msg_ids[key] or gateway.received_snapshot_ids[key]
        assert copies >= 2, key
        assert gateway.committed(key)
    # Duplicates only by msg_id: nothing arrived that was not produced.
    assert set(gateway.received_msg_ids) == msg_ids
    assert uplink.stats().acked == 40 + len(snapshot_ids)
    assert uplink.stats().resent >= 15


def test_resends_back_off_while_the_gateway_stays_silent(
    mqtt_broker: MosquittoBroker, site_id: str, tmp_path: Path, running: list[Callable[[], None]]
) -> None:
    gateway = AckingGateway(mqtt_broker, site_id, acking=False).start()
    running.append(gateway.stop)
    policy = AckPolicy(timeout_s=0.2, max_timeout_s=0.8, window=1000)
    uplink, outbox = _uplink(mqtt_broker, site_id, tmp_path / "o.db", running, policy)
    event, _ = make_event(site_id, 1)
    uplink.send_event(event)
    # Attempts at ~0, 0.2, 0.6, 1.4, 2.2, 3.0 s (waits 0.2, 0.4, 0.8 capped, 0.8 ...).
    wait_until(lambda: gateway.received_msg_ids[event.msg_id] >= 4, 10, "some re-sends")
    first = gateway.received_msg_ids[event.msg_id]
    time.sleep(1.6)  # counting what does NOT happen: no condition to wait on
    # With the cap reached, 1.6 s hold two more attempts at most (a fixed 0.2 s timeout
    # would send eight): never a storm.
    assert gateway.received_msg_ids[event.msg_id] - first <= 3
    gateway.set_acking(True)
    wait_until(lambda: outbox.stats().depth == 0, 5, "acked once the gateway is back")


def test_awaiting_ack_window_bounds_what_is_on_the_broker(
    mqtt_broker: MosquittoBroker, site_id: str, tmp_path: Path, running: list[Callable[[], None]]
) -> None:
    gateway = AckingGateway(mqtt_broker, site_id, acking=False).start()
    running.append(gateway.stop)
    policy = AckPolicy(timeout_s=0.5, max_timeout_s=1.0, window=20)
    uplink, outbox = _uplink(mqtt_broker, site_id, tmp_path / "o.db", running, policy)
    for n in range(100):
        uplink.send_event(*make_event(site_id, n))
    wait_until(lambda: len(gateway.received_msg_ids) == 20, 10, "a window's worth sent")
    # A probe (the oldest row) is re-sent, but no new row while the window is full of
    # unacked ones.
    wait_until(lambda: gateway.received_total() >= 21, 10, "a probe re-sent")
    wait_until(lambda: uplink.stats().awaiting_ack == 20, 5, "20 PUBACKed, none acked")
    assert len(gateway.received_msg_ids) == 20
    assert outbox.stats().depth == 100
    gateway.set_acking(True)
    wait_until(lambda: outbox.stats().depth == 0, 20, "the rest flows once acks come")
    assert len(gateway.committed_msg_ids) == 100


def test_a_silent_gateway_gets_probes_not_window_copies_then_everything_flows(
    mqtt_broker: MosquittoBroker, site_id: str, tmp_path: Path, running: list[Callable[[], None]]
) -> None:
    """A gateway outage, accelerated: the broker queues for the gateway, nobody acks.

    Re-sending the whole window on the timer would pile window x rounds copies into the
    broker's queue for the gateway (and then Mosquitto drops new QoS 1 messages, stock
    sensors' fire telemetry included). With no Ack since the rows were sent only the oldest
    row is re-sent, once per backoff period; when an Ack comes back everything is re-sent.
    """
    gateway = AckingGateway(mqtt_broker, site_id, acking=False).start()
    running.append(gateway.stop)
    policy = AckPolicy(timeout_s=0.05, max_timeout_s=0.2, window=50)
    uplink, outbox = _uplink(mqtt_broker, site_id, tmp_path / "o.db", running, policy)
    produced = [make_event(site_id, n, snapshot=n % 10 == 0) for n in range(80)]
    for event, jpeg in produced:
        uplink.send_event(event, jpeg)
    wait_until(lambda: gateway.received_total() >= 50, 10, "a window's worth sent")
    # 3 s of outage = 15 periods at the 0.2 s cap: a window re-sent per period would be
    # 50 + 15 x 50 = 800 copies. Probes: one row per period, about 15.
    wait_until(lambda: uplink.stats().resent >= 10, 10, "probes keep going")
    time.sleep(1.0)  # counting what does NOT happen: no condition to wait on
    silent_total = gateway.received_total()
    resent = uplink.stats().resent
    assert len(gateway.received_msg_ids) + len(gateway.received_snapshot_ids) == 50
    assert silent_total - 50 == resent
    # Only the probe (one row, the oldest) was re-sent, never the window.
    copies = [
        n
        for n in [*gateway.received_msg_ids.values(), *gateway.received_snapshot_ids.values()]
        if n > 1
    ]
    assert len(copies) == 1, copies
    assert outbox.stats().depth == 80 + 8

    gateway.set_acking(True)
    wait_until(lambda: outbox.stats().depth == 0, 20, "everything acked once acks resume")
    assert set(gateway.committed_msg_ids) == {event.msg_id for event, _ in produced}
    assert len(gateway.committed_snapshot_ids) == 8
