"""The ingest handler: MQTT messages in, committed effects (or dead letters) out.

`IngestHandler.handle_batch(messages, now)` is what the MQTT task calls with every batch it
drained (one transaction for the batch); `handle(topic, payload, now)` applies one message
in its own transaction and is what the property tests call directly. Neither raises because
of the input: a contract violation, an unknown device or a message the gateway does not take
becomes a dead-letter row with the reason (text made storable on every database: NULs and
bad UTF-8 escaped, lengths bounded). Only `StoreUnavailableError` (the database is down)
escapes, so the caller does not acknowledge the messages and the broker redelivers them.

Input problems are found before the transaction (`_decode`), so a bad message is a dead
letter inside the batch's one transaction. A batch that still fails in the database (a bug,
a broken row, a unique-key race with another replica) is split in halves until the failing
message is alone; it then becomes a ``ProcessingError`` dead letter — the one kind that
means the gateway, not the input, is at fault.

Each result names what the commit made safe for the device to forget (`committed`, for the
end-to-end Ack): events, telemetry and command results by msg_id when applied or found
already applied, snapshots by snapshot_id, and dead letters (and quota drops) that the
input itself caused (a `ContractError` kind, JSON nested too deeply, a snapshot that does
not match its event) whose topic names a device channel — re-sending those could never change
the outcome. Letters that depend on the gateway's state are never acked: an
``UnknownDevice`` (not registered, or registered at another site — a device being moved,
the `REGISTRY_CACHE_S` window after a move, a registry mistake) or a ``ProcessingError``
(a bug, a broken row). A dead letter keeps only an excerpt, so the device's copy is the
only full one: it keeps re-sending with its backoff until the registry or the gateway is
fixed, and each re-send is one more dead letter within the per-device per-minute quota
(beyond it, dropped and counted, still not acked).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from contract import (
    CommandResult,
    ContractError,
    DetectionEvent,
    Heartbeat,
    Status,
    TelemetryBatch,
    decode_for_topic,
)
from contract.topics import Topic
from gateway.acks import Committed
from gateway.alerts import Alert, from_detection, from_telemetry
from gateway.ingest_decoded import Decoded, dead
from gateway.models import Change
from gateway.sla import CategoryPolicy, TicketCategory
from gateway.store import IngestTx, SnapshotOutcome, Store, StoreUnavailableError

log = logging.getLogger(__name__)

TelemetryHook = Callable[[TelemetryBatch, float], tuple[Alert, ...] | None]
"""The alerts of a TelemetryBatch from a device with a telemetry profile (which also stores
its readings), or None for a device without one (`gateway.telemetry.service`)."""

REGISTRY_CACHE_S = 30.0
"""How long a device's registered site is trusted without asking the database again."""

MODEL_UPDATE = "model_update"
"""Results of this command move the device's row of a rollout (`store.rollouts`)."""
ONCE_PER_MSG_ID = (DetectionEvent, TelemetryBatch, CommandResult)
"""Messages whose effect is keyed by their msg_id, so a redelivery is dropped by it
(heartbeats and status are safe to apply twice; snapshots are keyed by their own id)."""


class Outcome(StrEnum):
    """What happened to one message."""

    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    DEAD_LETTER = "dead_letter"
    DROPPED = "dropped"  # refused and not kept: the device is over a quota (only counted)
    IGNORED = "ignored"


@dataclass(frozen=True)
class IngestQuotas:
    """What one device may make the gateway store (None: no limit). Beyond a quota the
    message is acked and dropped (`Outcome.DROPPED`), and `IngestHandler.dropped` grows."""

    dead_letters_per_minute: int | None = 60
    snapshot_bytes_per_hour: int | None = 128 * 1024 * 1024


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


