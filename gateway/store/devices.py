"""The device registry, device liveness (heartbeat timeouts) and broker credentials."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from gateway.models import Change, DeviceCreate, DevicePublic
from gateway.provisioning import BrokerAccount
from gateway.sla import CategoryPolicy
from gateway.store.base import ConflictError, NotFoundError, Part, from_row
from gateway.store.grids import check_grid_of_site
from gateway.store.ingest_tx import IngestTx
from gateway.store.schema import devices, mqtt_credentials
from gateway.store.scope import OutOfScopeError, SiteChangeError


def _check_role(conn: Connection, username: str, role: str) -> None:
    found = conn.execute(
        select(mqtt_credentials.c.role).where(mqtt_credentials.c.username == username)
    ).scalar_one_or_none()
    if found is not None and found != role:
        raise ConflictError(
            f"{username!r} is already a {found} broker account and cannot become a {role} "
            "account; use another username"
        )


def _locked(query: Any, *, postgres: bool) -> Any:
    """FOR UPDATE on PostgreSQL (SQLite serialises writers anyway)."""
    return query.with_for_update() if postgres else query


def _write_device(conn: Connection, device_id: str, values: dict[str, Any], now: float) -> None:
    found = conn.execute(select(devices.c.device_id).where(devices.c.device_id == device_id))
    if found.first():
        conn.execute(update(devices).where(devices.c.device_id == device_id).values(values))
    else:
        conn.execute(
            insert(devices).values(device_id=device_id, online=False, created_at=now, **values)
        )


@dataclass(frozen=True)
class DeviceRow:
    """The registry facts ingest checks a message's topic against."""

    device_id: str
    site_id: str


