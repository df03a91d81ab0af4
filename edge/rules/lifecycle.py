"""Event lifecycle: conditions per track → start, rate-limited updates, end (pure).

One lifecycle per zone. An event starts when a track's condition becomes ready; it gets an
update at most every ``update_interval_s`` while the condition holds; it ends in the first
step where the condition no longer holds (the car left, the track was lost, parking became
legal). A track whose event ended can start a new event (new id) if it qualifies again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from contract import EventPhase
from edge.rules.base import Condition


@dataclass(frozen=True)
class Transition:
    """One publication the pipeline must make."""

    phase: EventPhase
    event_id: str
    seq: int
    track_id: int
    started_at: float
    dwell_s: float
    ended_at: float | None


@dataclass
class _Open:
    event_id: str
    started_at: float
    seq: int
    last_published: float


class EventLifecycle:
    """Open events of one zone, keyed by track id."""

    def __init__(self, update_interval_s: float, new_event_id: Callable[[int, float], str]) -> None:
        self._interval = update_interval_s
        self._new_id = new_event_id
        self._open: dict[int, _Open] = {}

    @property
    def open_tracks(self) -> set[int]:
        """Track ids that have an open event."""
        return set(self._open)

    def event_id(self, track_id: int) -> str | None:
        """The open event id of a track, if any."""
        ev = self._open.get(track_id)
        return ev.event_id if ev else None

    def step(self, conditions: dict[int, Condition], now: float) -> list[Transition]:
        """Transitions caused by this frame's conditions."""
        out: list[Transition] = []
        for track_id in sorted(set(self._open) - set(conditions)):
            ev = self._open.pop(track_id)
            out.append(
                Transition(
                    EventPhase.END,
                    ev.event_id,
                    ev.seq + 1,
                    track_id,
                    ev.started_at,
                    max(0.0, now - ev.started_at),
                    now,
                )
            )
        for track_id, cond in sorted(conditions.items()):
            current = self._open.get(track_id)
            if current is None:
                if not cond.ready:
                    continue
                ev = _Open(self._new_id(track_id, cond.since), cond.since, 0, now)
                self._open[track_id] = ev
                out.append(
                    Transition(
                        EventPhase.START,
                        ev.event_id,
                        0,
                        track_id,
                        cond.since,
                        max(0.0, now - cond.since),
                        None,
                    )
                )
            elif now - current.last_published >= self._interval:
                ev = current
                ev.seq += 1
                ev.last_published = now
                out.append(
                    Transition(
                        EventPhase.UPDATE,
                        ev.event_id,
                        ev.seq,
                        track_id,
                        ev.started_at,
                        max(0.0, now - ev.started_at),
                        None,
                    )
                )
        return out
