"""The ticket facts the figures are computed from (`gateway.figures`): one query over tickets
created in a period, with whether each breached its SLA and, for resident reports, the
channel and rating."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import ColumnElement, exists, select

from gateway.figures import TicketFacts
from gateway.store.base import Part
from gateway.store.schema import escalations, resident_reports, tickets


class FigureStore(Part):
    """Reads for the figures."""

    def figure_facts(
        self,
        *,
        sites: Sequence[str] | None,
        start: float,
        end: float,
        grid_id: str | None = None,
        category: str | None = None,
    ) -> list[TicketFacts]:
        """Facts of tickets created in [start, end) at `sites` (None: all)."""
        breached = exists().where(escalations.c.ticket_id == tickets.c.id)
        conditions: list[ColumnElement[bool]] = [
            tickets.c.created_at >= start,
            tickets.c.created_at < end,
        ]
        if sites is not None:
            conditions.append(tickets.c.site_id.in_(sites))
        if grid_id is not None:
            conditions.append(tickets.c.grid_id == grid_id)
        if category is not None:
            conditions.append(tickets.c.category == category)
        query = (
            select(
                tickets.c.id,
                tickets.c.site_id,
                tickets.c.grid_id,
                tickets.c.category,
                tickets.c.created_at,
                tickets.c.acknowledged_at,
                tickets.c.resolved_at,
                tickets.c.tier,
                breached.label("breached"),
                resident_reports.c.channel,
                resident_reports.c.rating,
            )
            .outerjoin(resident_reports, resident_reports.c.ticket_id == tickets.c.id)
            .where(*conditions)
            .order_by(tickets.c.id)
        )
        with self._read() as conn:
            rows = conn.execute(query).all()
        return [
            TicketFacts(
                ticket_id=int(r.id),
                site_id=r.site_id,
                grid_id=r.grid_id,
                category=r.category,
                created_at=r.created_at,
                acknowledged_at=r.acknowledged_at,
                resolved_at=r.resolved_at,
                tier=int(r.tier),
                breached=bool(r.breached),
                channel=r.channel,
                rating=r.rating,
            )
            for r in rows
        ]
