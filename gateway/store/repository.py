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

import hashlib
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
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

from contract import EventPhase
from gateway.alerts import Alert, offline_alert, online_alert
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
    GridPublic,
    ShiftPublic,
    TicketDetail,
    TicketPage,
    TicketPublic,
    UserPublic,
)
from gateway.routing import GridInfo, Shift, assignee_for, resolve_grid
from gateway.sla import (
    Breach,
    CategoryPolicy,
    Escalation,
    ResolveClass,
    SlaFacts,
    TicketCategory,
    Tier,
    deadlines,
    due_escalations,
)
from gateway.store.engine import READ_ONLY, StoreUnavailableError, make_engine
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
    ticket_events,
    tickets,
    users,
    webhooks,
    zones,
)

T = TypeVar("T")

EXCERPT_BYTES = 512
OPEN_STATE_VALUES = tuple(s.value for s in OPEN_STATES)
SORTABLE = ("id", "created_at", "updated_at", "ack_due_at", "resolve_due_at", "tier", "state")


class NotFoundError(LookupError):
    """A ticket, device, grid or user that does not exist."""


class ConflictError(ValueError):
    """A write that clashes with existing data (duplicate id, concurrent transition)."""


@dataclass(frozen=True)
class AlertResult:
    """What applying one alert did."""

    duplicate: bool
    ticket_id: int | None = None
    created: bool = False
    changes: tuple[Change, ...] = ()


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


def _excerpt(payload: bytes) -> str:
    head = payload[:EXCERPT_BYTES]
    text = head.decode("utf-8", errors="backslashreplace")
    return text + ("…" if len(payload) > EXCERPT_BYTES else "")


def _ticket(row: Row[Any]) -> TicketPublic:
    m = row._mapping
    return TicketPublic(**{name: m[name] for name in TicketPublic.model_fields})


