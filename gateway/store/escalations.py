"""SLA escalations recorded exactly once across replicas.

`gateway.sla` decides which breaches are due (pure); this records them. Each breach is one
transaction: a row under the unique (ticket, cycle, breach) key plus a conditional
``UPDATE … WHERE tier = :from AND sla_cycle = :cycle``, so replicas that find the same breach
at the same time commit it once and the loser's transaction is rolled back whole. The cycle
in the condition also refuses a breach computed from a cycle the ticket has since left
(resolved and reopened in between).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Row, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from gateway.lifecycle import OPEN_STATE_VALUES
from gateway.models import Change
from gateway.sla import (
    Breach,
    CategoryPolicy,
    Escalation,
    SlaFacts,
    TicketCategory,
    Tier,
    due_escalations,
)
from gateway.store import audit, feed
from gateway.store.base import Part
from gateway.store.outbox import Outbox
from gateway.store.schema import escalations, grids, tickets

PROPERTY_MANAGEMENT = "property management"
"""Who an L2 ticket goes to when its grid names no supervisor."""

_SLA_BREACHES = frozenset(b.value for b in Breach)


def _escalated_to(conn: Connection, row: Row[Any], esc: Escalation) -> str | None:
    """Who owns the ticket after `esc`: the grid supervisor at L2, the department at L3."""
    if esc.to_tier is Tier.PROPERTY_MANAGEMENT:
        if row.grid_id is None:
            return PROPERTY_MANAGEMENT
        supervisor = conn.execute(
            select(grids.c.supervisor).where(grids.c.grid_id == row.grid_id)
        ).scalar_one_or_none()
        return supervisor or PROPERTY_MANAGEMENT
    if esc.handoff_to is not None:
        return esc.handoff_to
    unchanged: str | None = row.escalated_to
    return unchanged


def announce_escalation(
    conn: Connection, ticket_id: int, row: Row[Any], now: float, text: str, *, postgres: bool
) -> Change:
    """Inside the transaction that moved a ticket's tier: queue the notice to its grid's
    webhooks and record the change for consoles (SLA breaches and unconfirmed cut-offs)."""
    outbox = Outbox(conn, now)
    outbox.notify(ticket_id, grid_id=row.grid_id, category=row.category, text=text)
    outbox.flush()
    change = Change(
        kind="ticket",
        action="escalated",
        site_id=row.site_id,
        ticket_id=ticket_id,
        state=row.state,
        category=row.category,
        at=now,
    )
    feed.record(conn, [change], postgres=postgres)
    return change


class EscalationStore(Part):
    """The SLA loop's writes (`gateway.periodic.sla_step` drives it on the real clock)."""

    def run_escalations(
        self, now: float, policies: dict[TicketCategory, CategoryPolicy]
    ) -> list[tuple[Escalation, Change]]:
        """Record every SLA breach due by `now`, each exactly once across replicas."""
        with self._tx() as conn:
            candidates = conn.execute(
                select(tickets.c.id).where(
                    tickets.c.state.in_(OPEN_STATE_VALUES),
                    or_(tickets.c.ack_due_at <= now, tickets.c.resolve_due_at <= now),
                )
            ).all()
        done: list[tuple[Escalation, Change]] = []
        for (ticket_id,) in candidates:
            # One breach per transaction; facts are re-read each time so a breach another
            # replica just recorded is seen, never re-applied.
            for _ in range(len(Breach)):
                applied = self._escalate_once(int(ticket_id), now, policies)
                if applied is None:
                    break
                done.append(applied)
        return done

    def _escalate_once(
        self, ticket_id: int, now: float, policies: dict[TicketCategory, CategoryPolicy]
    ) -> tuple[Escalation, Change] | None:
        try:
            with self._tx() as conn:
                row = conn.execute(select(tickets).where(tickets.c.id == ticket_id)).one()
                if row.state not in OPEN_STATE_VALUES:
                    return None
                cycle = int(row.sla_cycle)
                recorded = conn.execute(
                    select(escalations.c.breach).where(
                        escalations.c.ticket_id == ticket_id, escalations.c.cycle == cycle
                    )
                ).scalars()
                category = TicketCategory(row.category)
                facts = SlaFacts(
                    ticket_id=ticket_id,
                    category=category,
                    cycle=cycle,
                    tier=Tier(row.tier),
                    ack_due_at=row.ack_due_at,
                    resolve_due_at=row.resolve_due_at,
                    acknowledged_at=row.acknowledged_at,
                    resolved_at=row.resolved_at,
                    # Other rows of the table (a relay cut-off's) are no SLA breach.
                    breaches=frozenset(Breach(b) for b in recorded if b in _SLA_BREACHES),
                )
                due = due_escalations(facts, policies[category], now)
                if not due:
                    return None
                esc = due[0]
                conn.execute(
                    insert(escalations).values(
                        ticket_id=ticket_id,
                        cycle=esc.cycle,
                        breach=esc.breach.value,
                        due_at=esc.due_at,
                        at=now,
                        from_tier=int(esc.from_tier),
                        to_tier=int(esc.to_tier),
                        handoff_to=esc.handoff_to,
                    )
                )
                escalated_to = _escalated_to(conn, row, esc)
                moved = conn.execute(
                    update(tickets)
                    .where(
                        tickets.c.id == ticket_id,
                        tickets.c.tier == int(esc.from_tier),
                        tickets.c.sla_cycle == esc.cycle,
                    )
                    .values(tier=int(esc.to_tier), escalated_to=escalated_to, updated_at=now)
                ).rowcount
                if not moved:
                    # Another replica moved the tier first, or the ticket was reopened into
                    # a new cycle meanwhile: roll this breach back whole.
                    raise IntegrityError("tier moved", None, ValueError("tier moved"))
                audit.write(
                    conn,
                    audit.entry(
                        ticket_id,
                        now,
                        "system:sla",
                        "escalate",
                        detail={
                            "cycle": esc.cycle,
                            "breach": esc.breach.value,
                            "from_tier": int(esc.from_tier),
                            "to_tier": int(esc.to_tier),
                            "to": escalated_to,
                            "handoff": esc.handoff_to,
                        },
                    ),
                )
                text = (
                    f"[管家] SLA breach ({esc.breach.value}) on ticket #{ticket_id} "
                    f"({row.category}): escalated to L{int(esc.to_tier)} {escalated_to}"
                )
                change = announce_escalation(
                    conn, ticket_id, row, now, text, postgres=not self.is_sqlite
                )
        except IntegrityError:
            # Another replica recorded this breach first: nothing to do, and nothing undone.
            return None
        return esc, change
