"""The node's way out: durable events and results to the gateway, heartbeats, commands in.

`Uplink` is what the rest of the node talks to: `send_event` (snapshot first, then the event,
one outbox group), `send_command_result`, `send_heartbeat` (QoS 0, never queued), and
`stats`. Behind it the delivery thread (`edge.delivery.Delivery`) keeps rows on the wire until
the gateway's end-to-end Ack names them:

    capture threads ──put──▶ Outbox (SQLite WAL) ──peek──▶ Delivery ──▶ MqttLink ──▶ broker
                                   ▲                          ▲  (PUBACK: attempt over)  │
                                   └── delete ◀── Ack (ack) ◀─┴──────── gateway ◀────────┘

The uplink subscribes to its own ``ack`` topic (besides whatever the caller asked for, e.g.
``cmd/+``) on every connect. On every (re)connect the delivery replays from the oldest row, so
the wire order after an outage is the outbox order and every re-send carries the stored bytes
(same `msg_id`); while connected, rows not acked in time are re-sent with backoff
(`AckPolicy`).

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
from dataclasses import dataclass, replace

from contract import (
    CommandResult,
    DetectionEvent,
    Heartbeat,
    ack_topic,
    command_result_topic,
    encode,
    event_topic,
    heartbeat_topic,
    snapshot_topic,
)
from edge.delivery import AckPolicy, Delivery
from edge.link_options import LinkOptions
from edge.mqtt_link import MqttLink
from edge.outbox import CommandClaim, Outbox, OutboxItem, OutboxStats, Priority

__all__ = ["AckPolicy", "SnapshotMismatchError", "Uplink", "UplinkStats"]

log = logging.getLogger(__name__)

CommandCallback = Callable[[str, bytes], object]


class SnapshotMismatchError(ValueError):
    """An event's SnapshotRef does not describe the JPEG bytes sent with it."""


@dataclass(frozen=True)
class UplinkStats:
    """Outbox and wire counters for heartbeats and benchmarks."""

    outbox: OutboxStats
    connected: bool
    published: int
    """Publication attempts handed to the broker (re-sends included)."""
    pubacked: int
    """Attempts the broker PUBACKed (not proof the gateway has them)."""
    acked: int
    """Rows deleted because the gateway's Ack named them (or keyless rows on PUBACK)."""
    awaiting_ack: int
    """Rows PUBACKed on this connection and not acked end to end yet."""
    resent: int
    """Re-sends after an ack timeout (reconnect replays not counted)."""
    connects: int


class Uplink:
    """The node's way out: durable events and results, best-effort heartbeats, commands in."""

    def __init__(
        self,
        options: LinkOptions,
        outbox: Outbox,
        *,
        on_command: CommandCallback | None = None,
        command_queue_size: int = 256,
        acks: AckPolicy | None = None,
    ) -> None:
        self.site_id = options.site_id
        self.device_id = options.device_id
        self.outbox = outbox
        self._ack_topic = str(ack_topic(options.site_id, options.device_id))
        if self._ack_topic not in options.subscriptions:
            options = replace(options, subscriptions=(*options.subscriptions, self._ack_topic))
        self.ack_policy = acks or AckPolicy()
        self._delivery = Delivery(
            outbox,
            site_id=options.site_id,
            device_id=options.device_id,
            inflight=options.inflight,
            policy=self.ack_policy,
        )
        self._on_command = on_command
        self._commands: queue.Queue[tuple[str, bytes, Callable[[], None]] | None] = queue.Queue(
            command_queue_size
        )
        self.link = MqttLink(options, self)
        self._delivery.link = self.link
        self._threads: list[threading.Thread] = []

    # -- LinkListener --------------------------------------------------------------------

    def link_up(self, generation: int) -> None:
        """See `LinkListener.link_up`."""
        self._delivery.link_up(generation, self.link.send_window)

    def link_down(self) -> None:
        """See `LinkListener.link_down`."""
        self._delivery.link_down()

    def published(self, generation: int, token: int) -> None:
        """See `LinkListener.published`: one attempt over, the row stays until its Ack."""
        self._delivery.pubacked(generation, token)

    def message(self, topic: str, payload: bytes, ack: Callable[[], None]) -> None:
        """See `LinkListener.message`: acks to delivery, commands to their worker; never block."""
        if topic == self._ack_topic:
            self._delivery.ack_message(payload, ack)
            return
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
            threading.Thread(target=self._delivery.run, name="uplink-delivery", daemon=True),
            threading.Thread(target=self._command_worker, name="uplink-commands", daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        self.link.start()

    def stop(self, reason: str = "shutdown", drain_timeout: float = 2.0) -> None:
        """Give sent messages `drain_timeout` s to be acked end to end, then stop everything.

        Whatever is not acked stays in the outbox for the next start.
        """
        deadline = time.monotonic() + drain_timeout
        while self.link.connected and not self._delivery.idle() and time.monotonic() < deadline:
            time.sleep(0.02)
        self._delivery.stop()
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
                    snapshot_id=ref.snapshot_id,
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
        self._delivery.wake()
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
        self._delivery.wake()

    def claim_command(self, command_id: str, now: float) -> CommandClaim:
        """Record `command_id` in the ledger unless seen (see `Outbox.claim_command`)."""
        return self.outbox.claim_command(command_id, now)

    def complete_command(self, command_id: str, result: CommandResult) -> None:
        """Queue the one result of `command_id` and mark it answered, atomically."""
        self.outbox.complete_command(command_id, self.result_item(result))
        self._delivery.wake()

    def send_heartbeat(self, heartbeat: Heartbeat) -> bool:
        """Publish a heartbeat now at QoS 0; False (and nothing queued) when offline."""
        topic = heartbeat_topic(heartbeat.site_id, heartbeat.device_id)
        return self.link.publish_now(str(topic), encode(heartbeat), qos=topic.spec.qos)

    def stats(self) -> UplinkStats:
        """Outbox depth/drops and wire counters."""
        counters = self._delivery.counters()
        return UplinkStats(
            outbox=self.outbox.stats(),
            connected=self.link.connected,
            published=counters.published,
            pubacked=counters.pubacked,
            acked=counters.acked,
            awaiting_ack=counters.awaiting_ack,
            resent=counters.resent,
            connects=counters.connects,
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
