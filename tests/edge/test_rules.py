"""The four zone rules, table-driven, on hand-built tracks with `now` injected.

Every zone is `factories.SQUARE` with inertia 1; a track's membership is set by observing it at
its entry time, exactly as the pipeline does after a detector run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import time as dtime

import pytest

from contract import EventCategory, ObjectCategory, Severity
from edge.boxes import RelBox
from edge.camera_config import ElevatorZone, LitterZone
from edge.rules import Condition, RuleContext, make_rule
from edge.tracker import Track
from edge.zones import ZoneMemberships
from tests.edge.factories import IN, OUT, make_track, zone

V = ObjectCategory.VEHICLE
P = ObjectCategory.PERSON
B = ObjectCategory.TWO_WHEELER
L = ObjectCategory.LITTER_CANDIDATE
NOON = dtime(12, 0)
BIG = (0.25, 0.6, 0.45, 0.9)  # 6 % of the frame
TINY = (0.39, 0.78, 0.41, 0.8)  # 0.04 % of the frame


def evaluate_once(
    rule_kind: str,
    track: Track,
    *,
    entered: float,
    now: float,
    local: dtime = NOON,
    **zone_fields: object,
) -> dict[int, Condition]:
    """One rule evaluation with one track that entered the zone at `entered`."""
    z = zone(rule_kind, **zone_fields)
    memberships = ZoneMemberships([z])
    memberships.observe([track], entered)
    rule = make_rule(z)
    return rule.evaluate(RuleContext(now, local, [track], memberships))


def summary(conditions: dict[int, Condition]) -> dict[int, tuple[float, bool]]:
    return {tid: (c.since, c.ready) for tid, c in conditions.items()}


# --- illegal_parking: dwell 300 s by default -------------------------------------------------

OVERNIGHT = [{"start": "22:00", "end": "07:00"}]

PARKING = [
    pytest.param(make_track(stationary_since=600), 600, NOON, [], {1: (600, True)}, id="400s"),
    pytest.param(make_track(stationary_since=700), 700, NOON, [], {1: (700, True)}, id="300s"),
    pytest.param(make_track(stationary_since=800), 800, NOON, [], {1: (800, False)}, id="200s"),
    pytest.param(
        make_track(stationary_since=0), 900, NOON, [], {1: (900, False)}, id="since-entry"
    ),
    pytest.param(make_track(), 0, NOON, [], {}, id="moving"),
    pytest.param(make_track(stationary_since=0, confirmed=False), 0, NOON, [], {}, id="tentative"),
    pytest.param(make_track(1, P, stationary_since=0), 0, NOON, [], {}, id="person"),
    pytest.param(make_track(1, B, stationary_since=0), 0, NOON, [], {}, id="two-wheeler"),
    pytest.param(make_track(box=OUT, stationary_since=0), 0, NOON, [], {}, id="outside"),
    pytest.param(
        make_track(stationary_since=0), 0, dtime(23, 30), OVERNIGHT, {}, id="allowed-23:30"
    ),
    pytest.param(make_track(stationary_since=0), 0, dtime(3, 0), OVERNIGHT, {}, id="allowed-03:00"),
    pytest.param(
        make_track(stationary_since=0), 0, dtime(6, 59), OVERNIGHT, {}, id="allowed-06:59"
    ),
    pytest.param(
        make_track(stationary_since=0),
        0,
        dtime(7, 0),
        OVERNIGHT,
        {1: (0, True)},
        id="illegal-07:00-end-exclusive",
    ),
    pytest.param(
        make_track(stationary_since=0),
        0,
        dtime(21, 59),
        OVERNIGHT,
        {1: (0, True)},
        id="illegal-21:59",
    ),
    pytest.param(
        make_track(stationary_since=0), 0, dtime(22, 0), OVERNIGHT, {}, id="allowed-22:00"
    ),
]


@pytest.mark.parametrize(("track", "entered", "local", "windows", "expected"), PARKING)
def test_illegal_parking(
    track: Track,
    entered: float,
    local: dtime,
    windows: list[dict[str, str]],
    expected: dict[int, tuple[float, bool]],
) -> None:
    got = evaluate_once(
        "illegal_parking", track, entered=entered, now=1000, local=local, allowed_windows=windows
    )
    assert summary(got) == expected


# --- fire_lane_blocked: dwell 60 s, non-vehicles count from 1 % of the frame ------------------

FIRE_LANE = [
    pytest.param(make_track(stationary_since=0), 60, {1: (0, True)}, id="car-60s"),
    pytest.param(make_track(stationary_since=0), 59, {1: (0, False)}, id="car-59s"),
    pytest.param(make_track(), 500, {}, id="car-driving-through"),
    pytest.param(make_track(1, P, stationary_since=0), 500, {}, id="person-never"),
    pytest.param(make_track(1, B, BIG, stationary_since=0), 60, {1: (0, True)}, id="big-bike"),
    pytest.param(make_track(1, L, BIG, stationary_since=0), 60, {1: (0, True)}, id="big-junk"),
    pytest.param(make_track(1, L, TINY, stationary_since=0), 500, {}, id="bottle-too-small"),
    pytest.param(make_track(box=OUT, stationary_since=0), 500, {}, id="outside"),
]


@pytest.mark.parametrize(("track", "now", "expected"), FIRE_LANE)
def test_fire_lane(track: Track, now: float, expected: dict[int, tuple[float, bool]]) -> None:
    got = evaluate_once("fire_lane_blocked", track, entered=0, now=now)
    assert summary(got) == expected


def test_rule_categories_and_severities() -> None:
    kinds = {
        "illegal_parking": (EventCategory.ILLEGAL_PARKING, Severity.NORMAL),
        "fire_lane_blocked": (EventCategory.FIRE_LANE_BLOCKED, Severity.URGENT),
        "ebike_in_elevator": (EventCategory.EBIKE_IN_ELEVATOR, Severity.URGENT),
        "litter": (EventCategory.LITTER, Severity.LOW),
    }
    for kind, (category, severity) in kinds.items():
        rule = make_rule(zone(kind))
        assert (rule.category, rule.severity, rule.zone_id) == (category, severity, "z")


# --- ebike_in_elevator: 2 s of consecutive sightings (3 at least) to start, 5 empty runs to end -


@dataclass(frozen=True)
class Seen:
    """One track in one detector run: seen (inside or not) or missed."""

    track_id: int
    category: ObjectCategory = B
    box: RelBox = IN
    seen: bool = True


def runs(n: int, *tracks: Seen) -> list[list[Seen]]:
    return [list(tracks) for _ in range(n)]


def elevator(steps: list[list[Seen]], fps: float = 5.0) -> dict[int, tuple[float, bool]]:
    """Replay detector runs at `fps` through memberships and the rule; the last conditions."""
    z = zone("ebike_in_elevator")
    assert isinstance(z, ElevatorZone)
    assert (z.dwell_s, z.min_sightings, z.clear_misses) == (2.0, 3, 5)
    memberships = ZoneMemberships([z])
    rule = make_rule(z)
    missed: dict[int, int] = {}
    got: dict[int, Condition] = {}
    for i, step in enumerate(steps):
        now = i / fps
        tracks = []
        for s in step:
            missed[s.track_id] = 0 if s.seen else missed.get(s.track_id, 0) + 1
            tracks.append(
                make_track(
                    s.track_id, s.category, s.box, seen=s.seen, missed_runs=missed[s.track_id]
                )
            )
        memberships.observe(tracks, now)
        got = rule.evaluate(RuleContext(now, NOON, tracks, memberships))
    return {tid: (round(c.since, 3), c.ready) for tid, c in got.items()}


BIKE, MISSED = Seen(1), Seen(1, seen=False)
BIKE2 = Seen(2)

ELEVATOR = [
    pytest.param(runs(30, Seen(1, P)), {}, id="person-alone-never-triggers"),
    pytest.param(runs(30, Seen(1, P), Seen(2, P)), {}, id="two-persons-never-trigger"),
    pytest.param(runs(10, BIKE), {1: (0.0, False)}, id="10-runs-1.8s-not-yet"),
    pytest.param(runs(11, BIKE), {1: (0.0, True)}, id="11-runs-2s-ready"),
    pytest.param(runs(10, Seen(1, box=OUT)), {}, id="outside-the-cabin"),
    pytest.param(
        [*runs(5, BIKE), *runs(1, MISSED), *runs(10, BIKE)],
        {1: (1.2, False)},
        id="a-miss-restarts-the-count",
    ),
    pytest.param(
        [*runs(11, BIKE), *runs(4, MISSED)], {1: (0.0, False)}, id="held-through-4-empty-runs"
    ),
    pytest.param([*runs(11, BIKE), *runs(5, MISSED)], {}, id="ends-after-5-empty-runs"),
    pytest.param(
        [*runs(11, BIKE), *runs(12, BIKE, BIKE2)],
        {1: (0.0, True), 2: (2.2, False)},
        id="a-second-bike-does-not-start-a-second-event",
    ),
    pytest.param(
        [*runs(11, BIKE), *runs(12, MISSED, BIKE2)],
        {1: (0.0, False), 2: (2.2, False)},
        id="same-bike-under-a-new-track-id-holds-the-event",
    ),
    pytest.param(
        [*runs(11, BIKE), *runs(12, MISSED, BIKE2), *runs(5, MISSED, Seen(2, seen=False))],
        {},
        id="ends-when-no-two-wheeler-at-all",
    ),
    pytest.param(
        [*runs(11, BIKE), *runs(2, Seen(1, box=OUT))], {}, id="rolled-out-and-seen-outside"
    ),
]


@pytest.mark.parametrize(("steps", "expected"), ELEVATOR)
def test_ebike_in_elevator(
    steps: list[list[Seen]], expected: dict[int, tuple[float, bool]]
) -> None:
    assert elevator(steps) == expected


@pytest.mark.parametrize(
    ("fps", "n", "ready"),
    [
        pytest.param(10.0, 20, False, id="10fps-1.9s-not-yet"),
        pytest.param(10.0, 21, True, id="10fps-2s-ready"),
        pytest.param(15.0, 30, False, id="15fps-1.93s-not-yet"),
        pytest.param(15.0, 31, True, id="15fps-2s-ready"),
        pytest.param(1.0, 3, True, id="1fps-2s-ready"),
        pytest.param(0.5, 2, False, id="0.5fps-2s-but-only-2-sightings"),
        pytest.param(0.5, 3, True, id="0.5fps-3-sightings"),
    ],
)
def test_ebike_dwell_is_in_seconds_whatever_the_fps(fps: float, n: int, ready: bool) -> None:
    # 10 runs used to mean 0.9 s at 10 fps and 9 s at 1 fps; 2 s is now 2 s at any rate.
    assert elevator(runs(n, BIKE), fps) == {1: (0.0, ready)}


# --- litter: reference 10 s, dwell 60 s, unattended, only its categories ----------------------


@dataclass(frozen=True)
class Scene:
    """The tracks the rule sees at one time."""

    now: float
    tracks: list[Track] = field(default_factory=list)


BOTTLE_AT_0 = make_track(1, L, stationary_since=0.0, last_seen=0.0)


def bottle(now: float, since: float = 20.0, track_id: int = 2) -> Track:
    return make_track(track_id, L, stationary_since=since, last_seen=now)


def person(now: float, box: RelBox = IN) -> Track:
    return make_track(9, P, box, stationary_since=0.0, last_seen=now)


def litter(scenes: list[Scene]) -> dict[int, tuple[float, bool]]:
    z = zone("litter", categories=["litter_candidate", "two_wheeler"])
    assert isinstance(z, LitterZone)
    assert (z.dwell_s, z.reference_s) == (60.0, 10.0)
    memberships = ZoneMemberships([z])
    rule = make_rule(z)
    got: dict[int, Condition] = {}
    for scene in scenes:
        memberships.observe(scene.tracks, scene.now)
        got = rule.evaluate(RuleContext(scene.now, NOON, scene.tracks, memberships))
    return summary(got)


LITTER = [
    pytest.param(
        [Scene(0), Scene(20, [bottle(20)]), Scene(80, [bottle(80)])],
        {2: (20, True)},
        id="new-bottle-after-60s",
    ),
    pytest.param(
        [Scene(0), Scene(20, [bottle(20)]), Scene(79, [bottle(79)])],
        {2: (20, False)},
        id="not-before-60s",
    ),
    pytest.param(
        [Scene(0, [BOTTLE_AT_0]), Scene(200, [BOTTLE_AT_0])], {}, id="reference-never-counts"
    ),
    pytest.param(
        [Scene(0, [BOTTLE_AT_0]), Scene(200, [bottle(200, since=100, track_id=5)])],
        {},
        id="reference-found-again-under-a-new-track",
    ),
    pytest.param(
        [Scene(0), *[Scene(t, [bottle(t), person(t)]) for t in (20, 80, 200)]],
        {},
        id="attended-by-a-person-standing-there",
    ),
    pytest.param(
        [
            Scene(0),
            Scene(20, [bottle(20), person(20)]),
            Scene(50, [bottle(50), person(50)]),
            Scene(51, [bottle(51)]),
            Scene(109, [bottle(109)]),
        ],
        {2: (50, False)},
        id="dwell-counts-from-the-last-sighting-of-the-person",
    ),
    pytest.param(
        [
            Scene(0),
            Scene(20, [bottle(20), person(20)]),
            Scene(50, [bottle(50), person(50)]),
            Scene(51, [bottle(51)]),
            Scene(110, [bottle(110)]),
        ],
        {2: (50, True)},
        id="ready-60s-after-the-person-was-last-seen-on-it",
    ),
    pytest.param(
        [Scene(0), Scene(20, [bottle(20), person(16)]), Scene(80, [bottle(80), person(16)])],
        {2: (20, True)},
        id="a-person-lost-4s-ago-attends-nothing",
    ),
    pytest.param(
        [Scene(0), *[Scene(t, [person(t)]) for t in (20, 200)]],
        {},
        id="people-standing-do-not-count",
    ),
    pytest.param(
        [Scene(0), *[Scene(t, [make_track(3, V, stationary_since=20)]) for t in (20, 200)]],
        {},
        id="parked-vehicles-do-not-count",
    ),
    pytest.param(
        [Scene(0), *[Scene(t, [make_track(3, B, stationary_since=20)]) for t in (20, 90)]],
        {3: (20, True)},
        id="a-dumped-bike-counts-when-watched",
    ),
    pytest.param(
        [Scene(0), *[Scene(t, [make_track(3, L, OUT, stationary_since=20)]) for t in (20, 200)]],
        {},
        id="outside-the-zone",
    ),
    pytest.param(
        [Scene(0), *[Scene(t, [make_track(3, L)]) for t in (20, 200)]],
        {},
        id="still-moving",
    ),
]


@pytest.mark.parametrize(("scenes", "expected"), LITTER)
def test_litter(scenes: list[Scene], expected: dict[int, tuple[float, bool]]) -> None:
    assert litter(scenes) == expected
