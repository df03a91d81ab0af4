"""Opening a ticket that no device raised: a resident's report, a failed checklist item, a
missed patrol round. The same ticket flow as an alert's (`TicketRules._find_or_open`): the SLA
clock from the category policy, grid routing to the on-duty butler or the supervisor, an
audit line, a webhook notice and a change for consoles, all in the caller's transaction.

The ticket's ``device_id`` names what it is about (``place:<id>``, ``checkpoint:<id>``,
``round:<route>``), so lists filter and group by it like a device. ``dedup_key`` is the open
ticket's key: a key with an open ticket merges into it (the same failed item found again on
the next round), a unique key always opens a new ticket (every resident report).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import Connection, insert, select, update
from sqlalchemy.exc import IntegrityError

from contract import Severity
from gateway.lifecycle import TicketState
from gateway.models import Change
from gateway.sla import CategoryPolicy, TicketCategory, start_clock
from gateway.store import audit
from gateway.store.grid_routing import GridRouter
from gateway.store.outbox import Outbox
from gateway.store.schema import tickets


@dataclass(frozen=True)
class PlaceTicket:
    """A ticket to open at a place."""

    site_id: str
    subject: str  # becomes device_id: place:<id>, checkpoint:<id>, round:<id>
    category: TicketCategory
    zone_id: str | None
    grid_id: str | None
    dedup_key: str
    actor: str  # who opened it: system:residents, system:rounds, an operator
    text: str  # the webhook notice
    severity: Severity = Severity.NORMAL
    for_supervisor: bool = False
    detail: dict[str, Any] = field(default_factory=dict)

    def with_detail(self, more: dict[str, Any]) -> PlaceTicket:
        """The same ticket with more audit detail."""
        return replace(self, detail=self.detail | more)


@dataclass(frozen=True)
class Opened:
    """The ticket a `PlaceTicket` opened or merged into."""

    ticket_id: int
    created: bool
    grid_id: str | None
    assignee: str | None
    change: Change


def open_place_ticket(
    conn: Connection, new: PlaceTicket, policy: CategoryPolicy, now: float
) -> Opened:
    """Open `new` (or merge into the open ticket of its key) in the caller's transaction;
    the caller records `change` in the feed."""
    existing = conn.execute(
        select(tickets.c.id, tickets.c.state, tickets.c.grid_id, tickets.c.assignee).where(
            tickets.c.active_key == new.dedup_key
        )
    ).first()
    if existing is None:
        router = GridRouter(conn, now)
        grid_id, assignee = router.route_place(
            new.site_id, new.zone_id, new.grid_id, supervisor=new.for_supervisor
        )
        clock = start_clock(policy, new.severity, now)
        values = {
            "site_id": new.site_id,
            "device_id": new.subject[:64],
            "category": new.category.value,
            "zone_id": new.zone_id,
            "grid_id": grid_id,
            "severity": new.severity.value,
            "state": TicketState.NEW.value,
            "tier": int(clock.tier),
            "sla_cycle": clock.cycle,
            "assignee": assignee,
            "dedup_key": new.dedup_key,
            "active_key": new.dedup_key,
            "event_count": 1,
            "created_at": now,
            "updated_at": now,
            "ack_due_at": clock.ack_due_at,
            "resolve_due_at": clock.resolve_due_at,
        }
        try:
            with conn.begin_nested():  # another writer may open the same key meanwhile
                result = conn.execute(insert(tickets).values(values))
        except IntegrityError:
            existing = conn.execute(
                select(tickets.c.id, tickets.c.state, tickets.c.grid_id, tickets.c.assignee).where(
                    tickets.c.active_key == new.dedup_key
                )
            ).first()
            if existing is None:
                raise
        else:
            assert result.inserted_primary_key is not None
            ticket_id = int(result.inserted_primary_key[0])
            audit.write(
                conn,
                audit.entry(
                    ticket_id,
                    now,
                    new.actor,
                    "open",
                    to_state=TicketState.NEW.value,
                    detail={"assignee": assignee, "grid_id": grid_id} | new.detail,
                ),
            )
            outbox = Outbox(conn, now)
            outbox.notify(
                ticket_id,
                grid_id=grid_id,
                category=new.category.value,
                text=f"[管家] #{ticket_id} {new.text}" + (f" → {assignee}" if assignee else ""),
            )
            outbox.flush()
            return Opened(
                ticket_id, True, grid_id, assignee, _change(new, ticket_id, "opened", "new", now)
            )
    ticket_id = int(existing.id)
    conn.execute(
        update(tickets)
        .where(tickets.c.id == ticket_id)
        .values(event_count=tickets.c.event_count + 1, updated_at=now)
    )
    audit.write(conn, audit.entry(ticket_id, now, new.actor, "merge", detail=new.detail))
    return Opened(
        ticket_id,
        False,
        existing.grid_id,
        existing.assignee,
        _change(new, ticket_id, "merged", existing.state, now),
    )


def _change(new: PlaceTicket, ticket_id: int, action: str, state: str, now: float) -> Change:
    return Change(
        kind="ticket",
        action=action,
        site_id=new.site_id,
        ticket_id=ticket_id,
        state=state,
        category=new.category.value,
        at=now,
    )
