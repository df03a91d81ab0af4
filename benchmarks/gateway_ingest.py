"""Events/s ingested by the gateway ÷ a bare aiomqtt subscriber draining the same broker.

    python -m benchmarks.gateway_ingest [--events 3000] [--database-url URL]

Starts its own Mosquitto. For each consumer it parks `--events` DetectionEvents (distinct
event ids over 100 ticket keys) in a persistent session while the consumer is away, then
starts the consumer and times the drain:

1. the limit: a bare aiomqtt client (QoS 1, persistent session) that only counts messages;
2. the gateway: the real ingest path (`MqttIngest` draining batches → `IngestHandler` → one
   SQLite/PostgreSQL transaction per batch, acknowledging each message after its commit),
   until every event is committed.

Prints events/s of both, the ratio gateway ÷ bare, and the mean batch size. The machine's
other load makes the numbers noisy.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import aiomqtt
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

import contract as c
from gateway.config import GatewaySettings, MqttSettings
from gateway.main import build_runtime, ingest_batch
from gateway.models import GridPublic
from gateway.mqtt import MqttIngest
from gateway.store import migrate
from tests.gateway.conftest import _isolated_postgres
from tests.gateway.factories import event
from tests.support.broker import MosquittoBroker

SITE = "bench"
DEVICES = tuple(f"cam-{i}" for i in range(10))


async def _register_session(broker: MosquittoBroker, client_id: str, share: bool) -> None:
    topic = "guanjia/v1/+/+/#"
    async with aiomqtt.Client(
        broker.host, broker.port, identifier=client_id, clean_session=False
    ) as client:
        await client.subscribe(f"$share/bench/{topic}" if share else topic, qos=1)


def _park(broker: MosquittoBroker, n: int, tag: str) -> None:
    pub = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{tag}")
    pub.max_inflight_messages_set(500)
    pub.connect(broker.host, broker.port)
    pub.loop_start()
    infos = []
    for i in range(n):
        device = DEVICES[i % len(DEVICES)]
        message = event(SITE, device, f"ev-{tag}-{i:06d}", zone_id=f"z{i % 10}")
        infos.append(pub.publish(str(c.event_topic(SITE, device)), c.encode(message), qos=1))
    for info in infos:
        info.wait_for_publish(60)
    pub.loop_stop()
    pub.disconnect()


async def bare(broker: MosquittoBroker, n: int) -> float:
    """Seconds for a bare subscriber to drain `n` parked messages."""
    await _register_session(broker, "bare", share=False)
    await asyncio.to_thread(_park, broker, n, "bare")
    start = time.perf_counter()
    got = 0
    async with aiomqtt.Client(
        broker.host,
        broker.port,
        identifier="bare",
        clean_session=False,
        max_inflight_messages=100,
    ) as client:
        async for _ in client.messages:
            got += 1
            if got == n:
                break
    elapsed = time.perf_counter() - start
    async with aiomqtt.Client(broker.host, broker.port, identifier="bare", clean_session=True):
        pass  # drop the session so the gateway's run does not feed it
    return elapsed


async def gateway(broker: MosquittoBroker, n: int, db_url: str) -> tuple[float, float]:
    """Seconds for the gateway ingest to commit `n` parked events, and the mean batch."""
    migrate(db_url)
    settings = GatewaySettings(
        database_url=db_url,
        jwt_secret="bench-secret-0123456789abcdef-0123456789",
        mqtt=MqttSettings(
            host=broker.host, port=broker.port, client_id="gw-bench", share_group="bench"
        ),
    )
    runtime = build_runtime(settings)
    runtime.store.upsert_grid(GridPublic(grid_id="g1", site_id=SITE, name="g", zones=["z0"]))
    for device in DEVICES:
        runtime.store.upsert_device(device, SITE, "camera", grid_id="g1")
    await _register_session(broker, "gw-bench", share=True)
    await asyncio.to_thread(_park, broker, n, "gw")
    done = asyncio.Event()
    committed = 0
    batches = 0

    async def counted(batch: Sequence[tuple[str, bytes]]) -> None:
        nonlocal committed, batches
        await ingest_batch(runtime, batch)
        committed += len(batch)
        batches += 1
        if committed >= n:
            done.set()

    ingest = MqttIngest(settings.mqtt, counted)
    start = time.perf_counter()
    task = asyncio.create_task(ingest.run())
    await done.wait()
    elapsed = time.perf_counter() - start
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    page = runtime.store.list_tickets(limit=1)
    runtime.store.close()
    assert page.total == len({(i % len(DEVICES), i % 10) for i in range(n)}), page.total
    return elapsed, committed / batches


async def main_async(events: int, db_url: str | None) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        broker = MosquittoBroker(Path(tmp) / "broker")
        broker.start()
        try:
            bare_s = await bare(broker, events)
            if db_url is None:
                gw_s, mean_batch = await gateway(broker, events, f"sqlite:///{Path(tmp) / 'gw.db'}")
            else:
                # A private schema, dropped afterwards: never touch the database's own tables.
                for url in _isolated_postgres(db_url):
                    gw_s, mean_batch = await gateway(broker, events, url)
        finally:
            broker.stop()
    result = {"bare_eps": events / bare_s, "gateway_eps": events / gw_s, "batch": mean_batch}
    result["ratio"] = result["gateway_eps"] / result["bare_eps"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument(
        "--database-url",
        default=None,
        help="default: SQLite in a temp dir; PostgreSQL runs in a private schema",
    )
    args = parser.parse_args()
    r = asyncio.run(main_async(args.events, args.database_url))
    print(f"events: {args.events}")
    print(f"bare aiomqtt subscriber: {r['bare_eps']:,.0f} events/s (the limit)")
    print(f"gateway ingest:          {r['gateway_eps']:,.0f} events/s (committed tickets)")
    print(f"ratio gateway / bare:    {r['ratio']:.3f}")
    print(f"mean batch:              {r['batch']:.1f} messages per transaction")


if __name__ == "__main__":
    main()
