"""When the detector runs (`DetectorSchedule`), table-driven on hand-built motion and tracks.

The last detector run was at t=10; keepalive 2 s, idle keepalive 30 s, stationary_s 2 s
(defaults). Zones: a no-parking `SQUARE`, and for the elevator cases a cabin `SQUARE`.
"""

from __future__ import annotations

from typing import Any

import pytest

from contract import ObjectCategory
from edge.camera_config import CameraConfig
from edge.motion import Motion
from edge.schedule import DetectorSchedule
from edge.tracker import Track
from edge.zones import ZoneMemberships
from tests.edge.factories import IN, SQUARE, make_track

B = ObjectCategory.TWO_WHEELER
LAST_RUN = 10.0
GHOST = (0.31, 0.62, 0.49, 0.79)  # inside IN: the fading ghost of a stopped object
FAR = (0.8, 0.0, 0.95, 0.1)  # far from every zone


def still(since: float, **kw: Any) -> Track:
    """Confirmed, stopped at `since` (anchor not moved since), not yet stationary."""
    track = make_track(last_seen=LAST_RUN, **kw)
    track.anchor_since = since
    return track


def moving(**kw: Any) -> Track:
    """Confirmed and moving: a moving track re-anchors on every sighting."""
    track = make_track(last_seen=LAST_RUN, **kw)
    track.anchor_since = track.last_seen
    return track


def schedule(rule: str, **motion: Any) -> DetectorSchedule:
    config = CameraConfig.model_validate(
        {
            "camera_id": "cam",
            "source": "x",
            "motion": motion,
            "zones": [{"id": "z", "rule": rule, "polygon": SQUARE, "inertia": 1}],
        }
    )
    s = DetectorSchedule(config)
    s.last_run = LAST_RUN
    return s


CASES = [
    pytest.param({"enabled": False}, Motion(), [], 10.2, "gate off", id="gate-off"),
    pytest.param({}, Motion(first_frame=True), [], 10.2, "first frame", id="first-frame"),
    pytest.param({}, Motion(), [], 10.2, None, id="nothing"),
    pytest.param({}, Motion(), [], 40.0, "idle keepalive", id="idle-keepalive"),
    pytest.param({}, Motion(regions=[IN]), [], 10.2, "motion", id="motion-in-zone"),
    pytest.param({}, Motion(regions=[FAR]), [], 10.2, None, id="motion-far-from-zones"),
    pytest.param(
        {},
        Motion(regions=[FAR]),
        [moving(box=FAR, seen=False)],
        10.2,
        "motion",
        id="motion-on-a-lost-moving-object-away-from-zones",
    ),
    pytest.param(
        {},
        Motion(),
        [make_track(confirmed=False, last_seen=LAST_RUN)],
        10.2,
        "new track",
        id="tentative-track",
    ),
    pytest.param({}, Motion(), [moving()], 10.2, "moving track", id="moving-track"),
    pytest.param({}, Motion(), [moving(seen=False)], 10.2, None, id="lost-moving-track"),
    pytest.param({}, Motion(), [still(9.0)], 10.2, None, id="stopped-not-yet-due"),
    pytest.param({}, Motion(), [still(8.2)], 10.2, "settle", id="stopped-due-to-settle"),
    pytest.param({}, Motion(), [still(8.2, seen=False)], 10.2, None, id="stopped-but-missed"),
    pytest.param(
        {}, Motion(regions=[GHOST]), [still(9.0)], 10.2, None, id="ghost-of-a-stopped-object"
    ),
    pytest.param(
        {},
        Motion(regions=[GHOST]),
        [make_track(stationary_since=0.0, last_seen=LAST_RUN)],
        10.2,
        None,
        id="ghost-of-a-parked-object",
    ),
    pytest.param(
        {},
        Motion(),
        [make_track(stationary_since=0.0, last_seen=LAST_RUN)],
        11.8,
        None,
        id="parked-before-keepalive",
    ),
    pytest.param(
        {},
        Motion(),
        [make_track(stationary_since=0.0, last_seen=LAST_RUN)],
        12.0,
        "keepalive",
        id="parked-keepalive",
    ),
]


@pytest.mark.parametrize(("motion_cfg", "motion", "tracks", "now", "reason"), CASES)
def test_schedule(
    motion_cfg: dict[str, Any], motion: Motion, tracks: list[Track], now: float, reason: str | None
) -> None:
    s = schedule("illegal_parking", **motion_cfg)
    memberships = ZoneMemberships([])
    assert s.should_run(motion, tracks, memberships, now) is (reason is not None)
    assert s.reason == reason


@pytest.mark.parametrize(
    ("seen_runs", "missed_runs", "reason"),
    [
        (3, 0, "elevator count"),
        (10, 0, "elevator count"),  # 1.8 s of sightings: not yet the 2 s dwell
        (11, 0, None),  # 2 s: confirmed, the keepalive takes over
        (11, 1, "elevator clear"),
        (11, 4, "elevator clear"),
        (11, 5, None),  # the cabin is empty: the event has ended
    ],
)
def test_schedule_in_the_elevator(seen_runs: int, missed_runs: int, reason: str | None) -> None:
    s = schedule("ebike_in_elevator")
    memberships = ZoneMemberships(list(s._zones))
    bike = make_track(1, B, IN, stationary_since=0.0, last_seen=LAST_RUN)
    for i in range(seen_runs):
        memberships.observe([bike], i * 0.2)
    bike.missed_runs = missed_runs
    bike.seen_last_update = missed_runs == 0
    if missed_runs:
        memberships.observe([bike], LAST_RUN)
    now = LAST_RUN if missed_runs else (seen_runs - 1) * 0.2
    s.should_run(Motion(), [bike], memberships, now)
    assert s.reason == reason
