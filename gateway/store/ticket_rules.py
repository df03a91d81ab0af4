"""Alerts → tickets inside one ingest transaction: open, merge, update, clear and reopen.

`TicketRules` owns the decisions an alert makes about its ticket, made on the transaction's
overlay (`ingest_overlay`) so a batch behaves exactly like its alerts applied one by one;
and the two things only these rules write: the per-ticket touch (event count, updated_at)
written once per ticket at flush, and the ticket ids drawn up front on PostgreSQL.
Everything it queues (evidence, audit lines, feed changes, notifications) goes through the
transaction (`IngestTx`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from contract import EventPhase
from gateway.alerts import Alert
from gateway.lifecycle import OPEN_STATE_VALUES, TicketState
from gateway.models import Change
from gateway.sla import CategoryPolicy, start_clock
from gateway.store import ingest_sql as sql
from gateway.store.bulk_rows import to_json
from gateway.store.ingest_overlay import Key, Link, TicketSeen
from gateway.store.sla_clock import reopened_clock

if TYPE_CHECKING:
    from gateway.store.ingest_tx import IngestTx


@dataclass(frozen=True)
class AlertResult:
    """What applying one alert did."""

    duplicate: bool
    changes: tuple[Change, ...] = ()


class TicketRules:
    """The ticket rules of transaction `tx`."""

    def __init__(self, tx: IngestTx) -> None:
        self.tx = tx
        self.seen = tx.seen
        self.plain = tx.plain
        self.now = tx.now
        self.touches: dict[int, int] = {}  # ticket id → events merged
        self.ids: list[int] = []  # ticket ids drawn for this batch, highest first

    def draw_ids(self, alerts: list[Alert]) -> None:
        """Draw from the tickets' sequence, in one query, an id for every key of `alerts`
        that may open a ticket: the first alert of a new message and a new event, with no
        ticket open or to reopen for its key.

        A ticket whose id is known can be inserted without waiting for ``RETURNING id``:
        deferred like the other certain writes, so opening tickets costs no round trip
        each (it was the most frequent wait of a batch). The count must never be more than
        the batch opens — an id drawn and not used would leave a gap in ticket numbers,
        which one-by-one ingest would not (the differential test compares them) — so an
        alert repeating a message or event of the batch is not counted; a key opening
        twice (no cool-down) takes its second id from ``RETURNING``."""
        seen = self.seen
        keys: set[str] = set()
        messages: set[Key] = set()
        events: set[Key] = set()
        for alert in alerts:
            msg_key = (alert.site_id, alert.device_id, alert.msg_id)
            event_key = (alert.site_id, alert.device_id, alert.event_id)
            first = msg_key not in messages and event_key not in events
            messages.add(msg_key)
            events.add(event_key)
            if (
                first
                and not seen.processed.get(msg_key)
                and seen.links.get(event_key) is None
                and seen.active.get(alert.dedup_key) is None
                and seen.recent.get(alert.dedup_key) is None
            ):
                keys.add(alert.dedup_key)
        if keys:
            drawn = [int(row[0]) for row in self.plain.rows(sql.NEXT_IDS, (len(keys),))]
            self.ids = sorted(drawn, reverse=True) + self.ids  # `pop` takes the lowest

    def apply_alert(
        self, alert: Alert, policy: CategoryPolicy, cooldown_s: float = 0.0
    ) -> AlertResult:
        """Open, merge into, update or clear a ticket from one alert, once per msg_id."""
        if not self.tx.claim(alert.site_id, alert.device_id, alert.msg_id):
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
            self.touches[ticket_id] = self.touches.get(ticket_id, 0)
        else:
            ticket_id, created, opened = self._find_or_open(alert, policy, cooldown_s)
            changes += opened
            link = Link(ticket_id, alert.phase is EventPhase.END, alert.seq, new=True)
            self.seen.add_link(event_key, link)
        snapshot_id, detail = alert.snapshot_id, alert.detail
        if snapshot_id is not None:
            assert alert.snapshot_sha256 is not None
            assert alert.snapshot_size is not None
            refused = self.tx.snapshots.link(
                (alert.site_id, alert.device_id, snapshot_id),
                alert.snapshot_sha256,
                alert.snapshot_size,
            )
            if refused is not None:
                # The alert stands (a real fire lane blocked matters more than its photo);
                # the photo that does not match is not evidence, and a maintainer sees why.
                snapshot_id, detail = None, {**detail, "snapshot_refused": refused}
                topic = f"guanjia/v1/{alert.site_id}/{alert.device_id}/snapshot/{alert.snapshot_id}"
                self.tx.dead_letter(topic, b"", "SnapshotMismatch", refused)
        self.tx.rows.add(
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
        self.tx.emit(changes)
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
            self.touches[ticket_id] = self.touches.get(ticket_id, 0) + 1
            self.tx.audit(ticket_id, "system:ingest", "merge", detail={"event_id": alert.event_id})
            return ticket_id, False, [self._ticket_change(alert, ticket_id, "merged", state)]
        if cooldown_s > 0:
            reopened = self._reopen_recent(alert, policy, cooldown_s)
            if reopened is not None:
                return reopened, False, [self._ticket_change(alert, reopened, "reopened", "new")]
        grid_id, assignee = self.tx.router.route(alert)
        clock = start_clock(policy, alert.severity, now)
        row = (  # in `sql.TICKET_COLUMNS` order
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
        )
        if self.ids:  # drawn up front: certain to insert, so deferred (a clash reruns)
            ticket_id = self.ids.pop()
            self.plain.defer(sql.INSERT_TICKET_ID, (ticket_id, *row))
        else:
            ticket_id = self.plain.insert_id(sql.INSERT_TICKET, row)
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
        self.tx.audit(
            ticket_id,
            "system:ingest",
            "open",
            to_state=TicketState.NEW.value,
            detail={"event_id": alert.event_id, "assignee": assignee, "grid_id": grid_id},
        )
        self.tx.notify(
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
        self.tx.audit(
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
            self.tx.audit(
                ticket_id,
                "system:ingest",
                "auto_resolve",
                from_state=from_state,
                to_state=TicketState.RESOLVED.value,
            )
            action, state = "resolved", TicketState.RESOLVED.value
        else:
            self.plain.defer(sql.CLEARED, (now, ticket_id), expect=None)
            self.tx.audit(ticket_id, "system:ingest", "condition_cleared")
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

    def flush(self) -> None:
        """Write the touched tickets' event counts and updated_at (one statement)."""
        self.plain.many(sql.TOUCH, [(n, self.now, t) for t, n in self.touches.items()])
