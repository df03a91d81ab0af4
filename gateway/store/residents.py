"""Resident reports in the database: taking one (its ticket, photos and spent challenge in one
transaction), the per-place count that limits them, the tracking view and ratings.

The database arbitrates what must hold across replicas: a proof-of-work challenge is spent by
inserting its id (a replay fails the primary key), a rating is taken by a conditional
``UPDATE … WHERE rating IS NULL`` (one rating per report, whoever is first).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from gateway.lifecycle import Action, TicketState
from gateway.models import Change
from gateway.sla import CategoryPolicy, TicketCategory
from gateway.store import audit, feed
from gateway.store import tickets as tickets_store
from gateway.store.base import ConflictError, NotFoundError, Part
from gateway.store.outbox import Outbox
from gateway.store.place_tickets import PlaceTicket, open_place_ticket
from gateway.store.schema import attachments, audit_log, pow_spent, resident_reports, tickets

LowRatingAction = Literal["flag", "reopen"]
"""What a low rating causes, as the site file says."""
RatingOutcome = Literal["recorded", "flagged", "reopened"]

RESIDENT_ACTOR = tickets_store.RESIDENT_ACTOR
"""The audit actor of what a resident does (never their phone or address)."""


SPENT = "challenge: already used; fetch a new one"


class PlaceLimitError(ConflictError):
    """The place's QR code took its hourly quota of reports."""


@dataclass(frozen=True)
class NewReport:
    """A report to take: `zone_id` / `grid_id` are the place's (from the site file)."""

    site_id: str
    place_id: str
    place_name: str
    zone_id: str | None
    grid_id: str | None
    category: TicketCategory
    description: str
    phone: str | None
    channel: str
    tracking_hash: str
    entered_by: str | None
    photos: Sequence[tuple[str, bytes]]  # (content type, cleaned bytes)


@dataclass(frozen=True)
class ReportRow:
    """A report joined with its ticket, as tracking and rating need it."""

    ticket_id: int
    site_id: str
    place_id: str
    category: TicketCategory
    state: str
    grid_id: str | None
    created_at: float
    rating: int | None


@dataclass(frozen=True)
class FlaggedReport:
    """A low rating flagged for the grid's supervisor."""

    ticket_id: int
    site_id: str
    place_id: str
    category: str
    state: str
    grid_id: str | None
    rating: int
    comment: str | None
    flagged_at: float


_STEP = {
    "open": "reported",
    "acknowledge": "acknowledged",
    "dispatch": "dispatched",
    "start": "in_progress",
    "resolve": "resolved",
    "auto_resolve": "resolved",
    "close": "closed",
    "reopen": "reopened",
}


