"""The telemetry benchmark's workload: the TelemetryBatches, the broker sessions they are
parked in, and the publisher (another paho client, so its CPU is counted apart)."""

from __future__ import annotations

import time
from collections.abc import Sequence

import aiomqtt
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

import contract as c
from tests.support.broker import MosquittoBroker

SITE = "bench"
T0 = time.time() - 3600
DRAIN_TIMEOUT_S = 300.0


def batches(n: int, points: int, nodes: int, tag: str) -> list[tuple[str, bytes]]:
    out = []
    metrics = [
        ("voltage", 220.0),
        ("current", 2.0),
        ("power", 400.0),
        ("temperature", 30.0),
        ("energy", 1.5),
    ] * 4
    for i in range(n):
        device = f"shed-{i % nodes}"
        ts = T0 + (i // nodes) * 10.0  # each node every 10 s
        readings = [
            c.TelemetryPoint(metric=f"port{1 + k % 4}_{m}", value=v + (i % 7) * 0.1, ts=ts)
            for k, (m, v) in enumerate(metrics)
            if k < points
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


async def register_session(broker: MosquittoBroker, client_id: str, topic: str) -> None:
    async with aiomqtt.Client(
        broker.host,
        broker.port,
        identifier=client_id,
        protocol=aiomqtt.ProtocolVersion.V5,
        clean_start=False,
        properties=never_expires(),
    ) as client:
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


def publish(host: str, port: int, messages: Sequence[tuple[str, bytes]], tag: str) -> None:
    pub = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{tag}")
    pub.max_inflight_messages_set(1000)
    pub.connect(host, port)
    pub.loop_start()
    infos = [pub.publish(topic, payload, qos=1) for topic, payload in messages]
    for info in infos:
        info.wait_for_publish(120)
    pub.loop_stop()
    pub.disconnect()
