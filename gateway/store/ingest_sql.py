"""The ingest transaction's statements, built once at import and run with bound parameters.

Profiling showed that SQLAlchemy's per-execution work (parameter processing, expanding ``IN``
lists, row objects) cost more than the database executing the statements, so the reads every
batch makes and the writes per ticket are plain SQL for the driver (`plain_sql.Plain`; ``IN``
lists marked ``{in_list}``); the rarer statements stay SQLAlchemy Core. Rows nothing reads
back within the transaction are not here: they go through the driver directly (`bulk_rows`).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, select, update

from gateway.lifecycle import TicketState
from gateway.store.plain_sql import Plain
from gateway.store.schema import devices, tickets
from gateway.store.sla_clock import CLOCK_COLUMNS

# The plain statements below spell these states out.
assert (TicketState.NEW.value, TicketState.RESOLVED.value) == ("new", "resolved")


def in_list(column: Any, name: str) -> Any:
    """`column IN (…)` over a list bound at execution."""
    return column.in_(bindparam(name, expanding=True))


RECENT_IN = (
    select(
        tickets.c.id,
        tickets.c.dedup_key,
        tickets.c.resolved_at,
        *(tickets.c[n] for n in CLOCK_COLUMNS),
    )
    .where(
        in_list(tickets.c.dedup_key, "keys"),
        tickets.c.state == TicketState.RESOLVED.value,
        tickets.c.resolved_by == "system",
        tickets.c.resolved_at >= bindparam("since"),
    )
    .with_for_update()
)  # reopened by a deferred update (see ACTIVE_IN)
RECENT_AUTO_RESOLVED = (
    select(
        tickets.c.id,
        tickets.c.dedup_key,
        tickets.c.resolved_at,
        *(tickets.c[name] for name in CLOCK_COLUMNS),
    )
    .where(
        tickets.c.dedup_key == bindparam("key"),
        tickets.c.state == TicketState.RESOLVED.value,
        tickets.c.resolved_by == "system",
        tickets.c.resolved_at >= bindparam("since"),
    )
    .order_by(tickets.c.resolved_at.desc())
    .limit(1)
    .with_for_update()
)

# Plain statements (`plain_sql`): the per-batch reads and the per-ticket writes.
INGEST_LOCK_KEY = 0x6775616E6A6961 + 1
"""The PostgreSQL advisory lock ingest transactions take first (one after `feed.FEED_LOCK_KEY`)."""
INGEST_LOCK = Plain("SELECT pg_advisory_xact_lock(?)")
PROCESSED_IN = Plain(
    "SELECT site_id, device_id, msg_id FROM processed_messages WHERE msg_id {in_list}"
)
LINKS_IN = Plain(
    "SELECT site_id, device_id, event_id, ticket_id, ended, last_seq FROM ticket_events "
    "WHERE event_id {in_list}"
)
# Tickets the transaction may update are read with a lock on PostgreSQL (``FOR UPDATE``;
# SQLite's writer holds the database), so the conditional updates that follow are certain
# to apply and can be deferred (`plain_sql.Driver.defer`).
ACTIVE_IN = Plain(
    "SELECT id, state, active_key, site_id, category FROM tickets WHERE active_key {in_list}",
    lock=True,
)
UNENDED_IN = Plain(
    "SELECT ticket_id, site_id, device_id, event_id FROM ticket_events "
    "WHERE ticket_id {in_list} AND NOT ended"
)
DEVICES_IN = Plain(
    "SELECT device_id, site_id, online, last_status_ts FROM devices WHERE device_id {in_list}"
)
UNENDED = Plain(
    "SELECT site_id, device_id, event_id FROM ticket_events WHERE ticket_id = ? AND NOT ended"
)
TICKET = Plain("SELECT site_id, category, state, active_key FROM tickets WHERE id = ?", lock=True)
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
REOPEN = Plain(
    # A new SLA cycle (`sla_clock.reopened_clock`); conditional on the state and cycle.
    "UPDATE tickets SET state = 'new', active_key = ?, resolved_at = NULL, "
    "resolved_by = NULL, condition_cleared_at = NULL, event_count = event_count + 1, "
    "updated_at = ?, sla_cycle = ?, tier = ?, ack_due_at = ?, resolve_due_at = ?, "
    "acknowledged_at = ? WHERE id = ? AND state = 'resolved' AND sla_cycle = ?"
)
"""Parameters: key, now, then the clock's sla_cycle, tier, ack_due_at, resolve_due_at,
acknowledged_at, then the ticket id and the cycle it is reopened from."""
TOUCH = Plain("UPDATE tickets SET event_count = event_count + ?, updated_at = ? WHERE id = ?")
CLEARED = Plain(
    "UPDATE tickets SET condition_cleared_at = ? WHERE id = ? AND condition_cleared_at IS NULL"
)
AUTO_RESOLVE = Plain(
    "UPDATE tickets SET state = 'resolved', resolved_at = ?, resolved_by = 'system', "
    "active_key = NULL, resolution_note = 'condition cleared (auto-resolved on end)', "
    "updated_at = ?, condition_cleared_at = COALESCE(condition_cleared_at, ?) "
    "WHERE id = ? AND state = ?"
)
"""Parameters: now three times, the ticket id, the state it is resolved from."""
UPDATE_LINK = Plain(
    "UPDATE ticket_events SET ended = ?, last_seq = ? "
    "WHERE event_id = ? AND site_id = ? AND device_id = ?"
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
