"""Evidence snapshots in an ingest transaction: stored once per (site, device, id), checked
against the event's SnapshotRef whichever comes first, within a per-device byte quota.

A row is either a JPEG that arrived (`data`, with its own sha256 and size) or one an event
announced before it came (`data` NULL, the SnapshotRef's sha256 and size: the JPEG must then
match). `linked_at` marks a snapshot an event took as evidence; the rest are orphans that
`InboxStore.prune_snapshots` deletes after a TTL.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import Connection, bindparam, func, insert, select, update

from gateway.store.schema import snapshots

SNAPSHOT_WINDOW_S = 3600.0
"""The window of the per-device snapshot byte quota."""

_KEY = (
    snapshots.c.site_id == bindparam("site"),
    snapshots.c.device_id == bindparam("device"),
    snapshots.c.snapshot_id == bindparam("snap"),
)
_ROW = select(
    snapshots.c.sha256, snapshots.c.size_bytes, snapshots.c.received_at, snapshots.c.linked_at
).where(*_KEY)
_INSERT = insert(snapshots)
_ARRIVED = (
    update(snapshots)
    .where(*_KEY, snapshots.c.data.is_(None))
    .values(data=bindparam("data"), received_at=bindparam("now"))
)
_LINKED = (
    update(snapshots)
    .where(*_KEY, snapshots.c.linked_at.is_(None))
    .values(linked_at=bindparam("now"))
)
_BYTES_SINCE = select(func.coalesce(func.sum(snapshots.c.size_bytes), 0)).where(
    snapshots.c.site_id == bindparam("site"),
    snapshots.c.device_id == bindparam("device"),
    snapshots.c.received_at >= bindparam("since"),
)

Key = tuple[str, str, str]


class SnapshotOutcome(StrEnum):
    """What storing one arriving JPEG did."""

    STORED = "stored"
    DUPLICATE = "duplicate"
    MISMATCH = "mismatch"  # not what the event that announced it promised
    OVER_QUOTA = "over_quota"


@dataclass
class _Snapshot:
    sha256: str
    size_bytes: int
    arrived: bool
    linked: bool


class SnapshotLedger:
    """Snapshot rows of one transaction (written at once: later messages read them)."""

    def __init__(self, conn: Connection, now: float) -> None:
        self.conn = conn
        self.now = now
        self._rows: dict[Key, _Snapshot | None] = {}
        self._bytes: dict[tuple[str, str], int] = {}

    def _row(self, key: Key) -> _Snapshot | None:
        if key not in self._rows:
            site_id, device_id, snapshot_id = key
            params = {"site": site_id, "device": device_id, "snap": snapshot_id}
            row = self.conn.execute(_ROW, params).first()
            self._rows[key] = (
                None
                if row is None
                else _Snapshot(
                    row.sha256,
                    int(row.size_bytes),
                    arrived=row.received_at is not None,
                    linked=row.linked_at is not None,
                )
            )
        return self._rows[key]

    def _within_quota(self, site_id: str, device_id: str, size: int, per_hour: int) -> bool:
        owner = (site_id, device_id)
        if owner not in self._bytes:
            params = {"site": site_id, "device": device_id, "since": self.now - SNAPSHOT_WINDOW_S}
            self._bytes[owner] = int(self.conn.execute(_BYTES_SINCE, params).scalar_one())
        if self._bytes[owner] + size > per_hour:
            return False
        self._bytes[owner] += size
        return True

    def store(
        self,
        site_id: str,
        device_id: str,
        snapshot_id: str,
        data: bytes,
        bytes_per_hour: int | None = None,
    ) -> SnapshotOutcome:
        """An arriving JPEG: a redelivery is a duplicate; one an event announced must match
        that event's SnapshotRef (sha256 and size); a device over `bytes_per_hour` of
        snapshots in the last hour gets nothing stored."""
        key = (site_id, device_id, snapshot_id)
        row = self._row(key)
        if row is not None and row.arrived:
            return SnapshotOutcome.DUPLICATE
        sha256 = hashlib.sha256(data).hexdigest()
        if row is not None and (row.sha256, row.size_bytes) != (sha256, len(data)):
            return SnapshotOutcome.MISMATCH
        if bytes_per_hour is not None and not self._within_quota(
            site_id, device_id, len(data), bytes_per_hour
        ):
            return SnapshotOutcome.OVER_QUOTA
        if row is not None:  # announced by an event: fill it in
            params = {"site": site_id, "device": device_id, "snap": snapshot_id}
            self.conn.execute(_ARRIVED, params | {"data": data, "now": self.now})
            row.arrived = True
            return SnapshotOutcome.STORED
        self.conn.execute(
            _INSERT,
            {
                "site_id": site_id,
                "device_id": device_id,
                "snapshot_id": snapshot_id,
                "sha256": sha256,
                "size_bytes": len(data),
                "data": data,
                "received_at": self.now,
                "linked_at": None,
            },
        )
        self._rows[key] = _Snapshot(sha256, len(data), arrived=True, linked=False)
        return SnapshotOutcome.STORED

    def link(self, key: Key, sha256: str, size_bytes: int) -> str | None:
        """Take the snapshot `key` as an event's evidence; the reason when it cannot be
        (what arrived, or what an earlier event announced, is not what this event says).
        A snapshot not here yet is announced: it must match when it comes."""
        row = self._row(key)
        if row is None:
            site_id, device_id, snapshot_id = key
            self.conn.execute(
                _INSERT,
                {
                    "site_id": site_id,
                    "device_id": device_id,
                    "snapshot_id": snapshot_id,
                    "sha256": sha256,
                    "size_bytes": size_bytes,
                    "data": None,
                    "received_at": None,
                    "linked_at": self.now,
                },
            )
            self._rows[key] = _Snapshot(sha256, size_bytes, arrived=False, linked=True)
            return None
        if (row.sha256, row.size_bytes) != (sha256, size_bytes):
            what = "stored snapshot" if row.arrived else "snapshot announced earlier"
            return (
                f"snapshot {key[2]!r}: the {what} has sha256 {row.sha256} and "
                f"{row.size_bytes} bytes; the event says sha256 {sha256} and {size_bytes} bytes"
            )
        if not row.linked:
            params = {"site": key[0], "device": key[1], "snap": key[2]}
            self.conn.execute(_LINKED, params | {"now": self.now})
            row.linked = True
        return None
