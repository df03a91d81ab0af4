"""Patrol rounds in the database: scans of checkpoints (with the tickets their failed items
open, in the same transaction), and the tickets rounds planning opens for missed rounds —
each decision key once per site (``round_tickets``), however many replicas plan the same
minute.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from gateway.models import Change
from gateway.rounds.planning import Scan
from gateway.sla import CategoryPolicy, TicketCategory
from gateway.store import feed
from gateway.store.base import Part
from gateway.store.place_tickets import PlaceTicket, open_place_ticket
from gateway.store.schema import round_scans, round_tickets


@dataclass(frozen=True)
class NewScan:
    """A checkpoint scanned on a route: every checklist item's result, a photo if any."""

    site_id: str
    route_id: str
    checkpoint_id: str
    username: str
    results: Mapping[str, bool]
    note: str | None
    photo: tuple[str, bytes] | None


@dataclass(frozen=True)
class ScanRecorded:
    """A stored scan and the tickets its failed items opened or merged into."""

    scan_id: int
    ticket_ids: list[int]
    changes: list[Change]


class RoundStore(Part):
    """Scans and the tickets rounds open."""

    def record_scan(
        self,
        scan: NewScan,
        failed: Sequence[PlaceTicket],
        policies: Mapping[TicketCategory, CategoryPolicy],
        now: float,
    ) -> ScanRecorded:
        """Store a scan and open (or merge into) a ticket per failed item, in one transaction."""
        with self._tx() as conn:
            result = conn.execute(
                insert(round_scans).values(
                    site_id=scan.site_id,
                    route_id=scan.route_id,
                    checkpoint_id=scan.checkpoint_id,
                    at=now,
                    username=scan.username,
                    results=dict(scan.results),
                    note=scan.note,
                    photo_type=scan.photo[0] if scan.photo else None,
                    photo=scan.photo[1] if scan.photo else None,
                )
            )
            assert result.inserted_primary_key is not None
            scan_id = int(result.inserted_primary_key[0])
            opened = [
                open_place_ticket(
                    conn, t.with_detail({"scan_id": scan_id}), policies[t.category], now
                )
                for t in failed
            ]
            changes = [o.change for o in opened]
            feed.record(conn, changes, postgres=not self.is_sqlite)
        return ScanRecorded(scan_id, [o.ticket_id for o in opened], changes)

    def scans_between(self, site_id: str, start: float, end: float) -> list[Scan]:
        """A site's scans in [start, end), oldest first, as planning reads them."""
        with self._read() as conn:
            rows = conn.execute(
                select(
                    round_scans.c.id,
                    round_scans.c.route_id,
                    round_scans.c.checkpoint_id,
                    round_scans.c.at,
                    round_scans.c.username,
                    round_scans.c.results,
                )
                .where(
                    round_scans.c.site_id == site_id,
                    round_scans.c.at >= start,
                    round_scans.c.at < end,
                )
                .order_by(round_scans.c.at, round_scans.c.id)
            ).all()
        return [
            Scan(
                int(r.id),
                r.route_id,
                r.checkpoint_id,
                r.at,
                r.username,
                frozenset(k for k, ok in _results(r.results).items() if not ok),
            )
            for r in rows
        ]

    def open_round_tickets(
        self,
        site_id: str,
        decisions: Sequence[tuple[str, PlaceTicket]],
        policies: Mapping[TicketCategory, CategoryPolicy],
        now: float,
    ) -> list[Change]:
        """Open a ticket per (decision key, ticket) not opened before for this site."""
        if not decisions:
            return []
        keys = [k for k, _ in decisions]
        changes: list[Change] = []
        with self._tx() as conn:
            done = set(
                conn.execute(
                    select(round_tickets.c.decision_key).where(
                        round_tickets.c.site_id == site_id, round_tickets.c.decision_key.in_(keys)
                    )
                ).scalars()
            )
            for key, ticket in decisions:
                if key in done:
                    continue
                try:
                    with conn.begin_nested():  # another replica may take this key meanwhile
                        opened = open_place_ticket(conn, ticket, policies[ticket.category], now)
                        conn.execute(
                            insert(round_tickets).values(
                                site_id=site_id,
                                decision_key=key,
                                ticket_id=opened.ticket_id,
                                at=now,
                            )
                        )
                except IntegrityError:
                    continue
                changes.append(opened.change)
            feed.record(conn, changes, postgres=not self.is_sqlite)
        return changes

    def round_ticket_keys(self, site_id: str) -> dict[str, int]:
        """Decision key → ticket id of the tickets rounds opened at a site."""
        with self._read() as conn:
            rows = conn.execute(
                select(round_tickets.c.decision_key, round_tickets.c.ticket_id).where(
                    round_tickets.c.site_id == site_id
                )
            ).all()
        return {r.decision_key: int(r.ticket_id) for r in rows}


def _results(value: Any) -> dict[str, bool]:
    return {str(k): bool(v) for k, v in (value or {}).items()}
