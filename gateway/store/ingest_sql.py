"""The ingest transaction's statements, built once at import and run with bound parameters.

Profiling showed that building SQLAlchemy statements cost several times more than SQLite
executing them. Rows nothing reads back within the transaction are not here: they go
through the driver directly (`bulk_rows`).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, func, insert, select, update

from gateway.lifecycle import TicketState
from gateway.store.schema import devices, processed_messages, ticket_events, tickets
from gateway.store.sla_clock import CLOCK_COLUMNS


def in_list(column: Any, name: str) -> Any:
    """`column IN (…)` over a list bound at execution."""
    return column.in_(bindparam(name, expanding=True))


PROCESSED_IN = select(
    processed_messages.c.site_id, processed_messages.c.device_id, processed_messages.c.msg_id
).where(in_list(processed_messages.c.msg_id, "ids"))
LINKS_IN = select(
    ticket_events.c.site_id,
    ticket_events.c.device_id,
    ticket_events.c.event_id,
    ticket_events.c.ticket_id,
    ticket_events.c.ended,
    ticket_events.c.last_seq,
).where(in_list(ticket_events.c.event_id, "ids"))
ACTIVE_IN = select(
    tickets.c.id, tickets.c.state, tickets.c.active_key, tickets.c.site_id, tickets.c.category
).where(in_list(tickets.c.active_key, "keys"))
UNENDED_IN = select(
    ticket_events.c.ticket_id,
    ticket_events.c.site_id,
    ticket_events.c.device_id,
    ticket_events.c.event_id,
).where(in_list(ticket_events.c.ticket_id, "tids"), ticket_events.c.ended.is_(False))
RECENT_IN = select(
    tickets.c.id, tickets.c.dedup_key, tickets.c.resolved_at, *(tickets.c[n] for n in CLOCK_COLUMNS)
).where(
    in_list(tickets.c.dedup_key, "keys"),
    tickets.c.state == TicketState.RESOLVED.value,
    tickets.c.resolved_by == "system",
    tickets.c.resolved_at >= bindparam("since"),
)
DEVICES_IN = select(
    devices.c.device_id, devices.c.site_id, devices.c.online, devices.c.last_status_ts
).where(in_list(devices.c.device_id, "ids"))
UNENDED = select(
    ticket_events.c.site_id, ticket_events.c.device_id, ticket_events.c.event_id
).where(ticket_events.c.ticket_id == bindparam("tid"), ticket_events.c.ended.is_(False))
TICKET = select(
    tickets.c.site_id,
    tickets.c.category,
    tickets.c.state,
    tickets.c.active_key,
    tickets.c.condition_cleared_at,
).where(tickets.c.id == bindparam("tid"))
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
)
REOPEN = (
    update(tickets)
    .where(
        tickets.c.id == bindparam("tid"),
        tickets.c.state == TicketState.RESOLVED.value,
        tickets.c.sla_cycle == bindparam("from_cycle"),
    )
    .values(
        state=TicketState.NEW.value,
        active_key=bindparam("key"),
        resolved_at=None,
        resolved_by=None,
        condition_cleared_at=None,
        event_count=tickets.c.event_count + 1,
        updated_at=bindparam("now"),
        # A new SLA cycle (`sla_clock.reopened_clock`).
        sla_cycle=bindparam("b_sla_cycle"),
        tier=bindparam("b_tier"),
        ack_due_at=bindparam("b_ack_due_at"),
        resolve_due_at=bindparam("b_resolve_due_at"),
        acknowledged_at=bindparam("b_acknowledged_at"),
    )
)
INSERT_TICKET = insert(tickets)
TOUCH = (
    update(tickets)
    .where(tickets.c.id == bindparam("tid"))
    .values(event_count=tickets.c.event_count + bindparam("n"), updated_at=bindparam("now"))
)
CLEARED = (
    update(tickets)
    .where(tickets.c.id == bindparam("tid"), tickets.c.condition_cleared_at.is_(None))
    .values(condition_cleared_at=bindparam("now"))
)
AUTO_RESOLVE = (
    update(tickets)
    .where(tickets.c.id == bindparam("tid"), tickets.c.state == bindparam("from_state"))
    .values(
        state=TicketState.RESOLVED.value,
        resolved_at=bindparam("now"),
        resolved_by="system",
        active_key=None,
        resolution_note="condition cleared (auto-resolved on end)",
        updated_at=bindparam("now"),
        condition_cleared_at=func.coalesce(tickets.c.condition_cleared_at, bindparam("now")),
    )
)
UPDATE_LINK = (
    update(ticket_events)
    .where(
        ticket_events.c.event_id == bindparam("b_event_id"),
        ticket_events.c.site_id == bindparam("b_site_id"),
        ticket_events.c.device_id == bindparam("b_device_id"),
    )
    .values(ended=bindparam("b_ended"), last_seq=bindparam("b_last_seq"))
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
