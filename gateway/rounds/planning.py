"""Rounds planning: what is due, in progress, late, done or missed, and which tickets to open.
Pure: every function takes the configuration, the scans and `now`, and returns decisions.

A schedule's **rounds** (slots) start at each shift's start and then every `every_min`
minutes while the shift lasts, in the site's time zone (a shift past midnight belongs to the
day it starts). A round's window runs to the next round's start (or the shift's end); a scan
of one of the route's checkpoints inside the window counts for that round. At `now` a round is:

- ``upcoming`` before it starts; ``due`` once started with nothing scanned;
- ``in_progress`` with some checkpoints scanned; ``done`` with every checkpoint scanned;
- ``late`` when not done `on_time` after its start;
- ``missed`` when not done at the end of its window plus `grace_min`.

Tickets (`TicketDecision`), each under a key, so the store opens it exactly once however
often planning runs:

- a failed checklist item → a ticket at that checkpoint's place (`failed_item_decisions`,
  at scan time); its key is the open ticket's, so finding it again while that ticket is open
  merges into it;
- a missed round with nothing scanned → one ticket for the grid's supervisor;
- a missed round with some checkpoints scanned → one ticket per checkpoint left out.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from zoneinfo import ZoneInfo

from gateway.rounds.config import Checkpoint, RoundsConfig, Route, Schedule


class RoundState(StrEnum):
    """Where a round stands at `now`."""

    UPCOMING = "upcoming"
    DUE = "due"
    IN_PROGRESS = "in_progress"
    LATE = "late"
    DONE = "done"
    MISSED = "missed"


class DecisionKind(StrEnum):
    """Why a ticket is opened."""

    ITEM_FAILED = "item_failed"
    ROUND_MISSED = "round_missed"
    CHECKPOINT_MISSED = "checkpoint_missed"


@dataclass(frozen=True)
class Scan:
    """A checkpoint scanned on a route at `at`; `failed` names the checklist items that did
    not pass."""

    scan_id: int
    route_id: str
    checkpoint_id: str
    at: float
    username: str
    failed: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Slot:
    """One round of a schedule: starts at `starts_at`, late at `late_at`, its window closes at
    `ends_at` and it is missed at `missed_at` (window plus grace)."""

    schedule_id: str
    route_id: str
    shift: str
    starts_at: float
    late_at: float
    ends_at: float
    missed_at: float


@dataclass(frozen=True)
class RoundStatus:
    """A round at `now`: its state and which checkpoints are scanned (in route order)."""

    slot: Slot
    state: RoundState
    scanned: tuple[str, ...]
    pending: tuple[str, ...]

    @property
    def total(self) -> int:
        """Checkpoints on the route."""
        return len(self.scanned) + len(self.pending)


@dataclass(frozen=True)
class TicketDecision:
    """A ticket to open. `key` is unique forever (the store opens each key once); `zone_id`
    and `grid_id` route it; `for_supervisor` sends it to the grid's supervisor, not the
    on-duty butler."""

    key: str
    kind: DecisionKind
    route_id: str
    checkpoint_id: str | None
    item_id: str | None
    zone_id: str | None
    grid_id: str | None
    for_supervisor: bool
    text: str


def slots(schedule: Schedule, tz: ZoneInfo, start: float, end: float) -> list[Slot]:
    """The schedule's rounds whose windows overlap [start, end), oldest first."""
    first_day = dt.datetime.fromtimestamp(start, tz).date() - dt.timedelta(days=1)
    last_day = dt.datetime.fromtimestamp(end, tz).date()
    first_day = max(first_day, schedule.effective_from)
    every = 60.0 * schedule.every_min
    grace = 60.0 * schedule.grace_min
    out: list[Slot] = []
    day = first_day
    while day <= last_day:
        for shift in schedule.shifts:
            shift_start = dt.datetime.combine(day, shift.start, tz).timestamp()
            end_day = day if shift.end > shift.start else day + dt.timedelta(days=1)
            shift_end = dt.datetime.combine(end_day, shift.end, tz).timestamp()
            t = shift_start
            while t < shift_end:
                window_end = min(t + every, shift_end)
                if window_end > start and t < end:
                    out.append(
                        Slot(
                            schedule.schedule_id,
                            schedule.route_id,
                            shift.name,
                            t,
                            min(t + schedule.on_time_s, window_end),
                            window_end,
                            window_end + grace,
                        )
                    )
                t += every
        day += dt.timedelta(days=1)
    out.sort(key=lambda s: (s.starts_at, s.schedule_id))
    return out


def round_status(slot: Slot, route: Route, scans: Iterable[Scan], now: float) -> RoundStatus:
    """The state of one round at `now`, from the scans of its route (any order)."""
    seen = {
        s.checkpoint_id
        for s in scans
        if s.route_id == route.route_id
        and slot.starts_at <= s.at < slot.ends_at
        and s.at <= now  # a scan "from the future" (a clock ahead) does not count yet
    }
    ids = [c.checkpoint_id for c in route.checkpoints]
    scanned = tuple(c for c in ids if c in seen)
    pending = tuple(c for c in ids if c not in seen)
    if not pending:
        state = RoundState.DONE
    elif now < slot.starts_at:
        state = RoundState.UPCOMING
    elif now >= slot.missed_at:
        state = RoundState.MISSED
    elif now >= slot.late_at:
        state = RoundState.LATE
    elif scanned:
        state = RoundState.IN_PROGRESS
    else:
        state = RoundState.DUE
    return RoundStatus(slot, state, scanned, pending)


