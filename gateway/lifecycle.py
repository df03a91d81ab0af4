"""The ticket state machine: which transitions exist and what each needs. Pure.

::

    new ─ack─▶ acknowledged ─dispatch─▶ dispatched ─start─▶ in_progress ─resolve─▶ resolved
     │  └──────────── dispatch (also re-dispatch) ──────▲                          ▲    │
     └───────────── resolve from any open state ────────┴──────────────────────────┘  close
                                                                                        ▼
            new ◀──────────────── reopen (from resolved or closed) ──────────────── closed

The database applies a transition with a conditional update on the current state, so two
people acting at once cannot both succeed.
"""

from __future__ import annotations

from enum import StrEnum


class TicketState(StrEnum):
    """Where a ticket is in its lifecycle."""

    NEW = "new"
    ACKNOWLEDGED = "acknowledged"
    DISPATCHED = "dispatched"
    IN_PROGRESS = "in_progress"
    RESOLVED = "resolved"
    CLOSED = "closed"


OPEN_STATES = frozenset(
    {TicketState.NEW, TicketState.ACKNOWLEDGED, TicketState.DISPATCHED, TicketState.IN_PROGRESS}
)
OPEN_STATE_VALUES = tuple(sorted(s.value for s in OPEN_STATES))
"""The open states as the database stores them (a tuple, ready for SQL ``IN``)."""


class Action(StrEnum):
    """Transitions a person (or the system) can apply."""

    ACKNOWLEDGE = "acknowledge"
    DISPATCH = "dispatch"
    START = "start"
    RESOLVE = "resolve"
    CLOSE = "close"
    REOPEN = "reopen"


TRANSITIONS: dict[Action, tuple[frozenset[TicketState], TicketState]] = {
    Action.ACKNOWLEDGE: (frozenset({TicketState.NEW}), TicketState.ACKNOWLEDGED),
    # Dispatch may re-assign a ticket that is already dispatched or being worked on.
    Action.DISPATCH: (
        frozenset(
            {
                TicketState.NEW,
                TicketState.ACKNOWLEDGED,
                TicketState.DISPATCHED,
                TicketState.IN_PROGRESS,
            }
        ),
        TicketState.DISPATCHED,
    ),
    Action.START: (frozenset({TicketState.DISPATCHED}), TicketState.IN_PROGRESS),
    Action.RESOLVE: (OPEN_STATES, TicketState.RESOLVED),
    Action.CLOSE: (frozenset({TicketState.RESOLVED}), TicketState.CLOSED),
    Action.REOPEN: (frozenset({TicketState.RESOLVED, TicketState.CLOSED}), TicketState.NEW),
}


class TransitionError(ValueError):
    """A transition that is not allowed from the ticket's state, or lacks what it needs."""


def target_state(action: Action, current: TicketState) -> TicketState:
    """The state `action` leads to from `current`, or TransitionError."""
    sources, target = TRANSITIONS[action]
    if current not in sources:
        raise TransitionError(f"cannot {action.value} a ticket that is {current.value}")
    return target


def check_requirements(
    action: Action,
    *,
    assignee: str | None,
    note: str | None,
    has_photo: bool,
    field_work: bool,
    needs_plan: bool,
) -> None:
    """Raise TransitionError when `action` lacks what the lifecycle demands.

    Dispatch names an assignee; resolve carries a note, a site photo for field categories and,
    for major jobs, the written plan as its note.
    """
    if action is Action.DISPATCH and not assignee:
        raise TransitionError("dispatch needs an assignee")
    if action is Action.RESOLVE:
        if not note or not note.strip():
            raise TransitionError(
                "resolve needs a note" + (" (the written plan)" if needs_plan else "")
            )
        if field_work and not has_photo:
            raise TransitionError("resolve needs a site photo for this category: upload one first")
    if action is Action.REOPEN and (not note or not note.strip()):
        raise TransitionError("reopen needs a reason")
