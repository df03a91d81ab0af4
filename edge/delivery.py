"""End-to-end delivery from the outbox: publish, wait for the gateway's Ack, re-send until then.

One thread (`Delivery.run`) owns the outbox side of the uplink. Each row goes through:

    stored ──publish──▶ in flight ──PUBACK──▶ awaiting ack ──Ack names it──▶ deleted
                           ▲                       │
                           └── ack timeout (backoff), or reconnect: replay from the head ──┘

- A PUBACK only ends one publication attempt: the broker has the message, the gateway may
  not (a lost shared subscription, a broker restart, a rogue client holding the gateway's id).
  A row leaves the outbox only when a `contract.Ack` from the gateway names it: events and
  command results by `msg_id`, snapshots by `snapshot_id`. Rows no Ack can name (no key) go
  on their PUBACK, as before.
- Re-sends carry the stored bytes (same `msg_id`); the gateway drops duplicates by it.
- On every (re)connect the replay starts from the oldest row, in outbox order.
- While connected, a row not acked `timeout_s` after it was sent is sent again; each further
  attempt waits twice as long, up to `max_timeout_s` — but only while the gateway is heard
  from: if an Ack (for any row) arrived after the row was last sent, the gateway is up and
  lost this one (a broker restart), so it is re-sent. If no Ack arrived since, the gateway is
  presumably down and the broker queues every copy for it (its queue is shared with stock
  sensors' fire telemetry, which is never re-sent, and Mosquitto drops new QoS 1 messages once
  it is full): then only one row, the oldest due, is re-sent as a probe, on the same backoff,
  and the others are held. The first Ack after the silence re-sends every held row at once.
  An outage of hours costs one copy of the window (the first sends) and one probe per
  `max_timeout_s`, not a window per `max_timeout_s`.
- At most `window` rows are on the wire or awaiting an ack at once: while the gateway is
  away the rest wait on disk (bounded, with the outbox's drop policy) instead of piling up in
  the broker's queue, and each re-send round is bounded too.

Acks arrive on paho's network thread; they are queued here and decoded, checked (this node's
site and device only) and applied (one batched DELETE) on this thread. Their own MQTT PUBACK
goes to the broker after the delete, so an Ack the node never applied is redelivered.
"""

from __future__ import annotations

import heapq
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from contract import Ack, ContractError, decode
from edge.outbox import Outbox, OutboxError, StoredItem

log = logging.getLogger(__name__)

# Under load, let a few more acks and puts gather before the next round trip to SQLite: one
# delete and one peek per batch, not per message.
_COALESCE_S = 0.002


@dataclass(frozen=True)
class AckPolicy:
    """When to re-send a row the gateway has not acked, and how many may await an ack."""

    timeout_s: float = 30.0
    """First re-send this long after a send without an Ack."""
    max_timeout_s: float = 600.0
    """Each further attempt waits twice as long as the last, up to this."""
    window: int = 256
    """Rows on the wire or awaiting an Ack at once; the rest wait in the outbox."""

    def __post_init__(self) -> None:
        if self.timeout_s <= 0 or self.max_timeout_s < self.timeout_s or self.window < 1:
            raise ValueError(
                "ack policy: timeout_s > 0, max_timeout_s >= timeout_s and window >= 1"
            )

    def wait_after(self, attempts: int) -> float:
        """Seconds to wait for an Ack after attempt number `attempts` (1 = the first send)."""
        return float(min(self.max_timeout_s, self.timeout_s * 2 ** min(attempts - 1, 30)))


class Link(Protocol):
    """The slice of `edge.mqtt_link.MqttLink` delivery uses."""

    def publish(
        self, topic: str, payload: bytes, *, qos: int, retain: bool, generation: int, token: int
    ) -> bool:
        """Publish on connection `generation`; False if down or reconnected meanwhile."""


@dataclass
class _Attempt:
    attempts: int
    deadline: float
    ackable: bool
    sent_at: float


