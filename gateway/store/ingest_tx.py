"""The ingest write path: many messages applied in one transaction with few statements.

`IngestTx` is what `Store.ingest` hands to a caller for one transaction: the rules that
open, merge, update, clear and reopen tickets, mark devices online and offline, and claim
message ids. It owns those decisions only; the rest is in modules of their own:

- `ingest_sql`: every statement, built once at import and executed with bound parameters;
  the per-batch reads and per-ticket writes as plain SQL on the driver (`plain_sql.Driver`),
  whose certain UPDATEs are deferred into one PostgreSQL pipeline;
- `ingest_overlay.Overlay`: what the transaction has read and written (processed ids, event
  links, open tickets by key, devices), preloaded with one ``IN (…)`` query per table, so
  message 7 of a batch sees what message 3 did exactly as if each had committed;
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
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection

from contract import EventPhase
from gateway.alerts import Alert, dedup_key, offline_alert, online_alert
from gateway.lifecycle import OPEN_STATE_VALUES, TicketState
from gateway.models import Change
from gateway.sla import CategoryPolicy, TicketCategory, start_clock
from gateway.store import feed
from gateway.store import ingest_sql as sql
from gateway.store.bulk_rows import BulkRows, to_json
from gateway.store.command_results import record_result
from gateway.store.dead_letter_tx import DeadLetterLedger, storable
from gateway.store.grid_routing import GridRouter
from gateway.store.ingest_overlay import Key, Link, Overlay, TicketSeen
from gateway.store.outbox import Outbox
from gateway.store.plain_sql import Driver
from gateway.store.rollout_reports import record_report
from gateway.store.sla_clock import reopened_clock
from gateway.store.snapshot_tx import SnapshotLedger, SnapshotOutcome


@dataclass(frozen=True)
class AlertResult:
    """What applying one alert did."""

    duplicate: bool
    changes: tuple[Change, ...] = ()


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
            # one. Decoding still runs in parallel, before the transaction.
            self.plain.rows(sql.INGEST_LOCK, (sql.INGEST_LOCK_KEY,))
        self.seen = Overlay(conn, self.plain)
        self.rows = BulkRows(conn, postgres=postgres)
        self._touches: dict[int, int] = {}  # ticket id → events merged
        self._heartbeats: dict[str, dict[str, Any]] = {}
        self._dead = DeadLetterLedger(conn, now)
        self._snapshots = SnapshotLedger(conn, now)
        self._router = GridRouter(conn, now)
        self._outbox = Outbox(conn, now)

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
        """Read what a batch will need in one query per table (`Overlay.preload`), and the
        routing facts of its alerts (`GridRouter.prefetch`)."""
        self._router.prefetch(alerts)
        self.seen.preload(
            msg_keys=msg_keys,
            event_keys=event_keys,
            active_keys=active_keys,
            device_ids=device_ids,
            reopen_since=reopen_since,
        )

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
        return self._snapshots.store(site_id, device_id, snapshot_id, data, bytes_per_hour)

    def heartbeat(
        self,
        device_id: str,
        interval_s: float,
        health: dict[str, Any],
        offline_policy: CategoryPolicy,
    ) -> list[Change]:
        """A heartbeat: last seen, interval and health; marks the device online and clears
        its `device_offline` ticket under `offline_policy` (the configured one)."""
        device = self.seen.device(device_id)
        if device is None:
            return []
        self._heartbeats[device_id] = {
            "b_device_id": device_id,
            "b_now": self.now,
            "b_interval": interval_s,
            "b_health": health,
        }
        if device.online:
            return []
        device.online = True
        change = self._device_change(device.site_id, device_id, "online")
        self._emit(change)
        return [change, *self._clear_offline(device.site_id, device_id, offline_policy)]

    def status(self, device_id: str, online: bool, offline_policy: CategoryPolicy) -> list[Change]:
        """A status message, ordered by when the gateway received it (this transaction's
        `now`), never by the device's own `ts`: a device clock in the year 3000 must not hide
        later statuses, and the last will is stamped at connect time, before the "online"
        it follows. A status received before the last one applied (another replica's, with
        a later clock) is ignored; within one batch the later message wins. Online clears
        the device's `device_offline` ticket under `offline_policy`."""
        device = self.seen.device(device_id)
        ts = self.now
        if device is None or (device.last_status_ts is not None and ts < device.last_status_ts):
            return []
        # A heartbeat buffered earlier in the batch must land before this status does.
        pending = self._heartbeats.pop(device_id, None)
        if pending is not None:
            self.conn.execute(sql.HEARTBEAT, pending)
        params = {"b_device_id": device_id, "b_online": online, "b_ts": ts, "b_now": self.now}
        self.conn.execute(sql.STATUS_ONLINE if online else sql.STATUS, params)
        was_online, device.online, device.last_status_ts = device.online, online, ts
        changes: list[Change] = []
        if was_online != online:
            action = "online" if online else "offline"
            changes.append(self._device_change(device.site_id, device_id, action))
            self.emit(changes)
        if online:
            changes += self._clear_offline(device.site_id, device_id, offline_policy)
        return changes

    def go_offline(
        self, site_id: str, device_id: str, last_seen: float, policy: CategoryPolicy
    ) -> list[Change]:
        """A silent device goes offline and gets a maintenance ticket; conditional on it
        still being online and unheard since `last_seen`, so this happens once."""
        flipped = self.conn.execute(
            sql.GO_OFFLINE, {"device": device_id, "b_last_seen": last_seen}
        ).rowcount
        if not flipped:
            return []
        self.seen.devices.pop(device_id, None)
        change = self._device_change(site_id, device_id, "offline")
        self._emit(change)
        alert = offline_alert(site_id, device_id, last_seen, self.now)
        return [change, *self.apply_alert(alert, policy).changes]

    def _device_change(self, site_id: str, device_id: str, action: str) -> Change:
        return Change(
            kind="device", action=action, site_id=site_id, device_id=device_id, at=self.now
        )

    def _clear_offline(self, site_id: str, device_id: str, policy: CategoryPolicy) -> list[Change]:
        ticket = self.seen.open_ticket(dedup_key(site_id, device_id, TicketCategory.DEVICE_OFFLINE))
        if ticket is None:
            return []
        unended = self._unended_events(ticket[0])
        if not unended:
            return []
        alert = online_alert(site_id, device_id, min(unended)[2], self.now)
        # `policy` is the configured device_offline policy: its `auto_resolve_on_end` decides
        # whether the device coming back resolves the ticket or leaves it for a person.
        return list(self.apply_alert(alert, policy).changes)

    # ------------------------------------------------------------------ alerts → tickets

    def apply_alert(
        self, alert: Alert, policy: CategoryPolicy, cooldown_s: float = 0.0
    ) -> AlertResult:
        """Open, merge into, update or clear a ticket from one alert, once per msg_id."""
        if not self.claim(alert.site_id, alert.device_id, alert.msg_id):
            return AlertResult(duplicate=True)
        changes: list[Change] = []
        created = False
        event_key = (alert.site_id, alert.device_id, alert.event_id)
        link = self.seen.link(event_key)
        if link is not None:
            ticket_id = link.ticket_id
            link.ended = link.ended or alert.phase is EventPhase.END
            link.last_seq = max(link.last_seq, alert.seq)
            link.dirty = True
            self._touches[ticket_id] = self._touches.get(ticket_id, 0)
        else:
            ticket_id, created, opened = self._find_or_open(alert, policy, cooldown_s)
            changes += opened
            link = Link(ticket_id, alert.phase is EventPhase.END, alert.seq, new=True)
            self.seen.add_link(event_key, link)
        snapshot_id, detail = alert.snapshot_id, alert.detail
        if snapshot_id is not None:
            assert alert.snapshot_sha256 is not None
            assert alert.snapshot_size is not None
            refused = self._snapshots.link(
                (alert.site_id, alert.device_id, snapshot_id),
                alert.snapshot_sha256,
                alert.snapshot_size,
            )
            if refused is not None:
                # The alert stands (a real fire lane blocked matters more than its photo);
                # the photo that does not match is not evidence, and a maintainer sees why.
                snapshot_id, detail = None, {**detail, "snapshot_refused": refused}
                topic = f"guanjia/v1/{alert.site_id}/{alert.device_id}/snapshot/{alert.snapshot_id}"
                self.dead_letter(topic, b"", "SnapshotMismatch", refused)
        self.rows.add(
            "evidence",
            (
                ticket_id,
                alert.event_id,
                alert.msg_id,
                alert.phase.value,
                alert.seq,
                alert.ts,
                snapshot_id,
                to_json(detail),
            ),
        )
        if alert.phase is EventPhase.END:
            changes += self._maybe_clear(ticket_id, policy)
        if not created and not changes:
            changes.append(self._ticket_change(alert, ticket_id, f"evidence_{alert.phase.value}"))
        self.emit(changes)
        return AlertResult(duplicate=False, changes=tuple(changes))

    def _ticket_change(
        self, alert: Alert, ticket_id: int, action: str, state: str | None = None
    ) -> Change:
        return Change(
            kind="ticket",
            action=action,
            site_id=alert.site_id,
            ticket_id=ticket_id,
            state=state,
            category=alert.category.value,
            at=self.now,
        )

    def _find_or_open(
        self, alert: Alert, policy: CategoryPolicy, cooldown_s: float
    ) -> tuple[int, bool, list[Change]]:
        key = alert.dedup_key
        now = self.now
        open_ticket = self.seen.open_ticket(key)
        if open_ticket is not None:
            ticket_id, state = open_ticket
            self._touches[ticket_id] = self._touches.get(ticket_id, 0) + 1
            self.audit(ticket_id, "system:ingest", "merge", detail={"event_id": alert.event_id})
            return ticket_id, False, [self._ticket_change(alert, ticket_id, "merged", state)]
        if cooldown_s > 0:
            reopened = self._reopen_recent(alert, policy, cooldown_s)
            if reopened is not None:
                return reopened, False, [self._ticket_change(alert, reopened, "reopened", "new")]
        grid_id, assignee = self._router.route(alert)
        clock = start_clock(policy, alert.severity, now)
        ticket_id = self.plain.insert_id(
            sql.INSERT_TICKET,
            (  # in `sql.TICKET_COLUMNS` order
                alert.site_id,
                alert.device_id,
                alert.category.value,
                alert.zone_id,
                grid_id,
                alert.severity.value,
                TicketState.NEW.value,
                int(clock.tier),
                clock.cycle,
                assignee,
                key,
                key,
                1,
                now,
                now,
                clock.ack_due_at,
                clock.resolve_due_at,
            ),
        )
        self.seen.active[key] = (ticket_id, TicketState.NEW.value)
        seen = TicketSeen(
            alert.site_id,
            alert.category.value,
            TicketState.NEW.value,
            key,
            clock.cycle,
            int(clock.tier),
            alert.severity.value,
            clock.ack_due_at,
            clock.resolve_due_at,
        )
        self.seen.new_ticket(ticket_id, seen)
        self.audit(
            ticket_id,
            "system:ingest",
            "open",
            to_state=TicketState.NEW.value,
            detail={"event_id": alert.event_id, "assignee": assignee, "grid_id": grid_id},
        )
        self.notify(
            ticket_id,
            grid_id=grid_id,
            category=alert.category.value,
            text=f"[管家] New {alert.category.value} ticket #{ticket_id} at "
            f"{alert.site_id}/{alert.zone_id or alert.device_id}"
            + (f", assigned to {assignee}" if assignee else ""),
        )
        return ticket_id, True, [self._ticket_change(alert, ticket_id, "opened", "new")]

    def _reopen_recent(self, alert: Alert, policy: CategoryPolicy, cooldown_s: float) -> int | None:
        """Reopen the ticket auto-resolved for this key within the cool-down (flapping), in a
        new SLA cycle; its id, or None when there is none."""
        key = alert.dedup_key
        recent = self.seen.recent_resolved(key, self.now - cooldown_s)
        if recent is None:
            return None
        clock = reopened_clock(recent, policy, self.now)
        params = (
            key,
            self.now,
            clock["sla_cycle"],
            clock["tier"],
            clock["ack_due_at"],
            clock["resolve_due_at"],
            clock["acknowledged_at"],
            recent.id,
            recent.sla_cycle,
        )
        # Conditional on the state and cycle, and the unique active_key: a concurrent opener
        # turns this into an IntegrityError and a retry merges into theirs. The row was read
        # locked, so it is still as read: deferred, sent with the next statement.
        self.plain.defer(sql.REOPEN, params)
        ticket_id = int(recent.id)
        self.seen.active[key] = (ticket_id, TicketState.NEW.value)
        # As the row now is (the reopened ticket is the alert's: its key names site and
        # category), so clearing it later in the batch need not read it again.
        self.seen.tickets[ticket_id] = TicketSeen(
            alert.site_id,
            alert.category.value,
            TicketState.NEW.value,
            key,
            clock["sla_cycle"],
            clock["tier"],
            recent.severity,
            clock["ack_due_at"],
            clock["resolve_due_at"],
        )
        self.seen.recent[key] = None  # open again: nothing to reopen until it resolves
        self.audit(
            ticket_id,
            "system:ingest",
            "reopen",
            from_state=TicketState.RESOLVED.value,
            to_state=TicketState.NEW.value,
            detail={
                "event_id": alert.event_id,
                "reason": "within cool-down",
                "sla_cycle": clock["sla_cycle"],
                "ack_due_at": clock["ack_due_at"],
                "resolve_due_at": clock["resolve_due_at"],
            },
        )
        return ticket_id

    def _unended_events(self, ticket_id: int) -> set[Key]:
        """Events of `ticket_id` not yet ended (`Overlay.unended`)."""
        return self.seen.unended(ticket_id)

    def _maybe_clear(self, ticket_id: int, policy: CategoryPolicy) -> list[Change]:
        if self._unended_events(ticket_id):
            return []
        ticket = self.seen.ticket(ticket_id)
        now = self.now
        from_state = ticket.state
        if policy.auto_resolve_on_end and from_state in OPEN_STATE_VALUES:
            # One statement clears the condition and resolves (conditional on the state).
            # The ticket's row was read locked in this transaction (`ingest_sql.ACTIVE_IN`),
            # so a person's change either came before and was read, or waits for the commit:
            # certain to apply, so deferred (a stale row fails the transaction, which reruns).
            self.plain.defer(sql.AUTO_RESOLVE, (now, now, now, ticket_id, from_state))
            if ticket.active_key is not None:
                self.seen.active[ticket.active_key] = None
                # Now the key's latest auto-resolved ticket (none resolved later than now),
                # as reading it back would find it: the row is locked, so still as read.
                key = ticket.active_key
                self.seen.recent[key] = ticket.resolved(ticket_id, key, now)
            ticket.state, ticket.active_key = TicketState.RESOLVED.value, None
            self.audit(
                ticket_id,
                "system:ingest",
                "auto_resolve",
                from_state=from_state,
                to_state=TicketState.RESOLVED.value,
            )
            action, state = "resolved", TicketState.RESOLVED.value
        else:
            self.plain.defer(sql.CLEARED, (now, ticket_id), expect=None)
            self.audit(ticket_id, "system:ingest", "condition_cleared")
            action, state = "cleared", from_state
        return [
            Change(
                kind="ticket",
                action=action,
                site_id=ticket.site_id,
                ticket_id=ticket_id,
                state=state,
                category=ticket.category,
                at=now,
            )
        ]

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
        conn = self.conn
        self._dead.flush()
        self.plain.many(sql.TOUCH, [(n, self.now, t) for t, n in self._touches.items()])
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
        if self._heartbeats:
            conn.execute(sql.HEARTBEAT, list(self._heartbeats.values()))
        self.plain.sync()  # before the COPYs, which use the driver connection directly
        self.rows.flush()
