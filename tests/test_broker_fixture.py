"""The password + ACL broker that tests share behaves like a production broker should."""

from __future__ import annotations

import asyncio

import aiomqtt
import pytest

import contract as c
from tests.conftest import DEVICE_PASSWORDS, GATEWAY_PASSWORD
from tests.support.broker import GATEWAY_USER, MosquittoBroker

pytestmark = pytest.mark.mqtt


async def test_auth_broker_refuses_anonymous(mqtt_auth_broker: MosquittoBroker) -> None:
    with pytest.raises(aiomqtt.MqttError):
        async with aiomqtt.Client(mqtt_auth_broker.host, mqtt_auth_broker.port):
            pass


async def test_auth_broker_refuses_wrong_password(mqtt_auth_broker: MosquittoBroker) -> None:
    with pytest.raises(aiomqtt.MqttError):
        async with aiomqtt.Client(
            mqtt_auth_broker.host, mqtt_auth_broker.port, username="device-a", password="nope"
        ):
            pass


async def _publish_as(broker: MosquittoBroker, user: str, topic: str, payload: bytes) -> None:
    async with aiomqtt.Client(
        broker.host, broker.port, username=user, password=DEVICE_PASSWORDS[user]
    ) as client:
        # Mosquitto acknowledges a denied QoS 1 publish without delivering it (MQTT 3.1.1).
        await client.publish(topic, payload, qos=1)


async def test_acl_device_publishes_only_under_its_own_prefix(
    mqtt_auth_broker: MosquittoBroker, site_id: str
) -> None:
    async with aiomqtt.Client(
        mqtt_auth_broker.host,
        mqtt_auth_broker.port,
        username=GATEWAY_USER,
        password=GATEWAY_PASSWORD,
    ) as gateway:
        await gateway.subscribe(c.subscription(site_id=site_id), qos=1)
        own = str(c.heartbeat_topic(site_id, "device-a"))
        spoofed = str(c.heartbeat_topic(site_id, "device-b"))
        await _publish_as(mqtt_auth_broker, "device-a", spoofed, b"spoofed")
        await _publish_as(mqtt_auth_broker, "device-a", own, b"own")
        async with asyncio.timeout(5):
            message = await anext(gateway.messages)
        # Only the device's own topic arrives; the spoofed publish (sent first) was dropped.
        assert str(message.topic) == own
        assert message.payload == b"own"
