"""The gateway's MQTT ingest: sessions, batches, acks after commit (the connection itself,
and paho, are `gateway.mqtt_link`'s).

`MqttIngest.run` keeps one persistent MQTT 5 session (clean start off, a session that never
expires, client id = the replica's broker username) subscribed at QoS 1 to the device
channels of its sites. It drains what has arrived (up to `batch_max` messages) and hands the
batch to the ingest callback, which commits it in one transaction and returns the messages
to publish because of it: the end-to-end Acks. Those are published only then, and every
QoS 1 message of the batch is acknowledged to the broker only after that, i.e. after its
effect (or its dead letter) is committed: a gateway killed mid-burst gets the
unacknowledged messages again on reconnect, and the database drops the ones it had already
committed.

Retained messages are refused on every channel but ``status`` (subscriptions ask for
retain-as-published, so a live retained publish is flagged too): they go to `on_refused`
(a dead letter) instead of `on_batch`, and are never applied.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

from contract.topics import Channel
from gateway.mqtt_link import (
    MAX_PENDING,
    LinkError,
    LinkPublishError,
    LinkRefusedError,
    MqttLink,
    Received,
)
from gateway.mqtt_settings import MqttSettings
from gateway.store import StoreUnavailableError

log = logging.getLogger(__name__)

T = TypeVar("T")

RECOVERED_AFTER_S = 5.0
"""After a failure, a connection this long without a new one counts as recovered (when no
batch arrived to prove it sooner)."""

MAX_PENDING_PUBLISHES = MAX_PENDING
"""Acks in flight at once; beyond this the ingest waits for PUBACKs before the next batch."""

PUBLISH_FAILURE_LOG_EVERY_S = 60.0
"""Failed ack publishes are logged at most this often (with how many failed since the last
line): a broker away fails every ack of every batch."""


@dataclass(frozen=True)
class Outbound:
    """A message to publish (QoS 1, not retained) once the batch that caused it committed."""

    topic: str
    payload: bytes


@dataclass(frozen=True)
class Refused:
    """A message refused before ingest, with the reason for its dead letter."""

    topic: str
    payload: bytes
    reason: str


OnBatch = Callable[[Sequence[tuple[str, bytes]]], Awaitable[Sequence[Outbound] | None]]
"""Applies (topic, payload) pairs; returns once their effects are committed, with what to
publish because of the commit (acks)."""
OnRefused = Callable[[Sequence[Refused]], Awaitable[None]]
"""Records refused messages (dead letters); returns once that is committed."""


class IngestState(StrEnum):
    """What the ingest is doing, for /healthz."""

    CONNECTING = "connecting"
    RUNNING = "running"
    STALLED = "stalled"  # a batch is held: the database refuses its commit; retrying
    FAILED = "failed"  # the ingest raised; the supervisor restarts it with backoff


class SubscriptionRefusedError(RuntimeError):
    """The broker refused a subscription (its ACL does not let this account read it).

    Not a connection error: reconnecting will not help, so it leaves `run` for the
    supervisor, and /healthz reports the ingest failed with this message."""


class LoginRefusedError(RuntimeError):
    """The broker refused the gateway's login (bad user name or password, not authorized,
    client id refused).

    Not a connection error either: retrying the same credentials cannot help, so it leaves
    `run` for the supervisor (/healthz: ingest failed, 503, with this message), which keeps
    retrying with backoff, so ingest comes back once the account is fixed at the broker."""


LOGIN_REFUSED_CODES = frozenset({4, 5, 0x85, 0x86, 0x87, 0x8C})
"""CONNACK codes that refuse these credentials (MQTT 3.1.1: 4 bad user name or password,
5 not authorized; MQTT 5: 0x85 client id not valid, 0x86 bad user name or password, 0x87
not authorized, 0x8C bad authentication method); any other refusal is retried as a
connection error (server busy or unavailable, …)."""


def refusal(topic: str, retain: bool) -> str | None:
    """Why a delivered message must not be applied, or None. Pure.

    Only ``status`` is retained by contract (the last will and the node's current state);
    anything else retained is re-delivered on every subscribe, so one rogue publish would be
    replayed forever.
    """
    if not retain or topic.startswith("esphome/"):
        # ESPHome retains its states by default; a replayed state is only a reading again.
        return None
    parts = topic.split("/")
    channel = parts[4] if len(parts) >= 5 else ""
    if channel == Channel.STATUS.value:
        return None
    return f"retained message on channel {channel!r}: only 'status' may be retained"


async def retry_while_store_down(
    attempt: Callable[[], Awaitable[T]], stalled: Callable[[], None]
) -> T:
    """`attempt` until the database takes it: the database being away is not the messages'
    fault, so they are held (unacknowledged) and retried with backoff (0.5 s doubling to
    30 s), `stalled` called at each refusal, rather than dead-lettering good data."""
    delay = 0.5
    while True:
        try:
            return await attempt()
        except StoreUnavailableError as exc:
            stalled()
            log.warning("database unavailable (%s); retrying in %.1f s", exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)


class PublishUnavailableError(RuntimeError):
    """The gateway is not connected to the broker, so nothing can be published now."""


class MqttIngest:
    """Subscribe, feed batches to `on_batch`, publish its acks, acknowledge after commit;
    reconnect forever on connection errors (anything else raises, for the supervisor)."""

    def __init__(
        self,
        settings: MqttSettings,
        on_batch: OnBatch,
        on_refused: OnRefused | None = None,
        on_publish_failed: Callable[[], None] | None = None,
        *,
        filters: Sequence[str] | None = None,
        unsubscribe: Sequence[str] = (),
        mqtt5: bool = True,
        depth: int = 1,
    ) -> None:
        self.settings = settings
        self.depth = depth
        """Batches handed to `on_batch` at once. 1: the next batch is taken once the last one
        is acknowledged. 2 (a receiver process, `gateway.receiver_ingest`): the next batch is
        taken and handed over while the last one is still being applied elsewhere, so
        receiving and applying overlap; each batch then holds at most ``batch_max // depth``
        messages (the broker's window of unacknowledged messages must hold them all), and
        batches are still acknowledged to the broker in order, each after its own commit."""
        # The embedded broker speaks only 3.1.1 (settings.protocol); workers choose it too.
        self.mqtt5 = mqtt5 and settings.protocol == "5"
        """False: MQTT 3.1.1, for event-only ingest workers (`gateway.ingest_workers`):
        paho decodes an MQTT 5 PUBLISH at about twice the CPU of a 3.1.1 one (a
        `Properties` object per message), measured ~85 µs more per message. The session
        persists the same way (clean session off); what 3.1.1 lacks is
        retain-as-published, so a retained event published live arrives unflagged and is
        applied once like any event (its msg_id keeps it once), while its replays at
        (re)subscribe still arrive flagged and are refused."""
        self.unsubscribe = list(unsubscribe)
        """Filters this persistent session may hold from an earlier configuration and must
        drop (telemetry moved to a session of its own)."""
        self.filters = (
            list(filters)
            if filters is not None
            else settings.subscriptions + settings.esphome_subscriptions
        )
        self.on_batch = on_batch
        self.on_refused = on_refused
        self.on_publish_failed = on_publish_failed
        """Called once per Ack whose publish failed (the gateway counts it in a metric)."""
        self.publish_failures = 0
        """Acks whose publish failed, since start."""
        self._failures_unlogged = 0
        self._failure_logged_at: float | None = None
        self.connected = asyncio.Event()
        self.state = IngestState.CONNECTING
        self.pending = 0
        """Messages delivered to this replica and not yet acknowledged (held uncommitted)."""
        self.failure: str | None = None
        """The last error that stopped the ingest (set by the supervisor), until it recovers."""
        self.received = 0
        """Messages received since start (each redelivery counts again)."""
        self.batches = 0
        """Batches handed to `on_batch` / `on_refused` since start."""
        self._link: MqttLink | None = None

    async def publish(self, topic: str, payload: bytes, *, qos: int = 1) -> None:
        """Publish on the ingest's connection (commands, acks); waits for the PUBACK at QoS 1.

        Raises PublishUnavailableError while disconnected.
        """
        link = self._link
        if link is None or not self.connected.is_set():
            raise PublishUnavailableError("the gateway is not connected to the MQTT broker")
        try:
            await link.publish(topic, payload, qos)
        except LinkPublishError as exc:
            raise PublishUnavailableError(f"publish failed: {exc}") from exc

    async def connect(self) -> MqttLink:
        """One connection of this replica's session (persistent; the CONNACK received)."""
        s = self.settings
        return await MqttLink.open(
            s.host,
            s.port,
            s.session_id,
            username=s.username,
            password=s.password.get_secret_value() if s.password else None,
            keepalive=s.keepalive_s,
            mqtt5=self.mqtt5,
        )

    async def run(self) -> None:
        """Run until cancelled; raises what is not a connection error (see `supervise`)."""
        try:
            while True:
                try:
                    link = await self.connect()
                except LinkRefusedError as exc:
                    if exc.code in LOGIN_REFUSED_CODES:
                        raise LoginRefusedError(
                            f"the broker refused the login of {self.settings.session_id!r} "
                            f"({exc}): check mqtt.username / mqtt.password and the broker "
                            "account (guanjia gateway mqtt-account)"
                        ) from exc
                    self._disconnected()
                    log.warning("MQTT connection refused (%s); reconnecting", exc)
                    await asyncio.sleep(self.settings.reconnect_s)
                    continue
                except LinkError as exc:
                    self._disconnected()
                    log.warning("MQTT connection failed (%s); reconnecting", exc)
                    await asyncio.sleep(self.settings.reconnect_s)
                    continue
                try:
                    await self._subscribe(link)
                    self._link = link
                    self.connected.set()
                    if self.state is not IngestState.FAILED:
                        # After a failure, only a committed batch (or a quiet while, in
                        # `_consume`) shows the cause is gone.
                        self.state = IngestState.RUNNING
                    log.info("ingest subscribed as %s", self.settings.session_id)
                    await self._consume(link)
                except LinkError as exc:
                    self._disconnected()
                    log.warning("MQTT connection lost (%s); reconnecting", exc)
                    await asyncio.sleep(self.settings.reconnect_s)
                finally:
                    link.close()
        finally:
            self._disconnected()

    def _disconnected(self) -> None:
        self.connected.clear()
        self._link = None
        self.pending = 0
        if self.state is not IngestState.FAILED:
            self.state = IngestState.CONNECTING

    async def _subscribe(self, link: MqttLink) -> None:
        if self.unsubscribe:
            await link.unsubscribe(self.unsubscribe)
        granted = await link.subscribe(self.filters, mqtt5=self.mqtt5)
        refused = [f for f, code in zip(self.filters, granted, strict=True) if code >= 0x80]
        if refused:
            raise SubscriptionRefusedError(
                f"the broker refused subscriptions {refused} for {self.settings.session_id!r}: "
                "check the gateway account's ACL (guanjia gateway mqtt-account)"
            )

    async def _consume(self, link: MqttLink) -> None:
        if self.depth > 1:
            await self._consume_overlapped(link)
            return
        limit = self.settings.batch_max
        linger = self.settings.batch_linger_s
        while True:
            # After a failure, a quiet connection shows recovery too (no batch may come).
            quiet = RECOVERED_AFTER_S if self.state is IngestState.FAILED else None
            if not await link.wait_received(quiet):
                self._recovered()
                continue
            # What has arrived is taken whole: under load it piles up while the previous
            # batch commits, so batches grow exactly when one transaction per message would
            # fall behind. An optional linger trades a little latency for bigger batches.
            if linger > 0 and link.waiting() < limit:
                await asyncio.sleep(linger)
            batch = link.take(limit)
            self.pending = len(batch)
            self.received += len(batch)
            await self._deliver(link, batch)
            # Only now, with the commit done and its acks handed to paho (queued ahead of
            # these PUBACKs), does the broker learn that this replica has the messages.
            link.ack(batch)
            self.pending = 0

    async def _consume_overlapped(self, link: MqttLink) -> None:
        """`_consume` with up to `depth` batches being applied at once (see `depth`): one
        task takes batches and hands them on, another acknowledges them in order as each
        one's delivery (commit, then its Acks handed to paho) finishes. Whatever either
        raises ends both and leaves here as it was raised."""
        limit = max(1, self.settings.batch_max // self.depth)
        slots = asyncio.Semaphore(self.depth)
        order: asyncio.Queue[tuple[list[Received], asyncio.Task[None]]] = asyncio.Queue()

        async def take() -> None:
            while True:
                await slots.acquire()
                quiet = RECOVERED_AFTER_S if self.state is IngestState.FAILED else None
                while not await link.wait_received(quiet):
                    self._recovered()
                batch = link.take(limit)
                self.pending += len(batch)
                self.received += len(batch)
                order.put_nowait((batch, asyncio.create_task(self._deliver(link, batch))))

        async def acknowledge() -> None:
            while True:
                batch, delivery = await order.get()
                await delivery
                link.ack(batch)  # in order: MQTT wants PUBACKs in the order of the PUBLISHes
                self.pending -= len(batch)
                slots.release()

        tasks = [asyncio.create_task(take()), asyncio.create_task(acknowledge())]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                task.result()  # raises what ended it
        finally:
            while not order.empty():
                tasks.append(order.get_nowait()[1])
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _deliver(self, link: MqttLink, batch: Sequence[Received]) -> None:
        accepted: list[tuple[str, bytes]] = []
        refused: list[Refused] = []
        for topic, payload, retain, _mid in batch:
            reason = refusal(topic, retain) if retain else None
            if reason is None:
                accepted.append((topic, payload))
            else:
                refused.append(Refused(topic, payload, reason))
        outbound: Sequence[Outbound] = ()
        on_refused = self.on_refused
        if refused and on_refused is not None:
            await self._retry_while_store_down(lambda: on_refused(refused))
        if accepted:
            result = await self._retry_while_store_down(lambda: self.on_batch(accepted))
            outbound = result or ()
        self.batches += 1
        await self._publish_after_commit(link, outbound)

    async def _retry_while_store_down(self, attempt: Callable[[], Awaitable[T]]) -> T:
        result = await retry_while_store_down(attempt, self._stalled)
        self._recovered()
        return result

    def _stalled(self) -> None:
        self.state = IngestState.STALLED

    def _recovered(self) -> None:
        self.state = IngestState.RUNNING
        self.failure = None

    async def _publish_after_commit(self, link: MqttLink, outbound: Sequence[Outbound]) -> None:
        """Hand `outbound` to paho without waiting for each PUBACK (an ack lost on the way
        is harmless: the device re-sends, the database drops the copy, a new ack goes).
        paho queues them in order, ahead of the PUBACKs the caller sends next."""
        await link.room()
        for item in outbound:
            try:
                future = link.publish(item.topic, item.payload, 1)
            except LinkPublishError as exc:
                self._publish_failed(item, exc)
                continue
            future.add_done_callback(functools.partial(self._published, item))

    def _published(self, item: Outbound, future: asyncio.Future[None]) -> None:
        exc = future.exception() if not future.cancelled() else None
        if exc is not None:
            self._publish_failed(item, exc)

    def _publish_failed(self, item: Outbound, exc: BaseException) -> None:
        # Not a loss (the device re-sends until an Ack arrives, and gets one then), but it
        # must be visible: counted every time, logged at most every PUBLISH_FAILURE_LOG_EVERY_S.
        self.publish_failures += 1
        self._failures_unlogged += 1
        if self.on_publish_failed is not None:
            self.on_publish_failed()
        now = time.monotonic()
        last = self._failure_logged_at
        if last is None or now - last >= PUBLISH_FAILURE_LOG_EVERY_S:
            log.warning(
                "%d ack publish(es) failed since the last report (last on %s: %s); the "
                "devices re-send and are acked then",
                self._failures_unlogged,
                item.topic[:200],
                exc,
            )
            self._failure_logged_at = now
            self._failures_unlogged = 0


async def drop_session(settings: MqttSettings) -> bool:
    """End the persistent session `settings` names at the broker (connect with clean start and
    no expiry, then leave): its subscriptions and queued messages go. False when the broker
    refused the login (no such account) or could not be reached.

    Used for ingest workers no longer configured: a stale worker session would stay in the
    shared group and be handed events that nobody consumes."""
    try:
        link = await MqttLink.open(
            settings.host,
            settings.port,
            settings.session_id,
            username=settings.username,
            password=settings.password.get_secret_value() if settings.password else None,
            keepalive=settings.keepalive_s,
            mqtt5=settings.protocol == "5",
            persistent=False,
            timeout_s=5.0,
        )
    except LinkError:
        return False
    link.close()
    return True
