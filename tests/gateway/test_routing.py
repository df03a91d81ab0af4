"""Grid routing and the ticket lifecycle: pure, table-driven."""

from __future__ import annotations

import pytest

from gateway.lifecycle import Action, TicketState, TransitionError, check_requirements, target_state
from gateway.routing import GridInfo, Shift, assignee_for, resolve_grid

G = GridInfo("g1", supervisor="sup")
SHIFTS = [
    Shift("g1", "day", 8 * 3600, 20 * 3600),
    Shift("g1", "night", 20 * 3600, 32 * 3600),
    Shift("g1", "late", 19 * 3600, 21 * 3600),  # overlaps the hand-over
    Shift("g2", "other", 0, 48 * 3600),
]


@pytest.mark.parametrize(
    ("grid", "now_h", "expected"),
    [
        (G, 9, "day"),
        (G, 19.5, "late"),  # latest-starting covering shift: the incoming worker
        (G, 20, "night"),  # shifts are [start, end): day is over at 20:00
        (G, 33, "sup"),  # nobody on duty: supervisor
        (GridInfo("g1", None), 33, None),  # and no supervisor: unassigned
        (None, 9, None),  # no grid at all
        (GridInfo("g2", "sup2"), 9, "other"),
    ],
)
def test_assignee_for_table(grid: GridInfo | None, now_h: float, expected: str | None) -> None:
    assert assignee_for(grid, SHIFTS, now_h * 3600) == expected


def test_resolve_grid_zone_wins_over_device() -> None:
    assert resolve_grid("zone-grid", "device-grid") == "zone-grid"
    assert resolve_grid(None, "device-grid") == "device-grid"
    assert resolve_grid(None, None) is None


S = TicketState
A = Action


@pytest.mark.parametrize(
    ("action", "current", "expected"),
    [
        (A.ACKNOWLEDGE, S.NEW, S.ACKNOWLEDGED),
        (A.DISPATCH, S.ACKNOWLEDGED, S.DISPATCHED),
        (A.DISPATCH, S.NEW, S.DISPATCHED),
        (A.DISPATCH, S.IN_PROGRESS, S.DISPATCHED),
        (A.START, S.DISPATCHED, S.IN_PROGRESS),
        (A.RESOLVE, S.IN_PROGRESS, S.RESOLVED),
        (A.RESOLVE, S.NEW, S.RESOLVED),
        (A.CLOSE, S.RESOLVED, S.CLOSED),
        (A.REOPEN, S.CLOSED, S.NEW),
        (A.REOPEN, S.RESOLVED, S.NEW),
        (A.ACKNOWLEDGE, S.DISPATCHED, None),
        (A.START, S.NEW, None),
        (A.CLOSE, S.IN_PROGRESS, None),
        (A.RESOLVE, S.CLOSED, None),
        (A.REOPEN, S.NEW, None),
    ],
)
def test_target_state_table(action: Action, current: TicketState, expected: S | None) -> None:
    if expected is None:
        with pytest.raises(TransitionError, match=f"cannot {action.value}"):
            target_state(action, current)
    else:
        assert target_state(action, current) is expected


@pytest.mark.parametrize(
    ("action", "kwargs", "error"),
    [
        (A.DISPATCH, {"assignee": None}, "needs an assignee"),
        (A.RESOLVE, {"note": " "}, "needs a note"),
        (A.RESOLVE, {"note": "done", "has_photo": False}, "site photo"),
        (A.RESOLVE, {"note": None, "needs_plan": True}, "written plan"),
        (A.RESOLVE, {"note": "done", "has_photo": False, "field_work": False}, None),
        (A.REOPEN, {"note": None}, "needs a reason"),
        (A.ACKNOWLEDGE, {}, None),
    ],
)
def test_check_requirements_table(
    action: Action, kwargs: dict[str, object], error: str | None
) -> None:
    args: dict[str, object] = {
        "assignee": None,
        "note": None,
        "has_photo": True,
        "field_work": True,
        "needs_plan": False,
    }
    args.update(kwargs)
    if error is None:
        check_requirements(action, **args)  # type: ignore[arg-type]
    else:
        with pytest.raises(TransitionError, match=error):
            check_requirements(action, **args)  # type: ignore[arg-type]
