"""The ingest handler: one MQTT message in, one committed effect (or a dead letter) out.

`IngestHandler.handle(topic, payload, now)` is what the MQTT task calls for every message, and
what the property tests call directly. It never raises because of the input: a contract
violation, an unknown device or a message the gateway does not take becomes a dead-letter row
with the reason. Only `StoreUnavailableError` (the database is down) escapes, so the caller
does not acknowledge the message and the broker redelivers it later.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

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
from gateway.alerts import from_detection, from_telemetry
from gateway.models import Change
from gateway.sla import CategoryPolicy, TicketCategory
from gateway.store import Store, StoreUnavailableError

log = logging.getLogger(__name__)

REGISTRY_CACHE_S = 30.0
"""How long a device's registered site is trusted without asking the database again."""


class Outcome(StrEnum):
    """What happened to one message."""

    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    DEAD_LETTER = "dead_letter"
    IGNORED = "ignored"


@dataclass(frozen=True)
class IngestResult:
    """The outcome, its reason if dead-lettered, and the changes to push to consoles."""

    outcome: Outcome
    channel: str
    reason: str | None = None
    changes: tuple[Change, ...] = field(default_factory=tuple)


@dataclass
class IngestCounters:
    """Per-process totals for /metrics and the benchmarks."""

    by_outcome: dict[tuple[str, str], int] = field(default_factory=dict)

    def count(self, result: IngestResult) -> None:
        """Add one result."""
        key = (result.channel, result.outcome.value)
        self.by_outcome[key] = self.by_outcome.get(key, 0) + 1


class IngestHandler:
    """Validates a message against the contract and applies it to the store."""

    def __init__(
        self,
        store: Store,
        policies: dict[TicketCategory, CategoryPolicy],
        cooldown_s: float = 0.0,
    ) -> None:
        self.store = store
        self.policies = policies
        self.cooldown_s = cooldown_s
        self.counters = IngestCounters()
        self._sites: dict[str, tuple[str, float]] = {}

    def handle(self, topic: str, payload: bytes, now: float) -> IngestResult:
        """Apply one message; see the module docstring for the guarantees."""
        try:
            result = self._handle(topic, payload, now)
        except StoreUnavailableError:
            raise
        except ContractError as exc:
            result = self._dead(topic, payload, type(exc).__name__, str(exc), now)
        except Exception as exc:  # a bug must not stop ingest: keep the message and the reason
            log.exception("ingest failed on %s", topic[:200])
            result = self._dead(
                topic, payload, "ProcessingError", f"{type(exc).__name__}: {exc}", now
            )
        self.counters.count(result)
        return result

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

    def _dead(self, topic: str, payload: bytes, kind: str, reason: str, now: float) -> IngestResult:
        self.store.dead_letter(topic, payload, kind, reason, now)
        channel = _channel_of(topic)
        return IngestResult(Outcome.DEAD_LETTER, channel, f"{kind}: {reason}")

    def _handle(self, topic: str, payload: bytes, now: float) -> IngestResult:
        parsed, message = decode_for_topic(topic, payload)
        site_id = self._registered_site(parsed.device_id, now)
        if site_id is None:
            reason = f"device {parsed.device_id!r} is not registered"
            return self._dead(topic, payload, "UnknownDevice", reason, now)
        if site_id != parsed.site_id:
            reason = (
                f"device {parsed.device_id!r} is registered at site {site_id!r}, "
                f"not {parsed.site_id!r}"
            )
            return self._dead(topic, payload, "UnknownDevice", reason, now)
        if isinstance(message, bytes):
            return self._snapshot(parsed, message, now)
        appliers: dict[type[Message], Callable[[Topic, Any, float], IngestResult]] = {
            DetectionEvent: self._event,
            Heartbeat: self._heartbeat,
            Status: self._status,
            TelemetryBatch: self._telemetry,
            CommandResult: self._command_result,
        }
        applier = appliers.get(type(message))
        if applier is None:
            # Commands are the gateway's own outbound traffic seen through the wildcard.
            return IngestResult(Outcome.IGNORED, parsed.channel.value)
        return applier(parsed, message, now)

    def _event(self, topic: Topic, message: DetectionEvent, now: float) -> IngestResult:
        alert = from_detection(message)
        applied = self.store.apply_alert(alert, self.policies[alert.category], now, self.cooldown_s)
        if applied.duplicate:
            return IngestResult(Outcome.DUPLICATE, topic.channel.value)
        return IngestResult(Outcome.ACCEPTED, topic.channel.value, changes=applied.changes)

    def _heartbeat(self, topic: Topic, message: Heartbeat, now: float) -> IngestResult:
        health = message.model_dump(
            mode="json", exclude={"schema_", "msg_id", "site_id", "device_id"}
        )
        changes = self.store.record_heartbeat(topic.device_id, message.interval_s, health, now)
        return IngestResult(Outcome.ACCEPTED, topic.channel.value, changes=tuple(changes))

    def _status(self, topic: Topic, message: Status, now: float) -> IngestResult:
        online = message.state == "online"
        changes = self.store.record_status(topic.device_id, online, message.ts, now)
        return IngestResult(Outcome.ACCEPTED, topic.channel.value, changes=tuple(changes))

    def _command_result(self, topic: Topic, message: CommandResult, now: float) -> IngestResult:
        if not self.store.claim_message(message.msg_id, topic.device_id, now):
            return IngestResult(Outcome.DUPLICATE, topic.channel.value)
        return IngestResult(Outcome.ACCEPTED, topic.channel.value)

    def _snapshot(self, topic: Topic, data: bytes, now: float) -> IngestResult:
        assert topic.name is not None
        fresh = self.store.save_snapshot(topic.site_id, topic.device_id, topic.name, data, now)
        return IngestResult(
            Outcome.ACCEPTED if fresh else Outcome.DUPLICATE, Channel.SNAPSHOT.value
        )

    def _telemetry(self, _topic: Topic, batch: TelemetryBatch, now: float) -> IngestResult:
        alerts = from_telemetry(batch)
        if not alerts:
            if not self.store.claim_message(batch.msg_id, batch.device_id, now):
                return IngestResult(Outcome.DUPLICATE, Channel.TELEMETRY.value)
            return IngestResult(Outcome.ACCEPTED, Channel.TELEMETRY.value)
        changes: list[Change] = []
        for alert in alerts:
            applied = self.store.apply_alert(
                alert, self.policies[alert.category], now, self.cooldown_s
            )
            if applied.duplicate:
                return IngestResult(Outcome.DUPLICATE, Channel.TELEMETRY.value)
            changes += applied.changes
        return IngestResult(Outcome.ACCEPTED, Channel.TELEMETRY.value, changes=tuple(changes))


def _channel_of(topic: str) -> str:
    parts = topic.split("/")
    if len(parts) >= 5 and parts[4] in Channel.__members__.values():
        return parts[4]
    return "unknown"
