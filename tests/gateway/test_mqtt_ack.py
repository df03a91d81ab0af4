"""Acknowledge after commit, against a real Mosquitto.

aiomqtt has no public manual acknowledgement (empicano/aiomqtt#345), so `gateway.mqtt`
switches its private paho client to manual acks. These tests fail if that stops working:
messages a gateway received but never committed must come back after it dies, and messages
it committed must not.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from gateway.config import MqttSettings
from gateway.mqtt import MqttIngest
from gateway.store import StoreUnavailableError
from tests.support.broker import MosquittoBroker

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
        share_group=None,
        topic_filter=f"guanjia/v1/{site_id}/#",
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
