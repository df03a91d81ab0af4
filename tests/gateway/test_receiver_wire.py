"""The frames between a receiver process and the gateway process (`gateway.receiver_wire`):
each kind survives the trip, a clean end of the stream is None, and anything that is not a
whole frame raises `FrameError` (never a half-read frame taken for a batch)."""

from __future__ import annotations

import asyncio
import socket
import struct

import pytest

from gateway.receiver_wire import (
    MAX_FRAME_BYTES,
    BatchFrame,
    Frame,
    FrameError,
    RefusedFrame,
    ReplyFrame,
    StatusFrame,
    encode_frame,
    read_frame,
)

FRAMES: list[Frame] = [
    BatchFrame(1, [("guanjia/v1/s/n/telemetry", b"\x00\xff payload"), ("t/2", b"")]),
    BatchFrame(2, []),
    RefusedFrame(3, [("guanjia/v1/s/n/event", b"retained", "retained message on 'event'")]),
    StatusFrame("running", True, None, 0),
    StatusFrame("failed", False, "BatchFailedError: boom", 7),
    ReplyFrame(4, [("guanjia/v1/s/n/ack", b'{"msg_ids":["a"]}')]),
    ReplyFrame(5, [], "RuntimeError: the batch failed"),
]


def stream(data: bytes, *, eof: bool = True) -> asyncio.StreamReader:
    reader = asyncio.StreamReader()
    reader.feed_data(data)
    if eof:
        reader.feed_eof()
    return reader


@pytest.mark.parametrize("frame", FRAMES, ids=lambda f: type(f).__name__)
async def test_each_frame_round_trips(frame: Frame) -> None:
    reader = stream(encode_frame(frame))
    assert await read_frame(reader) == frame
    assert await read_frame(reader) is None


async def test_frames_in_one_stream_come_out_in_order_then_none_at_eof() -> None:
    reader = stream(b"".join(encode_frame(f) for f in FRAMES))
    got = [await read_frame(reader) for _ in FRAMES]
    assert got == FRAMES
    assert [type(f) for f in got] == [type(f) for f in FRAMES]
    assert await read_frame(reader) is None


async def test_empty_stream_is_a_clean_end() -> None:
    assert await read_frame(stream(b"")) is None


async def test_a_stream_ending_inside_the_length_is_an_error() -> None:
    with pytest.raises(FrameError, match="length"):
        await read_frame(stream(encode_frame(FRAMES[0])[:2]))


async def test_a_truncated_frame_is_an_error() -> None:
    whole = encode_frame(FRAMES[0])
    with pytest.raises(FrameError, match="inside a frame"):
        await read_frame(stream(whole[:-1]))


async def test_an_oversize_length_is_refused_before_reading_the_body() -> None:
    # No EOF and no body: the size alone must refuse it (not wait for 4 GB to arrive).
    reader = stream(struct.pack(">I", MAX_FRAME_BYTES + 1), eof=False)
    with pytest.raises(FrameError, match="bytes"):
        await asyncio.wait_for(read_frame(reader), 5)


@pytest.mark.parametrize(
    "body",
    [
        b"\xc1\xc1\xc1",  # not msgpack at all
        b"\x93\x01\x02\x03",  # msgpack, but an untagged array
        b"\x92\xa7unknown\x01",  # a tag that names no frame
        b"\x93\xa5batch\xa3one\x90",  # a batch whose seq is not an int
    ],
)
async def test_garbage_is_an_error(body: bytes) -> None:
    with pytest.raises(FrameError, match="not a frame"):
        await read_frame(stream(struct.pack(">I", len(body)) + body))


async def test_the_other_process_dying_with_frames_unread_is_the_end_of_the_stream() -> None:
    """A process killed (SIGKILL) while frames sent to it were still unread resets the
    socketpair instead of closing it: that is the other side gone all the same, so None, as
    at a clean end (a receiver process then ends quietly; the gateway process raises
    `ReceiverExitedError`, not a ConnectionResetError, and /healthz says so)."""
    ours, theirs = socket.socketpair()
    reader, writer = await asyncio.open_unix_connection(sock=ours)
    try:
        writer.write(encode_frame(FRAMES[0]))  # never read by the other side
        await writer.drain()
        theirs.close()
        assert await asyncio.wait_for(read_frame(reader), 5) is None
    finally:
        writer.close()