class IngestHandler:
    """Validates messages against the contract and applies them to the store."""

    def __init__(
        self,
        store: Store,
        policies: dict[TicketCategory, CategoryPolicy],
        cooldown_s: float = 0.0,
        quotas: IngestQuotas | None = None,
        telemetry: TelemetryHook | None = None,
    ) -> None:
        self.store = store
        self.telemetry = telemetry
        self.policies = policies
        self.cooldown_s = cooldown_s
        self.quotas = quotas or IngestQuotas()
        self.dropped = 0
        """Messages refused over a quota and not stored, since start (only this grows)."""
        # The configured device_offline policy: a device heard again clears its maintenance
        # ticket under it (auto-resolved or left for a person, as configured).
        self._offline = policies[TicketCategory.DEVICE_OFFLINE]
        self._sites: dict[str, tuple[str, float]] = {}

    def handle(self, topic: str, payload: bytes, now: float) -> IngestResult:
        """Apply one message in its own transaction; see the module docstring."""
        result = self._apply_one(self._decode_safely(topic, payload, now), now)
        self._count([result])
        return result

    def handle_batch(self, messages: Sequence[tuple[str, bytes]], now: float) -> list[IngestResult]:
        """Apply messages (topic, payload) in one transaction, with the same outcome per
        message as `handle`; a batch the database refuses is bisected (module docstring)."""
        self._look_up_sites(messages, now)
        items = [self._decode_safely(topic, payload, now) for topic, payload in messages]
        results = self._apply_batch(items, now) if items else []
        self._count(results)
        return results

    def _count(self, results: list[IngestResult]) -> None:
        self.dropped += sum(r.outcome is Outcome.DROPPED for r in results)

    def _apply_batch(self, items: list[Decoded], now: float) -> list[IngestResult]:
        if len(items) == 1:
            return [self._apply_one(items[0], now)]
        try:
            # Two attempts: another replica (or ingest worker) may win a unique-key race
            # once, and the rerun sees its rows; a batch that fails again is split.
            return self.store.ingest(lambda tx: self._apply_all(tx, items, now), now, attempts=2)
        except StoreUnavailableError:
            raise
        except Exception as exc:
            log.warning(
                "a batch of %d messages failed (%s: %s); splitting it",
                len(items),
                type(exc).__name__,
                str(exc)[:200],
            )
        half = len(items) // 2
        return self._apply_batch(items[:half], now) + self._apply_batch(items[half:], now)

    def _apply_one(self, item: Decoded, now: float) -> IngestResult:
        try:
            return self.store.ingest(lambda tx: self._apply(tx, item), now)
        except StoreUnavailableError:
            raise
        except Exception as exc:  # a bug must not stop ingest: keep the message and the reason
            log.exception("ingest failed on %r", item.topic[:200])
            return self._processing_error(item, f"{type(exc).__name__}: {exc}", now)

    def _processing_error(self, item: Decoded, reason: str, now: float) -> IngestResult:
        # The gateway's fault, not the input's: no Ack, so the device keeps its full copy
        # and re-sends it (a fixed gateway then applies it).
        kind = "ProcessingError"
        try:
            self.store.ingest(
                lambda tx: tx.dead_letter(item.topic, item.payload, kind, reason), now
            )
        except StoreUnavailableError:
            raise
        except Exception as exc:
            # Even the dead letter failed: the database takes no write at all, which is not
            # the message's fault. Hold the batch like a database outage (not acknowledged to
            # the broker, retried with backoff, /healthz says stalled) instead of letting the
            # broker forget a message nothing recorded.
            log.exception("dead letter for %r failed", item.topic[:200])
            raise StoreUnavailableError(
                f"cannot write even a dead letter ({type(exc).__name__})"
            ) from exc
        return IngestResult(Outcome.DEAD_LETTER, item.channel, f"{kind}: {reason}")

    def _look_up_sites(self, messages: Sequence[tuple[str, bytes]], now: float) -> None:
        """Fill the registry cache for the batch's devices in one query (one per device, at
        a gateway's start, was a few µs of every message of a drain). Input only: a topic
        that names no device is refused later, by `_decode`."""
        sites = self._sites
        missing = set()
        for topic, _payload in messages:
            parts = topic.split("/", 4)
            if len(parts) == 5:
                cached = sites.get(parts[3])
                if cached is None or cached[1] <= now:
                    missing.add(parts[3])
        if missing:
            expires = now + REGISTRY_CACHE_S
            for device_id, site_id in self.store.devices.device_sites(sorted(missing)).items():
                sites[device_id] = (site_id, expires)

    def _registered_site(self, device_id: str, now: float) -> str | None:
        # Registry lookups are cached briefly (positive answers only, so a device registered
        # a moment ago is found at once). This only validates input; exactly-once decisions
        # are still made by the database.
        cached = self._sites.get(device_id)
        if cached is not None and cached[1] > now:
            return cached[0]
        device = self.store.devices.find(device_id)
        if device is None:
            return None
        self._sites[device_id] = (device.site_id, now + REGISTRY_CACHE_S)
        return device.site_id

    def _decode_safely(self, topic: str, payload: bytes, now: float) -> Decoded:
        try:
            return self._decode(topic, payload, now)
        except StoreUnavailableError:
            raise
        except Exception as exc:  # a bug in validation: the message is kept with the reason
            log.exception("decoding failed on %r", topic[:200])
            reason = f"{type(exc).__name__}: {exc}"
            return dead(topic, payload, "ProcessingError", reason, acked=False)

    def _decode(self, topic: str, payload: bytes, now: float) -> Decoded:
        """Validate (pure but for the cached registry lookup); never writes."""
        try:
            parsed, message = decode_for_topic(topic, payload)
        except ContractError as exc:
            return dead(topic, payload, type(exc).__name__, str(exc), acked=True)
        # Registry refusals depend on the gateway's state, not the input: never acked.
        site_id = self._registered_site(parsed.device_id, now)
        if site_id is None:
            reason = f"device {parsed.device_id!r} is not registered"
            return dead(topic, payload, "UnknownDevice", reason, acked=False)
        if site_id != parsed.site_id:
            reason = (
                f"device {parsed.device_id!r} is registered at site {site_id!r}, "
                f"not {parsed.site_id!r}"
            )
            return dead(topic, payload, "UnknownDevice", reason, acked=False)
        alerts: tuple[Alert, ...] = ()
        committed = None
        if isinstance(message, DetectionEvent):
            alerts = (from_detection(message),)
        elif isinstance(message, TelemetryBatch):
            profiled = self.telemetry(message, now) if self.telemetry is not None else None
            alerts = tuple(from_telemetry(message)) if profiled is None else profiled
        if isinstance(message, ONCE_PER_MSG_ID):
            committed = Committed(parsed.site_id, parsed.device_id, msg_id=message.msg_id)
        elif isinstance(message, bytes):
            committed = Committed(parsed.site_id, parsed.device_id, snapshot_id=parsed.name)
        return Decoded(
            topic, payload, parsed.channel.value, parsed, message, alerts, committed=committed
        )

    def _apply_all(self, tx: IngestTx, items: list[Decoded], now: float) -> list[IngestResult]:
        # One query per table for what the whole batch needs, instead of one per message.
        msg_keys: list[tuple[str, str, str]] = []
        devices: list[str] = []
        for item in items:
            if isinstance(item.message, ONCE_PER_MSG_ID):
                msg_keys.append((item.message.site_id, item.message.device_id, item.message.msg_id))
            if isinstance(item.message, Heartbeat | Status):
                devices.append(item.message.device_id)
        alerts = [alert for item in items for alert in item.alerts]
        tx.preload(
            msg_keys=msg_keys + [(a.site_id, a.device_id, a.msg_id) for a in alerts],
            event_keys=[(a.site_id, a.device_id, a.event_id) for a in alerts],
            active_keys=[a.dedup_key for a in alerts],
            device_ids=devices,
            reopen_since=now - self.cooldown_s if self.cooldown_s > 0 else None,
            alerts=alerts,
        )
        return [self._apply(tx, item) for item in items]

    def _apply(self, tx: IngestTx, item: Decoded) -> IngestResult:
        if item.dead is not None:
            kind, reason = item.dead
            per_minute = self.quotas.dead_letters_per_minute
            stored = tx.dead_letter(item.topic, item.payload, kind, reason, per_minute)
            outcome = Outcome.DEAD_LETTER if stored else Outcome.DROPPED
            return IngestResult(
                outcome, item.channel, f"{kind}: {reason}", committed=item.committed
            )
        topic, message = item.parsed, item.message
        assert topic is not None
        if isinstance(message, bytes):
            return self._apply_snapshot(tx, item, topic, message)
        if isinstance(message, Heartbeat):
            health = message.model_dump(
                mode="json", exclude={"schema_", "msg_id", "site_id", "device_id"}
            )
            changes = tx.heartbeat(topic.device_id, message.interval_s, health, self._offline)
            return IngestResult(Outcome.ACCEPTED, item.channel, changes=tuple(changes))
        if isinstance(message, Status):
            online = message.state == "online"
            changes = tx.status(topic.device_id, online, self._offline)
            return IngestResult(Outcome.ACCEPTED, item.channel, changes=tuple(changes))
        if isinstance(message, ONCE_PER_MSG_ID):
            return self._apply_once(tx, item, message.msg_id, topic)
        # Commands and acks are the gateway's own outbound traffic seen through the wildcard.
        return IngestResult(Outcome.IGNORED, item.channel)

    def _apply_snapshot(
        self, tx: IngestTx, item: Decoded, topic: Topic, data: bytes
    ) -> IngestResult:
        assert topic.name is not None
        quota = self.quotas.snapshot_bytes_per_hour
        done = tx.snapshot(topic.site_id, topic.device_id, topic.name, data, quota)
        if done is SnapshotOutcome.STORED:
            return IngestResult(Outcome.ACCEPTED, item.channel, committed=item.committed)
        if done is SnapshotOutcome.DUPLICATE:
            return IngestResult(Outcome.DUPLICATE, item.channel, committed=item.committed)
        if done is SnapshotOutcome.OVER_QUOTA:
            reason = f"QuotaExceeded: over {quota} snapshot bytes in an hour"
            return IngestResult(Outcome.DROPPED, item.channel, reason, committed=item.committed)
        # Not what the event that announced it promised: never evidence. The right bytes
        # may still come under the same id.
        kind, reason = "SnapshotMismatch", "sha256 or size differs from the event's SnapshotRef"
        stored = tx.dead_letter(item.topic, data, kind, reason, self.quotas.dead_letters_per_minute)
        outcome = Outcome.DEAD_LETTER if stored else Outcome.DROPPED
        return IngestResult(outcome, item.channel, f"{kind}: {reason}", committed=item.committed)

    def _apply_once(self, tx: IngestTx, item: Decoded, msg_id: str, topic: Topic) -> IngestResult:
        """A message whose effect is keyed by its device's msg_id: alerts, or just the
        claim (command results, telemetry under every alarm threshold)."""
        if not item.alerts:
            if not tx.claim(topic.site_id, topic.device_id, msg_id):
                return _duplicate(item)
            if isinstance(item.message, CommandResult):
                # On the command's audit row, so the API shows the outcome (no row: the
                # command did not come through the API, e.g. a script's; only claimed).
                result = item.message
                tx.command_result(
                    topic.site_id,
                    topic.device_id,
                    result.command_id,
                    result.status.value,
                    result.reason,
                )
                if result.name == MODEL_UPDATE:  # a rollout device's progress
                    tx.model_report(
                        topic.site_id,
                        topic.device_id,
                        result.command_id,
                        result.detail,
                        result.reason,
                        result.ts,
                    )
            return IngestResult(Outcome.ACCEPTED, item.channel, committed=item.committed)
        found: list[Change] = []
        for alert in item.alerts:
            applied = tx.apply_alert(alert, self.policies[alert.category], self.cooldown_s)
            if applied.duplicate:
                return _duplicate(item)
            found += applied.changes
        return IngestResult(
            Outcome.ACCEPTED, item.channel, changes=tuple(found), committed=item.committed
        )


def _duplicate(item: Decoded) -> IngestResult:
    """A message whose effect an earlier commit holds (built only then: most are not)."""
    return IngestResult(Outcome.DUPLICATE, item.channel, committed=item.committed)
