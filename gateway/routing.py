"""Grid routing: who gets a new ticket. Pure functions of the roster and `now`.

A site is split into micro-grids (~300 households each); zones and devices belong to a grid.
A ticket goes to the grid's on-duty worker (a roster shift covering `now`), else to the grid
supervisor, else it stays unassigned for the control room.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Shift:
    """One roster entry: `username` is on duty for `grid_id` in [starts_at, ends_at)."""

    grid_id: str
    username: str
    starts_at: float
    ends_at: float


@dataclass(frozen=True)
class GridInfo:
    """The routing facts of one grid."""

    grid_id: str
    supervisor: str | None


def resolve_grid(zone_grid: str | None, device_grid: str | None) -> str | None:
    """The grid of an alert: its zone's grid wins over the device's home grid."""
    return zone_grid if zone_grid is not None else device_grid


def on_duty(shifts: Iterable[Shift], grid_id: str, now: float) -> str | None:
    """The worker on duty for `grid_id` at `now`: the latest-starting covering shift wins
    (a hand-over overlap goes to the incoming worker), ties broken by username."""
    covering = [s for s in shifts if s.grid_id == grid_id and s.starts_at <= now < s.ends_at]
    if not covering:
        return None
    covering.sort(key=lambda s: (-s.starts_at, s.username))
    return covering[0].username


def assignee_for(grid: GridInfo | None, shifts: Iterable[Shift], now: float) -> str | None:
    """Who a new ticket in `grid` goes to at `now`."""
    if grid is None:
        return None
    return on_duty(shifts, grid.grid_id, now) or grid.supervisor
