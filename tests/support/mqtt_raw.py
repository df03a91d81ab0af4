"""A hand-made MQTT 3.1.1 CONNECT with a last will: paho (and so aiomqtt) always sends a
DISCONNECT when it leaves, which cancels the will, so a test of what a broker does with a
will has to drop the TCP connection itself."""

from __future__ import annotations

import asyncio

CONNACK_ACCEPTED = b"\x20\x02\x00\x00"


async def connect_with_will(
    host: str,
    port: int,
    user: str,
    password: str,
    *,
    will: tuple[str, bytes],
    clean: bool = True,
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Open a connection and send CONNECT (client id = `user`, a QoS 1 will); the caller
    reads the CONNACK and drops the connection (`writer.transport.abort()`)."""

    def field(raw: bytes) -> bytes:
        return len(raw).to_bytes(2, "big") + raw

    flags = 0x80 | 0x40 | 0x08 | 0x04 | (0x02 if clean else 0)  # user, pw, will QoS 1, will
    body = field(b"MQTT") + bytes([4, flags]) + (60).to_bytes(2, "big")
    body += field(user.encode()) + field(will[0].encode()) + field(will[1])
    body += field(user.encode()) + field(password.encode())
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(b"\x10" + _remaining_length(len(body)) + body)
    await writer.drain()
    return reader, writer


def _remaining_length(n: int) -> bytes:
    """MQTT's variable-length integer: 7 bits a byte, the high bit saying more follow."""
    out = bytearray()
    while True:
        n, digit = divmod(n, 128)
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)
