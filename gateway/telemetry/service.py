"""The telemetry part of one gateway process: stores, pipeline, and its ticket writes.

Built by `gateway.main.build_runtime` when telemetry is enabled. Entry points:

- `prepare` / `commit` / `store`: the three steps of a batch of readings (TelemetryBatch
  and ESPHome topics; `gateway.telemetry.ingest`), which `gateway.readings` runs, the
  middle one under the gateway's ingest lock; `handle` runs all three (tests, tools);
- `tick(now)`: offline by silence, and relay cut-offs not confirmed in time (the ticket
  escalates one tier at once, `Store.sensors.escalate_unconfirmed_cutoff`).

Relay commands wait in `take_commands()` until a transaction committed after the batch
that raised them (a batch that rolled back is retried and its command published then).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from gateway.alerts import Alert, dedup_key
from gateway.models import Change
from gateway.sla import CategoryPolicy, TicketCategory
from gateway.store import IngestTx, Store, StoreUnavailableError
from gateway.telemetry import ingest
from gateway.telemetry.influx import InfluxOptions, InfluxWriter
from gateway.telemetry.pipeline import RelayCommand, SensorNode, TelemetryPipeline
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
        self.sink = TelemetrySink(self.sqlite, self.influx)
        self.pipeline = TelemetryPipeline(self._lookup)
        self.dead_letters = 0
        self.dead_letters_per_minute: int | None = 60
        """The per-device dead-letter quota (the gateway sets its configured one)."""
        self.flagged = 0
        """Readings refused (unknown metric or port, out of range), since start."""
        self._lock = threading.Lock()
        self._commands: list[RelayCommand] = []
        self._cache: dict[str, tuple[SensorNode | None, float]] = {}
        self._derived_at = float("-inf")
        self._derived_written = 0

    def _lookup(self, device_id: str) -> SensorNode | None:
        now = time.monotonic()
        cached = self._cache.get(device_id)
        if cached is not None and cached[1] > now:
            return cached[0]
        row = self.store.sensors.sensor_node(device_id)
        node = None
        if row is not None and row.profile in self.profiles:
            node = SensorNode(row.site_id, row.device_id, self.profiles[row.profile], row.esphome)
        self._cache[device_id] = (node, now + REGISTRY_CACHE_S)
        return node

    def node(self, device_id: str) -> SensorNode | None:
        """A registered sensor node and its profile (cached briefly), or None."""
        with self._lock:
            return self._lookup(device_id)

    def reset(self) -> None:
        """Forget every device's rule state and cut-off (the telemetry lease changed hands:
        `gateway.telemetry.lease`); the next readings start it again."""
        with self._lock:
            self.pipeline = TelemetryPipeline(self._lookup)
            self._commands = []

    def port_enabled(self, device_id: str, port: int) -> None:
        """A person switched a port on again (the API audited it): forget its cut-off."""
        with self._lock:
            self.pipeline.cutoffs.forget(device_id, port)
            # A cut-off not yet published must not follow the person's switch-on.
            self._commands = [
                c for c in self._commands if (c.device_id, c.port) != (device_id, port)
            ]

    def prepare(self, messages: Sequence[tuple[str, bytes]], now: float) -> ingest.Prepared:
        """Step 1 (no database write): decode, run the rules; see `gateway.telemetry.ingest`."""
        with self._lock:
            prepared = ingest.prepare(self.pipeline, self._lookup, messages, now)
            self._commands += prepared.commands
            self.flagged += prepared.flagged
        return prepared

    def commit(self, prepared: ingest.Prepared) -> ingest.Prepared:
        """Step 2: claims, alerts and dead letters in one transaction (raises what the
        store raises; `StoreUnavailableError` means: retry the batch later)."""
        if not prepared.readings and not prepared.esphome_alerts and not prepared.dead:
            prepared.committed = True
            return prepared

        def work(tx: IngestTx) -> None:
            ingest.commit(
                tx, prepared, self.policies, self.cooldown_s, self.dead_letters_per_minute
            )

        try:
            self.store.ingest(work, prepared.now)
        except StoreUnavailableError:
            raise  # held and retried by the MQTT edge
        except Exception:
            log.exception("telemetry: a batch of %d readings failed", len(prepared.readings))
            ingest.give_up(prepared)
            return prepared
        prepared.committed = True
        self.dead_letters += prepared.dead_stored
        return prepared

    def store_points(self, prepared: ingest.Prepared) -> int:
        """Step 3, after the commit: the points of the committed messages (each once)."""
        items, states = ingest.stored_messages(prepared)
        if not items and not states:
            return 0
        return self.sink.store(items, recheck=prepared.duplicates, now=prepared.now, states=states)

    def handle(self, messages: Sequence[tuple[str, bytes]], now: float) -> ingest.Prepared:
        """All three steps (tests and tools; the gateway runs them in `gateway.readings`)."""
        prepared = self.commit(self.prepare(messages, now))
        self.store_points(prepared)
        return prepared

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
            change = self.store.sensors.escalate_unconfirmed_cutoff(key, reason, now)
            if change is not None:
                changes.append(change)
        return changes

    def prune(self, now: float) -> int:
        """Apply the embedded store's retention (rollups first)."""
        return self.sqlite.prune(now)

    def derive(self) -> int:
        """Move what the embedded store appended into its series index (`derive`)."""
        return self.sqlite.derive()

    def checkpoint(self) -> int:
        """Copy the embedded store's WAL into its file (`SqliteTelemetryStore.checkpoint`)."""
        return self.sqlite.checkpoint()

    def derive_if_due(self, now: float) -> int:
        """`derive`, if `settings.derive_interval_s` passed since the last one here, or
        `settings.derive_after_points` were written since."""
        waiting = self.sqlite.written - self._derived_written
        if (
            now - self._derived_at < self.settings.derive_interval_s
            and waiting < self.settings.derive_after_points
        ):
            return 0
        self._derived_at, self._derived_written = now, self.sqlite.written
        return self.sqlite.derive()

    def close(self) -> None:
        """Send what InfluxDB has buffered and close the stores."""
        self.sink.close()
