"""Reads for reports: the facts SLA performance is computed from (`gateway.sla_report`)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select

from gateway.models import SlaFact
from gateway.store.base import Part
from gateway.store.schema import escalations, tickets

MAX_FACTS = 20_000
"""Most tickets one report reads (newest first): a month of a large estate."""


class ReportStore(Part):
    """SLA facts per ticket."""

    def sla_facts(
        self, *, sites: Sequence[str] | None, since: float, limit: int = MAX_FACTS
    ) -> list[SlaFact]:
        """Tickets created at or after `since` in `sites` (None: all), newest first, each
        with how many SLA breaches it has had."""
        breaches = (
            select(escalations.c.ticket_id, func.count().label("n"))
            .group_by(escalations.c.ticket_id)
            .subquery()
        )
        query = (
            select(
                tickets.c.id,
                tickets.c.site_id,
                tickets.c.grid_id,
                tickets.c.category,
                tickets.c.severity,
                tickets.c.created_at,
                tickets.c.acknowledged_at,
                tickets.c.resolved_at,
                func.coalesce(breaches.c.n, 0).label("breaches"),
            )
            .select_from(tickets.outerjoin(breaches, breaches.c.ticket_id == tickets.c.id))
            .where(tickets.c.created_at >= since)
            .order_by(tickets.c.created_at.desc())
            .limit(limit)
        )
        if sites is not None:
            query = query.where(tickets.c.site_id.in_(sites))
        with self._read() as conn:
            rows = conn.execute(query).all()
        return [
            SlaFact(
                ticket_id=r.id,
                site_id=r.site_id,
                grid_id=r.grid_id,
                category=r.category,
                severity=r.severity,
                created_at=r.created_at,
                acknowledged_at=r.acknowledged_at,
                resolved_at=r.resolved_at,
                breaches=int(r.breaches),
            )
            for r in rows
        ]
