"""Acknowledge after commit, against a real Mosquitto; end-to-end Acks only after commit.

`gateway.mqtt_link` uses paho's public manual acknowledgement (``Client(manual_ack=True)``,
``ack(mid, qos)``) and `gateway.mqtt` acks each message only after its commit. These tests
fail if that stops working (an ack before the commit turns two of them red): messages a
gateway received but never committed must come back after it dies, and messages it
committed must not. The device's Ack (…/ack, naming committed msg ids) must never leave
the gateway before the commit: a device deletes what an Ack names.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

import contract as c
from gateway.mqtt import MqttIngest
from gateway.mqtt_settings import MqttSettings
from gateway.store import StoreUnavailableError
from tests.gateway.factories import event
from tests.gateway.proc import AckListener, SqliteWriteLock, start_gateway, wait_for
from tests.gateway.test_multiprocess import counts, prepare, rows
from tests.support.broker import MosquittoBroker
from tests.support.mqtt_tap import MqttTap

pytestmark = pytest.mark.mqtt

Batch = Sequence[tuple[str, bytes]]


def publish(broker: MosquittoBroker, topic: str, payloads: list[bytes]) -> None:
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="ack-test-pub")
    client.connect(broker.host, broker.port)
    client.loop_start()
    infos = [client.publish(topic, p, qos=1) for p in payloads]
    for info in infos:
        info.wait_for_publish(10)
    client.loop_stop()
    client.disconnect()


async def run_until(ingest: MqttIngest, done: asyncio.Event, seconds: float) -> None:
    """Run the ingest until `done` (or the timeout), then cancel it as a crash would."""
    task = asyncio.create_task(ingest.run())
    try:
        await asyncio.wait_for(done.wait(), seconds)
    except TimeoutError:
        pass
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def settings(broker: MosquittoBroker, site_id: str) -> MqttSettings:
    return MqttSettings(
        host=broker.host,
        port=broker.port,
        client_id=f"gw-ack-{site_id}",
        sites=[site_id],
        reconnect_s=0.2,
    )


def test_uncommitted_messages_are_redelivered_and_committed_ones_are_not(
    broker_factory: Callable[..., MosquittoBroker], site_id: str
) -> None:
    broker = broker_factory()
    mqtt = settings(broker, site_id)
    topic = f"guanjia/v1/{site_id}/cam-a/event"
    payloads = [f"m{i}".encode() for i in range(5)]

    async def scenario() -> tuple[list[bytes], list[bytes], list[bytes]]:
        # 1. Register the persistent session, then park the messages while it is away.

        async def nothing(_batch: Batch) -> None:
            return None

        first = MqttIngest(mqtt, nothing)
        task = asyncio.create_task(first.run())
        await asyncio.wait_for(first.connected.wait(), 10)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await asyncio.to_thread(publish, broker, topic, payloads)

        # 2. A gateway that receives them and dies before its commit returns.
        crashed: list[bytes] = []
        got_all = asyncio.Event()

        async def hang(batch: Batch) -> None:
            crashed.extend(p for _, p in batch)
            if len(crashed) >= len(payloads):
                got_all.set()
            await asyncio.Event().wait()  # the commit never returns

        await run_until(MqttIngest(mqtt, hang), got_all, 10)

        # 3. Restarted with the same session: everything comes back; this time it commits.
        committed: list[bytes] = []
        got_again = asyncio.Event()

        async def commit(batch: Batch) -> None:
            committed.extend(p for _, p in batch)
            if len(committed) >= len(payloads):
                got_again.set()

        await run_until(MqttIngest(mqtt, commit), got_again, 10)

        # 4. Once more: the committed messages were acknowledged, so nothing comes back.
        after: list[bytes] = []
        never = asyncio.Event()

        async def record(batch: Batch) -> None:
            after.extend(p for _, p in batch)

        await run_until(MqttIngest(mqtt, record), never, 1.5)
        return crashed, committed, after

    crashed, committed, after = asyncio.run(scenario())
    assert sorted(crashed) == sorted(payloads)
    assert sorted(committed) == sorted(payloads)
    assert after == []


def test_database_outage_holds_the_batch_and_retries_it(
    broker_factory: Callable[..., MosquittoBroker], site_id: str
) -> None:
    broker = broker_factory()
    mqtt = settings(broker, site_id)
    topic = f"guanjia/v1/{site_id}/cam-a/event"
    payloads = [f"m{i}".encode() for i in range(3)]

    async def scenario() -> tuple[int, list[bytes]]:
        failures = 0
        committed: list[bytes] = []
        done = asyncio.Event()

        async def flaky(batch: Batch) -> None:
            nonlocal failures
            if failures < 2:
                failures += 1
                raise StoreUnavailableError("database is down")
            committed.extend(p for _, p in batch)
            if len(committed) >= len(payloads):
                done.set()

        ingest = MqttIngest(mqtt, flaky)
        task = asyncio.create_task(ingest.run())
        await asyncio.wait_for(ingest.connected.wait(), 10)
        await asyncio.to_thread(publish, broker, topic, payloads)
        try:
            await asyncio.wait_for(done.wait(), 15)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        return failures, committed

    failures, committed = asyncio.run(scenario())
    assert failures == 2
    assert sorted(committed) == sorted(payloads)  # nothing lost to the outage, nothing twice


def test_acks_leave_only_after_the_commit_and_name_what_it_holds(
    broker_factory: Callable[..., MosquittoBroker], tmp_path: Path, sqlite_url: str, site_id: str
) -> None:
    """The gateway holds an event it cannot commit (the test holds SQLite's write lock) and
    is killed -9 there: no Ack may have gone. Restarted, it commits the redelivered event,
    and the Ack arrives when the row is already there."""
    broker = broker_factory()
    prepare(sqlite_url, site_id, ("cam-a",))

    def committed(msg_id: str) -> bool:
        found = rows(sqlite_url, f"SELECT 1 FROM processed_messages WHERE msg_id = '{msg_id}'")
        return bool(found)

    device = AckListener(broker, site_id, "cam-a", check=committed)
    gateway = start_gateway(tmp_path, sqlite_url, broker, "gw-acks")
    lock = None
    try:
        gateway.wait_ready()
        first = event(site_id, "cam-a", "ev-ack-0001")
        device.client.publish(str(c.event_topic(site_id, "cam-a")), c.encode(first), qos=1)
        wait_for(lambda: first.msg_id in device.msg_ids(), 15, "the first ack")
        assert device.committed_at_arrival == [True]

        lock = SqliteWriteLock(sqlite_url)
        held = event(site_id, "cam-a", "ev-ack-0002", zone_id="zone-b")
        device.client.publish(str(c.event_topic(site_id, "cam-a")), c.encode(held), qos=1)
        wait_for(lambda: (gateway.health() or {}).get("ingest_pending") == 1, 15, "the held batch")
        gateway.kill()
        assert held.msg_id not in device.msg_ids()  # nothing acked what is not committed
        lock.release()
        lock = None

        gateway = start_gateway(tmp_path, sqlite_url, broker, "gw-acks")
        gateway.wait_ready()
        wait_for(lambda: held.msg_id in device.msg_ids(), 15, "the ack after the restart")
        assert device.committed_at_arrival == [True, True]
        assert counts(sqlite_url)["tickets"] == 2
    finally:
        if lock is not None:
            lock.release()
        gateway.stop()
        device.close()


async def test_two_batches_in_flight_are_acknowledged_in_order_each_after_its_own_commit(
    broker_factory: Callable[..., MosquittoBroker], site_id: str
) -> None:
    """`MqttIngest(depth=2)` (a receiver process's edge): the next batch is handed over while
    the last one is being applied, yet no message is acknowledged before its own batch's
    `on_batch` returned — not even when the later batch finished first — and the PUBACKs
    leave in the order of the PUBLISHes (seen on the wire, between paho and Mosquitto)."""
    broker = broker_factory()
    tap = MqttTap(broker.host, broker.port)
    await tap.start()
    mqtt = settings(broker, site_id).model_copy(update={"port": tap.port, "batch_max": 4})
    topic = f"guanjia/v1/{site_id}/cam-a/event"
    payloads = [f"m{i}".encode() for i in range(8)]
    calls: list[list[bytes]] = []
    returned: list[int] = []
    release_first = asyncio.Event()
    second_returned = asyncio.Event()

    async def hold_the_first(batch: Batch) -> None:
        index = len(calls)
        calls.append([payload for _, payload in batch])
        if index == 0:
            await release_first.wait()
        returned.append(index)
        if index == 1:
            second_returned.set()

    ingest = MqttIngest(mqtt, hold_the_first, filters=[topic], depth=2)
    task = asyncio.create_task(ingest.run())
    try:
        await asyncio.wait_for(ingest.connected.wait(), 10)
        await asyncio.to_thread(publish, broker, topic, payloads)
        await asyncio.wait_for(second_returned.wait(), 10)
        await asyncio.sleep(0.5)  # time for any PUBACK to reach the wire
        assert returned == [1], "the second batch finished while the first is held"
        assert len(calls) == 2, "two batches in flight, no third taken"
        assert all(len(batch) <= 2 for batch in calls), "each batch at most batch_max // 2"
        assert tap.pubacks == [], "acknowledged before the first batch's on_batch returned"
        assert ingest.pending == len(calls[0]) + len(calls[1])

        release_first.set()
        await asyncio.wait_for(tap.wait_pubacks(len(payloads)), 10)
        await asyncio.sleep(0.2)  # nothing acknowledged twice
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await tap.close()
    assert sorted(p for batch in calls for p in batch) == sorted(payloads)
    published = dict(tap.publishes)
    assert tap.pubacks == [pid for pid, _ in tap.publishes], "PUBACKs not in PUBLISH order"
    first = len(calls[0])
    assert [published[pid] for pid in tap.pubacks[:first]] == calls[0]
    assert [published[pid] for pid in tap.pubacks] == payloads
    assert ingest.pending == 0
