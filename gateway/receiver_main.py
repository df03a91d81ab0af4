"""A receiver process: the MQTT edge of one ingest session, in a process of its own.

Started by `gateway.receiver_ingest.ReceiverIngest` (spawned). It runs an `MqttIngest` with
two batches in flight (`MqttIngest.depth`) whose `on_batch` sends each batch to the gateway
process and waits for its reply (`gateway.receiver_wire`): receiving the next batch (paho's
decoding and PUBACKs, the bare drain's whole cost) and publishing the last one's Acks happen
here while the gateway process applies a batch, so a session uses two cores. Nothing is
acknowledged to the broker before the gateway process replied that the batch committed:
the delivery guarantee is `MqttIngest`'s, unchanged.

The process ends when the gateway process's end of the socket closes (it stopped, died, or
gave up the session).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Sequence

from gateway.heap import settle
from gateway.mqtt import MqttIngest, Outbound, Refused
from gateway.mqtt_settings import MqttSettings
from gateway.receiver_wire import (
    BatchFrame,
    Frame,
    RefusedFrame,
    ReplyFrame,
    StatusFrame,
    encode_frame,
    read_frame,
)

log = logging.getLogger(__name__)

DEPTH = 2
"""Batches in flight: one being applied by the gateway process, the next being received."""

STATUS_EVERY_S = 0.2
"""How often the session's state is compared with what the gateway process last heard."""


class GatewayGoneError(ConnectionError):
    """The gateway process's end of the socket closed."""


class BatchFailedError(RuntimeError):
    """The gateway process could not apply a batch (its reply carried the error)."""


class _Channel:
    """The receiver's end of the socket: frames out, replies matched to their frames."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self._seq = 0
        self._waiting: dict[int, asyncio.Future[ReplyFrame]] = {}
        self.closed = False

    def send(self, frame: Frame) -> None:
        self.writer.write(encode_frame(frame))

    async def ask(self, frame: BatchFrame | RefusedFrame) -> ReplyFrame:
        if self.closed:
            raise GatewayGoneError("the gateway process is gone")
        future: asyncio.Future[ReplyFrame] = asyncio.get_running_loop().create_future()
        self._waiting[frame.seq] = future
        # Written before the first await: batches reach the gateway process in the order
        # `MqttIngest` handed them over, which is the order they are acknowledged in.
        self.send(frame)
        await self.writer.drain()
        reply = await future
        if reply.error is not None:
            raise BatchFailedError(f"the gateway process failed the batch: {reply.error}")
        return reply

    def next_seq(self) -> int:
        self._seq += 1
        return self._seq

    async def read_replies(self) -> None:
        """Resolve each reply's future; returns when the gateway process is gone."""
        try:
            while (frame := await read_frame(self.reader)) is not None:
                if isinstance(frame, ReplyFrame):
                    future = self._waiting.pop(frame.seq, None)
                    if future is not None and not future.done():
                        future.set_result(frame)
        finally:
            self.closed = True
            for future in self._waiting.values():
                if not future.done():
                    future.set_exception(GatewayGoneError("the gateway process is gone"))
            self._waiting.clear()


async def run_receiver(
    settings: MqttSettings, filters: Sequence[str], unsubscribe: Sequence[str], sock: socket.socket
) -> None:
    """Receive for the gateway process on `sock` until it is gone."""
    # Imported here: the supervisor lives with the gateway's ingest callbacks.
    from gateway.ingest_loop import supervise

    reader, writer = await asyncio.open_unix_connection(sock=sock)
    channel = _Channel(reader, writer)

    async def forward(batch: Sequence[tuple[str, bytes]]) -> list[Outbound]:
        reply = await channel.ask(BatchFrame(channel.next_seq(), list(batch)))
        return [Outbound(topic, payload) for topic, payload in reply.outbound]

    async def forward_refused(refused: Sequence[Refused]) -> None:
        items = [(r.topic, r.payload, r.reason) for r in refused]
        await channel.ask(RefusedFrame(channel.next_seq(), items))

    ingest = MqttIngest(
        settings,
        forward,
        forward_refused,
        filters=filters,
        unsubscribe=unsubscribe,
        mqtt5=settings.protocol == "5",
        depth=DEPTH,
    )
    settle()  # start-up is done: keep its objects out of every collection (`gateway.heap`)
    tasks = [
        asyncio.create_task(supervise(ingest)),
        asyncio.create_task(_report_status(ingest, channel)),
    ]
    try:
        await channel.read_replies()  # until the gateway process is gone
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        writer.close()


async def _report_status(ingest: MqttIngest, channel: _Channel) -> None:
    sent: StatusFrame | None = None
    while True:
        status = StatusFrame(
            ingest.state.value, ingest.connected.is_set(), ingest.failure, ingest.publish_failures
        )
        if status != sent:
            channel.send(status)
            sent = status
        await asyncio.sleep(STATUS_EVERY_S)


def receiver_main(
    settings: MqttSettings,
    filters: list[str],
    unsubscribe: list[str],
    sock: socket.socket,
    name: str,
) -> None:
    """A receiver process's entry point (spawned by `ReceiverIngest`)."""
    logging.basicConfig(level=logging.WARNING, format=f"%(levelname)s {name} %(name)s: %(message)s")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_receiver(settings, filters, unsubscribe, sock))