class ResidentStore(Part):
    """Resident reports, tracking and ratings."""

    def create_report(
        self,
        report: NewReport,
        policy: CategoryPolicy,
        now: float,
        *,
        challenge_id: str | None,
        per_place_per_hour: int | None,
    ) -> tuple[int, list[Change]]:
        """Take a report: spend its challenge, check the place's hourly quota, open its
        ticket and store its photos, in one transaction. ConflictError for a spent challenge,
        PlaceLimitError over the quota."""
        with self._tx() as conn:
            if challenge_id is not None:
                try:
                    with conn.begin_nested():
                        conn.execute(insert(pow_spent).values(challenge_id=challenge_id, at=now))
                except IntegrityError:
                    raise ConflictError(SPENT) from None
            if per_place_per_hour is not None:
                recent = conn.execute(
                    select(func.count())
                    .select_from(resident_reports)
                    .where(
                        resident_reports.c.site_id == report.site_id,
                        resident_reports.c.place_id == report.place_id,
                        resident_reports.c.created_at > now - 3600.0,
                    )
                ).scalar_one()
                if recent >= per_place_per_hour:
                    raise PlaceLimitError("this place has had many reports this hour; try later")
            opened = open_place_ticket(
                conn,
                PlaceTicket(
                    site_id=report.site_id,
                    subject=f"place:{report.place_id}",
                    category=report.category,
                    zone_id=report.zone_id,
                    grid_id=report.grid_id,
                    dedup_key=f"{report.site_id}|report|{report.tracking_hash}",
                    actor=report.entered_by or RESIDENT_ACTOR,
                    text=f"居民报事 {report.category.value} at {report.place_name} "
                    f"({report.channel})",
                    detail={"channel": report.channel, "place_id": report.place_id},
                ),
                policy,
                now,
            )
            conn.execute(
                insert(resident_reports).values(
                    ticket_id=opened.ticket_id,
                    site_id=report.site_id,
                    place_id=report.place_id,
                    channel=report.channel,
                    description=report.description,
                    phone=report.phone,
                    tracking_hash=report.tracking_hash,
                    entered_by=report.entered_by,
                    created_at=now,
                )
            )
            for content_type, data in report.photos:
                conn.execute(
                    insert(attachments).values(
                        ticket_id=opened.ticket_id,
                        content_type=content_type,
                        data=data,
                        uploaded_by=report.entered_by or RESIDENT_ACTOR,
                        at=now,
                    )
                )
            feed.record(conn, [opened.change], postgres=not self.is_sqlite)
        return opened.ticket_id, [opened.change]

    def challenge_spent(self, challenge_id: str) -> bool:
        """Whether a report already spent this challenge (a read before the photos are
        decoded; `create_report` still spends it atomically)."""
        with self._read() as conn:
            found = conn.execute(
                select(pow_spent.c.challenge_id).where(pow_spent.c.challenge_id == challenge_id)
            ).first()
        return found is not None

    def report_by_tracking(self, tracking_hash: str) -> ReportRow:
        """The report a tracking token's hash names, or NotFoundError."""
        with self._read() as conn:
            row = conn.execute(
                select(
                    tickets.c.id,
                    tickets.c.site_id,
                    tickets.c.category,
                    tickets.c.state,
                    tickets.c.grid_id,
                    resident_reports.c.place_id,
                    resident_reports.c.created_at,
                    resident_reports.c.rating,
                )
                .join(tickets, tickets.c.id == resident_reports.c.ticket_id)
                .where(resident_reports.c.tracking_hash == tracking_hash)
            ).first()
        if row is None:
            raise NotFoundError("no such report")
        return ReportRow(
            ticket_id=int(row.id),
            site_id=row.site_id,
            place_id=row.place_id,
            category=TicketCategory(row.category),
            state=row.state,
            grid_id=row.grid_id,
            created_at=row.created_at,
            rating=row.rating,
        )

    def report_of_ticket(self, ticket_id: int) -> dict[str, Any]:
        """The report row of a ticket (its columns by name), or NotFoundError."""
        with self._read() as conn:
            row = conn.execute(
                select(resident_reports).where(resident_reports.c.ticket_id == ticket_id)
            ).first()
        if row is None:
            raise NotFoundError(f"ticket {ticket_id} is not a resident report")
        return dict(row._mapping)

    def report_steps(self, ticket_id: int) -> list[tuple[float, str]]:
        """(time, step) of a report's progress from its audit log: the transitions only,
        without who made them or what they wrote."""
        with self._read() as conn:
            rows = conn.execute(
                select(audit_log.c.at, audit_log.c.action)
                .where(audit_log.c.ticket_id == ticket_id, audit_log.c.action.in_(list(_STEP)))
                .order_by(audit_log.c.id)
            ).all()
        return [(r.at, _STEP[r.action]) for r in rows]

    def record_rating(
        self,
        ticket_id: int,
        rating: int,
        comment: str | None,
        now: float,
        *,
        low: LowRatingAction | None,
        policy: CategoryPolicy,
    ) -> tuple[RatingOutcome, list[Change]]:
        """Store the one rating of a resolved (or closed) report and what a low one causes
        (`low`), in one transaction: a crash never leaves a low rating without its reopen or
        flag, and a reopen that fails (the ticket changed meanwhile) takes the rating back, so
        the resident can rate again. A flag is a webhook notice to the grid and an audit line.
        ConflictError when already rated, not resolved, or changed meanwhile."""
        resolved = (TicketState.RESOLVED.value, TicketState.CLOSED.value)
        flag = low == "flag"
        with self._tx() as conn:
            ticket = conn.execute(select(tickets).where(tickets.c.id == ticket_id)).one()
            if ticket.state not in resolved:
                raise ConflictError("the report is not resolved yet; rate it once it is")
            done = conn.execute(
                update(resident_reports)
                .where(
                    resident_reports.c.ticket_id == ticket_id, resident_reports.c.rating.is_(None)
                )
                .values(
                    rating=rating,
                    rating_comment=comment,
                    rated_at=now,
                    flagged_at=now if flag else None,
                )
            ).rowcount
            if not done:
                raise ConflictError("this report has already been rated")
            audit.write(
                conn,
                audit.entry(
                    ticket_id,
                    now,
                    RESIDENT_ACTOR,
                    "rated",
                    detail={"rating": rating, "flagged": flag},
                ),
            )
            reopened = None
            if low == "reopen":
                _, reopened = tickets_store.apply_transition(
                    conn,
                    ticket_id,
                    Action.REOPEN,
                    RESIDENT_ACTOR,
                    now,
                    note=f"resident rated {rating}/5",
                    policy=policy,
                )
            changes = [
                Change(
                    kind="ticket",
                    action="flagged" if flag else "rated",
                    site_id=ticket.site_id,
                    ticket_id=ticket_id,
                    state=ticket.state,
                    category=ticket.category,
                    at=now,
                )
            ]
            if reopened is not None:
                changes.append(reopened)
            if flag:
                outbox = Outbox(conn, now)
                outbox.notify(
                    ticket_id,
                    grid_id=ticket.grid_id,
                    category=ticket.category,
                    text=f"[管家] 差评 low rating {rating}/5 on #{ticket_id}: supervisor to review",
                )
                outbox.flush()
            feed.record(conn, changes, postgres=not self.is_sqlite)
        outcome: RatingOutcome = (
            "reopened" if reopened is not None else "flagged" if flag else "recorded"
        )
        return outcome, changes

    def flagged_reports(self, sites: Sequence[str] | None, limit: int = 200) -> list[FlaggedReport]:
        """Low ratings flagged for supervisors at `sites` (None: all), newest first."""
        query = (
            select(
                resident_reports.c.ticket_id,
                resident_reports.c.site_id,
                resident_reports.c.place_id,
                resident_reports.c.rating,
                resident_reports.c.rating_comment,
                resident_reports.c.flagged_at,
                tickets.c.category,
                tickets.c.state,
                tickets.c.grid_id,
            )
            .join(tickets, tickets.c.id == resident_reports.c.ticket_id)
            .where(resident_reports.c.flagged_at.is_not(None))
            .order_by(resident_reports.c.flagged_at.desc())
            .limit(limit)
        )
        if sites is not None:
            query = query.where(resident_reports.c.site_id.in_(sites))
        with self._read() as conn:
            rows = conn.execute(query).all()
        return [
            FlaggedReport(
                ticket_id=int(r.ticket_id),
                site_id=r.site_id,
                place_id=r.place_id,
                category=r.category,
                state=r.state,
                grid_id=r.grid_id,
                rating=int(r.rating),
                comment=r.rating_comment,
                flagged_at=r.flagged_at,
            )
            for r in rows
        ]

    def prune_spent_challenges(self, before: float) -> int:
        """Forget spent challenge ids older than any challenge still valid."""
        with self._tx() as conn:
            return int(conn.execute(delete(pow_spent).where(pow_spent.c.at < before)).rowcount)
