"""The gateway's MQTT edge: the only module that imports aiomqtt.

`MqttIngest.run` keeps one persistent session (clean_session=False, a fixed client id per
replica) subscribed to the shared filter, and hands every message to the ingest callback.
A QoS 1 message is acknowledged only after the callback returned, i.e. after its effect (or
its dead letter) is committed: a gateway killed mid-burst gets the unacknowledged messages
again on reconnect, and the database drops the ones it had already committed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import aiomqtt

from gateway.config import MqttSettings
from gateway.store import StoreUnavailableError

log = logging.getLogger(__name__)

OnMessage = Callable[[str, bytes], Awaitable[None]]


def _payload_bytes(payload: object) -> bytes:
    if isinstance(payload, bytes | bytearray):
        return bytes(payload)
    if payload is None:
        return b""
    return str(payload).encode()


class MqttIngest:
    """Subscribe, feed `on_message`, acknowledge after commit; reconnect forever."""

    def __init__(self, settings: MqttSettings, on_message: OnMessage) -> None:
        self.settings = settings
        self.on_message = on_message
        self.connected = asyncio.Event()

    def _client(self) -> aiomqtt.Client:
        s = self.settings
        client = aiomqtt.Client(
            s.host,
            s.port,
            username=s.username,
            password=s.password.get_secret_value() if s.password else None,
            identifier=s.client_id,
            clean_session=False,
            keepalive=s.keepalive_s,
            max_inflight_messages=100,
        )
        # aiomqtt 2.x acknowledges on receipt and has no manual-ack option; its paho client
        # does. Acking after the commit is what makes a kill -9 lose nothing, so we reach for
        # it before connecting (a persistent session's backlog arrives right after CONNACK).
        client._client.manual_ack_set(True)
        return client

    async def run(self) -> None:
        """Run until cancelled."""
        while True:
            try:
                client = self._client()
                async with client:
                    await client.subscribe(self.settings.subscription, qos=1)
                    self.connected.set()
                    log.info("ingest subscribed to %s", self.settings.subscription)
                    async for message in client.messages:
                        await self._deliver(str(message.topic), _payload_bytes(message.payload))
                        if message.qos > 0:
                            client._client.ack(message.mid, message.qos)
            except aiomqtt.MqttError as exc:
                self.connected.clear()
                log.warning("MQTT connection lost (%s); reconnecting", exc)
                await asyncio.sleep(self.settings.reconnect_s)

    async def _deliver(self, topic: str, payload: bytes) -> None:
        # The database being away is not the message's fault: hold it (unacknowledged) and
        # retry, rather than dead-lettering good data.
        delay = 0.5
        while True:
            try:
                await self.on_message(topic, payload)
                return
            except StoreUnavailableError as exc:
                log.warning("database unavailable (%s); retrying in %.1f s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
