"""The ingest transaction's statements, built once at import and run with bound parameters.

Profiling showed that SQLAlchemy's per-execution work (parameter processing, expanding ``IN``
lists, row objects) cost more than the database executing the statements, so the reads every
batch makes and the writes per ticket are plain SQL for the driver (`plain_sql.Plain`; ``IN``
lists marked ``{in_list}``); the rarer statements stay SQLAlchemy Core. Rows nothing reads
back within the transaction are not here: they go through the driver directly (`bulk_rows`).
"""

from __future__ import annotations

from sqlalchemy import bindparam, update

from gateway.lifecycle import TicketState
from gateway.store.plain_sql import Plain, probe
from gateway.store.schema import devices
from gateway.store.sla_clock import CLOCK_COLUMNS

# The plain statements below spell these states out.
assert (TicketState.NEW.value, TicketState.RESOLVED.value) == ("new", "resolved")


# Plain statements (`plain_sql`): the per-batch reads and the per-ticket writes.
INGEST_LOCK_KEY = 0x6775616E6A6961 + 1
"""The PostgreSQL advisory lock ingest transactions take first (one after `feed.FEED_LOCK_KEY`)."""
INGEST_LOCK = Plain("SELECT pg_advisory_xact_lock(?)")
RECENT_COLUMNS = ("id", "dedup_key", "resolved_at", "state", *CLOCK_COLUMNS)
"""The columns `RECENT_IN` returns, in order."""
RECENT_IN = probe(
    ", ".join(RECENT_COLUMNS),
    "tickets",
    "dedup_key",
    "text",
    # The state is tested by the caller: said here, the planner (with no statistics yet)
    # preferred the index on `state`, and read every resolved ticket once per key.
    "resolved_by = 'system' AND resolved_at >= ?",
    lock=True,  # reopened by a deferred update (see ACTIVE_IN)
)
"""Tickets auto-resolved at or after the bound time, per key (parameters: keys, since)."""
PROCESSED_IN = probe("site_id, device_id, msg_id", "processed_messages", "msg_id", "text")
LINKS_IN = probe(
    "site_id, device_id, event_id, ticket_id, ended, last_seq", "ticket_events", "event_id", "text"
)
# Tickets the transaction may update are read with a lock on PostgreSQL (``FOR UPDATE``;
# SQLite's writer holds the database), so the conditional updates that follow are certain
# to apply and can be deferred (`plain_sql.Driver.defer`).
TICKET_SEEN = (
    "site_id, category, state, active_key, sla_cycle, tier, severity, ack_due_at, resolve_due_at"
)
"""The columns of `ingest_overlay.TicketSeen`, in order."""
ACTIVE_IN = probe(f"id, {TICKET_SEEN}", "tickets", "active_key", "text", lock=True)
UNENDED_IN = probe(
    "ticket_id, site_id, device_id, event_id", "ticket_events", "ticket_id", "int", "NOT ended"
)
DEVICES_IN = probe("device_id, site_id, online, last_status_ts", "devices", "device_id", "text")
UNENDED = Plain(
    "SELECT site_id, device_id, event_id FROM ticket_events WHERE ticket_id = ? AND NOT ended"
)
TICKET = Plain(f"SELECT {TICKET_SEEN} FROM tickets WHERE id = ?", lock=True)  # noqa: S608
TICKET_COLUMNS = (
    "site_id",
    "device_id",
    "category",
    "zone_id",
    "grid_id",
    "severity",
    "state",
    "tier",
    "sla_cycle",
    "assignee",
    "dedup_key",
    "active_key",
    "event_count",
    "created_at",
    "updated_at",
    "ack_due_at",
    "resolve_due_at",
)
"""The columns `INSERT_TICKET` sets, in the order of its parameters."""
INSERT_TICKET = Plain(
    "INSERT INTO tickets (site_id, device_id, category, zone_id, grid_id, severity, state, "
    "tier, sla_cycle, assignee, dedup_key, active_key, event_count, created_at, updated_at, "
    "ack_due_at, resolve_due_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
# The conditional updates below find their row by id, and test the state they expect
# with ``IS TRUE`` on PostgreSQL: a plain ``state = …`` is an index condition too, and with
# no statistics yet (a fresh database) the planner rated the index on `state` as good as
# the primary key and read every ticket in that state (most of them: resolved) per update.
_REOPEN = (
    "UPDATE tickets SET state = 'new', active_key = ?, resolved_at = NULL, "
    "resolved_by = NULL, condition_cleared_at = NULL, event_count = event_count + 1, "
    "updated_at = ?, sla_cycle = ?, tier = ?, ack_due_at = ?, resolve_due_at = ?, "
    "acknowledged_at = ? WHERE id = ? AND "
)
INSERT_TICKET_ID = Plain(
    "INSERT INTO tickets (id, site_id, device_id, category, zone_id, grid_id, severity, state, "
    "tier, sla_cycle, assignee, dedup_key, active_key, event_count, created_at, updated_at, "
    "ack_due_at, resolve_due_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
"""`INSERT_TICKET` with the id first, drawn before (`NEXT_IDS`; PostgreSQL only)."""
NEXT_IDS = Plain(
    "SELECT nextval(pg_get_serial_sequence('tickets', 'id')) FROM generate_series(1, ?)"
)
"""As many new ticket ids as the parameter says, in ascending order (PostgreSQL only)."""
REOPEN = Plain(
    # A new SLA cycle (`sla_clock.reopened_clock`); conditional on the state and cycle.
    _REOPEN + "state = 'resolved' AND sla_cycle = ?",
    pg=(_REOPEN + "(state = 'resolved') IS TRUE AND sla_cycle = ?").replace("?", "%s"),
)
"""Parameters: key, now, then the clock's sla_cycle, tier, ack_due_at, resolve_due_at,
acknowledged_at, then the ticket id and the cycle it is reopened from."""
TOUCH = Plain(
    "UPDATE tickets SET event_count = event_count + ?, updated_at = ? WHERE id = ?",
    postgres_many="UPDATE tickets SET event_count = event_count + v.n, updated_at = v.at "
    "FROM unnest(%s::int[], %s::float8[], %s::int[]) AS v(n, at, id) WHERE tickets.id = v.id",
)
CLEARED = Plain(
    "UPDATE tickets SET condition_cleared_at = ? WHERE id = ? AND condition_cleared_at IS NULL"
)
_AUTO_RESOLVE = (
    "UPDATE tickets SET state = 'resolved', resolved_at = ?, resolved_by = 'system', "
    "active_key = NULL, resolution_note = 'condition cleared (auto-resolved on end)', "
    "updated_at = ?, condition_cleared_at = COALESCE(condition_cleared_at, ?) WHERE id = ? AND "
)
AUTO_RESOLVE = Plain(
    _AUTO_RESOLVE + "state = ?", pg=(_AUTO_RESOLVE + "(state = ?) IS TRUE").replace("?", "%s")
)
"""Parameters: now three times, the ticket id, the state it is resolved from."""
UPDATE_LINK = Plain(
    "UPDATE ticket_events SET ended = ?, last_seq = ? "
    "WHERE event_id = ? AND site_id = ? AND device_id = ?",
    postgres_many="UPDATE ticket_events AS t SET ended = v.ended, last_seq = v.seq "
    "FROM unnest(%s::bool[], %s::int[], %s::text[], %s::text[], %s::text[]) "
    "AS v(ended, seq, event_id, site_id, device_id) "
    "WHERE t.event_id = v.event_id AND t.site_id = v.site_id AND t.device_id = v.device_id",
)
HEARTBEAT = (
    update(devices)
    .where(devices.c.device_id == bindparam("b_device_id"))
    .values(
        online=True,
        last_seen=bindparam("b_now"),
        heartbeat_interval_s=bindparam("b_interval"),
        health=bindparam("b_health"),
    )
)
STATUS = (
    update(devices)
    .where(devices.c.device_id == bindparam("b_device_id"))
    .values(online=bindparam("b_online"), last_status_ts=bindparam("b_ts"))
)
STATUS_ONLINE = (
    update(devices)
    .where(devices.c.device_id == bindparam("b_device_id"))
    .values(
        online=bindparam("b_online"), last_status_ts=bindparam("b_ts"), last_seen=bindparam("b_now")
    )
)
GO_OFFLINE = (
    update(devices)
    .where(
        devices.c.device_id == bindparam("device"),
        devices.c.online.is_(True),
        devices.c.last_seen == bindparam("b_last_seen"),
    )
    .values(online=False)
)
