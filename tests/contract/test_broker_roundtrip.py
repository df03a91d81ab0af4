"""A DetectionEvent published with paho-mqtt reaches an aiomqtt subscriber on a real broker."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiomqtt
import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

import contract as c
from tests.support.broker import MosquittoBroker

EXAMPLES = Path(__file__).parent / "examples"

pytestmark = pytest.mark.mqtt


async def test_detection_event_paho_to_aiomqtt(mqtt_broker: MosquittoBroker, site_id: str) -> None:
    original = c.decode(c.DetectionEvent, (EXAMPLES / "detection_event.json").read_bytes())
    event = original.model_copy(update={"site_id": site_id})
    topic = c.event_topic(site_id, event.device_id)

    async with aiomqtt.Client(
        mqtt_broker.host, mqtt_broker.port, identifier=f"sub-{site_id}"
    ) as sub:
        await sub.subscribe(c.subscription(c.Channel.EVENT, site_id=site_id), qos=1)

        publisher = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{site_id}")
        publisher.connect(mqtt_broker.host, mqtt_broker.port)
        publisher.loop_start()
        try:
            info = publisher.publish(str(topic), c.encode(event), qos=topic.spec.qos)
            info.wait_for_publish(timeout=5)
            assert info.is_published()
        finally:
            publisher.loop_stop()
            publisher.disconnect()

        async with asyncio.timeout(5):
            message = await anext(sub.messages)
    assert isinstance(message.payload, bytes)
    parsed_topic, received = c.decode_for_topic(str(message.topic), message.payload)
    assert parsed_topic == topic
    assert received == event
    assert message.qos == 1