class DeviceStore(Part):
    """Registered devices, their online state, and the broker accounts provisioned for them."""

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
        """Register (or re-register, possibly at another site) a device: the provisioning
        path (`guanjia device add`), which rewrites its broker account alongside."""
        values = {
            "site_id": site_id,
            "kind": kind,
            "location": location,
            "zone_id": zone_id,
            "grid_id": grid_id,
        }
        with self._tx() as conn:
            check_grid_of_site(conn, grid_id, site_id)
            _write_device(conn, device_id, values, time.time() if now is None else now)

    def register_device(
        self, device: DeviceCreate, scope: Sequence[str] | None, now: float | None = None
    ) -> None:
        """Register or update a device for a caller whose sites are `scope` (None: all).

        Never moves a device: an id registered at another site is OutOfScopeError when that
        site is outside `scope`, else SiteChangeError (see `move_device`). The grid must be
        one of the device's site (NotFoundError otherwise).
        """
        try:
            with self._tx() as conn:
                found = conn.execute(
                    _locked(
                        select(devices.c.site_id).where(devices.c.device_id == device.device_id),
                        postgres=not self.is_sqlite,
                    )
                ).first()
                if found is not None and scope is not None and found.site_id not in scope:
                    raise OutOfScopeError("device", device.device_id)
                if found is not None and found.site_id != device.site_id:
                    raise SiteChangeError("device", device.device_id, found.site_id)
                check_grid_of_site(conn, device.grid_id, device.site_id)
                values = device.model_dump(exclude={"device_id"})
                _write_device(conn, device.device_id, values, time.time() if now is None else now)
        except IntegrityError:  # registered concurrently by someone else
            raise ConflictError(f"device {device.device_id!r} was registered meanwhile") from None

    def move_device(
        self,
        device_id: str,
        site_id: str,
        *,
        grid_id: str | None,
        zone_id: str | None,
        scope: Sequence[str] | None = None,
    ) -> None:
        """Move a device to another site (the admin path), with its broker account's site,
        so the next rendering of the broker ACL lets it publish there. For a caller whose
        sites are `scope` (None: all), both the device's current site and `site_id` must be
        in it (OutOfScopeError otherwise; the current site is read locked, so a concurrent
        move cannot slip a device out of scope between the API's check and this write)."""
        if scope is not None and site_id not in scope:
            raise OutOfScopeError("site", site_id)
        with self._tx() as conn:
            found = conn.execute(
                _locked(
                    select(devices.c.site_id).where(devices.c.device_id == device_id),
                    postgres=not self.is_sqlite,
                )
            ).first()
            if found is None:
                raise NotFoundError(f"device {device_id!r} not found")
            if scope is not None and found.site_id not in scope:
                raise OutOfScopeError("device", device_id)
            check_grid_of_site(conn, grid_id, site_id)
            conn.execute(
                update(devices)
                .where(devices.c.device_id == device_id)
                .values(site_id=site_id, grid_id=grid_id, zone_id=zone_id)
            )
            conn.execute(
                update(mqtt_credentials)
                .where(
                    mqtt_credentials.c.username == device_id,
                    mqtt_credentials.c.role == "device",
                )
                .values(site_id=site_id)
            )

    def find(self, device_id: str) -> DeviceRow | None:
        """The registry row ingest checks messages against, or None (`get` raises instead)."""
        with self._read() as conn:
            row = conn.execute(
                select(devices.c.device_id, devices.c.site_id).where(
                    devices.c.device_id == device_id
                )
            ).first()
        return None if row is None else DeviceRow(row.device_id, row.site_id)

    def device_sites(self, device_ids: Sequence[str]) -> dict[str, str]:
        """`find` for many devices in one query per 500: registered device id → its site
        (ingest looks up a batch's devices at once)."""
        found: dict[str, str] = {}
        ids = list(dict.fromkeys(device_ids))
        with self._read() as conn:
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                query = select(devices.c.device_id, devices.c.site_id).where(
                    devices.c.device_id.in_(chunk)
                )
                found.update((row.device_id, row.site_id) for row in conn.execute(query))
        return found

    def list_devices(
        self, sites: Sequence[str] | None = None, *, offset: int = 0, limit: int = 100
    ) -> list[DevicePublic]:
        """Devices (of `sites`, or all) by id."""
        with self._read() as conn:
            query = select(devices).order_by(devices.c.device_id).offset(offset).limit(limit)
            if sites is not None:
                query = query.where(devices.c.site_id.in_(sites))
            rows = conn.execute(query).all()
        return [from_row(DevicePublic, r) for r in rows]

    def get(self, device_id: str) -> DevicePublic:
        """One device as the API serves it, or NotFoundError (`find` returns None instead)."""
        with self._read() as conn:
            row = conn.execute(select(devices).where(devices.c.device_id == device_id)).first()
        if row is None:
            raise NotFoundError(f"device {device_id!r} is not registered")
        return from_row(DevicePublic, row)

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
            changes += self._db.ingest(
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

    def check_mqtt_role(self, username: str, role: str) -> None:
        """ConflictError when `username` is already a broker account of another role."""
        with self._read() as conn:
            _check_role(conn, username, role)

    def set_mqtt_credential(
        self,
        username: str,
        password_hash: str,
        role: str,
        site_id: str | None,
        grants: Sequence[str] = (),
    ) -> None:
        """Store (or rotate) a broker account's password hash and its granted topics.

        An existing account never changes role (ConflictError): a device account turned
        gateway would read every site and write every ack, so a typo must not do it."""
        with self._tx() as conn:
            _check_role(conn, username, role)
            conn.execute(delete(mqtt_credentials).where(mqtt_credentials.c.username == username))
            conn.execute(
                insert(mqtt_credentials).values(
                    username=username,
                    password_hash=password_hash,
                    role=role,
                    site_id=site_id,
                    grants=list(grants) or None,
                )
            )

    def mqtt_accounts(self) -> list[BrokerAccount]:
        """Every broker account, by username, as the password file and ACL need it."""
        with self._read() as conn:
            rows = conn.execute(select(mqtt_credentials).order_by(mqtt_credentials.c.username))
            return [
                BrokerAccount(r.username, r.password_hash, r.role, r.site_id, tuple(r.grants or ()))
                for r in rows
            ]