@dataclass(frozen=True)
class DeliveryCounters:
    """What delivery has done so far (since start), for stats and benchmarks."""

    published: int
    pubacked: int
    acked: int
    resent: int
    awaiting_ack: int
    in_flight: int
    connects: int


class Delivery:
    """The replay / ack / re-send state machine; all state guarded by one condition variable."""

    def __init__(
        self,
        outbox: Outbox,
        *,
        site_id: str,
        device_id: str,
        inflight: int,
        policy: AckPolicy,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.outbox = outbox
        self.site_id = site_id
        self.device_id = device_id
        self._max_inflight = inflight
        self.inflight_window = inflight
        self.policy = policy
        self.link: Link | None = None
        self._clock = clock
        self._cond = threading.Condition()
        self._generation = 0
        self._connected = False
        self._cursor = 0  # highest seq handed to the link in this generation
        self._inflight: set[int] = set()  # sent in this generation, no PUBACK yet
        self._sent: dict[int, _Attempt] = {}  # sent in this generation, not acked end to end
        self._deadlines: list[tuple[float, int, int]] = []  # heap of (deadline, seq, attempts)
        self._keyless_pubacked: list[int] = []
        # Silence handling: when the last valid Ack for this node was applied, the probe
        # re-sent while the gateway is silent, and the rows held (no deadline) meanwhile.
        self._last_ack_at = float("-inf")
        self._probe: int | None = None
        self._held: set[int] = set()
        self._acks: list[tuple[bytes, Callable[[], None]]] = []
        self._dirty = True
        self._stopping = False
        self._published = 0
        self._pubacked = 0
        self._acked = 0
        self._resent = 0
        self._connects = 0

    # -- events from the link (paho's network thread) and producers -----------------------

    def link_up(self, generation: int, send_window: int | None = None) -> None:
        """Connected: forget this connection's predecessor and replay from the head.

        `send_window` caps PUBACK-awaiting publishes on this connection (the broker's
        Receive Maximum), below the configured `inflight`.
        """
        with self._cond:
            self._generation = generation
            self.inflight_window = min(self._max_inflight, send_window or self._max_inflight)
            self._connected = True
            self._cursor = 0
            self._inflight.clear()
            self._sent.clear()
            self._deadlines.clear()
            self._held.clear()
            self._probe = None
            self._dirty = True
            self._connects += 1
            self._cond.notify_all()

    def link_down(self) -> None:
        """Disconnected: nothing more is sent until the next `link_up`."""
        with self._cond:
            self._connected = False
            self._cond.notify_all()

    def pubacked(self, generation: int, seq: int) -> None:
        """The broker PUBACKed row `seq`: one attempt over; keyless rows may go."""
        with self._cond:
            self._pubacked += 1
            if generation != self._generation:
                return  # an earlier connection's attempt: the replay covers that row
            self._inflight.discard(seq)
            attempt = self._sent.get(seq)
            if attempt is not None and not attempt.ackable:
                self._keyless_pubacked.append(seq)
            self._cond.notify_all()

    def ack_message(self, payload: bytes, puback: Callable[[], None]) -> None:
        """An Ack message arrived; it is decoded and applied on the delivery thread."""
        with self._cond:
            self._acks.append((payload, puback))
            self._cond.notify_all()

    def wake(self) -> None:
        """New rows are in the outbox."""
        with self._cond:
            self._dirty = True
            self._cond.notify_all()

    def stop(self) -> None:
        """Make `run` return after applying what it has."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()

    def idle(self) -> bool:
        """True when nothing sent awaits a PUBACK or an Ack, and no Ack awaits applying."""
        with self._cond:
            return not self._sent and not self._acks and not self._keyless_pubacked

    def counters(self) -> DeliveryCounters:
        """A consistent snapshot of the counters."""
        with self._cond:
            return DeliveryCounters(
                published=self._published,
                pubacked=self._pubacked,
                acked=self._acked,
                resent=self._resent,
                awaiting_ack=len(self._sent) - len(self._inflight),
                in_flight=len(self._inflight),
                connects=self._connects,
            )

    # -- the delivery thread -------------------------------------------------------------

    def run(self) -> None:
        """Apply acks, send new rows and re-send overdue ones until `stop`.

        An outbox error (disk full, I/O error) is logged and retried a second later: the
        thread must outlive it, or nothing would ever be delivered again.
        """
        while True:
            try:
                if self._round():
                    return
            except OutboxError:
                log.exception("delivery: outbox error; retrying in 1 s")
                with self._cond:
                    if self._stopping:
                        return
                    self._cond.wait(timeout=1.0)

    def _round(self) -> bool:
        """One pass: wait for work, apply acks, re-send, send. True once stopped."""
        with self._cond:
            while not self._stopping and not self._has_work():
                self._cond.wait(timeout=self._sleep_for())
            busy = not self._stopping and bool(self._inflight)
        if busy:
            time.sleep(_COALESCE_S)
        with self._cond:
            acks, self._acks = self._acks, []
            keyless, self._keyless_pubacked = self._keyless_pubacked, []
            stopping = self._stopping
        self._apply(acks, keyless)
        if stopping:
            return True
        self._resend_overdue()
        with self._cond:
            room = self._room()
            generation, cursor = self._generation, self._cursor
            self._dirty = False
        if room > 0:
            self._send_new(generation, cursor, room)
        return False

    def _has_work(self) -> bool:
        if self._acks or self._keyless_pubacked:
            return True
        if not self._connected:
            return False
        if self._dirty and self._room() > 0:
            return True
        return self._overdue() and len(self._inflight) < self.inflight_window

    def _overdue(self) -> bool:
        return bool(self._deadlines) and self._deadlines[0][0] <= self._clock()

    def _sleep_for(self) -> float:
        # With the in-flight window full a PUBACK (which notifies) must come first.
        if self._connected and self._deadlines and not self._overdue():
            return max(0.001, min(1.0, self._deadlines[0][0] - self._clock()))
        return 1.0

    def _room(self) -> int:
        if not self._connected:
            return 0
        return min(self.inflight_window - len(self._inflight), self.policy.window - len(self._sent))

    def _apply(self, acks: list[tuple[bytes, Callable[[], None]]], keyless: list[int]) -> None:
        msg_ids: list[str] = []
        snapshot_ids: list[str] = []
        heard = False
        for payload, _ in acks:
            ack = self._decode(payload)
            if ack is not None:
                heard = True
                msg_ids += ack.msg_ids
                snapshot_ids += ack.snapshot_ids
        deleted = self.outbox.delete_acked(msg_ids=msg_ids, snapshot_ids=snapshot_ids)
        if keyless:
            self.outbox.delete(keyless)
        with self._cond:
            for seq in [*deleted, *keyless]:
                self._sent.pop(seq, None)
                self._inflight.discard(seq)
            self._acked += len(deleted) + len(keyless)
            if heard:
                self._heard_from_gateway()
            if len(self._deadlines) > 4 * self.policy.window + 1024:
                # Acked rows leave their deadline entries behind until they come due; under
                # a steady flow rebuild the heap from what still awaits an ack instead (held
                # rows wait for an Ack, not a deadline).
                self._deadlines = [
                    (a.deadline, seq, a.attempts)
                    for seq, a in self._sent.items()
                    if a.ackable and seq not in self._held
                ]
                heapq.heapify(self._deadlines)
            if deleted or keyless:
                self._dirty = True
        for _, puback in acks:
            # Only now, with the rows gone, may the broker forget the Ack.
            puback()

    def _heard_from_gateway(self) -> None:
        """An Ack arrived: the gateway is back; every held row is due now (lock held)."""
        now = self._clock()
        self._last_ack_at = now
        self._probe = None
        for seq in self._held:
            attempt = self._sent.get(seq)
            if attempt is not None:
                heapq.heappush(self._deadlines, (now, seq, attempt.attempts))
        self._held.clear()

    def _silent_since(self, attempt: _Attempt) -> bool:
        """True when no Ack arrived after this row was last sent (lock held)."""
        return self._last_ack_at < attempt.sent_at

    def _decode(self, payload: bytes) -> Ack | None:
        try:
            ack = decode(Ack, payload)
        except ContractError as exc:
            log.warning("ignored an ack that is not a valid Ack: %s", exc)
            return None
        assert isinstance(ack, Ack)  # decode's type is the constrained Message, not Ack
        if (ack.site_id, ack.device_id) != (self.site_id, self.device_id):
            log.warning(
                "ignored an ack addressed to %s/%s (this node is %s/%s)",
                ack.site_id,
                ack.device_id,
                self.site_id,
                self.device_id,
            )
            return None
        return ack

    def _resend_overdue(self) -> None:
        now = self._clock()
        with self._cond:
            room = self.inflight_window - len(self._inflight) if self._connected else 0
            generation = self._generation
            due: list[int] = []
            while self._deadlines and self._deadlines[0][0] <= now and len(due) < room:
                _, seq, attempts = heapq.heappop(self._deadlines)
                attempt = self._sent.get(seq)
                if attempt is None or attempt.attempts != attempts:
                    continue  # stale: acked, or re-sent since
                if self._silent_since(attempt) and not self._may_probe(seq):
                    self._held.add(seq)  # the gateway is silent and a probe is out already
                    continue
                due.append(seq)
        if not due:
            return
        rows = {row.seq: row for row in self.outbox.get(due)}
        with self._cond:
            for seq in due:
                if seq not in rows:  # acked or dropped meanwhile
                    self._sent.pop(seq, None)
                    self._inflight.discard(seq)
                    if seq == self._probe:
                        self._next_probe(now)
        for seq in sorted(rows):
            if not self._publish(rows[seq], generation, resend=True):
                return

    def _may_probe(self, seq: int) -> bool:
        """Make `seq` the probe unless another row is it (lock held)."""
        if self._probe is not None and self._probe != seq and self._probe in self._sent:
            return False
        self._probe = seq
        return True

    def _next_probe(self, now: float) -> None:
        """The probe left the outbox unacked (dropped): the oldest held row probes now."""
        self._probe = None
        while self._held:
            seq = min(self._held)
            self._held.discard(seq)
            attempt = self._sent.get(seq)
            if attempt is not None:
                heapq.heappush(self._deadlines, (now, seq, attempt.attempts))
                return

    def _send_new(self, generation: int, cursor: int, room: int) -> None:
        rows = self.outbox.peek(after=cursor, limit=room)
        for row in rows:
            if not self._publish(row, generation, resend=False):
                return
        if len(rows) == room:
            # The window filled up; more rows may wait behind it.
            with self._cond:
                self._dirty = True

    def _publish(self, row: StoredItem, generation: int, *, resend: bool) -> bool:
        """Hand one row to the link; False when the connection changed (replay starts over)."""
        assert self.link is not None
        with self._cond:
            if generation != self._generation or not self._connected:
                return False
            previous = self._sent.get(row.seq)
            attempts = 1 if previous is None else previous.attempts + 1
            now = self._clock()
            deadline = now + self.policy.wait_after(attempts)
            self._sent[row.seq] = _Attempt(attempts, deadline, row.ackable, now)
            self._inflight.add(row.seq)
            if row.ackable:
                heapq.heappush(self._deadlines, (deadline, row.seq, attempts))
            if not resend:
                self._cursor = max(self._cursor, row.seq)
        sent = self.link.publish(
            row.topic,
            row.payload,
            qos=row.qos,
            retain=row.retain,
            generation=generation,
            token=row.seq,
        )
        with self._cond:
            if not sent:
                self._inflight.discard(row.seq)
                self._sent.pop(row.seq, None)
                return False
            self._published += 1
            if resend:
                self._resent += 1
        return True
