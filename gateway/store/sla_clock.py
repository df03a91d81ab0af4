"""A ticket's SLA columns when it is reopened, one definition for both ways back.

A ticket is reopened by a person (`TicketStore.transition`) or by a new event within the
cool-down after an auto-resolution (`IngestTx`); either way the reopened job starts a new SLA
cycle (`gateway.sla.restart_clock`).
"""

from __future__ import annotations

from typing import Any

from contract import Severity
from gateway.sla import CategoryPolicy, SlaClock, Tier, restart_clock

CLOCK_COLUMNS = ("sla_cycle", "tier", "severity", "ack_due_at", "resolve_due_at")
"""The ticket columns `reopened_clock` reads."""


def reopened_clock(row: Any, policy: CategoryPolicy, now: float) -> dict[str, Any]:
    """The columns to set on ticket `row` (a table row, or any object with the attributes
    `CLOCK_COLUMNS`) reopened at `now`: the
    next cycle's deadlines from `now`, the tier kept, and no acknowledgement, since the
    reopened job must be acknowledged again."""
    clock = restart_clock(
        SlaClock(int(row.sla_cycle), Tier(row.tier), row.ack_due_at, row.resolve_due_at),
        policy,
        Severity(row.severity),
        now,
    )
    return {
        "sla_cycle": clock.cycle,
        "tier": int(clock.tier),
        "ack_due_at": clock.ack_due_at,
        "resolve_due_at": clock.resolve_due_at,
        "acknowledged_at": None,
    }
