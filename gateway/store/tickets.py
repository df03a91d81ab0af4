"""Tickets as people see and move them: filtered lists, detail, transitions, photos.

Tickets are opened, merged and cleared by ingest (`gateway.store.ingest_tx`) and escalated by
the SLA clock (`gateway.store.escalations`); this is the API's side. A person's transition is
a conditional ``UPDATE … WHERE state = :from``: two people acting at once get one success and
one ConflictError.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Row,
    and_,
    case,
    func,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from gateway.lifecycle import (
    OPEN_STATE_VALUES,
    Action,
    TicketState,
    check_requirements,
    target_state,
)
from gateway.models import (
    AttachmentPublic,
    AuditEntry,
    Change,
    EscalationPublic,
    EvidencePublic,
    TicketDetail,
    TicketPage,
    TicketPublic,
)
from gateway.sla import CategoryPolicy, ResolveClass
from gateway.store import audit, feed
from gateway.store.base import ConflictError, NotFoundError, Part, from_row
from gateway.store.schema import attachments, audit_log, escalations, evidence, snapshots, tickets
from gateway.store.sla_clock import reopened_clock

RESIDENT_ACTOR = "public:resident"
"""Who a resident's own report photos are uploaded by (`gateway.store.residents`); a colon
no username may contain, so no console user can pass for a resident."""

SORTABLE = (
    "id",
    "created_at",
    "updated_at",
    "ack_due_at",
    "resolve_due_at",
    "tier",
    "state",
    "deadline",
)
"""Columns `list_tickets` sorts by (a whitelist: the name comes from the query string);
`deadline` is the clock that runs now (`DEADLINE`)."""
NO_DEADLINE = 1e18
"""`deadline` of a resolved or closed ticket: after every running clock."""
DEADLINE = case(
    (tickets.c.state == TicketState.NEW.value, tickets.c.ack_due_at),
    (tickets.c.state.in_(OPEN_STATE_VALUES), tickets.c.resolve_due_at),
    else_=literal(NO_DEADLINE),
)
"""The clock that runs now: acknowledge for a new ticket, resolve for an open one."""


def _attachment_url(ticket_id: int, attachment_id: int) -> str:
    return f"/api/tickets/{ticket_id}/attachments/{attachment_id}"


def _snapshot_url(ticket_id: int, snapshot_id: str | None) -> str | None:
    return f"/api/tickets/{ticket_id}/snapshots/{snapshot_id}" if snapshot_id else None


def _transition_values(
    action: Action,
    target: TicketState,
    row: Row[Any],
    *,
    actor: str,
    assignee: str | None,
    note: str | None,
    policy: CategoryPolicy,
    now: float,
) -> dict[str, Any]:
    """The columns a transition from `row` sets."""
    values: dict[str, Any] = {"state": target.value, "updated_at": now}
    if action is Action.ACKNOWLEDGE:
        values["acknowledged_at"] = now
    elif action is Action.DISPATCH:
        values["assignee"] = assignee
        if row.acknowledged_at is None:
            values["acknowledged_at"] = now
    elif action is Action.RESOLVE:
        # Resolving frees the open-ticket key: the next alert for it opens a new ticket.
        values |= {
            "resolved_at": now,
            "resolved_by": actor,
            "resolution_note": note,
            "active_key": None,
        }
        if row.acknowledged_at is None:
            values["acknowledged_at"] = now
    elif action is Action.CLOSE:
        values["closed_at"] = now
        values["active_key"] = None
    elif action is Action.REOPEN:
        values |= {
            "active_key": row.dedup_key,
            "resolved_at": None,
            "resolved_by": None,
            "closed_at": None,
        }
        values |= reopened_clock(row, policy, now)
    return values


def _sla_detail(values: dict[str, Any]) -> dict[str, Any]:
    """The new SLA clock, for the audit line of a reopen (empty for other transitions)."""
    return {k: values[k] for k in ("sla_cycle", "ack_due_at", "resolve_due_at") if k in values}


def apply_transition(
    conn: Connection,
    ticket_id: int,
    action: Action,
    actor: str,
    now: float,
    *,
    assignee: str | None = None,
    note: str | None = None,
    policy: CategoryPolicy,
) -> tuple[TicketPublic, Change]:
    """Apply a person's transition inside the caller's transaction (a resident's rating and
    the reopen it causes commit together); the caller records the change in the feed.
    TransitionError if not allowed, ConflictError if the ticket changed under them."""
    row = conn.execute(select(tickets).where(tickets.c.id == ticket_id)).first()
    if row is None:
        raise NotFoundError(f"ticket {ticket_id} does not exist")
    current = TicketState(row.state)
    target = target_state(action, current)
    has_photo = bool(
        conn.execute(
            select(func.count())
            .select_from(attachments)
            # A resident's own photo shows the problem, not the work: a butler's
            # photo from the site is still needed to resolve.
            .where(
                attachments.c.ticket_id == ticket_id,
                attachments.c.uploaded_by != RESIDENT_ACTOR,
            )
        ).scalar_one()
    )
    check_requirements(
        action,
        assignee=assignee,
        note=note,
        has_photo=has_photo,
        field_work=policy.field_work,
        needs_plan=policy.resolve_class is ResolveClass.MAJOR,
    )
    values = _transition_values(
        action, target, row, actor=actor, assignee=assignee, note=note, policy=policy, now=now
    )
    try:
        # A savepoint: the unique active_key may clash (reopening while another
        # ticket for the same key is open), and that must not end the transaction.
        with conn.begin_nested():
            done = conn.execute(
                update(tickets)
                .where(tickets.c.id == ticket_id, tickets.c.state == current.value)
                .values(values)
            ).rowcount
    except IntegrityError:
        raise ConflictError(
            "another ticket for the same device, category and zone is open: work on that one"
        ) from None
    if not done:
        raise ConflictError("the ticket changed meanwhile; reload and retry")
    audit.write(
        conn,
        audit.entry(
            ticket_id,
            now,
            actor,
            action.value,
            from_state=current.value,
            to_state=target.value,
            detail={k: v for k, v in (("assignee", assignee), ("note", note)) if v}
            | _sla_detail(values),
        ),
    )
    updated = conn.execute(select(tickets).where(tickets.c.id == ticket_id)).one()
    ticket = from_row(TicketPublic, updated)
    change = Change(
        kind="ticket",
        action=action.value,
        site_id=ticket.site_id,
        ticket_id=ticket_id,
        state=target.value,
        category=ticket.category.value,
        at=now,
    )
    return ticket, change


class TicketStore(Part):
    """Reading tickets, people's transitions, photos and evidence snapshots."""

    def transition(
        self,
        ticket_id: int,
        action: Action,
        actor: str,
        now: float,
        *,
        assignee: str | None = None,
        note: str | None = None,
        policy: CategoryPolicy,
    ) -> tuple[TicketPublic, list[Change]]:
        """Apply a person's transition; TransitionError if not allowed, ConflictError if the
        ticket changed under them."""
        with self._tx() as conn:
            ticket, change = apply_transition(
                conn, ticket_id, action, actor, now, assignee=assignee, note=note, policy=policy
            )
            feed.record(conn, [change], postgres=not self.is_sqlite)
        return ticket, [change]

    def add_attachment(
        self, ticket_id: int, data: bytes, *, content_type: str, actor: str, now: float
    ) -> AttachmentPublic:
        """Store a photo for a ticket."""
        with self._tx() as conn:
            row = conn.execute(select(tickets.c.site_id).where(tickets.c.id == ticket_id)).first()
            if row is None:
                raise NotFoundError(f"ticket {ticket_id} does not exist")
            result = conn.execute(
                insert(attachments).values(
                    ticket_id=ticket_id,
                    content_type=content_type,
                    data=data,
                    uploaded_by=actor,
                    at=now,
                )
            )
            assert result.inserted_primary_key is not None
            att_id = int(result.inserted_primary_key[0])
            audit.write(
                conn, audit.entry(ticket_id, now, actor, "photo", detail={"attachment": att_id})
            )
        return AttachmentPublic(
            id=att_id,
            content_type=content_type,
            uploaded_by=actor,
            at=now,
            url=_attachment_url(ticket_id, att_id),
        )

    def attachment(self, ticket_id: int, attachment_id: int) -> tuple[str, bytes, str]:
        """(content type, bytes, site id) of a ticket photo."""
        with self._read() as conn:
            row = conn.execute(
                select(attachments.c.content_type, attachments.c.data, tickets.c.site_id)
                .join(tickets, tickets.c.id == attachments.c.ticket_id)
                .where(attachments.c.id == attachment_id, attachments.c.ticket_id == ticket_id)
            ).first()
        if row is None:
            raise NotFoundError(f"attachment {attachment_id} does not exist")
        return row.content_type, bytes(row.data), row.site_id

    def snapshot(self, site_id: str, device_id: str, snapshot_id: str) -> bytes:
        """A stored evidence JPEG or NotFoundError (ingest stores them, `IngestTx.snapshot`)."""
        with self._read() as conn:
            row = conn.execute(
                select(snapshots.c.data).where(
                    snapshots.c.site_id == site_id,
                    snapshots.c.device_id == device_id,
                    snapshots.c.snapshot_id == snapshot_id,
                    snapshots.c.data.is_not(None),  # announced by an event, not arrived yet
                )
            ).first()
        if row is None:
            raise NotFoundError(f"snapshot {snapshot_id!r} has not arrived")
        return bytes(row.data)

    def list_tickets(
        self,
        *,
        sites: Sequence[str] | None = None,
        states: Sequence[str] | None = None,
        categories: Sequence[str] | None = None,
        grid_id: str | None = None,
        assignee: str | None = None,
        device_id: str | None = None,
        sort: str = "-created_at",
        offset: int = 0,
        limit: int = 50,
    ) -> TicketPage:
        """Filter, sort (`field` or `-field`) and paginate tickets."""
        column_name = sort.lstrip("-")
        if column_name not in SORTABLE:
            raise ValueError(f"cannot sort by {column_name!r}; choose from {', '.join(SORTABLE)}")
        column = DEADLINE if column_name == "deadline" else tickets.c[column_name]
        order = column.desc() if sort.startswith("-") else column.asc()
        conditions: list[ColumnElement[bool]] = []
        if sites is not None:
            conditions.append(tickets.c.site_id.in_(sites))
        if states:
            conditions.append(tickets.c.state.in_(states))
        if categories:
            conditions.append(tickets.c.category.in_(categories))
        if grid_id is not None:
            conditions.append(tickets.c.grid_id == grid_id)
        if assignee is not None:
            conditions.append(tickets.c.assignee == assignee)
        if device_id is not None:
            conditions.append(tickets.c.device_id == device_id)
        where = and_(*conditions) if conditions else None
        with self._read() as conn:
            query = select(tickets).order_by(order, tickets.c.id.desc()).offset(offset).limit(limit)
            count = select(func.count()).select_from(tickets)
            if where is not None:
                query = query.where(where)
                count = count.where(where)
            rows = conn.execute(query).all()
            total = int(conn.execute(count).scalar_one())
        return TicketPage(
            items=[from_row(TicketPublic, r) for r in rows], total=total, offset=offset, limit=limit
        )

    def get_ticket(self, ticket_id: int) -> TicketDetail:
        """A ticket with evidence, audit log, escalations and photos, or NotFoundError."""
        with self._read() as conn:
            row = conn.execute(select(tickets).where(tickets.c.id == ticket_id)).first()
            if row is None:
                raise NotFoundError(f"ticket {ticket_id} does not exist")
            ev_rows = conn.execute(
                select(evidence).where(evidence.c.ticket_id == ticket_id).order_by(evidence.c.id)
            ).all()
            audit_rows = conn.execute(
                select(audit_log).where(audit_log.c.ticket_id == ticket_id).order_by(audit_log.c.id)
            ).all()
            esc_rows = conn.execute(
                select(escalations)
                .where(escalations.c.ticket_id == ticket_id)
                .order_by(escalations.c.id)
            ).all()
            att_rows = conn.execute(
                select(
                    attachments.c.id,
                    attachments.c.content_type,
                    attachments.c.uploaded_by,
                    attachments.c.at,
                )
                .where(attachments.c.ticket_id == ticket_id)
                .order_by(attachments.c.id)
            ).all()
        return TicketDetail(
            **from_row(TicketPublic, row).model_dump(),
            evidence=[
                from_row(EvidencePublic, e, snapshot_url=_snapshot_url(ticket_id, e.snapshot_id))
                for e in ev_rows
            ],
            audit=[from_row(AuditEntry, a) for a in audit_rows],
            escalations=[from_row(EscalationPublic, e) for e in esc_rows],
            attachments=[
                from_row(AttachmentPublic, a, url=_attachment_url(ticket_id, a.id))
                for a in att_rows
            ],
        )

    def open_tickets_by_category(self) -> dict[str, int]:
        """Open ticket counts, for /metrics."""
        with self._read() as conn:
            rows = conn.execute(
                select(tickets.c.category, func.count())
                .where(tickets.c.state.in_(OPEN_STATE_VALUES))
                .group_by(tickets.c.category)
            ).all()
        return {str(r[0]): int(r[1]) for r in rows}
