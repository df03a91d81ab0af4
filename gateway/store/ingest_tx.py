"""The ingest write path: many messages applied in one transaction with few statements.

`IngestTx` is what `Store.ingest` hands to a caller for one transaction. Profiling showed that
building SQLAlchemy statements cost several times more than SQLite executing them, so:

- every statement here is built once at import and executed with bound parameters;
- what a batch's messages need is read up front with one ``IN (…)`` query per table
  (`preload`): processed message ids, event links, open tickets by key, devices;
- rows nothing in the batch reads back (processed ids, evidence, audit lines, webhook
  notifications, dead letters, heartbeats, the change feed) are buffered and written with one
  executemany per table in `flush`, just before COMMIT;
- routing facts and webhooks are read once per transaction (`GridRouter`, `Outbox`);
  dead letters and snapshots have their own small ledgers (`DeadLetterLedger`,
  `SnapshotLedger`).

What the batch writes and later reads again (event links, open tickets by key) is kept in an
overlay, so message 7 of a batch sees what message 3 did exactly as if each had committed.
Message and event ids are the device's choice, so the overlay and the tables key them by
(site, device, id). The exactly-once rules are unchanged: the same unique keys arbitrate,
and a clash (another replica got there first) raises IntegrityError out of the transaction,
which the caller rolls back and retries in smaller pieces (`IngestHandler`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select, update

from contract import EventPhase
from gateway.alerts import Alert, dedup_key, offline_alert, online_alert
from gateway.lifecycle import OPEN_STATE_VALUES, TicketState
from gateway.models import Change
from gateway.sla import CategoryPolicy, TicketCategory, start_clock
from gateway.store import audit, feed
from gateway.store.command_results import record_result
from gateway.store.dead_letter_tx import DeadLetterLedger, storable
from gateway.store.grid_routing import GridRouter
from gateway.store.outbox import Outbox
from gateway.store.rollout_reports import record_report
from gateway.store.schema import devices, evidence, processed_messages, ticket_events, tickets
from gateway.store.sla_clock import CLOCK_COLUMNS, reopened_clock
from gateway.store.snapshot_tx import SnapshotLedger, SnapshotOutcome

# ---------------------------------------------------------------- statements, built once


def _in(column: Any, name: str) -> Any:
    return column.in_(bindparam(name, expanding=True))


_PROCESSED_IN = select(
    processed_messages.c.site_id, processed_messages.c.device_id, processed_messages.c.msg_id
).where(_in(processed_messages.c.msg_id, "ids"))
_LINKS_IN = select(
    ticket_events.c.site_id,
    ticket_events.c.device_id,
    ticket_events.c.event_id,
    ticket_events.c.ticket_id,
    ticket_events.c.ended,
    ticket_events.c.last_seq,
).where(_in(ticket_events.c.event_id, "ids"))
_ACTIVE_IN = select(tickets.c.id, tickets.c.state, tickets.c.active_key).where(
    _in(tickets.c.active_key, "keys")
)
_DEVICES_IN = select(
    devices.c.device_id, devices.c.site_id, devices.c.online, devices.c.last_status_ts
).where(_in(devices.c.device_id, "ids"))
_UNENDED = select(
    ticket_events.c.site_id, ticket_events.c.device_id, ticket_events.c.event_id
).where(ticket_events.c.ticket_id == bindparam("tid"), ticket_events.c.ended.is_(False))
_TICKET = select(
    tickets.c.site_id,
    tickets.c.category,
    tickets.c.state,
    tickets.c.active_key,
    tickets.c.condition_cleared_at,
).where(tickets.c.id == bindparam("tid"))
_RECENT_AUTO_RESOLVED = (
    select(tickets.c.id, *(tickets.c[name] for name in CLOCK_COLUMNS))
    .where(
        tickets.c.dedup_key == bindparam("key"),
        tickets.c.state == TicketState.RESOLVED.value,
        tickets.c.resolved_by == "system",
        tickets.c.resolved_at >= bindparam("since"),
    )
    .order_by(tickets.c.resolved_at.desc())
    .limit(1)
)
_REOPEN = (
    update(tickets)
    .where(
        tickets.c.id == bindparam("tid"),
        tickets.c.state == TicketState.RESOLVED.value,
        tickets.c.sla_cycle == bindparam("from_cycle"),
    )
    .values(
        state=TicketState.NEW.value,
        active_key=bindparam("key"),
        resolved_at=None,
        resolved_by=None,
        condition_cleared_at=None,
        event_count=tickets.c.event_count + 1,
        updated_at=bindparam("now"),
        # A new SLA cycle (`sla_clock.reopened_clock`).
        sla_cycle=bindparam("b_sla_cycle"),
        tier=bindparam("b_tier"),
        ack_due_at=bindparam("b_ack_due_at"),
        resolve_due_at=bindparam("b_resolve_due_at"),
        acknowledged_at=bindparam("b_acknowledged_at"),
    )
)
_INSERT_TICKET = insert(tickets)
_TOUCH = (
    update(tickets)
    .where(tickets.c.id == bindparam("tid"))
    .values(event_count=tickets.c.event_count + bindparam("n"), updated_at=bindparam("now"))
)
_CLEARED = (
    update(tickets)
    .where(tickets.c.id == bindparam("tid"), tickets.c.condition_cleared_at.is_(None))
    .values(condition_cleared_at=bindparam("now"))
)
_AUTO_RESOLVE = (
    update(tickets)
    .where(tickets.c.id == bindparam("tid"), tickets.c.state == bindparam("from_state"))
    .values(
        state=TicketState.RESOLVED.value,
        resolved_at=bindparam("now"),
        resolved_by="system",
        active_key=None,
        resolution_note="condition cleared (auto-resolved on end)",
        updated_at=bindparam("now"),
    )
)
_INSERT_LINK = insert(ticket_events)
_UPDATE_LINK = (
    update(ticket_events)
    .where(
        ticket_events.c.event_id == bindparam("b_event_id"),
        ticket_events.c.site_id == bindparam("b_site_id"),
        ticket_events.c.device_id == bindparam("b_device_id"),
    )
    .values(ended=bindparam("b_ended"), last_seq=bindparam("b_last_seq"))
)
_INSERT_PROCESSED = insert(processed_messages)
_INSERT_EVIDENCE = insert(evidence)
_HEARTBEAT = (
    update(devices)
    .where(devices.c.device_id == bindparam("b_device_id"))
    .values(
        online=True,
        last_seen=bindparam("b_now"),
        heartbeat_interval_s=bindparam("b_interval"),
        health=bindparam("b_health"),
    )
)
_STATUS = (
    update(devices)
    .where(devices.c.device_id == bindparam("b_device_id"))
    .values(online=bindparam("b_online"), last_status_ts=bindparam("b_ts"))
)
_STATUS_ONLINE = (
    update(devices)
    .where(devices.c.device_id == bindparam("b_device_id"))
    .values(
        online=bindparam("b_online"), last_status_ts=bindparam("b_ts"), last_seen=bindparam("b_now")
    )
)
_GO_OFFLINE = (
    update(devices)
    .where(
        devices.c.device_id == bindparam("device"),
        devices.c.online.is_(True),
        devices.c.last_seen == bindparam("b_last_seen"),
    )
    .values(online=False)
)


@dataclass(frozen=True)
class AlertResult:
    """What applying one alert did."""

    duplicate: bool
    changes: tuple[Change, ...] = ()


Key = tuple[str, str, str]
"""(site, device, id): a device-chosen id (msg_id, event_id) with its owner."""


@dataclass
class _Link:
    """An event's ticket, as the transaction currently sees it."""

    ticket_id: int
    ended: bool
    last_seq: int
    new: bool
    dirty: bool = False


