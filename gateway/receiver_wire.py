"""The frames between a receiver process and the gateway process (`gateway.receiver_ingest`).

One stream socket (a socketpair made by the gateway process), frames of a 4-byte big-endian
length and a msgpack body (msgspec: a batch of 100 messages encodes and decodes in a few µs
a message less than pickle would cost, and nothing but these structs can come out of it):

- receiver → gateway: `BatchFrame` (messages to apply, in the order received), `RefusedFrame`
  (retained messages the MQTT edge refused, to dead-letter), `StatusFrame` (the session's
  state, when it changes, and its failed Ack publishes);
- gateway → receiver: `ReplyFrame`, one per batch or refused frame, in the order they came:
  what to publish now that the batch is committed (the end-to-end Acks, relay commands), or
  the error that stopped it.
"""

from __future__ import annotations

import asyncio
import struct

import msgspec

MAX_FRAME_BYTES = 256 * 1024 * 1024
"""A frame larger than this is a bug or a corrupted stream, not a batch (1,000 messages of
the broker's largest packet, 1.2 MB, stay well below it)."""

_LENGTH = struct.Struct(">I")


class BatchFrame(msgspec.Struct, tag="batch", array_like=True, forbid_unknown_fields=True):
    """Messages (topic, payload) to apply as one batch; `seq` names its reply."""

    seq: int
    messages: list[tuple[str, bytes]]


class RefusedFrame(msgspec.Struct, tag="refused", array_like=True, forbid_unknown_fields=True):
    """Messages (topic, payload, reason) the MQTT edge refused: dead-letter them."""

    seq: int
    messages: list[tuple[str, bytes, str]]


class StatusFrame(msgspec.Struct, tag="status", array_like=True, forbid_unknown_fields=True):
    """The receiver's MQTT session: `IngestState` value, whether it is subscribed, the last
    failure (or None), and Ack publishes that failed since it started."""

    state: str
    connected: bool
    failure: str | None
    publish_failures: int


class ReplyFrame(msgspec.Struct, tag="reply", array_like=True, forbid_unknown_fields=True):
    """The answer to frame `seq`: what to publish after the commit, or why it failed."""

    seq: int
    outbound: list[tuple[str, bytes]]
    error: str | None = None


Frame = BatchFrame | RefusedFrame | StatusFrame | ReplyFrame

_ENCODER = msgspec.msgpack.Encoder()
_DECODER = msgspec.msgpack.Decoder(Frame)


class FrameError(RuntimeError):
    """The stream carried something that is not a frame (a bug on the other side)."""


def encode_frame(frame: Frame) -> bytes:
    """One frame, length prefix included."""
    body = _ENCODER.encode(frame)
    return _LENGTH.pack(len(body)) + body


async def read_frame(reader: asyncio.StreamReader) -> Frame | None:
    """The next frame, or None at the end of the stream (the other process is gone).

    Raises `FrameError` for a frame that cannot be one."""
    try:
        head = await reader.readexactly(_LENGTH.size)
    except asyncio.IncompleteReadError as exc:
        if exc.partial:
            raise FrameError("the stream ended inside a frame's length") from exc
        return None
    except ConnectionResetError:
        # The other process died with frames of ours unread: Linux resets the socketpair
        # instead of closing it. Gone all the same.
        return None
    (size,) = _LENGTH.unpack(head)
    if size > MAX_FRAME_BYTES:
        raise FrameError(f"frame of {size} bytes (at most {MAX_FRAME_BYTES})")
    try:
        body = await reader.readexactly(size)
    except asyncio.IncompleteReadError as exc:
        raise FrameError("the stream ended inside a frame") from exc
    except ConnectionResetError:
        return None
    try:
        return _DECODER.decode(body)
    except msgspec.DecodeError as exc:
        raise FrameError(f"not a frame: {exc}") from exc