def plan(
    config: RoundsConfig,
    tz: ZoneInfo,
    scans: Sequence[Scan],
    *,
    start: float,
    end: float,
    now: float,
) -> list[RoundStatus]:
    """Every round whose window overlaps [start, end), with its state at `now`."""
    out: list[RoundStatus] = []
    for schedule in config.schedules:
        route = config.route(schedule.route_id)
        assert route is not None  # RoundsConfig checks every schedule's route exists
        route_scans = [s for s in scans if s.route_id == route.route_id]
        out.extend(
            round_status(slot, route, route_scans, now) for slot in slots(schedule, tz, start, end)
        )
    out.sort(key=lambda r: (r.slot.starts_at, r.slot.schedule_id))
    return out


def _schedule(config: RoundsConfig, schedule_id: str) -> Schedule:
    return next(s for s in config.schedules if s.schedule_id == schedule_id)


def missed_decisions(config: RoundsConfig, statuses: Iterable[RoundStatus]) -> list[TicketDecision]:
    """Tickets for the missed rounds among `statuses`: one for a round with nothing scanned,
    else one per checkpoint left out; all for the schedule's grid supervisor."""
    out: list[TicketDecision] = []
    for status in statuses:
        if status.state is not RoundState.MISSED:
            continue
        slot = status.slot
        schedule = _schedule(config, slot.schedule_id)
        route = config.route(slot.route_id)
        assert route is not None
        base = f"missed:{slot.schedule_id}:{int(slot.starts_at)}"
        if not status.scanned:
            out.append(
                TicketDecision(
                    key=base,
                    kind=DecisionKind.ROUND_MISSED,
                    route_id=route.route_id,
                    checkpoint_id=None,
                    item_id=None,
                    zone_id=None,
                    grid_id=schedule.grid_id,
                    for_supervisor=True,
                    text=f"巡检漏检 round missed: {route.name} ({slot.shift})",
                )
            )
            continue
        for checkpoint_id in status.pending:
            checkpoint = route.checkpoint(checkpoint_id)
            assert checkpoint is not None
            out.append(
                TicketDecision(
                    key=f"{base}:{checkpoint_id}",
                    kind=DecisionKind.CHECKPOINT_MISSED,
                    route_id=route.route_id,
                    checkpoint_id=checkpoint_id,
                    item_id=None,
                    zone_id=checkpoint.zone_id,
                    grid_id=schedule.grid_id,
                    for_supervisor=True,
                    text=f"巡检点漏检 checkpoint missed: {checkpoint.name} on {route.name}",
                )
            )
    return out


def failed_item_decisions(route: Route, checkpoint: Checkpoint, scan: Scan) -> list[TicketDecision]:
    """Tickets for the checklist items a scan failed, at the checkpoint's place."""
    out: list[TicketDecision] = []
    for item in checkpoint.checklist:
        if item.item_id not in scan.failed:
            continue
        out.append(
            TicketDecision(
                # The open ticket's key, not a one-off: the same failure found again on the
                # next round merges into the ticket still open for it.
                key=f"failed:{route.route_id}:{checkpoint.checkpoint_id}:{item.item_id}",
                kind=DecisionKind.ITEM_FAILED,
                route_id=route.route_id,
                checkpoint_id=checkpoint.checkpoint_id,
                item_id=item.item_id,
                zone_id=checkpoint.zone_id,
                grid_id=checkpoint.grid_id,
                for_supervisor=False,
                text=f"巡检不合格 {checkpoint.name}: {item.text} (应: {item.pass_criteria})",
            )
        )
    return out


@dataclass(frozen=True)
class Completion:
    """Patrol completion over rounds whose window has closed: checkpoints scanned out of
    checkpoints planned, and rounds done out of rounds planned."""

    checkpoints_done: int
    checkpoints_planned: int
    rounds_done: int
    rounds_planned: int

    @property
    def rate(self) -> float | None:
        """Checkpoints scanned / planned (None when nothing was planned)."""
        if not self.checkpoints_planned:
            return None
        return self.checkpoints_done / self.checkpoints_planned


def completion(statuses: Iterable[RoundStatus], now: float) -> Completion:
    """Completion of the rounds among `statuses` that are over at `now` (missed or done)."""
    closed = [
        s
        for s in statuses
        if s.state is RoundState.MISSED or (s.state is RoundState.DONE and s.slot.missed_at <= now)
    ]
    return Completion(
        checkpoints_done=sum(len(s.scanned) for s in closed),
        checkpoints_planned=sum(s.total for s in closed),
        rounds_done=sum(1 for s in closed if s.state is RoundState.DONE),
        rounds_planned=len(closed),
    )
