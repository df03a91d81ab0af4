"""The ingest write path: many messages applied in one transaction with few statements.

`IngestTx` is what `Store.ingest` hands to a caller for one transaction. It holds what the
transaction shares — the connection and its plain driver, the overlay, the buffered rows —
and the small per-message steps (claiming message ids, command results, rollout reports,
dead letters, snapshots); the rest is in modules named for what they own:

- `ticket_rules.TicketRules`: alerts → tickets (open, merge, update, clear, reopen), the
  per-ticket touches and, on PostgreSQL, the ticket ids drawn up front;
- `device_liveness.Liveness`: heartbeats, status, going offline;
- `ingest_sql`: every statement, built once at import and executed with bound parameters;
  the per-batch reads and per-ticket writes as plain SQL on the driver (`plain_sql.Driver`),
  whose certain writes are deferred into one PostgreSQL pipeline;
- `ingest_overlay.Overlay`: what the transaction has read and written (processed ids, event
  links, open tickets by key, devices), preloaded with one query per table, so message 7 of
  a batch sees what message 3 did exactly as if each had committed;
- `bulk_rows.BulkRows`: append-only rows nothing reads back (processed ids, evidence, audit
  lines, new event links, the change feed), written through the driver just before COMMIT;
- routing facts and webhooks are read once per transaction (`GridRouter`, `Outbox`); dead
  letters and snapshots have their own small ledgers (`DeadLetterLedger`, `SnapshotLedger`).

Message and event ids are the device's choice, so the overlay and the tables key them by
(site, device, id). The exactly-once rules are unchanged: the same unique keys arbitrate,
and a clash (another replica got there first) raises IntegrityError out of the transaction,
which the caller rolls back and retries in smaller pieces (`IngestHandler`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection

from gateway.alerts import Alert
from gateway.models import Change
from gateway.sla import CategoryPolicy
from gateway.store import feed
from gateway.store import ingest_sql as sql
from gateway.store.bulk_rows import BulkRows, to_json
from gateway.store.command_results import record_result
from gateway.store.dead_letter_tx import DeadLetterLedger, storable
from gateway.store.device_liveness import Liveness
from gateway.store.grid_routing import GridRouter
from gateway.store.ingest_overlay import Key, Overlay
from gateway.store.outbox import Outbox
from gateway.store.plain_sql import Driver
from gateway.store.rollout_reports import record_report
from gateway.store.snapshot_tx import SnapshotLedger, SnapshotOutcome
from gateway.store.ticket_rules import AlertResult, TicketRules

__all__ = ["AlertResult", "IngestTx"]


class IngestTx:
    """One ingest transaction on `conn`; `Store.ingest` builds it and calls `flush`."""

    def __init__(self, conn: Connection, now: float, *, postgres: bool) -> None:
        self.conn = conn
        self.now = now
        self.postgres = postgres
        self.plain = Driver(conn, postgres=postgres)
        if postgres:
            # Ingest transactions take turns, like SQLite's (`Store._writer_turn`): workers
            # draining one shared subscription get the same ticket keys in every batch, and
            # run concurrently they waited on each other's row locks and lost unique-key races
            # (the whole batch rolled back and ran again), so two workers ingested less than
            # one. Decoding still runs in parallel, before the transaction. Deferred: it is
            # sent first, in one pipeline with the batch's first read.
            self.plain.defer(sql.INGEST_LOCK, (sql.INGEST_LOCK_KEY,), expect=None)
        self.seen = Overlay(conn, self.plain)
        self.rows = BulkRows(conn, postgres=postgres)
        self.snapshots = SnapshotLedger(conn, now)
        self.router = GridRouter(conn, now, self.plain)
        self._dead = DeadLetterLedger(conn, now)
        self._outbox = Outbox(conn, now)
        self.tickets = TicketRules(self)
        self.liveness = Liveness(self, self.tickets)

    # ------------------------------------------------------------------ reads up front

    def preload(
        self,
        *,
        msg_keys: Iterable[Key] = (),
        event_keys: Iterable[Key] = (),
        active_keys: Iterable[str] = (),
        device_ids: Iterable[str] = (),
        reopen_since: float | None = None,
        alerts: Iterable[Alert] = (),
    ) -> None:
        """Read what a batch will need in one query per table (`Overlay.preload`), the
        routing facts of its alerts (`GridRouter.prefetch`) and, on PostgreSQL, the ids of
        the tickets they may open (`TicketRules.draw_ids`)."""
        batch = list(alerts)
        self.seen.preload(
            msg_keys=msg_keys,
            event_keys=event_keys,
            active_keys=active_keys,
            device_ids=device_ids,
            reopen_since=reopen_since,
        )
        self.router.prefetch(batch)
        if self.postgres and batch:
            self.tickets.draw_ids(batch)

    # ------------------------------------------------------------------ messages

    def claim(self, site_id: str, device_id: str, msg_id: str) -> bool:
        """Mark a device's message id processed; False when it already was (a redelivery)."""
        key = (site_id, device_id, msg_id)
        if self.seen.is_processed(key):
            return False
        self.seen.processed[key] = True
        self.rows.add("processed_messages", (msg_id, site_id, device_id, self.now))
        return True

    def command_result(
        self,
        site_id: str,
        device_id: str,
        command_id: str,
        status: str,
        reason: str | None,
    ) -> bool:
        """Store a device's answer on the audit row of the command it answers (keyed by site,
        device and command id, so a device answers only its own commands); False when no
        such command was sent through the API or it was already answered."""
        return record_result(
            self.conn,
            site_id=site_id,
            device_id=device_id,
            command_id=command_id,
            status=status,
            reason=None if reason is None else storable(reason, 2000),
            at=self.now,
        )

    def model_report(  # noqa: PLR0917 - mirrors command_result's positional shape
        self,
        site_id: str,
        device_id: str,
        command_id: str,
        detail: dict[str, Any],
        reason: str | None,
        ts: float,
    ) -> bool:
        """A device's model_update report on its rollout row (`store.rollouts.record_report`);
        `detail` is the result's (command, state, running); False when nothing matched."""
        command = detail.get("command")
        state = detail.get("state")
        running = detail.get("running")
        label = None
        if isinstance(running, dict):
            label = storable(f"{running.get('name')} {running.get('version')}", 100)
        return record_report(
            self.conn,
            site_id=site_id,
            device_id=device_id,
            command_id=command if isinstance(command, str) else command_id,
            state=state if isinstance(state, str) else "",
            reason=None if reason is None else storable(reason, 2000),
            running=label,
            ts=ts,
            now=self.now,
        )

    def dead_letter(
        self,
        topic: str,
        payload: bytes,
        error_kind: str,
        reason: str,
        per_minute: int | None = None,
    ) -> bool:
        """Record a refused message under the site and device its topic names (storable
        text, bounded excerpt); False (nothing written) when that device already has
        `per_minute` dead letters in the last minute (`dead_letter_tx`)."""
        return self._dead.add(topic, payload, error_kind, reason, per_minute)

    def snapshot(
        self,
        site_id: str,
        device_id: str,
        snapshot_id: str,
        data: bytes,
        bytes_per_hour: int | None = None,
    ) -> SnapshotOutcome:
        """Store an arriving JPEG under its device (`snapshot_tx.SnapshotLedger.store`)."""
        return self.snapshots.store(site_id, device_id, snapshot_id, data, bytes_per_hour)

    # ------------------------------------------------------------------ devices, tickets

    def heartbeat(
        self,
        device_id: str,
        interval_s: float,
        health: dict[str, Any],
        offline_policy: CategoryPolicy,
    ) -> list[Change]:
        """A heartbeat (`Liveness.heartbeat`)."""
        return self.liveness.heartbeat(device_id, interval_s, health, offline_policy)

    def status(self, device_id: str, online: bool, offline_policy: CategoryPolicy) -> list[Change]:
        """A status message (`Liveness.status`)."""
        return self.liveness.status(device_id, online, offline_policy)

    def go_offline(
        self, site_id: str, device_id: str, last_seen: float, policy: CategoryPolicy
    ) -> list[Change]:
        """A silent device goes offline (`Liveness.go_offline`)."""
        return self.liveness.go_offline(site_id, device_id, last_seen, policy)

    def apply_alert(
        self, alert: Alert, policy: CategoryPolicy, cooldown_s: float = 0.0
    ) -> AlertResult:
        """Open, merge into, update or clear a ticket from one alert, once per msg_id
        (`TicketRules.apply_alert`)."""
        return self.tickets.apply_alert(alert, policy, cooldown_s)

    # ------------------------------------------------------------------ buffered rows

    def audit(
        self,
        ticket_id: int,
        actor: str,
        action: str,
        *,
        from_state: str | None = None,
        to_state: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        """Queue an audit-log line (the shape of `audit.entry`)."""
        row = (ticket_id, self.now, actor, action, from_state, to_state, to_json(detail or {}))
        self.rows.add("audit_log", row)

    def notify(self, ticket_id: int, *, grid_id: str | None, category: str, text: str) -> None:
        """Queue a webhook POST for every matching hook."""
        self._outbox.notify(ticket_id, grid_id=grid_id, category=category, text=text)

    def emit(self, changes: Iterable[Change]) -> None:
        """Queue changes for the feed."""
        for change in changes:
            self._emit(change)

    def _emit(self, change: Change) -> None:
        self.rows.add("changes", feed.row(change))

    def flush(self) -> None:
        """Write every buffered row; the feed goes last (`BulkRows.flush`). On PostgreSQL
        the plain driver's writes are deferred and go in one pipeline before the COPYs (any
        SQLAlchemy statement between them sends what was queued before it first)."""
        self._dead.flush()
        self.tickets.flush()
        changed = []
        for (site_id, device_id, event_id), link in self.seen.links.items():
            if link is None:
                continue
            if link.new:
                row = (event_id, site_id, device_id, link.ticket_id, link.ended, link.last_seq)
                self.rows.add("ticket_events", row)
            elif link.dirty:
                changed.append((link.ended, link.last_seq, event_id, site_id, device_id))
        self.plain.many(sql.UPDATE_LINK, changed)
        self._outbox.flush()
        self.liveness.flush()
        self.plain.sync()  # before the COPYs, which use the driver connection directly
        self.rows.flush()
