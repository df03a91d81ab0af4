"""Event lifecycle, table-driven: conditions per frame in, start/update/end transitions out."""

from __future__ import annotations

import pytest

from contract import EventPhase
from edge.rules import Condition, EventLifecycle

START, UPDATE, END = EventPhase.START, EventPhase.UPDATE, EventPhase.END

# One frame: (now, {track_id: (since, ready)}).
Frame = tuple[float, dict[int, tuple[float, bool]]]
# One publication: (now, phase, event_id, seq, track_id, started_at, dwell_s, ended_at).
Pub = tuple[float, EventPhase, str, int, int, float, float, float | None]


def replay(frames: list[Frame], interval: float = 60.0) -> list[Pub]:
    lifecycle = EventLifecycle(interval, lambda track, since: f"ev-{track}-{since:g}")
    out: list[Pub] = []
    for now, conds in frames:
        conditions = {tid: Condition(tid, since, ready) for tid, (since, ready) in conds.items()}
        for tr in lifecycle.step(conditions, now):
            out.append(
                (
                    now,
                    tr.phase,
                    tr.event_id,
                    tr.seq,
                    tr.track_id,
                    tr.started_at,
                    tr.dwell_s,
                    tr.ended_at,
                )
            )
    return out


PARKED = {1: (0.0, True)}

CASES = [
    pytest.param([(0, {1: (0, False)}), (100, {1: (0, False)}), (200, {})], [], id="never-ready"),
    pytest.param(
        [
            (0, {1: (0, False)}),
            (300, PARKED),
            (330, PARKED),
            (359, PARKED),
            (360, PARKED),
            (400, PARKED),
            (420, PARKED),
            (430, {}),
        ],
        [
            (300, START, "ev-1-0", 0, 1, 0, 300, None),
            (360, UPDATE, "ev-1-0", 1, 1, 0, 360, None),
            (420, UPDATE, "ev-1-0", 2, 1, 0, 420, None),
            (430, END, "ev-1-0", 3, 1, 0, 430, 430),
        ],
        id="start-rate-limited-updates-end",
    ),
    pytest.param(
        [(10, PARKED), (20, {1: (0, False)}), (30, {1: (0, False)}), (40, {})],
        [(10, START, "ev-1-0", 0, 1, 0, 10, None), (40, END, "ev-1-0", 1, 1, 0, 40, 40)],
        id="held-but-not-ready-keeps-the-event-open",
    ),
    pytest.param(
        [(5, PARKED), (6, {}), (8, {1: (7, True)}), (9, {})],
        [
            (5, START, "ev-1-0", 0, 1, 0, 5, None),
            (6, END, "ev-1-0", 1, 1, 0, 6, 6),
            (8, START, "ev-1-7", 0, 1, 7, 1, None),
            (9, END, "ev-1-7", 1, 1, 7, 2, 9),
        ],
        id="qualifying-again-is-a-new-event-with-a-new-id",
    ),
    pytest.param(
        [
            (5, {1: (0, True), 2: (3, False)}),
            (6, {1: (0, True), 2: (3, True)}),
            (7, {2: (3, True)}),
        ],
        [
            (5, START, "ev-1-0", 0, 1, 0, 5, None),
            (6, START, "ev-2-3", 0, 2, 3, 3, None),
            (7, END, "ev-1-0", 1, 1, 0, 7, 7),
        ],
        id="tracks-are-independent",
    ),
]


@pytest.mark.parametrize(("frames", "expected"), CASES)
def test_lifecycle(frames: list[Frame], expected: list[Pub]) -> None:
    assert replay(frames) == expected


def test_event_id_and_seq_over_a_long_event() -> None:
    frames: list[Frame] = [(float(t), PARKED) for t in range(0, 3600, 5)] + [(3600.0, {})]
    pubs = replay(frames, interval=600)
    assert {p[2] for p in pubs} == {"ev-1-0"}
    assert [p[3] for p in pubs] == list(range(len(pubs)))
    assert [p[1] for p in pubs] == [START] + [UPDATE] * (len(pubs) - 2) + [END]
    assert [p[0] for p in pubs] == [0, 600, 1200, 1800, 2400, 3000, 3600]
