"""The gateway's MQTT edge: the only module that imports aiomqtt.

`MqttIngest.run` keeps one persistent session (clean_session=False, a fixed client id per
replica) subscribed to the shared filter. It drains what has arrived (up to `batch_max`
messages) and hands the batch to the ingest callback, which commits it in one transaction.
Every QoS 1 message of the batch is acknowledged only after the callback returned, i.e. after
its effect (or its dead letter) is committed: a gateway killed mid-burst gets the
unacknowledged messages again on reconnect, and the database drops the ones it had already
committed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

import aiomqtt

from gateway.config import MqttSettings
from gateway.store import StoreUnavailableError

log = logging.getLogger(__name__)

OnBatch = Callable[[Sequence[tuple[str, bytes]]], Awaitable[None]]
"""Applies (topic, payload) pairs; returns once their effects are committed."""


def _payload_bytes(payload: object) -> bytes:
    if isinstance(payload, bytes | bytearray):
        return bytes(payload)
    if payload is None:
        return b""
    return str(payload).encode()


def enable_manual_ack(client: aiomqtt.Client) -> None:
    """Switch the client to acknowledging QoS 1 messages only when `ack` is called.

    aiomqtt 2.x acknowledges on receipt and has no public manual-ack option (upstream issue
    empicano/aiomqtt#345, PR #346), so this reaches into its private paho client,
    `client._client`. Acking after the commit is what makes a kill -9 lose nothing; if an
    aiomqtt upgrade moves that attribute, this raises at connect time, and
    tests/gateway/test_mqtt_ack.py (a message must be redelivered to a gateway that died
    before committing it) fails. Call before connecting: a persistent session's backlog
    arrives right after CONNACK.
    """
    client._client.manual_ack_set(True)


def ack(client: aiomqtt.Client, message: aiomqtt.Message) -> None:
    """Acknowledge one QoS 1 message (see `enable_manual_ack`)."""
    if message.qos > 0:
        client._client.ack(message.mid, message.qos)


class PublishUnavailableError(RuntimeError):
    """The gateway is not connected to the broker, so nothing can be published now."""


class MqttIngest:
    """Subscribe, feed batches to `on_batch`, acknowledge after commit; reconnect forever."""

    def __init__(self, settings: MqttSettings, on_batch: OnBatch) -> None:
        self.settings = settings
        self.on_batch = on_batch
        self.connected = asyncio.Event()
        self._client_now: aiomqtt.Client | None = None

    async def publish(self, topic: str, payload: bytes, *, qos: int = 1) -> None:
        """Publish on the ingest's connection (commands, acks); waits for the PUBACK at QoS 1.

        Raises PublishUnavailableError while disconnected.
        """
        client = self._client_now
        if client is None or not self.connected.is_set():
            raise PublishUnavailableError("the gateway is not connected to the MQTT broker")
        try:
            await client.publish(topic, payload, qos=qos)
        except aiomqtt.MqttError as exc:
            raise PublishUnavailableError(f"publish failed: {exc}") from exc

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
        enable_manual_ack(client)
        return client

    async def run(self) -> None:
        """Run until cancelled."""
        while True:
            try:
                client = self._client()
                async with client:
                    await client.subscribe(self.settings.subscription, qos=1)
                    self._client_now = client
                    self.connected.set()
                    log.info("ingest subscribed to %s", self.settings.subscription)
                    await self._consume(client)
            except aiomqtt.MqttError as exc:
                self.connected.clear()
                self._client_now = None
                log.warning("MQTT connection lost (%s); reconnecting", exc)
                await asyncio.sleep(self.settings.reconnect_s)

    async def _consume(self, client: aiomqtt.Client) -> None:
        messages = client.messages
        limit = self.settings.batch_max
        while True:
            batch = [await anext(messages)]
            # Drain what has already arrived; under load the queue fills while the previous
            # batch commits, so batches grow exactly when one transaction per message would
            # fall behind. An optional linger trades a little latency for bigger batches.
            if self.settings.batch_linger_s > 0 and len(messages) < limit - 1:
                await asyncio.sleep(self.settings.batch_linger_s)
            while len(batch) < limit and len(messages) > 0:
                batch.append(await anext(messages))
            await self._deliver([(str(m.topic), _payload_bytes(m.payload)) for m in batch])
            for message in batch:
                ack(client, message)

    async def _deliver(self, batch: Sequence[tuple[str, bytes]]) -> None:
        # The database being away is not the messages' fault: hold them (unacknowledged) and
        # retry, rather than dead-lettering good data.
        delay = 0.5
        while True:
            try:
                await self.on_batch(batch)
                return
            except StoreUnavailableError as exc:
                log.warning("database unavailable (%s); retrying in %.1f s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
