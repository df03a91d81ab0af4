"""The ingest handler: MQTT messages in, committed effects (or dead letters) out.

`IngestHandler.handle_batch(messages, now)` is what the MQTT task calls with every batch it
drained (one transaction for the batch); `handle(topic, payload, now)` applies one message
in its own transaction and is what the property tests call directly. Neither raises because
of the input: a contract violation, an unknown device or a message the gateway does not take
becomes a dead-letter row with the reason. Only `StoreUnavailableError` (the database is
down) escapes, so the caller does not acknowledge the messages and the broker redelivers
them later.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum

from contract import (
    CommandResult,
    ContractError,
    DetectionEvent,
    Heartbeat,
    Message,
    Status,
    TelemetryBatch,
    decode_for_topic,
)
from contract.topics import Channel, Topic
from gateway.acks import Committed
from gateway.alerts import Alert, from_detection, from_telemetry
from gateway.models import Change
from gateway.sla import CategoryPolicy, TicketCategory
from gateway.store import IngestTx, Store, StoreUnavailableError

log = logging.getLogger(__name__)

TelemetryHook = Callable[[TelemetryBatch, float], tuple[Alert, ...] | None]
"""The alerts of a TelemetryBatch from a device with a telemetry profile (which also stores
its readings), or None for a device without one (`gateway.telemetry.service`)."""

REGISTRY_CACHE_S = 30.0
"""How long a device's registered site is trusted without asking the database again."""

ONCE_PER_MSG_ID = (DetectionEvent, TelemetryBatch, CommandResult)
"""Messages whose effect is keyed by their msg_id, so a redelivery is dropped by it
(heartbeats and status are safe to apply twice; snapshots are keyed by their own id)."""


class Outcome(StrEnum):
    """What happened to one message."""

    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    DEAD_LETTER = "dead_letter"
    IGNORED = "ignored"


@dataclass(frozen=True)
class IngestResult:
    """The outcome, its reason if dead-lettered, the changes to push to consoles, and what
    the device may now forget (`committed`, for the end-to-end Ack; None when the message
    is not one a device re-sends)."""

    outcome: Outcome
    channel: str
    reason: str | None = None
    changes: tuple[Change, ...] = ()
    committed: Committed | None = None


@dataclass(frozen=True)
class _Decoded:
    """A message after contract validation and the registry check, before any write."""

    topic: str
    payload: bytes
    channel: str
    parsed: Topic | None = None
    message: Message | bytes | None = None
    alerts: tuple[Alert, ...] = ()
    dead: tuple[str, str] | None = None  # (error kind, reason)


