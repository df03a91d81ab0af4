"""Parking a backlog at the broker: the ingest and telemetry benchmarks both start this way."""

from __future__ import annotations

from collections.abc import Sequence

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion


def publish_all(host: str, port: int, messages: Sequence[tuple[str, bytes]], tag: str) -> None:
    """Publish (topic, payload) pairs at QoS 1 and return once the broker acknowledged every
    one (PUBACK), so a parked session holds them all before the clock starts."""
    pub = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{tag}")
    pub.max_inflight_messages_set(1000)
    pub.connect(host, port)
    pub.loop_start()
    infos = [pub.publish(topic, payload, qos=1) for topic, payload in messages]
    for info in infos:
        info.wait_for_publish(120)
    pub.loop_stop()
    pub.disconnect()
