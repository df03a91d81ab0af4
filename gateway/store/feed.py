"""The change feed: one ``changes`` row per ticket or device change, written in the
transaction that made the change, read by every replica's stream poller in id order.

A console on any replica therefore sees every change, and one that reconnects resumes from
its Last-Event-ID (the row id).

That only works if ids become visible in id order: a poller that has read up to id N must
never later find a smaller id commit. SQLite serialises writers (``BEGIN IMMEDIATE``), so it
holds there. PostgreSQL transactions draw sequence values and commit in any order, so every
writer first takes one transaction-level advisory lock as the last thing before its feed
insert and COMMIT: ids are drawn and made visible one transaction at a time (PostgreSQL
releases the lock only after the commit is visible), and the lock is held for one INSERT and
the COMMIT only. Writers take no other lock after it, so it cannot deadlock.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, bindparam, delete, func, insert, select, text

from gateway.models import Change, FeedEntry
from gateway.store.schema import changes

FEED_LOCK_KEY = 0x6775616E6A6961
"""The advisory lock key ("guanjia" in ASCII) that orders feed writers on PostgreSQL."""

_LOCK = text("SELECT pg_advisory_xact_lock(:key)")
_INSERT = insert(changes)
_AFTER = (
    select(changes.c.id, changes.c.kind, changes.c.site_id, changes.c.body)
    .where(changes.c.id > bindparam("after"))
    .order_by(changes.c.id)
    .limit(bindparam("limit"))
)
_LAST = select(func.coalesce(func.max(changes.c.id), 0))
_OLDEST = select(func.min(changes.c.id))
_PRUNE = delete(changes).where(changes.c.at < bindparam("older_than"))


def lock(conn: Connection) -> None:
    """On PostgreSQL, take the feed lock: the last thing before the feed insert and COMMIT."""
    conn.execute(_LOCK, {"key": FEED_LOCK_KEY})


def row(change: Change) -> tuple[float, str, str, str]:
    """The feed row (at, kind, site_id, body) of `change`."""
    return (change.at, change.kind, change.site_id, change.model_dump_json())


def record(conn: Connection, entries: Sequence[Change], *, postgres: bool) -> None:
    """Append `entries` to the feed; call as the transaction's last statement."""
    if not entries:
        return
    if postgres:
        lock(conn)
    conn.execute(
        _INSERT,
        [dict(zip(("at", "kind", "site_id", "body"), row(c), strict=True)) for c in entries],
    )


def after(conn: Connection, last_id: int, limit: int) -> list[FeedEntry]:
    """Up to `limit` entries with ids above `last_id`, oldest first."""
    rows = conn.execute(_AFTER, {"after": last_id, "limit": limit}).all()
    return [FeedEntry(id=r.id, kind=r.kind, site_id=r.site_id, data=r.body) for r in rows]


def last_id(conn: Connection) -> int:
    """The newest id (0 when the feed is empty)."""
    return int(conn.execute(_LAST).scalar_one())


def oldest_id(conn: Connection) -> int | None:
    """The oldest id still kept, or None when the feed is empty."""
    value = conn.execute(_OLDEST).scalar_one_or_none()
    return None if value is None else int(value)


def prune(conn: Connection, older_than: float) -> int:
    """Drop entries older than `older_than`; returns how many."""
    return int(conn.execute(_PRUNE, {"older_than": older_than}).rowcount)
