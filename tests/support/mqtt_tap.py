"""A TCP relay between one MQTT client and a real broker that notes, in wire order, the
packet ids of the QoS 1 PUBLISHes the broker sends and of the PUBACKs the client answers
with. Bytes pass through unchanged: what the client and the broker see is what they would
see without it; the test only learns the order in which acknowledgements actually left."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field

CONNECT, PUBLISH, PUBACK = 1, 3, 4


def _packets(buffer: bytearray) -> list[tuple[int, int, bytes]]:
    """Cut the whole packets off the front of `buffer`: (type, flags, body) each."""
    out: list[tuple[int, int, bytes]] = []
    while len(buffer) >= 2:
        length, shift, i = 0, 0, 1
        while True:
            if i >= len(buffer):
                return out
            byte = buffer[i]
            length |= (byte & 0x7F) << shift
            shift += 7
            i += 1
            if not byte & 0x80:
                break
        if len(buffer) < i + length:
            return out
        out.append((buffer[0] >> 4, buffer[0] & 0x0F, bytes(buffer[i : i + length])))
        del buffer[: i + length]
    return out


@dataclass
class MqttTap:
    """Listen on `port` (127.0.0.1) and relay each connection to the broker."""

    broker_host: str
    broker_port: int
    publishes: list[tuple[int, bytes]] = field(default_factory=list)
    """(packet id, payload) of each QoS 1 PUBLISH broker → client, in wire order."""
    pubacks: list[int] = field(default_factory=list)
    """Packet id of each PUBACK client → broker, in wire order."""
    port: int = 0
    _server: asyncio.Server | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _mqtt5: bool = False
    _acked: asyncio.Event = field(default_factory=asyncio.Event)

    async def wait_pubacks(self, n: int) -> None:
        """Until `n` PUBACKs have passed."""
        while len(self.pubacks) < n:
            self._acked.clear()
            await self._acked.wait()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def _relay(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        broker_r, broker_w = await asyncio.open_connection(self.broker_host, self.broker_port)
        up = asyncio.create_task(self._pump(client_r, broker_w, self._from_client))
        down = asyncio.create_task(self._pump(broker_r, client_w, self._from_broker))
        self._tasks |= {up, down}
        try:
            await asyncio.wait([up, down], return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (up, down):
                task.cancel()
            await asyncio.gather(up, down, return_exceptions=True)
            self._tasks -= {up, down}
            for writer in (client_w, broker_w):
                writer.close()

    @staticmethod
    async def _pump(
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        note: Callable[[int, int, bytes], None],
    ) -> None:
        buffer = bytearray()
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                buffer += data
                for kind, flags, body in _packets(buffer):
                    note(kind, flags, body)
                writer.write(data)
                await writer.drain()

    def _from_client(self, kind: int, _flags: int, body: bytes) -> None:
        if kind == CONNECT:
            name = int.from_bytes(body[:2], "big")
            self._mqtt5 = body[2 + name] == 5
        elif kind == PUBACK:
            self.pubacks.append(int.from_bytes(body[:2], "big"))
            self._acked.set()

    def _from_broker(self, kind: int, flags: int, body: bytes) -> None:
        if kind != PUBLISH or not (flags >> 1) & 3:
            return
        topic = int.from_bytes(body[:2], "big")
        at = 2 + topic
        packet_id = int.from_bytes(body[at : at + 2], "big")
        at += 2
        if self._mqtt5:  # the properties' length (a variable-length integer), then them
            length, shift = 0, 0
            while True:
                byte = body[at]
                at += 1
                length |= (byte & 0x7F) << shift
                shift += 7
                if not byte & 0x80:
                    break
            at += length
        self.publishes.append((packet_id, body[at:]))
