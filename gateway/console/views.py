"""Pure presentation rules shared by the templates and their tests: local times, SLA clock
colours, tier badges and which actions a page offers a role."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from zoneinfo import ZoneInfo

from gateway.api.permissions import Permission, allowed
from gateway.auth import Principal, Role
from gateway.lifecycle import TRANSITIONS, Action, TicketState
from gateway.models import TicketPublic

AMBER_FRACTION = 0.25
"""A clock turns amber when less than this share of its window is left."""
AMBER_MIN_S = 5 * 60.0
"""…or less than five minutes, whichever comes first."""

ACTION_PERMISSION: dict[Action, Permission] = {
    Action.ACKNOWLEDGE: Permission.ACKNOWLEDGE,
    Action.DISPATCH: Permission.DISPATCH,
    Action.START: Permission.WORK,
    Action.RESOLVE: Permission.WORK,
    Action.CLOSE: Permission.CLOSE,
    Action.REOPEN: Permission.CLOSE,
}
"""The permission each transition needs: the same table the REST routes use."""


class Clock(StrEnum):
    """How urgent a deadline looks."""

    OK = "ok"
    AMBER = "amber"
    RED = "red"
    STOPPED = "stopped"


def local_time(ts: float | None, zone: ZoneInfo, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
    """`ts` (Unix seconds) as wall-clock time in `zone`; "" for None."""
    if ts is None:
        return ""
    return datetime.fromtimestamp(ts, zone).strftime(fmt)


def duration(seconds: float) -> str:
    """A signed compact duration: 1:05:09, 4:09, -0:30 (overdue)."""
    sign = "-" if seconds < 0 else ""
    total = int(abs(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{sign}{hours}:{minutes:02d}:{secs:02d}" if hours else f"{sign}{minutes}:{secs:02d}"


def deadline_of(ticket: TicketPublic) -> float | None:
    """The deadline that runs now: acknowledge for a new ticket, resolve for an open one,
    none once resolved or closed."""
    if ticket.state is TicketState.NEW:
        return ticket.ack_due_at
    if ticket.state in (TicketState.RESOLVED, TicketState.CLOSED):
        return None
    return ticket.resolve_due_at


def clock(due_at: float | None, window_s: float, now: float) -> Clock:
    """Colour of a countdown to `due_at` over a window of `window_s` seconds."""
    if due_at is None:
        return Clock.STOPPED
    left = due_at - now
    if left <= 0:
        return Clock.RED
    if left < AMBER_MIN_S or left < AMBER_FRACTION * window_s:
        return Clock.AMBER
    return Clock.OK


def window_of(ticket: TicketPublic) -> float:
    """Length of the window `deadline_of` counts down (for the amber share)."""
    if ticket.state is TicketState.NEW:
        return max(1.0, ticket.ack_due_at - ticket.created_at)
    return max(1.0, ticket.resolve_due_at - ticket.created_at)


def actions_for(principal: Principal, ticket: TicketPublic) -> list[Action]:
    """Transitions this caller may apply to this ticket now: the role holds the permission,
    the state machine allows it, and a worker only acts on their own tickets."""
    found: list[Action] = []
    for action, (sources, _target) in TRANSITIONS.items():
        if ticket.state not in sources:
            continue
        if not allowed(ACTION_PERMISSION[action], principal.role):
            continue
        if (
            principal.role is Role.WORKER
            and ACTION_PERMISSION[action] is Permission.WORK
            and ticket.assignee != principal.username
        ):
            continue
        found.append(action)
    return found


def may(principal: Principal, permission: Permission) -> bool:
    """Whether the caller's role holds `permission` (menus show only what opens)."""
    return allowed(permission, principal.role)
