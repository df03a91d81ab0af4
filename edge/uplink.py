"""Delivery from the durable outbox through the MQTT link, in order, at least once.

`Uplink` is what the rest of the node talks to: `send_event` (snapshot first, then the event,
one outbox group), `send_command_result`, `send_heartbeat` (QoS 0, never queued), and
`stats`. Behind it one publisher thread keeps up to `inflight` outbox rows on the wire:

    capture threads ──put──▶ Outbox (SQLite WAL) ──peek──▶ publisher ──▶ MqttLink ──▶ broker
                                      ▲                                       │
                                      └──────────── ack (delete) ◀── PUBACK ──┘

On every (re)connect the link reports a new generation; the publisher forgets what it had in
flight and replays from the oldest unacknowledged row, so the wire order after an outage is
the outbox order and every redelivery carries the stored bytes (same `msg_id`). Acks are
deleted in batches; a crash between PUBACK and delete only causes one more duplicate.

Commands arrive on the link's network thread and are queued to a worker thread, so a slow
command never stalls keepalives or acks.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from contract import (
    CommandResult,
    DetectionEvent,
    Heartbeat,
    command_result_topic,
    encode,
    event_topic,
    heartbeat_topic,
    snapshot_topic,
)
from edge.mqtt_link import LinkOptions, MqttLink
from edge.outbox import CommandClaim, Outbox, OutboxItem, OutboxStats, Priority

log = logging.getLogger(__name__)

CommandCallback = Callable[[str, bytes], object]

_COALESCE_S = 0.002


class SnapshotMismatchError(ValueError):
    """An event's SnapshotRef does not describe the JPEG bytes sent with it."""


@dataclass(frozen=True)
class UplinkStats:
    """Outbox and wire counters for heartbeats and benchmarks."""

    outbox: OutboxStats
    connected: bool
    published: int
    acked: int
    connects: int


class _Publisher:
    """The replay/ack state machine; all state guarded by one condition variable."""

    def __init__(self, outbox: Outbox, inflight: int) -> None:
        self.outbox = outbox
        self.window = inflight
        self.link: MqttLink | None = None
        self._cond = threading.Condition()
        self._generation = 0
        self._connected = False
        self._cursor = 0  # highest seq handed to the link in this generation
        self._inflight: set[int] = set()
        self._acked: list[int] = []
        self._dirty = True
        self._stopping = False
        self.published = 0
        self.acked_total = 0
        self.connects = 0

    # events from the link / producers

    def link_up(self, generation: int) -> None:
        with self._cond:
            self._generation = generation
            self._connected = True
            self._cursor = 0
            self._inflight.clear()
            self._dirty = True
            self.connects += 1
            self._cond.notify_all()

    def link_down(self) -> None:
        with self._cond:
            self._connected = False
            self._cond.notify_all()

    def published_ack(self, generation: int, seq: int) -> None:
        with self._cond:
            if generation == self._generation:
                self._inflight.discard(seq)
            self._acked.append(seq)
            self._cond.notify_all()

    def wake(self) -> None:
        with self._cond:
            self._dirty = True
            self._cond.notify_all()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()

    def idle(self) -> bool:
        """True when nothing is in flight and no ack awaits deletion."""
        with self._cond:
            return not self._inflight and not self._acked

    # the publisher thread

    def run(self) -> None:
        while True:
            with self._cond:
                while not self._stopping and not self._acked and not self._can_send():
                    self._cond.wait(timeout=1.0)
                busy = not self._stopping and bool(self._inflight)
            if busy:
                # Under load, let a few more acks and puts gather before the next round trip
                # to SQLite: one delete and one peek per batch, not per message.
                time.sleep(_COALESCE_S)
            with self._cond:
                acked, self._acked = self._acked, []
                if self._stopping:
                    break
                room = self.window - len(self._inflight) if self._connected else 0
                generation = self._generation
                cursor = self._cursor
                self._dirty = False
            if acked:
                self.outbox.ack(acked)
                self.acked_total += len(acked)
            if room > 0:
                self._send(generation, cursor, room)
        if acked:
            self.outbox.ack(acked)
            self.acked_total += len(acked)

    def _can_send(self) -> bool:
        return self._connected and self._dirty and len(self._inflight) < self.window

    def _send(self, generation: int, cursor: int, room: int) -> None:
        assert self.link is not None
        rows = self.outbox.peek(after=cursor, limit=room)
        for row in rows:
            with self._cond:
                if generation != self._generation:
                    return  # reconnected meanwhile: the replay starts over from the head
                self._inflight.add(row.seq)
                self._cursor = row.seq
            sent = self.link.publish(
                row.topic,
                row.payload,
                qos=row.qos,
                retain=row.retain,
                generation=generation,
                token=row.seq,
            )
            if not sent:
                with self._cond:
                    self._inflight.discard(row.seq)
                return
            self.published += 1
        if len(rows) == room:
            # The window filled up; more rows may wait behind it.
            with self._cond:
                self._dirty = True


