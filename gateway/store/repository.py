"""`Store`: every read and write the gateway makes, each one a short transaction.

Synchronous on purpose (async callers use ``asyncio.to_thread``): SQLite and psycopg are both
fast enough per message, and one code path serves the API threads and the ingest task.

Exactly-once rules are enforced here by the database, never by process memory:

- a message id is inserted into ``processed_messages`` in the same transaction as its effect;
  a redelivery (or the same message reaching another replica) fails that insert and is dropped;
- opening a ticket inserts a unique ``active_key``; losing that race means another writer just
  opened it, and the alert merges into theirs;
- an escalation inserts a unique (ticket, breach) row and moves the tier with a conditional
  ``UPDATE … WHERE tier = :from``;
- a person's transition is a conditional ``UPDATE … WHERE state = :from``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Row,
    and_,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError, OperationalError

from gateway.alerts import Alert
from gateway.auth import Role
from gateway.lifecycle import (
    OPEN_STATES,
    Action,
    TicketState,
    check_requirements,
    target_state,
)
from gateway.models import (
    AttachmentPublic,
    AuditEntry,
    Change,
    DeadLetterPublic,
    DevicePublic,
    EscalationPublic,
    EvidencePublic,
    FeedEntry,
    GridPublic,
    ShiftPublic,
    TicketDetail,
    TicketPage,
    TicketPublic,
    UserPublic,
)
from gateway.sla import (
    Breach,
    CategoryPolicy,
    Escalation,
    ResolveClass,
    SlaFacts,
    TicketCategory,
    Tier,
    due_escalations,
)
from gateway.store import feed
from gateway.store.engine import READ_ONLY, StoreUnavailableError, make_engine
from gateway.store.ingest_tx import AlertResult, IngestTx, webhook_body
from gateway.store.schema import (
    attachments,
    audit_log,
    dead_letters,
    devices,
    escalations,
    evidence,
    grids,
    mqtt_credentials,
    notifications,
    processed_messages,
    shifts,
    snapshots,
    tickets,
    users,
    webhooks,
    zones,
)

T = TypeVar("T")

OPEN_STATE_VALUES = tuple(s.value for s in OPEN_STATES)
SORTABLE = ("id", "created_at", "updated_at", "ack_due_at", "resolve_due_at", "tier", "state")


class NotFoundError(LookupError):
    """A ticket, device, grid or user that does not exist."""


class ConflictError(ValueError):
    """A write that clashes with existing data (duplicate id, concurrent transition)."""


@dataclass(frozen=True)
class DeviceRow:
    """The registry facts ingest needs."""

    device_id: str
    site_id: str
    online: bool


@dataclass(frozen=True)
class MqttAccount:
    """One broker account as the provisioning files need it."""

    username: str
    password_hash: str
    role: str
    site_id: str | None


@dataclass(frozen=True)
class Delivery:
    """A claimed webhook notification."""

    id: int
    url: str
    body: dict[str, Any]
    attempts: int


def _ticket(row: Row[Any]) -> TicketPublic:
    m = row._mapping
    return TicketPublic(**{name: m[name] for name in TicketPublic.model_fields})


class Store:
    """The gateway database. Build one per process with `Store(url)`; `close()` at exit."""

    def __init__(self, url: str) -> None:
        self.engine: Engine = make_engine(url)
        self.is_sqlite = self.engine.dialect.name == "sqlite"
        self._reader = self.engine.execution_options(**{READ_ONLY: True})

    def close(self) -> None:
        """Release pooled connections."""
        self.engine.dispose()

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        try:
            with self.engine.begin() as conn:
                yield conn
        except OperationalError as exc:
            raise StoreUnavailableError(str(exc.orig)) from exc

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        try:
            with self._reader.begin() as conn:
                yield conn
        except OperationalError as exc:
            raise StoreUnavailableError(str(exc.orig)) from exc

    # ------------------------------------------------------------------ registry

    def upsert_grid(self, grid: GridPublic) -> None:
        """Create or replace a grid and the zones mapped to it."""
        with self._tx() as conn:
            row = {k: getattr(grid, k) for k in ("grid_id", "site_id", "name", "supervisor")}
            exists = conn.execute(select(grids.c.grid_id).where(grids.c.grid_id == grid.grid_id))
            if exists.first():
                conn.execute(update(grids).where(grids.c.grid_id == grid.grid_id).values(row))
            else:
                conn.execute(insert(grids).values(row))
            for zone in grid.zones:
                conn.execute(
                    delete(zones).where(zones.c.site_id == grid.site_id, zones.c.zone_id == zone)
                )
                conn.execute(
                    insert(zones).values(site_id=grid.site_id, zone_id=zone, grid_id=grid.grid_id)
                )

    def list_grids(self, sites: Sequence[str] | None = None) -> list[GridPublic]:
        """Grids (of `sites`, or all) with their zones."""
        zones_t = zones
        with self._read() as conn:
            query = select(grids).order_by(grids.c.grid_id)
            if sites is not None:
                query = query.where(grids.c.site_id.in_(sites))
            rows = conn.execute(query).all()
            zone_rows = conn.execute(select(zones_t)).all()
        by_grid: dict[str, list[str]] = {}
        for z in zone_rows:
            by_grid.setdefault(z.grid_id, []).append(z.zone_id)
        return [
            GridPublic(
                grid_id=r.grid_id,
                site_id=r.site_id,
                name=r.name,
                supervisor=r.supervisor,
                zones=sorted(by_grid.get(r.grid_id, [])),
            )
            for r in rows
        ]

    def get_grid(self, grid_id: str) -> GridPublic:
        """One grid or NotFoundError."""
        for grid in self.list_grids():
            if grid.grid_id == grid_id:
                return grid
        raise NotFoundError(f"grid {grid_id!r} does not exist")

    def add_shift(self, shift: ShiftPublic) -> ShiftPublic:
        """Add a roster entry."""
        if shift.ends_at <= shift.starts_at:
            raise ConflictError("a shift must end after it starts")
        with self._tx() as conn:
            if not conn.execute(
                select(grids.c.grid_id).where(grids.c.grid_id == shift.grid_id)
            ).first():
                raise NotFoundError(f"grid {shift.grid_id!r} does not exist")
            result = conn.execute(insert(shifts).values(shift.model_dump(exclude={"id"})))
            new_id = result.inserted_primary_key
        assert new_id is not None
        return shift.model_copy(update={"id": int(new_id[0])})

    def list_shifts(self, grid_id: str | None = None) -> list[ShiftPublic]:
        """Roster entries, oldest first."""
        with self._read() as conn:
            query = select(shifts).order_by(shifts.c.starts_at, shifts.c.id)
            if grid_id is not None:
                query = query.where(shifts.c.grid_id == grid_id)
            rows = conn.execute(query).all()
        return [ShiftPublic(**dict(r._mapping)) for r in rows]

    def upsert_device(
        self,
        device_id: str,
        site_id: str,
        kind: str,
        *,
        location: str | None = None,
        zone_id: str | None = None,
        grid_id: str | None = None,
        now: float | None = None,
    ) -> None:
        """Register (or re-register) a device in the registry."""
        values = {
            "site_id": site_id,
            "kind": kind,
            "location": location,
            "zone_id": zone_id,
            "grid_id": grid_id,
        }
        with self._tx() as conn:
            if (
                grid_id is not None
                and not conn.execute(
                    select(grids.c.grid_id).where(grids.c.grid_id == grid_id)
                ).first()
            ):
                raise NotFoundError(f"grid {grid_id!r} does not exist")
            found = conn.execute(
                select(devices.c.device_id).where(devices.c.device_id == device_id)
            )
            if found.first():
                conn.execute(update(devices).where(devices.c.device_id == device_id).values(values))
            else:
                conn.execute(
                    insert(devices).values(
                        device_id=device_id,
                        online=False,
                        created_at=time.time() if now is None else now,
                        **values,
                    )
                )

    def device(self, device_id: str) -> DeviceRow | None:
        """The registry row ingest checks messages against."""
        with self._read() as conn:
            row = conn.execute(
                select(devices.c.device_id, devices.c.site_id, devices.c.online).where(
                    devices.c.device_id == device_id
                )
            ).first()
        return None if row is None else DeviceRow(row.device_id, row.site_id, bool(row.online))

    def list_devices(
        self, sites: Sequence[str] | None = None, *, offset: int = 0, limit: int = 100
    ) -> list[DevicePublic]:
        """Devices (of `sites`, or all) by id."""
        with self._read() as conn:
            query = select(devices).order_by(devices.c.device_id).offset(offset).limit(limit)
            if sites is not None:
                query = query.where(devices.c.site_id.in_(sites))
            rows = conn.execute(query).all()
        return [DevicePublic(**{k: r._mapping[k] for k in DevicePublic.model_fields}) for r in rows]

    def get_device(self, device_id: str) -> DevicePublic:
        """One device or NotFoundError."""
        with self._read() as conn:
            row = conn.execute(select(devices).where(devices.c.device_id == device_id)).first()
        if row is None:
            raise NotFoundError(f"device {device_id!r} is not registered")
        return DevicePublic(**{k: row._mapping[k] for k in DevicePublic.model_fields})

    def set_mqtt_credential(
        self, username: str, password_hash: str, role: str, site_id: str | None
    ) -> None:
        """Store (or rotate) a broker account's password hash."""
        with self._tx() as conn:
            conn.execute(delete(mqtt_credentials).where(mqtt_credentials.c.username == username))
            conn.execute(
                insert(mqtt_credentials).values(
                    username=username, password_hash=password_hash, role=role, site_id=site_id
                )
            )

    def mqtt_accounts(self) -> list[MqttAccount]:
        """Every broker account, by username."""
        with self._read() as conn:
            rows = conn.execute(select(mqtt_credentials).order_by(mqtt_credentials.c.username))
            return [MqttAccount(r.username, r.password_hash, r.role, r.site_id) for r in rows]

    # ------------------------------------------------------------------ users

    def create_user(
        self,
        username: str,
        password_hash: str,
        role: Role,
        sites: Sequence[str],
        display_name: str | None = None,
    ) -> UserPublic:
        """Add a console user; ConflictError if the name is taken."""
        try:
            with self._tx() as conn:
                conn.execute(
                    insert(users).values(
                        username=username,
                        password_hash=password_hash,
                        role=role.value,
                        sites=list(sites),
                        display_name=display_name,
                        disabled=False,
                    )
                )
        except IntegrityError:
            raise ConflictError(f"user {username!r} exists") from None
        return UserPublic(
            username=username,
            role=role,
            sites=list(sites),
            display_name=display_name,
            disabled=False,
        )

    def user_credentials(self, username: str) -> tuple[UserPublic, str] | None:
        """A user and their password hash, for login."""
        with self._read() as conn:
            row = conn.execute(select(users).where(users.c.username == username)).first()
        if row is None:
            return None
        return self._user(row), row.password_hash

    @staticmethod
    def _user(row: Row[Any]) -> UserPublic:
        return UserPublic(
            username=row.username,
            role=Role(row.role),
            sites=list(row.sites),
            display_name=row.display_name,
            disabled=bool(row.disabled),
        )

    def list_users(self) -> list[UserPublic]:
        """Every console user."""
        with self._read() as conn:
            rows = conn.execute(select(users).order_by(users.c.username)).all()
        return [self._user(r) for r in rows]

    def user_count(self) -> int:
        """How many console users exist."""
        with self._read() as conn:
            return int(conn.execute(select(func.count()).select_from(users)).scalar_one())

    # ------------------------------------------------------------------ ingest

    @contextmanager
    def ingest_tx(self, now: float) -> Iterator[IngestTx]:
        """One ingest transaction: buffered rows are flushed just before COMMIT."""
        with self._tx() as conn:
            tx = IngestTx(conn, now, postgres=not self.is_sqlite)
            yield tx
            tx.flush()

    def ingest(self, work: Callable[[IngestTx], T], now: float, attempts: int = 4) -> T:
        """Run `work` in one ingest transaction and commit it.

        A unique-key clash (another writer got there first) rolls everything back and runs
        `work` again on a fresh transaction that now sees the winner's rows; after `attempts`
        the IntegrityError is raised. `work` must therefore only touch the database.
        """
        for attempt in range(attempts):
            try:
                with self.ingest_tx(now) as tx:
                    return work(tx)
            except IntegrityError:
                if attempt == attempts - 1:
                    raise
        raise AssertionError("unreachable")

    def dead_letter(
        self, topic: str, payload: bytes, error_kind: str, reason: str, now: float
    ) -> None:
        """Record a refused message with a bounded excerpt of its payload."""
        self.ingest(lambda tx: tx.dead_letter(topic, payload, error_kind, reason), now)

    def list_dead_letters(self, *, offset: int = 0, limit: int = 100) -> list[DeadLetterPublic]:
        """Newest refused messages first."""
        with self._read() as conn:
            rows = conn.execute(
                select(dead_letters).order_by(dead_letters.c.id.desc()).offset(offset).limit(limit)
            ).all()
        return [DeadLetterPublic(**dict(r._mapping)) for r in rows]

    def dead_letter_count(self) -> int:
        """All refused messages."""
        with self._read() as conn:
            return int(conn.execute(select(func.count()).select_from(dead_letters)).scalar_one())

    def record_status(self, device_id: str, online: bool, ts: float, now: float) -> list[Change]:
        """Apply a retained status message; older than the last one applied is ignored."""
        return self.ingest(lambda tx: tx.status(device_id, online, ts), now)

    def record_heartbeat(
        self, device_id: str, interval_s: float, health: dict[str, Any], now: float
    ) -> list[Change]:
        """A heartbeat: last seen, interval and health; marks the device online."""
        return self.ingest(lambda tx: tx.heartbeat(device_id, interval_s, health), now)

    def mark_stale_devices(
        self, now: float, grace: float, default_interval_s: float, policy: CategoryPolicy
    ) -> list[Change]:
        """Devices silent for `grace` heartbeat intervals go offline and get a maintenance
        ticket. The conditional update makes each transition happen once across replicas."""
        with self._read() as conn:
            interval = func.coalesce(devices.c.heartbeat_interval_s, default_interval_s)
            stale = conn.execute(
                select(devices.c.device_id, devices.c.site_id, devices.c.last_seen).where(
                    devices.c.online.is_(True),
                    devices.c.last_seen.is_not(None),
                    devices.c.last_seen < now - interval * grace,
                )
            ).all()
        changes: list[Change] = []
        for row in stale:
            changes += self.ingest(
                partial(
                    IngestTx.go_offline,
                    site_id=row.site_id,
                    device_id=row.device_id,
                    last_seen=row.last_seen,
                    policy=policy,
                ),
                now,
            )
        return changes

    def save_snapshot(
        self, site_id: str, device_id: str, snapshot_id: str, data: bytes, now: float
    ) -> bool:
        """Store a JPEG; False if this snapshot id was already stored (a redelivery)."""
        return self.ingest(lambda tx: tx.snapshot(site_id, device_id, snapshot_id, data), now)

    def snapshot(self, site_id: str, device_id: str, snapshot_id: str) -> bytes:
        """A stored JPEG or NotFoundError."""
        with self._read() as conn:
            row = conn.execute(
                select(snapshots.c.data).where(
                    snapshots.c.site_id == site_id,
                    snapshots.c.device_id == device_id,
                    snapshots.c.snapshot_id == snapshot_id,
                )
            ).first()
        if row is None:
            raise NotFoundError(f"snapshot {snapshot_id!r} has not arrived")
        return bytes(row.data)

    def claim_message(self, msg_id: str, device_id: str, now: float) -> bool:
        """Mark a message with no other effect as processed; False for a redelivery."""
        return self.ingest(lambda tx: tx.claim(msg_id, device_id), now)

    # ------------------------------------------------------------------ tickets from alerts

    def apply_alert(
        self, alert: Alert, policy: CategoryPolicy, now: float, cooldown_s: float = 0.0
    ) -> AlertResult:
        """Open, merge into, update or clear a ticket from one alert, exactly once per msg_id."""
        return self.ingest(lambda tx: tx.apply_alert(alert, policy, cooldown_s), now)

    @staticmethod
    def _audit(
        conn: Connection,
        ticket_id: int,
        *,
        at: float,
        actor: str,
        action: str,
        from_state: str | None,
        to_state: str | None,
        detail: dict[str, Any],
    ) -> None:
        conn.execute(
            insert(audit_log).values(
                ticket_id=ticket_id,
                at=at,
                actor=actor,
                action=action,
                from_state=from_state,
                to_state=to_state,
                detail=detail,
            )
        )

    def _notify(
        self,
        conn: Connection,
        ticket_id: int,
        *,
        grid_id: str | None,
        category: str,
        now: float,
        text: str,
    ) -> None:
        """Queue a webhook POST for every matching hook, in the caller's transaction."""
        hooks = conn.execute(
            select(webhooks).where(
                or_(webhooks.c.grid_id.is_(None), webhooks.c.grid_id == grid_id),
                or_(webhooks.c.category.is_(None), webhooks.c.category == category),
            )
        ).all()
        for hook in hooks:
            conn.execute(
                insert(notifications).values(
                    webhook_id=hook.id,
                    ticket_id=ticket_id,
                    body=webhook_body(hook.flavour, text),
                    attempts=0,
                    next_attempt_at=now,
                    failed=False,
                )
            )

    # ------------------------------------------------------------------ people's transitions

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
        allowed_sites: frozenset[str] | None = None,
    ) -> tuple[TicketPublic, list[Change]]:
        """Apply a person's transition; TransitionError if not allowed, ConflictError if the
        ticket changed under them."""
        with self._tx() as conn:
            row = conn.execute(select(tickets).where(tickets.c.id == ticket_id)).first()
            if row is None or (
                allowed_sites is not None and not _site_ok(row.site_id, allowed_sites)
            ):
                raise NotFoundError(f"ticket {ticket_id} does not exist")
            current = TicketState(row.state)
            target = target_state(action, current)
            has_photo = bool(
                conn.execute(
                    select(func.count())
                    .select_from(attachments)
                    .where(attachments.c.ticket_id == ticket_id)
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
            values: dict[str, Any] = {"state": target.value, "updated_at": now}
            if action is Action.ACKNOWLEDGE:
                values["acknowledged_at"] = now
            elif action is Action.DISPATCH:
                values["assignee"] = assignee
                if row.acknowledged_at is None:
                    values["acknowledged_at"] = now
            elif action is Action.RESOLVE:
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
            try:
                with conn.begin_nested():
                    done = conn.execute(
                        update(tickets)
                        .where(tickets.c.id == ticket_id, tickets.c.state == current.value)
                        .values(values)
                    ).rowcount
            except IntegrityError:
                raise ConflictError(
                    "another ticket for the same device, category and zone is open: "
                    "work on that one"
                ) from None
            if not done:
                raise ConflictError("the ticket changed meanwhile; reload and retry")
            self._audit(
                conn,
                ticket_id,
                at=now,
                actor=actor,
                action=action.value,
                from_state=current.value,
                to_state=target.value,
                detail={k: v for k, v in (("assignee", assignee), ("note", note)) if v},
            )
            updated = conn.execute(select(tickets).where(tickets.c.id == ticket_id)).one()
            ticket = _ticket(updated)
            change = Change(
                kind="ticket",
                action=action.value,
                site_id=ticket.site_id,
                ticket_id=ticket_id,
                state=target.value,
                category=ticket.category.value,
                at=now,
            )
            feed.record(conn, [change], postgres=not self.is_sqlite)
        return ticket, [change]

    def add_attachment(
        self,
        ticket_id: int,
        data: bytes,
        *,
        content_type: str,
        actor: str,
        now: float,
        allowed_sites: frozenset[str] | None = None,
    ) -> AttachmentPublic:
        """Store a photo for a ticket."""
        with self._tx() as conn:
            row = conn.execute(select(tickets.c.site_id).where(tickets.c.id == ticket_id)).first()
            if row is None or (
                allowed_sites is not None and not _site_ok(row.site_id, allowed_sites)
            ):
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
            self._audit(
                conn,
                ticket_id,
                at=now,
                actor=actor,
                action="photo",
                from_state=None,
                to_state=None,
                detail={"attachment": att_id},
            )
        return AttachmentPublic(
            id=att_id,
            content_type=content_type,
            uploaded_by=actor,
            at=now,
            url=f"/api/tickets/{ticket_id}/attachments/{att_id}",
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

    # ------------------------------------------------------------------ reading tickets

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
        column = tickets.c[column_name]
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
        return TicketPage(items=[_ticket(r) for r in rows], total=total, offset=offset, limit=limit)

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
        base = _ticket(row)
        return TicketDetail(
            **base.model_dump(),
            evidence=[
                EvidencePublic(
                    event_id=e.event_id,
                    msg_id=e.msg_id,
                    phase=e.phase,
                    seq=e.seq,
                    ts=e.ts,
                    snapshot_id=e.snapshot_id,
                    snapshot_url=(
                        f"/api/tickets/{ticket_id}/snapshots/{e.snapshot_id}"
                        if e.snapshot_id
                        else None
                    ),
                    detail=e.detail,
                )
                for e in ev_rows
            ],
            audit=[
                AuditEntry(
                    at=a.at,
                    actor=a.actor,
                    action=a.action,
                    from_state=a.from_state,
                    to_state=a.to_state,
                    detail=a.detail,
                )
                for a in audit_rows
            ],
            escalations=[
                EscalationPublic(
                    breach=e.breach,
                    due_at=e.due_at,
                    at=e.at,
                    from_tier=e.from_tier,
                    to_tier=e.to_tier,
                    handoff_to=e.handoff_to,
                )
                for e in esc_rows
            ],
            attachments=[
                AttachmentPublic(
                    id=a.id,
                    content_type=a.content_type,
                    uploaded_by=a.uploaded_by,
                    at=a.at,
                    url=f"/api/tickets/{ticket_id}/attachments/{a.id}",
                )
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

    # ------------------------------------------------------------------ SLA escalation

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
                recorded = conn.execute(
                    select(escalations.c.breach).where(escalations.c.ticket_id == ticket_id)
                ).scalars()
                category = TicketCategory(row.category)
                policy = policies[category]
                facts = SlaFacts(
                    ticket_id=ticket_id,
                    category=category,
                    tier=Tier(row.tier),
                    ack_due_at=row.ack_due_at,
                    resolve_due_at=row.resolve_due_at,
                    acknowledged_at=row.acknowledged_at,
                    resolved_at=row.resolved_at,
                    breaches=frozenset(Breach(b) for b in recorded),
                )
                due = due_escalations(facts, policy, now)
                if not due:
                    return None
                esc = due[0]
                conn.execute(
                    insert(escalations).values(
                        ticket_id=ticket_id,
                        breach=esc.breach.value,
                        due_at=esc.due_at,
                        at=now,
                        from_tier=int(esc.from_tier),
                        to_tier=int(esc.to_tier),
                        handoff_to=esc.handoff_to,
                    )
                )
                escalated_to = row.escalated_to
                if esc.to_tier is Tier.PROPERTY_MANAGEMENT and row.grid_id is not None:
                    escalated_to = (
                        conn.execute(
                            select(grids.c.supervisor).where(grids.c.grid_id == row.grid_id)
                        ).scalar_one_or_none()
                        or "property management"
                    )
                elif esc.to_tier is Tier.PROPERTY_MANAGEMENT:
                    escalated_to = "property management"
                elif esc.handoff_to is not None:
                    escalated_to = esc.handoff_to
                moved = conn.execute(
                    update(tickets)
                    .where(tickets.c.id == ticket_id, tickets.c.tier == int(esc.from_tier))
                    .values(tier=int(esc.to_tier), escalated_to=escalated_to, updated_at=now)
                ).rowcount
                if not moved:
                    raise IntegrityError("tier moved", None, ValueError("tier moved"))
                self._audit(
                    conn,
                    ticket_id,
                    at=now,
                    actor="system:sla",
                    action="escalate",
                    from_state=None,
                    to_state=None,
                    detail={
                        "breach": esc.breach.value,
                        "from_tier": int(esc.from_tier),
                        "to_tier": int(esc.to_tier),
                        "to": escalated_to,
                        "handoff": esc.handoff_to,
                    },
                )
                self._notify(
                    conn,
                    ticket_id,
                    grid_id=row.grid_id,
                    category=row.category,
                    now=now,
                    text=f"[管家] SLA breach ({esc.breach.value}) on ticket #{ticket_id} "
                    f"({row.category}): escalated to L{int(esc.to_tier)} {escalated_to}",
                )
                change = Change(
                    kind="ticket",
                    action="escalated",
                    site_id=row.site_id,
                    ticket_id=ticket_id,
                    state=row.state,
                    category=row.category,
                    at=now,
                )
                feed.record(conn, [change], postgres=not self.is_sqlite)
        except IntegrityError:
            # Another replica recorded this breach first: nothing to do, and nothing undone.
            return None
        return esc, change

    # ------------------------------------------------------------------ webhooks

    def add_webhook(
        self, url: str, flavour: str, grid_id: str | None = None, category: str | None = None
    ) -> int:
        """Register a webhook for a grid and/or category (None = all)."""
        with self._tx() as conn:
            result = conn.execute(
                insert(webhooks).values(
                    url=url, flavour=flavour, grid_id=grid_id, category=category
                )
            )
        assert result.inserted_primary_key is not None
        return int(result.inserted_primary_key[0])

    def claim_deliveries(self, now: float, lease_s: float, limit: int = 20) -> list[Delivery]:
        """Notifications due now, leased for `lease_s` so another replica skips them."""
        claimed: list[Delivery] = []
        with self._tx() as conn:
            query = (
                select(
                    notifications.c.id,
                    notifications.c.body,
                    notifications.c.attempts,
                    notifications.c.next_attempt_at,
                    webhooks.c.url,
                )
                .join(webhooks, webhooks.c.id == notifications.c.webhook_id)
                .where(
                    notifications.c.delivered_at.is_(None),
                    notifications.c.failed.is_(False),
                    notifications.c.next_attempt_at <= now,
                )
                .order_by(notifications.c.id)
                .limit(limit)
            )
            if not self.is_sqlite:
                query = query.with_for_update(skip_locked=True, of=notifications)
            for row in conn.execute(query).all():
                conn.execute(
                    update(notifications)
                    .where(notifications.c.id == row.id)
                    .values(next_attempt_at=now + lease_s)
                )
                claimed.append(Delivery(row.id, row.url, row.body, row.attempts))
        return claimed

    def finish_delivery(
        self,
        delivery_id: int,
        now: float,
        *,
        error: str | None,
        retry_at: float | None,
    ) -> None:
        """Record a delivery attempt: delivered, retry later, or give up (retry_at None)."""
        values: dict[str, Any] = {"attempts": notifications.c.attempts + 1}
        if error is None:
            values["delivered_at"] = now
        else:
            values["last_error"] = error[:500]
            if retry_at is None:
                values["failed"] = True
            else:
                values["next_attempt_at"] = retry_at
        with self._tx() as conn:
            conn.execute(
                update(notifications).where(notifications.c.id == delivery_id).values(values)
            )

    def notification_states(self) -> list[dict[str, Any]]:
        """Every notification's attempts and outcome (for tests and the admin view)."""
        with self._read() as conn:
            rows = conn.execute(select(notifications).order_by(notifications.c.id)).all()
        return [dict(r._mapping) for r in rows]

    # ------------------------------------------------------------------ change feed

    def changes_after(self, last_id: int, limit: int = 500) -> list[FeedEntry]:
        """Feed entries with ids above `last_id`, oldest first (see `gateway.store.feed`)."""
        with self._read() as conn:
            return feed.after(conn, last_id, limit)

    def last_change_id(self) -> int:
        """The newest feed id (0 when empty): where a new stream starts."""
        with self._read() as conn:
            return feed.last_id(conn)

    def oldest_change_id(self) -> int | None:
        """The oldest feed id still kept (None when empty)."""
        with self._read() as conn:
            return feed.oldest_id(conn)

    def prune_changes(self, older_than: float) -> int:
        """Forget feed entries older than any console would resume from."""
        with self._tx() as conn:
            return feed.prune(conn, older_than)

    def prune_processed(self, older_than: float) -> int:
        """Forget message ids older than the broker could still redeliver."""
        with self._tx() as conn:
            return int(
                conn.execute(
                    delete(processed_messages).where(processed_messages.c.received_at < older_than)
                ).rowcount
            )


def _site_ok(site_id: str, allowed: frozenset[str]) -> bool:
    return "*" in allowed or site_id in allowed
