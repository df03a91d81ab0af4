"""The telemetry benchmark's workload: the TelemetryBatches, the broker sessions they are
parked in, and the publisher (another paho client, so its CPU is counted apart)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

import contract as c
from gateway.telemetry.points import Point
from gateway.telemetry.sqlite_store import SqliteTelemetryStore
from tests.support.broker import MosquittoBroker

SITE = "bench"
T0 = time.time() - 3600
DRAIN_TIMEOUT_S = 300.0
ACK_TIMEOUT_S = 30.0


_BASE = [
    ("voltage", 220.0),
    ("current", 2.0),
    ("power", 400.0),
    ("temperature", 30.0),
    ("energy", 1.5),
]
_METRICS = [(f"port{1 + k % 4}_{m}", v) for k, (m, v) in enumerate(_BASE * 4)]
"""A message's series, in order: `--points` of them."""


def batches(n: int, points: int, nodes: int, tag: str) -> list[tuple[str, bytes]]:
    out = []
    for i in range(n):
        device = f"shed-{i % nodes}"
        ts = T0 + (i // nodes) * 10.0  # each node every 10 s
        readings = [
            c.TelemetryPoint(metric=metric, value=v + (i % 7) * 0.1, ts=ts)
            for metric, v in _METRICS[:points]
        ]
        batch = c.TelemetryBatch(
            ts=ts,
            site_id=SITE,
            device_id=device,
            sensor_kind="charging_monitor",
            points=readings,
            msg_id=f"tb-{tag}-{i:07d}",
        )
        out.append((str(c.telemetry_topic(SITE, device)), c.encode(batch)))
    return out


def persistent_session(*, v311: bool) -> dict[str, Any]:
    """aiomqtt.Client arguments for a persistent session: MQTT 3.1.1 (as the gateway's
    telemetry session speaks) or MQTT 5 with a session that never expires."""
    if v311:
        return {"clean_session": False}
    return {
        "protocol": aiomqtt.ProtocolVersion.V5,
        "clean_start": False,
        "properties": never_expires(),
    }


async def register_session(
    broker: MosquittoBroker, client_id: str, topic: str, *, v311: bool = False
) -> None:
    """A persistent session subscribed to `topic` (QoS 1), left parked: the broker queues."""
    session = persistent_session(v311=v311)
    async with aiomqtt.Client(broker.host, broker.port, identifier=client_id, **session) as client:
        await client.subscribe(topic, qos=1)


async def forget_session(broker: MosquittoBroker, client_id: str) -> None:
    """End a persistent session, so later publishes are not queued for it too."""
    async with aiomqtt.Client(
        broker.host,
        broker.port,
        identifier=client_id,
        protocol=aiomqtt.ProtocolVersion.V5,
        clean_start=True,
    ):
        pass


def never_expires() -> Properties:
    properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    properties.SessionExpiryInterval = 0xFFFFFFFF
    return properties


ACKS = f"guanjia/v1/{SITE}/+/ack"
"""The devices' side of the end-to-end Acks (`park_acks`, `collect_acks`)."""


async def collect_acks(broker: MosquittoBroker, client_id: str, n: int) -> int:
    """Connect the devices' parked Ack session (`register_session(..., ACKS)` before the
    drain, so the broker queued every Ack while the clock ran and no device client took CPU
    from the gateway), read Acks until `n` distinct message ids are acknowledged; how many
    were. Ends the session."""
    acked: set[str] = set()
    try:
        async with aiomqtt.Client(
            broker.host, broker.port, identifier=client_id, clean_session=False
        ) as client:
            async with asyncio.timeout(ACK_TIMEOUT_S):
                async for message in client.messages:
                    acked.update(json.loads(bytes(message.payload))["msg_ids"])
                    if len(acked) >= n:
                        break
    except TimeoutError:
        pass
    await forget_session(broker, client_id)
    return len(acked)


def history(path: Path, seconds: float, points: int, nodes: int) -> int:
    """An embedded store at `path` holding `seconds` of the nodes' readings before the
    workload's (every node every 10 s, the same series), derived as a running gateway would
    have it: a store in use, not a new file (a point into a series with history costs more:
    its index page is not the one the last point dirtied). Rows written."""
    metrics = [m for m, _ in _METRICS][:points]
    store = SqliteTelemetryStore(path)
    written, steps = 0, int(seconds // 10)
    try:
        for step in range(steps):
            ts = T0 - seconds + step * 10.0
            rows = [
                Point(SITE, f"shed-{i}", metric, 1.0 + (step % 7) * 0.1, ts)
                for i in range(nodes)
                for metric in metrics
            ]
            written += len(store.write_messages([(None, rows)]))
            if step % 60 == 59:
                store.derive()  # as the gateway does every second
        store.derive()
    finally:
        store.close()
    return written