class Uplink:
    """The node's way out: durable events and results, best-effort heartbeats, commands in."""

    def __init__(
        self,
        options: LinkOptions,
        outbox: Outbox,
        *,
        on_command: CommandCallback | None = None,
        command_queue_size: int = 256,
    ) -> None:
        self.site_id = options.site_id
        self.device_id = options.device_id
        self.outbox = outbox
        self._publisher = _Publisher(outbox, options.inflight)
        self._on_command = on_command
        self._commands: queue.Queue[tuple[str, bytes, Callable[[], None]] | None] = queue.Queue(
            command_queue_size
        )
        self.link = MqttLink(options, self)
        self._publisher.link = self.link
        self._threads: list[threading.Thread] = []

    # -- LinkListener --------------------------------------------------------------------

    def link_up(self, generation: int) -> None:
        """See `LinkListener.link_up`."""
        self._publisher.link_up(generation)

    def link_down(self) -> None:
        """See `LinkListener.link_down`."""
        self._publisher.link_down()

    def published(self, generation: int, token: int) -> None:
        """See `LinkListener.published`."""
        self._publisher.published_ack(generation, token)

    def message(self, topic: str, payload: bytes, ack: Callable[[], None]) -> None:
        """See `LinkListener.message`: queue for the command worker, never block paho."""
        try:
            self._commands.put_nowait((topic, payload, ack))
        except queue.Full:
            # Not acknowledged, so the broker redelivers it after the next reconnect; a flood
            # this big is an attack or a bug, and shedding it keeps the node alive.
            log.error("command queue full: dropped a message on %s", topic)

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Start the publisher and command threads, then the link."""
        self._threads = [
            threading.Thread(target=self._publisher.run, name="uplink-publisher", daemon=True),
            threading.Thread(target=self._command_worker, name="uplink-commands", daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        self.link.start()

    def stop(self, reason: str = "shutdown", drain_timeout: float = 2.0) -> None:
        """Give in-flight messages `drain_timeout` s to be acked, then stop everything.

        Whatever is not acked stays in the outbox for the next start.
        """
        deadline = time.monotonic() + drain_timeout
        while self.link.connected and not self._publisher.idle() and time.monotonic() < deadline:
            time.sleep(0.02)
        self._publisher.stop()
        self._commands.put(None)
        for thread in self._threads:
            thread.join(timeout=5)
        self.link.stop(reason)

    # -- sending -------------------------------------------------------------------------

    def send_event(self, event: DetectionEvent, snapshot: bytes | None = None) -> list[int]:
        """Store the snapshot (if any) and the event as one group, then wake the publisher.

        Returns the outbox seqs once the rows are durable.
        """
        items: list[OutboxItem] = []
        priority = Priority.of(event.severity)
        if snapshot is not None:
            ref = event.snapshot
            if ref is None:
                raise SnapshotMismatchError("snapshot bytes given but the event has no snapshot")
            digest = hashlib.sha256(snapshot).hexdigest()
            if ref.size_bytes != len(snapshot) or ref.sha256 != digest:
                raise SnapshotMismatchError(
                    f"snapshot {ref.snapshot_id}: size or sha256 does not match the bytes"
                )
            topic = snapshot_topic(event.site_id, event.device_id, ref.snapshot_id)
            items.append(
                OutboxItem(
                    topic=str(topic),
                    payload=snapshot,
                    qos=topic.spec.qos,
                    retain=topic.spec.retain,
                    priority=priority,
                    kind="snapshot",
                )
            )
        topic = event_topic(event.site_id, event.device_id)
        items.append(
            OutboxItem(
                topic=str(topic),
                payload=encode(event),
                qos=topic.spec.qos,
                retain=topic.spec.retain,
                priority=priority,
                kind="event",
                msg_id=event.msg_id,
            )
        )
        seqs = self.outbox.put(items)
        self._publisher.wake()
        return seqs

    def result_item(self, result: CommandResult) -> OutboxItem:
        """The outbox row for a CommandResult (never dropped: someone is waiting for it)."""
        topic = command_result_topic(result.site_id, result.device_id)
        return OutboxItem(
            topic=str(topic),
            payload=encode(result),
            qos=topic.spec.qos,
            retain=topic.spec.retain,
            priority=Priority.URGENT,
            kind="command_result",
            msg_id=result.msg_id,
        )

    def send_command_result(self, result: CommandResult) -> None:
        """Queue a CommandResult durably (for results outside the command ledger)."""
        self.outbox.put([self.result_item(result)])
        self._publisher.wake()

    def claim_command(self, command_id: str, now: float) -> CommandClaim:
        """Record `command_id` in the ledger unless seen (see `Outbox.claim_command`)."""
        return self.outbox.claim_command(command_id, now)

    def complete_command(self, command_id: str, result: CommandResult) -> None:
        """Queue the one result of `command_id` and mark it answered, atomically."""
        self.outbox.complete_command(command_id, self.result_item(result))
        self._publisher.wake()

    def send_heartbeat(self, heartbeat: Heartbeat) -> bool:
        """Publish a heartbeat now at QoS 0; False (and nothing queued) when offline."""
        topic = heartbeat_topic(heartbeat.site_id, heartbeat.device_id)
        return self.link.publish_now(str(topic), encode(heartbeat), qos=topic.spec.qos)

    def stats(self) -> UplinkStats:
        """Outbox depth/drops and wire counters."""
        return UplinkStats(
            outbox=self.outbox.stats(),
            connected=self.link.connected,
            published=self._publisher.published,
            acked=self._publisher.acked_total,
            connects=self._publisher.connects,
        )

    # -- commands ------------------------------------------------------------------------

    def set_command_handler(self, on_command: CommandCallback) -> None:
        """Where received commands go (set before `start`)."""
        self._on_command = on_command

    def _command_worker(self) -> None:
        while True:
            item = self._commands.get()
            if item is None:
                return
            topic, payload, ack = item
            if self._on_command is None:
                log.warning("no command handler: ignored a message on %s", topic)
                continue
            try:
                self._on_command(topic, payload)
            except Exception:
                # A bug in one command must not end command handling for the node's lifetime;
                # it is not acknowledged, so the broker offers it again after a reconnect.
                log.exception("command handler failed on %s", topic)
                continue
            # Only now, with the command in the ledger and its result in the outbox, may the
            # broker forget it.
            ack()