@dataclass
class _Device:
    site_id: str
    online: bool
    last_status_ts: float | None


class IngestTx:
    """One ingest transaction on `conn`; `Store.ingest` builds it and calls `flush`."""

    def __init__(self, conn: Connection, now: float, *, postgres: bool) -> None:
        self.conn = conn
        self.now = now
        self.postgres = postgres
        self._processed: dict[Key, bool] = {}  # (site, device, msg id) → already processed?
        self._new_processed: list[dict[str, Any]] = []
        self._links: dict[Key, _Link | None] = {}
        self._active: dict[str, tuple[int, str] | None] = {}  # active key → (id, state)
        self._devices: dict[str, _Device | None] = {}
        self._touches: dict[int, int] = {}  # ticket id → events merged
        self._heartbeats: dict[str, dict[str, Any]] = {}
        self._evidence: list[dict[str, Any]] = []
        self._audit: list[dict[str, Any]] = []
        self._dead = DeadLetterLedger(conn, now)
        self._snapshots = SnapshotLedger(conn, now)
        self._feed: list[Change] = []
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
    ) -> None:
        """Read what a batch will need in one query per table (optional: anything not
        preloaded is read when first needed). Message and event ids are looked up by id
        alone (the index) and matched to their device here."""
        wanted_msgs = set(msg_keys) - self._processed.keys()
        if wanted_msgs:
            ids = sorted({key[2] for key in wanted_msgs})
            done = {tuple(r) for r in self.conn.execute(_PROCESSED_IN, {"ids": ids})}
            self._processed.update((key, key in done) for key in wanted_msgs)
        wanted_events = set(event_keys) - self._links.keys()
        if wanted_events:
            self._links.update(dict.fromkeys(wanted_events))
            ids = sorted({key[2] for key in wanted_events})
            for r in self.conn.execute(_LINKS_IN, {"ids": ids}):
                key = (r.site_id, r.device_id, r.event_id)
                if key in wanted_events:
                    self._links[key] = _Link(
                        int(r.ticket_id), bool(r.ended), int(r.last_seq), new=False
                    )
        keys = sorted(set(active_keys) - self._active.keys())
        if keys:
            self._active.update(dict.fromkeys(keys))
            for t in self.conn.execute(_ACTIVE_IN, {"keys": keys}):
                self._active[t.active_key] = (int(t.id), t.state)
        wanted = sorted(set(device_ids) - self._devices.keys())
        if wanted:
            self._devices.update(dict.fromkeys(wanted))
            for d in self.conn.execute(_DEVICES_IN, {"ids": wanted}):
                self._devices[d.device_id] = _Device(d.site_id, bool(d.online), d.last_status_ts)

    def _link(self, key: Key) -> _Link | None:
        if key not in self._links:
            self.preload(event_keys=[key])
        return self._links[key]

    def _open_ticket(self, key: str) -> tuple[int, str] | None:
        if key not in self._active:
            self.preload(active_keys=[key])
        return self._active[key]

    def _device(self, device_id: str) -> _Device | None:
        if device_id not in self._devices:
            self.preload(device_ids=[device_id])
        return self._devices[device_id]

    # ------------------------------------------------------------------ messages

    def claim(self, site_id: str, device_id: str, msg_id: str) -> bool:
        """Mark a device's message id processed; False when it already was (a redelivery)."""
        key = (site_id, device_id, msg_id)
        if key not in self._processed:
            self.preload(msg_keys=[key])
        if self._processed[key]:
            return False
        self._processed[key] = True
        self._new_processed.append(
            {"msg_id": msg_id, "site_id": site_id, "device_id": device_id, "received_at": self.now}
        )
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
        device = self._device(device_id)
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
        self._feed.append(change)
        return [change, *self._clear_offline(device.site_id, device_id, offline_policy)]

    def status(self, device_id: str, online: bool, offline_policy: CategoryPolicy) -> list[Change]:
        """A status message, ordered by when the gateway received it (this transaction's
        `now`), never by the device's own `ts`: a device clock in the year 3000 must not hide
        later statuses, and the last will is stamped at connect time, before the "online"
        it follows. A status received before the last one applied (another replica's, with
        a later clock) is ignored; within one batch the later message wins. Online clears
        the device's `device_offline` ticket under `offline_policy`."""
        device = self._device(device_id)
        ts = self.now
        if device is None or (device.last_status_ts is not None and ts < device.last_status_ts):
            return []
        # A heartbeat buffered earlier in the batch must land before this status does.
        pending = self._heartbeats.pop(device_id, None)
        if pending is not None:
            self.conn.execute(_HEARTBEAT, pending)
        params = {"b_device_id": device_id, "b_online": online, "b_ts": ts, "b_now": self.now}
        self.conn.execute(_STATUS_ONLINE if online else _STATUS, params)
        was_online, device.online, device.last_status_ts = device.online, online, ts
        changes: list[Change] = []
        if was_online != online:
            action = "online" if online else "offline"
            changes.append(self._device_change(device.site_id, device_id, action))
            self._feed += changes
        if online:
            changes += self._clear_offline(device.site_id, device_id, offline_policy)
        return changes

    def go_offline(
        self, site_id: str, device_id: str, last_seen: float, policy: CategoryPolicy
    ) -> list[Change]:
        """A silent device goes offline and gets a maintenance ticket; conditional on it
        still being online and unheard since `last_seen`, so this happens once."""
        flipped = self.conn.execute(
            _GO_OFFLINE, {"device": device_id, "b_last_seen": last_seen}
        ).rowcount
        if not flipped:
            return []
        self._devices.pop(device_id, None)
        change = self._device_change(site_id, device_id, "offline")
        self._feed.append(change)
        alert = offline_alert(site_id, device_id, last_seen, self.now)
        return [change, *self.apply_alert(alert, policy).changes]

    def _device_change(self, site_id: str, device_id: str, action: str) -> Change:
        return Change(
            kind="device", action=action, site_id=site_id, device_id=device_id, at=self.now
        )

    def _clear_offline(self, site_id: str, device_id: str, policy: CategoryPolicy) -> list[Change]:
        ticket = self._open_ticket(dedup_key(site_id, device_id, TicketCategory.DEVICE_OFFLINE))
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
        link = self._link(event_key)
        if link is not None:
            ticket_id = link.ticket_id
            link.ended = link.ended or alert.phase is EventPhase.END
            link.last_seq = max(link.last_seq, alert.seq)
            link.dirty = True
            self._touches[ticket_id] = self._touches.get(ticket_id, 0)
        else:
            ticket_id, created, opened = self._find_or_open(alert, policy, cooldown_s)
            changes += opened
            self._links[event_key] = _Link(
                ticket_id, alert.phase is EventPhase.END, alert.seq, new=True
            )
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
        self._evidence.append(
            {
                "ticket_id": ticket_id,
                "event_id": alert.event_id,
                "msg_id": alert.msg_id,
                "phase": alert.phase.value,
                "seq": alert.seq,
                "ts": alert.ts,
                "snapshot_id": snapshot_id,
                "detail": detail,
            }
        )
        if alert.phase is EventPhase.END:
            changes += self._maybe_clear(ticket_id, policy)
        if not created and not changes:
            changes.append(self._ticket_change(alert, ticket_id, f"evidence_{alert.phase.value}"))
        self._feed += changes
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
        open_ticket = self._open_ticket(key)
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
        result = self.conn.execute(
            _INSERT_TICKET,
            {
                "site_id": alert.site_id,
                "device_id": alert.device_id,
                "category": alert.category.value,
                "zone_id": alert.zone_id,
                "grid_id": grid_id,
                "severity": alert.severity.value,
                "state": TicketState.NEW.value,
                "tier": int(clock.tier),
                "sla_cycle": clock.cycle,
                "assignee": assignee,
                "dedup_key": key,
                "active_key": key,
                "event_count": 1,
                "created_at": now,
                "updated_at": now,
                "ack_due_at": clock.ack_due_at,
                "resolve_due_at": clock.resolve_due_at,
            },
        )
        assert result.inserted_primary_key is not None
        ticket_id = int(result.inserted_primary_key[0])
        self._active[key] = (ticket_id, TicketState.NEW.value)
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
        recent = self.conn.execute(
            _RECENT_AUTO_RESOLVED, {"key": key, "since": self.now - cooldown_s}
        ).first()
        if recent is None:
            return None
        clock = reopened_clock(recent, policy, self.now)
        params = {"tid": recent.id, "key": key, "now": self.now, "from_cycle": recent.sla_cycle}
        # Conditional on the state and cycle, and the unique active_key: a concurrent opener
        # turns this into an IntegrityError and a retry merges into theirs.
        if not self.conn.execute(
            _REOPEN, params | {f"b_{name}": value for name, value in clock.items()}
        ).rowcount:
            return None
        ticket_id = int(recent.id)
        self._active[key] = (ticket_id, TicketState.NEW.value)
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
        """Events of `ticket_id` not yet ended: the database's, corrected by the overlay."""
        rows = self.conn.execute(_UNENDED, {"tid": ticket_id})
        active: set[Key] = {(r.site_id, r.device_id, r.event_id) for r in rows}
        for key, link in self._links.items():
            if link is None:
                continue
            if link.ticket_id == ticket_id and not link.ended:
                active.add(key)
            else:
                active.discard(key)
        return active

    def _maybe_clear(self, ticket_id: int, policy: CategoryPolicy) -> list[Change]:
        if self._unended_events(ticket_id):
            return []
        row = self.conn.execute(_TICKET, {"tid": ticket_id}).one()
        now = self.now
        self.conn.execute(_CLEARED, {"tid": ticket_id, "now": now})
        if policy.auto_resolve_on_end and row.state in OPEN_STATE_VALUES:
            done = self.conn.execute(
                _AUTO_RESOLVE, {"tid": ticket_id, "from_state": row.state, "now": now}
            ).rowcount
            if not done:
                return []
            if row.active_key is not None:
                self._active[row.active_key] = None
            self.audit(
                ticket_id,
                "system:ingest",
                "auto_resolve",
                from_state=row.state,
                to_state=TicketState.RESOLVED.value,
            )
            action, state = "resolved", TicketState.RESOLVED.value
        else:
            self.audit(ticket_id, "system:ingest", "condition_cleared")
            action, state = "cleared", row.state
        return [
            Change(
                kind="ticket",
                action=action,
                site_id=row.site_id,
                ticket_id=ticket_id,
                state=state,
                category=row.category,
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
        """Queue an audit-log line."""
        self._audit.append(
            audit.entry(
                ticket_id,
                self.now,
                actor,
                action,
                from_state=from_state,
                to_state=to_state,
                detail=detail,
            )
        )

    def notify(self, ticket_id: int, *, grid_id: str | None, category: str, text: str) -> None:
        """Queue a webhook POST for every matching hook."""
        self._outbox.notify(ticket_id, grid_id=grid_id, category=category, text=text)

    def emit(self, changes: Iterable[Change]) -> None:
        """Queue changes for the feed."""
        self._feed.extend(changes)

    def flush(self) -> None:
        """Write every buffered row (one executemany per table); the feed goes last."""
        conn = self.conn
        if self._new_processed:
            conn.execute(_INSERT_PROCESSED, self._new_processed)
        self._dead.flush()
        if self._touches:
            conn.execute(
                _TOUCH, [{"tid": t, "n": n, "now": self.now} for t, n in self._touches.items()]
            )
        new_links = [
            {
                "site_id": site_id,
                "device_id": device_id,
                "event_id": event_id,
                "ticket_id": link.ticket_id,
                "ended": link.ended,
                "last_seq": link.last_seq,
            }
            for (site_id, device_id, event_id), link in self._links.items()
            if link is not None and link.new
        ]
        if new_links:
            conn.execute(_INSERT_LINK, new_links)
        changed = [
            {
                "b_site_id": site_id,
                "b_device_id": device_id,
                "b_event_id": event_id,
                "b_ended": link.ended,
                "b_last_seq": link.last_seq,
            }
            for (site_id, device_id, event_id), link in self._links.items()
            if link is not None and link.dirty and not link.new
        ]
        if changed:
            conn.execute(_UPDATE_LINK, changed)
        if self._evidence:
            conn.execute(_INSERT_EVIDENCE, self._evidence)
        if self._audit:
            conn.execute(audit.INSERT, self._audit)
        self._outbox.flush()
        if self._heartbeats:
            conn.execute(_HEARTBEAT, list(self._heartbeats.values()))
        feed.record(conn, self._feed, postgres=self.postgres)