def webhook_body(flavour: str, text: str) -> dict[str, Any]:
    """A text message in the shape the WeCom, DingTalk or Feishu group bots accept."""
    if flavour == "feishu":
        return {"msg_type": "text", "content": {"text": text}}
    # WeCom (企业微信) and DingTalk (钉钉) robots share this shape.
    return {"msgtype": "text", "text": {"content": text}}


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

    def _retry(self, fn: Callable[[], T], attempts: int = 4) -> T:
        # Two writers racing on a unique key: the loser's transaction rolls back and is simply
        # run again, now seeing the winner's row.
        for attempt in range(attempts):
            try:
                return fn()
            except IntegrityError:
                if attempt == attempts - 1:
                    raise
        raise AssertionError("unreachable")

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

    def dead_letter(
        self, topic: str, payload: bytes, error_kind: str, reason: str, now: float
    ) -> None:
        """Record a refused message with a bounded excerpt of its payload."""
        with self._tx() as conn:
            conn.execute(
                insert(dead_letters).values(
                    received_at=now,
                    topic=topic[:300],
                    payload_excerpt=_excerpt(payload),
                    payload_size=len(payload),
                    error_kind=error_kind[:64],
                    reason=reason[:2000],
                )
            )

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

    def _claim_message(self, conn: Connection, msg_id: str, device_id: str, now: float) -> bool:
        """Insert the message id; False when it was already processed (a redelivery)."""
        try:
            with conn.begin_nested():
                conn.execute(
                    insert(processed_messages).values(
                        msg_id=msg_id, device_id=device_id, received_at=now
                    )
                )
        except IntegrityError:
            return False
        return True

    def record_status(self, device_id: str, online: bool, ts: float, now: float) -> list[Change]:
        """Apply a retained status message; older than the last one applied is ignored."""
        with self._tx() as conn:
            row = conn.execute(
                select(devices.c.site_id, devices.c.last_status_ts, devices.c.online).where(
                    devices.c.device_id == device_id
                )
            ).first()
            if row is None or (row.last_status_ts is not None and ts < row.last_status_ts):
                return []
            values: dict[str, Any] = {"online": online, "last_status_ts": ts}
            if online:
                values["last_seen"] = now
            conn.execute(update(devices).where(devices.c.device_id == device_id).values(values))
            changes: list[Change] = []
            if bool(row.online) != online:
                changes.append(
                    Change(
                        kind="device",
                        action="online" if online else "offline",
                        site_id=row.site_id,
                        device_id=device_id,
                        at=now,
                    )
                )
        if online:
            changes += self._clear_offline(row.site_id, device_id, now)
        return changes

    def record_heartbeat(
        self, device_id: str, interval_s: float, health: dict[str, Any], now: float
    ) -> list[Change]:
        """A heartbeat: last seen, interval and health; marks the device online."""
        with self._tx() as conn:
            row = conn.execute(
                select(devices.c.site_id, devices.c.online).where(devices.c.device_id == device_id)
            ).first()
            if row is None:
                return []
            conn.execute(
                update(devices)
                .where(devices.c.device_id == device_id)
                .values(online=True, last_seen=now, heartbeat_interval_s=interval_s, health=health)
            )
        if row.online:
            return []
        changes = [
            Change(kind="device", action="online", site_id=row.site_id, device_id=device_id, at=now)
        ]
        return changes + self._clear_offline(row.site_id, device_id, now)

    def _clear_offline(self, site_id: str, device_id: str, now: float) -> list[Change]:
        key = f"{site_id}|{device_id}|{TicketCategory.DEVICE_OFFLINE.value}|-"
        with self._tx() as conn:
            row = conn.execute(
                select(ticket_events.c.event_id)
                .join(tickets, tickets.c.id == ticket_events.c.ticket_id)
                .where(tickets.c.active_key == key, ticket_events.c.ended.is_(False))
            ).first()
        if row is None:
            return []
        from gateway.sla import DEFAULT_POLICIES

        result = self.apply_alert(
            online_alert(site_id, device_id, row.event_id, now),
            DEFAULT_POLICIES[TicketCategory.DEVICE_OFFLINE],
            now,
        )
        return list(result.changes)

    def mark_stale_devices(
        self, now: float, grace: float, default_interval_s: float, policy: CategoryPolicy
    ) -> list[Change]:
        """Devices silent for `grace` heartbeat intervals go offline and get a maintenance
        ticket. The conditional update makes each transition happen once across replicas."""
        with self._tx() as conn:
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
            with self._tx() as conn:
                flipped = conn.execute(
                    update(devices)
                    .where(
                        devices.c.device_id == row.device_id,
                        devices.c.online.is_(True),
                        devices.c.last_seen == row.last_seen,
                    )
                    .values(online=False)
                ).rowcount
            if not flipped:
                continue
            changes.append(
                Change(
                    kind="device",
                    action="offline",
                    site_id=row.site_id,
                    device_id=row.device_id,
                    at=now,
                )
            )
            result = self.apply_alert(
                offline_alert(row.site_id, row.device_id, row.last_seen, now), policy, now
            )
            changes += result.changes
        return changes

    def save_snapshot(
        self, site_id: str, device_id: str, snapshot_id: str, data: bytes, now: float
    ) -> bool:
        """Store a JPEG; False if this snapshot id was already stored (a redelivery)."""
        try:
            with self._tx() as conn:
                conn.execute(
                    insert(snapshots).values(
                        site_id=site_id,
                        device_id=device_id,
                        snapshot_id=snapshot_id,
                        sha256=hashlib.sha256(data).hexdigest(),
                        data=data,
                        received_at=now,
                    )
                )
        except IntegrityError:
            return False
        return True

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
        with self._tx() as conn:
            return self._claim_message(conn, msg_id, device_id, now)

    # ------------------------------------------------------------------ tickets from alerts

    def apply_alert(
        self, alert: Alert, policy: CategoryPolicy, now: float, cooldown_s: float = 0.0
    ) -> AlertResult:
        """Open, merge into, update or clear a ticket from one alert, exactly once per msg_id."""
        return self._retry(lambda: self._apply_alert_once(alert, policy, now, cooldown_s))

    def _apply_alert_once(
        self, alert: Alert, policy: CategoryPolicy, now: float, cooldown_s: float
    ) -> AlertResult:
        changes: list[Change] = []
        with self._tx() as conn:
            if not self._claim_message(conn, alert.msg_id, alert.device_id, now):
                return AlertResult(duplicate=True)
            link = conn.execute(
                select(ticket_events).where(ticket_events.c.event_id == alert.event_id)
            ).first()
            created = False
            if link is not None:
                ticket_id = int(link.ticket_id)
                ended = bool(link.ended) or alert.phase is EventPhase.END
                conn.execute(
                    update(ticket_events)
                    .where(ticket_events.c.event_id == alert.event_id)
                    .values(ended=ended, last_seq=max(int(link.last_seq), alert.seq))
                )
                conn.execute(
                    update(tickets).where(tickets.c.id == ticket_id).values(updated_at=now)
                )
            else:
                ticket_id, created, opened = self._find_or_open(
                    conn, alert, policy, now, cooldown_s
                )
                changes += opened
                # A racing writer may have linked this event id a moment ago; the unique key
                # makes that an IntegrityError and the retry takes the branch above.
                conn.execute(
                    insert(ticket_events).values(
                        event_id=alert.event_id,
                        ticket_id=ticket_id,
                        device_id=alert.device_id,
                        ended=alert.phase is EventPhase.END,
                        last_seq=alert.seq,
                    )
                )
            conn.execute(
                insert(evidence).values(
                    ticket_id=ticket_id,
                    event_id=alert.event_id,
                    msg_id=alert.msg_id,
                    phase=alert.phase.value,
                    seq=alert.seq,
                    ts=alert.ts,
                    snapshot_id=alert.snapshot_id,
                    detail=alert.detail,
                )
            )
            if alert.phase is EventPhase.END:
                changes += self._maybe_clear(conn, ticket_id, policy, now)
            if not created and not changes:
                site = alert.site_id
                changes.append(
                    Change(
                        kind="ticket",
                        action=f"evidence_{alert.phase.value}",
                        site_id=site,
                        ticket_id=ticket_id,
                        category=alert.category.value,
                        at=now,
                    )
                )
        return AlertResult(False, ticket_id, created, tuple(changes))

    def _find_or_open(
        self,
        conn: Connection,
        alert: Alert,
        policy: CategoryPolicy,
        now: float,
        cooldown_s: float,
    ) -> tuple[int, bool, list[Change]]:
        key = alert.dedup_key
        open_row = conn.execute(
            select(tickets.c.id, tickets.c.state).where(tickets.c.active_key == key)
        ).first()
        if open_row is not None:
            ticket_id = int(open_row.id)
            conn.execute(
                update(tickets)
                .where(tickets.c.id == ticket_id)
                .values(event_count=tickets.c.event_count + 1, updated_at=now)
            )
            self._audit(
                conn,
                ticket_id,
                at=now,
                actor="system:ingest",
                action="merge",
                from_state=None,
                to_state=None,
                detail={"event_id": alert.event_id},
            )
            return ticket_id, False, [self._change(alert, ticket_id, "merged", open_row.state, now)]
        if cooldown_s > 0:
            recent = conn.execute(
                select(tickets.c.id)
                .where(
                    tickets.c.dedup_key == key,
                    tickets.c.state == TicketState.RESOLVED.value,
                    tickets.c.resolved_by == "system",
                    tickets.c.resolved_at >= now - cooldown_s,
                )
                .order_by(tickets.c.resolved_at.desc())
            ).first()
            if recent is not None:
                ticket_id = int(recent.id)
                # Conditional on the state, and the unique active_key: a concurrent opener
                # turns this into an IntegrityError and a retry merges into theirs.
                done = conn.execute(
                    update(tickets)
                    .where(tickets.c.id == ticket_id, tickets.c.state == TicketState.RESOLVED.value)
                    .values(
                        state=TicketState.NEW.value,
                        active_key=key,
                        resolved_at=None,
                        resolved_by=None,
                        condition_cleared_at=None,
                        event_count=tickets.c.event_count + 1,
                        updated_at=now,
                    )
                ).rowcount
                if done:
                    self._audit(
                        conn,
                        ticket_id,
                        at=now,
                        actor="system:ingest",
                        action="reopen",
                        from_state=TicketState.RESOLVED.value,
                        to_state=TicketState.NEW.value,
                        detail={"event_id": alert.event_id, "reason": "within cool-down"},
                    )
                    return (
                        ticket_id,
                        False,
                        [self._change(alert, ticket_id, "reopened", "new", now)],
                    )
        grid_id, assignee = self._route(conn, alert, now)
        due = deadlines(policy, alert.severity, now)
        result = conn.execute(
            insert(tickets).values(
                site_id=alert.site_id,
                device_id=alert.device_id,
                category=alert.category.value,
                zone_id=alert.zone_id,
                grid_id=grid_id,
                severity=alert.severity.value,
                state=TicketState.NEW.value,
                tier=int(Tier.PROPERTY_SERVICE),
                assignee=assignee,
                dedup_key=key,
                active_key=key,
                event_count=1,
                created_at=now,
                updated_at=now,
                ack_due_at=due.ack_due_at,
                resolve_due_at=due.resolve_due_at,
            )
        )
        assert result.inserted_primary_key is not None
        ticket_id = int(result.inserted_primary_key[0])
        self._audit(
            conn,
            ticket_id,
            at=now,
            actor="system:ingest",
            action="open",
            from_state=None,
            to_state=TicketState.NEW.value,
            detail={"event_id": alert.event_id, "assignee": assignee, "grid_id": grid_id},
        )
        self._notify(
            conn,
            ticket_id,
            grid_id=grid_id,
            category=alert.category.value,
            now=now,
            text=f"[管家] New {alert.category.value} ticket #{ticket_id} at "
            f"{alert.site_id}/{alert.zone_id or alert.device_id}"
            + (f", assigned to {assignee}" if assignee else ""),
        )
        return ticket_id, True, [self._change(alert, ticket_id, "opened", "new", now)]

    @staticmethod
    def _change(alert: Alert, ticket_id: int, action: str, state: str, now: float) -> Change:
        return Change(
            kind="ticket",
            action=action,
            site_id=alert.site_id,
            ticket_id=ticket_id,
            state=state,
            category=alert.category.value,
            at=now,
        )

    def _route(self, conn: Connection, alert: Alert, now: float) -> tuple[str | None, str | None]:
        zones_t = zones
        zone_grid = None
        if alert.zone_id is not None:
            zone_grid = conn.execute(
                select(zones_t.c.grid_id).where(
                    zones_t.c.site_id == alert.site_id, zones_t.c.zone_id == alert.zone_id
                )
            ).scalar_one_or_none()
        device_grid = conn.execute(
            select(devices.c.grid_id).where(devices.c.device_id == alert.device_id)
        ).scalar_one_or_none()
        grid_id = resolve_grid(zone_grid, device_grid)
        if grid_id is None:
            return None, None
        grid_row = conn.execute(select(grids).where(grids.c.grid_id == grid_id)).first()
        if grid_row is None:
            return grid_id, None
        shift_rows = conn.execute(
            select(shifts).where(
                shifts.c.grid_id == grid_id, shifts.c.starts_at <= now, shifts.c.ends_at > now
            )
        ).all()
        roster = [Shift(r.grid_id, r.username, r.starts_at, r.ends_at) for r in shift_rows]
        return grid_id, assignee_for(GridInfo(grid_id, grid_row.supervisor), roster, now)

    def _maybe_clear(
        self, conn: Connection, ticket_id: int, policy: CategoryPolicy, now: float
    ) -> list[Change]:
        still_active = conn.execute(
            select(func.count())
            .select_from(ticket_events)
            .where(ticket_events.c.ticket_id == ticket_id, ticket_events.c.ended.is_(False))
        ).scalar_one()
        if still_active:
            return []
        row = conn.execute(select(tickets).where(tickets.c.id == ticket_id)).one()
        changes: list[Change] = []
        conn.execute(
            update(tickets)
            .where(tickets.c.id == ticket_id, tickets.c.condition_cleared_at.is_(None))
            .values(condition_cleared_at=now)
        )
        if policy.auto_resolve_on_end and row.state in OPEN_STATE_VALUES:
            done = conn.execute(
                update(tickets)
                .where(tickets.c.id == ticket_id, tickets.c.state == row.state)
                .values(
                    state=TicketState.RESOLVED.value,
                    resolved_at=now,
                    resolved_by="system",
                    active_key=None,
                    resolution_note="condition cleared (auto-resolved on end)",
                    updated_at=now,
                )
            ).rowcount
            if done:
                self._audit(
                    conn,
                    ticket_id,
                    at=now,
                    actor="system:ingest",
                    action="auto_resolve",
                    from_state=row.state,
                    to_state=TicketState.RESOLVED.value,
                    detail={},
                )
                changes.append(
                    Change(
                        kind="ticket",
                        action="resolved",
                        site_id=row.site_id,
                        ticket_id=ticket_id,
                        state="resolved",
                        category=row.category,
                        at=now,
                    )
                )
        else:
            self._audit(
                conn,
                ticket_id,
                at=now,
                actor="system:ingest",
                action="condition_cleared",
                from_state=None,
                to_state=None,
                detail={},
            )
            changes.append(
                Change(
                    kind="ticket",
                    action="cleared",
                    site_id=row.site_id,
                    ticket_id=ticket_id,
                    state=row.state,
                    category=row.category,
                    at=now,
                )
            )
        return changes

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
        except IntegrityError:
            # Another replica recorded this breach first: nothing to do, and nothing undone.
            return None
        change = Change(
            kind="ticket",
            action="escalated",
            site_id=row.site_id,
            ticket_id=ticket_id,
            state=row.state,
            category=row.category,
            at=now,
        )
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
