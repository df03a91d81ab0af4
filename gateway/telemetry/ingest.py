"""The telemetry ingest: a batch of readings in three steps, only the middle one in the
gateway database's one-writer-at-a-time section.

1. `prepare` (no lock): read each message cheaply (`wire.decode_fast`; the contract's
   decoder only when that refuses), find the node's profile, run the rules on the whole
   batch. What is not a reading of a profiled node — an unknown device, a node without a
   profile, a payload the contract refuses — is left in `fallback` for the event ingest
   (`gateway.ingest.IngestHandler`), which dead-letters it with the contract's reason or
   applies its built-in rule, exactly as before.
2. `commit` (under the ingest lock): one transaction for the batch: the message-id claims
   (preloaded with one query, written with one executemany by `IngestTx`), the few alerts
   that transitions raised, the dead letters of unreadable ESPHome messages.
3. `store` (no lock): only now the points (`gateway.telemetry.sink`), each message once, for
   the newly claimed messages and the redelivered ones alike.

No transaction per message, no per-row ORM work, no pydantic on the hot path.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from contract import ContractError, TelemetryBatch, decode_for_topic
from contract.topics import Channel
from gateway.acks import Committed
from gateway.alerts import Alert
from gateway.models import Change
from gateway.sla import CategoryPolicy, TicketCategory
from gateway.store import IngestTx
from gateway.telemetry.esphome import EsphomeError, is_esphome
from gateway.telemetry.pipeline import (
    RelayCommand,
    SensorNode,
    TelemetryPipeline,
    UnknownNodeError,
)
from gateway.telemetry.points import MsgKey, Point
from gateway.telemetry.wire import WireBatch, decode_fast, from_contract

log = logging.getLogger(__name__)

_TELEMETRY = Channel.TELEMETRY.value


def telemetry_topic(topic: str) -> tuple[str, str] | None:
    """(site, device) of a ``guanjia/v1/{site}/{device}/telemetry`` topic, else None."""
    parts = topic.split("/")
    if len(parts) == 5 and parts[4] == _TELEMETRY and parts[0] == "guanjia" and parts[1] == "v1":
        return parts[2], parts[3]
    return None


def takes(topic: str) -> bool:
    """Whether the telemetry ingest reads this topic (TelemetryBatch or ESPHome)."""
    return is_esphome(topic) or telemetry_topic(topic) is not None


@dataclass
class Reading:
    """One TelemetryBatch of a profiled node, after the rules."""

    key: MsgKey
    alerts: list[Alert]
    points: list[Point]
    message: tuple[str, bytes]


@dataclass
class Prepared:
    """A batch between the steps (see the module docstring)."""

    now: float
    readings: list[Reading] = field(default_factory=list)
    esphome_alerts: list[Alert] = field(default_factory=list)
    esphome_points: list[tuple[Point, float]] = field(default_factory=list)
    """ESPHome states and their repeat windows (no message id: `SqliteTelemetryStore`)."""
    esphome_messages: list[tuple[str, bytes]] = field(default_factory=list)
    dead: list[tuple[str, bytes, str, str]] = field(default_factory=list)
    fallback: list[tuple[str, bytes]] = field(default_factory=list)
    commands: list[RelayCommand] = field(default_factory=list)
    flagged: int = 0
    # Filled by `commit`:
    fresh: list[MsgKey] = field(default_factory=list)
    duplicates: list[MsgKey] = field(default_factory=list)
    dead_stored: int = 0
    changes: list[Change] = field(default_factory=list)
    committed: bool = False

    @property
    def acked(self) -> list[Committed]:
        """What the commit made safe for the devices to forget (their end-to-end Acks)."""
        return [Committed(s, d, msg_id=m) for s, d, m in self.fresh + self.duplicates]


def prepare(
    pipeline: TelemetryPipeline,
    lookup: Callable[[str], SensorNode | None],
    messages: Sequence[tuple[str, bytes]],
    now: float,
) -> Prepared:
    """Step 1: decode and run the rules (the caller holds the pipeline's lock)."""
    out = Prepared(now)
    for topic, payload in messages:
        if is_esphome(topic):
            _esphome(pipeline, out, topic, payload, now)
            continue
        where = telemetry_topic(topic)
        node = lookup(where[1]) if where is not None else None
        if where is None or node is None or node.site_id != where[0]:
            out.fallback.append((topic, payload))  # not ours: the event ingest decides
            continue
        batch = decode_fast(where[0], where[1], payload)
        if batch is None:
            batch = _contract(topic, payload)
            if batch is None:
                out.fallback.append((topic, payload))  # dead-lettered there, with the reason
                continue
        try:
            result = pipeline.batch(batch, now, node)
        except UnknownNodeError:  # moved since the lookup: the event ingest decides
            out.fallback.append((topic, payload))
            continue
        out.commands += result.commands
        out.flagged += len(result.flagged)
        key = (batch.site_id, batch.device_id, batch.msg_id)
        out.readings.append(Reading(key, result.alerts, result.points, (topic, payload)))
    return out


def _contract(topic: str, payload: bytes) -> WireBatch | None:
    try:
        _, message = decode_for_topic(topic, payload)
    except ContractError:
        return None
    return from_contract(message) if isinstance(message, TelemetryBatch) else None


def _esphome(
    pipeline: TelemetryPipeline, out: Prepared, topic: str, payload: bytes, now: float
) -> None:
    out.esphome_messages.append((topic, payload))
    try:
        result = pipeline.esphome(topic, payload, now)
    except (EsphomeError, UnknownNodeError) as exc:
        out.dead.append((topic, payload, type(exc).__name__, str(exc)))
        return
    out.esphome_alerts += result.alerts
    out.esphome_points += [(p, result.repeat_within_s) for p in result.points]
    out.commands += result.commands
    out.flagged += len(result.flagged)


def commit(
    tx: IngestTx,
    prepared: Prepared,
    policies: dict[TicketCategory, CategoryPolicy],
    cooldown_s: float,
    dead_letters_per_minute: int | None,
) -> None:
    """Step 2, inside one ingest transaction (may run again on a unique-key clash)."""
    prepared.fresh, prepared.duplicates, prepared.changes = [], [], []
    readings = prepared.readings
    alerts = [a for r in readings for a in r.alerts] + prepared.esphome_alerts
    tx.preload(
        msg_keys=[r.key for r in readings] + [(a.site_id, a.device_id, a.msg_id) for a in alerts],
        event_keys=[(a.site_id, a.device_id, a.event_id) for a in alerts],
        active_keys=[a.dedup_key for a in alerts],
    )
    for reading in readings:
        if not tx.claim(*reading.key):
            prepared.duplicates.append(reading.key)
            continue
        prepared.fresh.append(reading.key)
        for alert in reading.alerts:
            prepared.changes += _apply(tx, alert, policies, cooldown_s)
    for alert in prepared.esphome_alerts:
        prepared.changes += _apply(tx, alert, policies, cooldown_s)
    stored = 0
    for topic, payload, kind, reason in prepared.dead:
        stored += tx.dead_letter(topic, payload, kind, reason, dead_letters_per_minute)
    prepared.dead_stored = stored


def give_up(prepared: Prepared) -> None:
    """The batch's transaction failed for a reason that is not the database being away (a
    bug, a broken row): hand every message to the event ingest, which splits the batch
    until the failing message is alone and dead-letters it (``ProcessingError``), instead
    of the broker redelivering the same failing batch for ever."""
    prepared.fallback += [r.message for r in prepared.readings] + prepared.esphome_messages
    prepared.readings, prepared.esphome_messages = [], []
    prepared.esphome_alerts, prepared.esphome_points, prepared.dead = [], [], []
    prepared.fresh, prepared.duplicates, prepared.changes = [], [], []


def _apply(
    tx: IngestTx, alert: Alert, policies: dict[TicketCategory, CategoryPolicy], cooldown_s: float
) -> tuple[Change, ...]:
    return tx.apply_alert(alert, policies[alert.category], cooldown_s).changes


def stored_messages(
    prepared: Prepared,
) -> tuple[list[tuple[MsgKey | None, Sequence[Point]]], list[tuple[Point, float]]]:
    """Step 3's input: the committed messages' points (a redelivery's too: the embedded
    store writes each message once), and ESPHome's states (no message id: stored unless
    they repeat the series' newest point within their window)."""
    if not prepared.committed:
        return [], []
    keep = set(prepared.fresh) | set(prepared.duplicates)
    items: list[tuple[MsgKey | None, Sequence[Point]]] = [
        (r.key, r.points) for r in prepared.readings if r.key in keep
    ]
    return items, prepared.esphome_points
