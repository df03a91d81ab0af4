"""The telemetry part of one gateway process: stores, sink, pipeline, and its ticket writes.

Built by `gateway.main.build_runtime` when telemetry is enabled. Three entry points:

- `alerts_for_batch(batch, now)`: the ingest hook for contract TelemetryBatches of devices
  that have a profile (None for the others: ingest keeps its built-in smoke rule for them).
  The alerts go into the ingest's own transaction, with the batch's end-to-end Ack;
- `handle_esphome(messages, now)`: ESPHome topics, which the MQTT edge hands here, never to
  the contract decoder; a message that cannot be read is dead-lettered with the reason;
- `tick(now)`: offline by silence, and relay cut-offs not confirmed in time (the ticket
  escalates one tier at once, `Store.escalate_unconfirmed_cutoff`).

Relay commands wait in `take_commands()` until the transaction that raised them committed.
Readings reach the stores through the sink's own thread: nothing here waits on a store.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from contract import TelemetryBatch
from gateway.alerts import Alert, dedup_key
from gateway.models import Change
from gateway.sla import CategoryPolicy, TicketCategory
from gateway.store import IngestTx, Store
from gateway.telemetry.esphome import EsphomeError
from gateway.telemetry.influx import InfluxOptions, InfluxWriter
from gateway.telemetry.pipeline import (
    Outcome,
    RelayCommand,
    SensorNode,
    TelemetryPipeline,
    UnknownNodeError,
)
from gateway.telemetry.points import PointWriter
from gateway.telemetry.profiles import DeviceProfile, load_profiles
from gateway.telemetry.settings import TelemetrySettings
from gateway.telemetry.sink import TelemetrySink
from gateway.telemetry.sqlite_store import SqliteTelemetryStore

log = logging.getLogger(__name__)

REGISTRY_CACHE_S = 30.0
"""How long a device's sensor profile (or its absence) is trusted without asking again."""


class TelemetryService:
    """Telemetry of one process; thread-safe (ingest and the clock loop both call it)."""

    def __init__(
        self,
        store: Store,
        settings: TelemetrySettings,
        policies: dict[TicketCategory, CategoryPolicy],
        cooldown_s: float = 0.0,
        *,
        path: Path,
    ) -> None:
        self.store = store
        self.settings = settings
        self.policies = policies
        self.cooldown_s = cooldown_s
        self.profiles: dict[str, DeviceProfile] = load_profiles(settings.profiles_dir)
        self.sqlite = SqliteTelemetryStore(
            path,
            raw_retention_s=settings.raw_retention_s,
            rollup_retention_s=settings.rollup_retention_s,
        )
        writers: list[PointWriter] = [self.sqlite]
        self.influx: InfluxWriter | None = None
        url, org, bucket, token = (
            settings.influx_url,
            settings.influx_org,
            settings.influx_bucket,
            settings.influx_token,
        )
        if url is not None and org is not None and bucket is not None and token is not None:
            self.influx = InfluxWriter(
                InfluxOptions(
                    url=url,
                    org=org,
                    bucket=bucket,
                    token=token.get_secret_value(),
                    batch_size=settings.influx_batch_size,
                    flush_interval_s=settings.influx_flush_interval_s,
                    max_buffer=settings.influx_max_buffer,
                )
            )
            writers.append(self.influx)
        self.sink = TelemetrySink(writers, max_queue=settings.max_queue)
        self.pipeline = TelemetryPipeline(self._lookup, self.sink)
        self.dead_letters = 0
        self._lock = threading.Lock()
        self._commands: list[RelayCommand] = []
        self._cache: dict[str, tuple[SensorNode | None, float]] = {}

    def _lookup(self, device_id: str) -> SensorNode | None:
        now = time.monotonic()
        cached = self._cache.get(device_id)
        if cached is not None and cached[1] > now:
            return cached[0]
        row = self.store.sensor_node(device_id)
        node = None
        if row is not None and row.profile in self.profiles:
            node = SensorNode(row.site_id, row.device_id, self.profiles[row.profile], row.esphome)
        self._cache[device_id] = (node, now + REGISTRY_CACHE_S)
        return node

    def _keep(self, out: Outcome, where: str) -> None:
        self._commands += out.commands
        for reason in out.flagged[:5]:
            log.info("telemetry: %s: reading refused: %s", where[:100], reason)

    def alerts_for_batch(self, batch: TelemetryBatch, now: float) -> tuple[Alert, ...] | None:
        """The alerts of a TelemetryBatch from a device with a profile; None otherwise."""
        with self._lock:
            if self._lookup(batch.device_id) is None:
                return None
            try:
                out = self.pipeline.batch(batch, now)
            except UnknownNodeError:
                return None  # the device is registered at another site: ingest refuses it
            self._keep(out, f"{batch.site_id}/{batch.device_id}")
            return tuple(out.alerts)

    def handle_esphome(self, messages: Sequence[tuple[str, bytes]], now: float) -> list[Change]:
        """Apply ESPHome messages; their alerts in one ticket transaction."""
        alerts: list[Alert] = []
        dead: list[tuple[str, bytes, str, str]] = []
        with self._lock:
            for topic, payload in messages:
                try:
                    out = self.pipeline.esphome(topic, payload, now)
                except (EsphomeError, UnknownNodeError) as exc:
                    dead.append((topic, payload, type(exc).__name__, str(exc)))
                    continue
                self._keep(out, topic)
                alerts += out.alerts
        for topic, payload, kind, reason in dead:
            self.store.dead_letter(topic, payload, kind, reason, now)
        self.dead_letters += len(dead)
        return self._apply(alerts, now)

    def _apply(self, alerts: list[Alert], now: float) -> list[Change]:
        if not alerts:
            return []

        def work(tx: IngestTx) -> list[Change]:
            changes: list[Change] = []
            for alert in alerts:
                policy = self.policies[alert.category]
                changes += tx.apply_alert(alert, policy, self.cooldown_s).changes
            return changes

        return self.store.ingest(work, now)

    def take_commands(self) -> list[RelayCommand]:
        """Relay commands raised since the last call (publish them after the commit)."""
        with self._lock:
            commands, self._commands = self._commands, []
        return commands

    def tick(self, now: float) -> list[Change]:
        """Clock-driven rules: offline nodes, and cut-offs nobody confirmed in time."""
        with self._lock:
            out = self.pipeline.tick(now)
        changes = self._apply(out.alerts, now)
        for cutoff in out.overdue:
            waited = cutoff.deadline - cutoff.issued_at
            reason = (
                f"relay cut-off of port {cutoff.port} not confirmed within {waited:g} s: "
                "the port may still be powered"
            )
            log.warning("telemetry: %s/%s: %s", cutoff.site_id, cutoff.device_id, reason)
            key = dedup_key(
                cutoff.site_id, cutoff.device_id, TicketCategory(cutoff.category), cutoff.condition
            )
            change = self.store.escalate_unconfirmed_cutoff(key, reason, now)
            if change is not None:
                changes.append(change)
        return changes

    def prune(self, now: float) -> int:
        """Apply the embedded store's retention."""
        return self.sqlite.prune(now)

    def close(self) -> None:
        """Write what is queued and close the stores."""
        self.sink.close()
