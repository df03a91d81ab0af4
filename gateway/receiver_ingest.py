"""An ingest session whose MQTT edge runs in a receiver process (`mqtt.telemetry_processes`).

One Python process cannot both receive a broker's flood of readings and apply it at the
broker's pace: receiving a message and acknowledging it cost about as much as the bare
drain's whole budget, before a reading is read (docs/sensors.md, "Figures"). And the
readings cannot be spread over replicas like events (`gateway.ingest_workers`): the sensor
rules keep state per node (hysteresis, rate of rise, cut-offs in flight), which one process
must own. So the session is cut in two stages instead, each on its own core:

- the receiver process (`gateway.receiver_main`) holds the MQTT session: it receives, hands
  each batch over, publishes what the reply says (the end-to-end Acks, relay commands) and
  only then acknowledges the batch to the broker — while the next batch is already here;
- this process applies the batches, in order, with the same `on_batch` an `MqttIngest`
  would call (decode, rules, one transaction, the stores), and keeps every piece of state.

`ReceiverIngest` has `MqttIngest`'s face (`run`, `state`, `failure`, `connected`,
`publish_failures`), so `gateway.ingest_loop.supervise` runs either. `run` starts the
process and returns (raising `ReceiverExitedError`) only when the process is gone; cancelled,
it stops the process first, so the session is no longer connected when `run` has ended (the
telemetry lease hands the session over then: `gateway.readings_owner`).

What is safe when either process dies: the broker holds every message not yet acknowledged,
and a message is acknowledged only after this process replied that its batch committed
(tests/gateway/test_receiver_ingest.py kills each side with SIGKILL mid-flood).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import socket
from collections.abc import Awaitable, Callable, Sequence
from multiprocessing.process import BaseProcess
from typing import TypeVar

from gateway.mqtt import IngestState, OnBatch, OnRefused, Refused, retry_while_store_down
from gateway.mqtt_settings import MqttSettings
from gateway.receiver_main import receiver_main
from gateway.receiver_wire import (
    BatchFrame,
    FrameError,
    RefusedFrame,
    ReplyFrame,
    StatusFrame,
    encode_frame,
    read_frame,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

STOP_TIMEOUT_S = 5.0
"""How long a receiver process gets to end after SIGTERM before SIGKILL."""


class ReceiverExitedError(RuntimeError):
    """The receiver process ended (`run`'s supervisor starts another)."""


class ReceiverIngest:
    """An ingest session: the MQTT edge in a receiver process, the batches applied here."""

    def __init__(
        self,
        settings: MqttSettings,
        on_batch: OnBatch,
        on_refused: OnRefused | None = None,
        on_publish_failed: Callable[[], None] | None = None,
        *,
        filters: Sequence[str],
        unsubscribe: Sequence[str] = (),
        name: str = "guanjia-receiver",
    ) -> None:
        self.settings = settings
        self.on_batch = on_batch
        self.on_refused = on_refused
        self.on_publish_failed = on_publish_failed
        self.filters = list(filters)
        self.unsubscribe = list(unsubscribe)
        self.name = name
        self.connected = asyncio.Event()
        self.state = IngestState.CONNECTING
        self.failure: str | None = None
        self.publish_failures = 0
        """The receiver's failed Ack publishes, since start (all its processes)."""
        self.received = 0
        """Messages handed over by the receiver since start (each redelivery counts again)."""
        self.batches = 0
        self.pending = 0
        """Messages being applied now."""
        self.process: BaseProcess | None = None
        self._reported = 0  # the current process's publish failures already counted
        self._stalled = False
        self._remote = IngestState.CONNECTING

    async def run(self) -> None:
        """Start a receiver process and apply what it sends until it ends (then raise
        `ReceiverExitedError`); when cancelled, stop it before leaving."""
        mine, theirs = socket.socketpair()
        context = multiprocessing.get_context("spawn")
        process = context.Process(
            target=receiver_main,
            args=(self.settings, self.filters, self.unsubscribe, theirs, self.name),
            name=self.name,
            daemon=True,
        )
        try:
            process.start()
        finally:
            theirs.close()
        self.process, self._reported = process, 0
        writer: asyncio.StreamWriter | None = None
        try:
            reader, writer = await asyncio.open_unix_connection(sock=mine)
            await self._serve(reader, writer)
        finally:
            self._lost()
            if writer is not None:
                writer.close()
            else:
                mine.close()
            await asyncio.to_thread(stop_process, process)
        raise ReceiverExitedError(f"the receiver process ended (exit code {process.exitcode})")

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Apply frames one at a time, in the order they came (the receiver has the next one
        received and waiting meanwhile), while reading on: a receiver that dies is noticed
        even while a batch is held (the database away). Letting the next batch's prepare
        overlap the last one's point writes was measured and gained nothing: the two threads
        share one GIL, and the gateway process spent as much CPU a message or more
        (docs/sensors.md, "Two cores")."""
        frames: asyncio.Queue[BatchFrame | RefusedFrame] = asyncio.Queue()

        async def apply_in_order() -> None:
            while True:
                frame = await frames.get()
                if isinstance(frame, BatchFrame):
                    reply = await self._apply(frame)
                else:
                    reply = await self._refuse(frame)
                writer.write(encode_frame(reply))

        applier = asyncio.create_task(apply_in_order())
        try:
            while (frame := await read_frame(reader)) is not None:
                if applier.done():
                    applier.result()  # raises what stopped it
                if isinstance(frame, StatusFrame):
                    self._status(frame)
                elif isinstance(frame, BatchFrame | RefusedFrame):
                    frames.put_nowait(frame)  # at most `receiver_main.DEPTH` at once
                else:
                    raise FrameError(f"unexpected {type(frame).__name__} from the receiver")
        finally:
            applier.cancel()
            await asyncio.gather(applier, return_exceptions=True)

    async def _apply(self, frame: BatchFrame) -> ReplyFrame:
        batch = frame.messages
        self.pending += len(batch)
        self.received += len(batch)
        try:
            outbound = await self._retry_while_store_down(lambda: self.on_batch(batch))
        except Exception as exc:  # the receiver's session fails the batch, as in-process
            log.exception("a batch of %d messages failed", len(batch))
            return ReplyFrame(frame.seq, [], f"{type(exc).__name__}: {str(exc)[:300]}")
        finally:
            self.pending -= len(batch)
        self.batches += 1
        return ReplyFrame(frame.seq, [(o.topic, o.payload) for o in outbound or ()])

    async def _refuse(self, frame: RefusedFrame) -> ReplyFrame:
        on_refused = self.on_refused
        refused = [Refused(topic, payload, reason) for topic, payload, reason in frame.messages]
        try:
            if on_refused is not None:
                await self._retry_while_store_down(lambda: on_refused(refused))
        except Exception as exc:
            log.exception("%d refused messages could not be recorded", len(refused))
            return ReplyFrame(frame.seq, [], f"{type(exc).__name__}: {str(exc)[:300]}")
        self.batches += 1
        return ReplyFrame(frame.seq, [])

    async def _retry_while_store_down(self, attempt: Callable[[], Awaitable[T]]) -> T:
        # As `MqttIngest`: the batch is held (the receiver does not acknowledge it) and
        # retried here, in order.
        result = await retry_while_store_down(attempt, self._stall)
        if self._stalled:
            self._stalled = False
            self.state = self._remote
        return result

    def _stall(self) -> None:
        self._stalled = True
        self.state = IngestState.STALLED

    def _status(self, frame: StatusFrame) -> None:
        self._remote = IngestState(frame.state)
        if not self._stalled:
            self.state = self._remote
        self.failure = frame.failure
        if frame.connected:
            self.connected.set()
        else:
            self.connected.clear()
        new = frame.publish_failures - self._reported
        if new > 0:
            self._reported = frame.publish_failures
            self.publish_failures += new
            if self.on_publish_failed is not None:
                for _ in range(new):
                    self.on_publish_failed()

    def _lost(self) -> None:
        self.connected.clear()
        self.pending = 0
        self._remote = IngestState.CONNECTING
        if self.state is not IngestState.FAILED:
            self.state = IngestState.CONNECTING


def stop_process(process: BaseProcess, timeout_s: float = STOP_TIMEOUT_S) -> None:
    """SIGTERM, then SIGKILL after `timeout_s`; returns when the process is gone."""
    with contextlib.suppress(ValueError):  # never started
        if process.is_alive():
            process.terminate()
            process.join(timeout_s)
        if process.is_alive():
            process.kill()
        process.join()