class IngestHandler:
    """Validates messages against the contract and applies them to the store."""

    def __init__(
        self,
        store: Store,
        policies: dict[TicketCategory, CategoryPolicy],
        cooldown_s: float = 0.0,
        telemetry: TelemetryHook | None = None,
    ) -> None:
        self.store = store
        self.telemetry = telemetry
        self.policies = policies
        self.cooldown_s = cooldown_s
        # The configured device_offline policy: a device heard again clears its maintenance
        # ticket under it (auto-resolved or left for a person, as configured).
        self._offline = policies[TicketCategory.DEVICE_OFFLINE]
        self._sites: dict[str, tuple[str, float]] = {}

    def handle(self, topic: str, payload: bytes, now: float) -> IngestResult:
        """Apply one message in its own transaction; see the module docstring."""
        try:
            item = self._decode(topic, payload, now)
            result = self.store.ingest(lambda tx: self._apply(tx, item), now)
        except StoreUnavailableError:
            raise
        except Exception as exc:  # a bug must not stop ingest: keep the message and the reason
            log.exception("ingest failed on %s", topic[:200])
            reason = f"{type(exc).__name__}: {exc}"
            self.store.dead_letter(topic, payload, "ProcessingError", reason, now)
            result = IngestResult(
                Outcome.DEAD_LETTER, _channel_of(topic), f"ProcessingError: {reason}"
            )
        return result

    def handle_batch(self, messages: Sequence[tuple[str, bytes]], now: float) -> list[IngestResult]:
        """Apply messages (topic, payload) in one transaction, with the same outcome per
        message as `handle`.

        If the batch fails for any reason but the database being away (a message that
        breaks the write, a unique-key race with another replica), it is rolled back and
        every message is applied on its own, so one poison message is dead-lettered and
        the others land.
        """
        if len(messages) == 1:
            return [self.handle(*messages[0], now)]
        try:
            items = [self._decode(topic, payload, now) for topic, payload in messages]
            results = self.store.ingest(lambda tx: self._apply_all(tx, items), now, attempts=1)
        except StoreUnavailableError:
            raise
        except Exception as exc:
            log.warning(
                "a batch of %d messages failed (%s: %s); applying them one by one",
                len(messages),
                type(exc).__name__,
                str(exc)[:200],
            )
            return [self.handle(topic, payload, now) for topic, payload in messages]
        return results

    def _registered_site(self, device_id: str, now: float) -> str | None:
        # Registry lookups are cached briefly (positive answers only, so a device registered
        # a moment ago is found at once). This only validates input; exactly-once decisions
        # are still made by the database.
        cached = self._sites.get(device_id)
        if cached is not None and cached[1] > now:
            return cached[0]
        device = self.store.device(device_id)
        if device is None:
            return None
        self._sites[device_id] = (device.site_id, now + REGISTRY_CACHE_S)
        return device.site_id

    def _decode(self, topic: str, payload: bytes, now: float) -> _Decoded:
        """Validate (pure but for the cached registry lookup); never writes."""
        channel = _channel_of(topic)
        try:
            parsed, message = decode_for_topic(topic, payload)
        except ContractError as exc:
            return _Decoded(topic, payload, channel, dead=(type(exc).__name__, str(exc)))
        site_id = self._registered_site(parsed.device_id, now)
        if site_id is None:
            reason = f"device {parsed.device_id!r} is not registered"
            return _Decoded(topic, payload, channel, dead=("UnknownDevice", reason))
        if site_id != parsed.site_id:
            reason = (
                f"device {parsed.device_id!r} is registered at site {site_id!r}, "
                f"not {parsed.site_id!r}"
            )
            return _Decoded(topic, payload, channel, dead=("UnknownDevice", reason))
        alerts: tuple[Alert, ...] = ()
        if isinstance(message, DetectionEvent):
            alerts = (from_detection(message),)
        elif isinstance(message, TelemetryBatch):
            profiled = self.telemetry(message, now) if self.telemetry is not None else None
            alerts = tuple(from_telemetry(message)) if profiled is None else profiled
        return _Decoded(topic, payload, parsed.channel.value, parsed, message, alerts)

    def _apply_all(self, tx: IngestTx, items: list[_Decoded]) -> list[IngestResult]:
        # One query per table for what the whole batch needs, instead of one per message.
        msg_ids: list[str] = []
        devices: list[str] = []
        for item in items:
            if isinstance(item.message, ONCE_PER_MSG_ID):
                msg_ids.append(item.message.msg_id)
            if isinstance(item.message, Heartbeat | Status):
                devices.append(item.message.device_id)
        alerts = [alert for item in items for alert in item.alerts]
        tx.preload(
            msg_ids=msg_ids,
            event_ids=[a.event_id for a in alerts],
            active_keys=[a.dedup_key for a in alerts],
            device_ids=devices,
        )
        return [self._apply(tx, item) for item in items]

    def _apply(self, tx: IngestTx, item: _Decoded) -> IngestResult:
        if item.dead is not None:
            kind, reason = item.dead
            tx.dead_letter(item.topic, item.payload, kind, reason)
            return IngestResult(Outcome.DEAD_LETTER, item.channel, f"{kind}: {reason}")
        topic, message = item.parsed, item.message
        assert topic is not None
        if isinstance(message, bytes):
            assert topic.name is not None
            fresh = tx.snapshot(topic.site_id, topic.device_id, topic.name, message)
            outcome = Outcome.ACCEPTED if fresh else Outcome.DUPLICATE
            done = Committed(topic.site_id, topic.device_id, snapshot_id=topic.name)
            return IngestResult(outcome, item.channel, committed=done)
        if isinstance(message, Heartbeat):
            health = message.model_dump(
                mode="json", exclude={"schema_", "msg_id", "site_id", "device_id"}
            )
            changes = tx.heartbeat(topic.device_id, message.interval_s, health, self._offline)
            return IngestResult(Outcome.ACCEPTED, item.channel, changes=tuple(changes))
        if isinstance(message, Status):
            online = message.state == "online"
            changes = tx.status(topic.device_id, online, message.ts, self._offline)
            return IngestResult(Outcome.ACCEPTED, item.channel, changes=tuple(changes))
        if isinstance(message, ONCE_PER_MSG_ID):
            result = self._apply_once(tx, item, message.msg_id, topic.device_id)
            done = Committed(topic.site_id, topic.device_id, msg_id=message.msg_id)
            return replace(result, committed=done)
        # Commands are the gateway's own outbound traffic seen through the wildcard.
        return IngestResult(Outcome.IGNORED, item.channel)

    def _apply_once(
        self, tx: IngestTx, item: _Decoded, msg_id: str, device_id: str
    ) -> IngestResult:
        """A message whose effect is keyed by its msg_id: alerts, or just the claim
        (command results, telemetry under every alarm threshold)."""
        duplicate = IngestResult(Outcome.DUPLICATE, item.channel)
        if not item.alerts:
            if not tx.claim(msg_id, device_id):
                return duplicate
            return IngestResult(Outcome.ACCEPTED, item.channel)
        found: list[Change] = []
        for alert in item.alerts:
            applied = tx.apply_alert(alert, self.policies[alert.category], self.cooldown_s)
            if applied.duplicate:
                return duplicate
            found += applied.changes
        return IngestResult(Outcome.ACCEPTED, item.channel, changes=tuple(found))


def _channel_of(topic: str) -> str:
    parts = topic.split("/")
    if len(parts) >= 5 and parts[4] in Channel.__members__.values():
        return parts[4]
    return "unknown"
