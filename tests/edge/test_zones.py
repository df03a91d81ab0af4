"""Zone geometry and membership with inertia, table-driven, on hand-built tracks."""

from __future__ import annotations

import pytest

from edge.boxes import RelBox
from edge.tracker import Track
from edge.zones import ZoneMemberships, box_near_zone, point_in_polygon
from tests.edge import factories
from tests.edge.factories import IN, SQUARE, zone

TRIANGLE = [(0.0, 0.0), (1.0, 0.0), (0.0, 1.0)]
FULL = [(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0)]


def zones(inertia: int) -> ZoneMemberships:
    return ZoneMemberships([zone("illegal_parking", inertia=inertia)])


def make_track(box: RelBox, *, track_id: int = 1, seen: bool = True) -> Track:
    return factories.make_track(track_id, box=box, seen=seen)


@pytest.mark.parametrize(
    ("x", "y", "polygon", "inside"),
    [
        (0.4, 0.7, SQUARE, True),
        (0.1, 0.7, SQUARE, False),
        (0.4, 0.4, SQUARE, False),
        (0.2, 0.2, TRIANGLE, True),
        (0.6, 0.6, TRIANGLE, False),  # beyond the hypotenuse
        # The frame's edges belong to a zone drawn to them (issue 14): a box cut by the bottom
        # edge has its bottom-centre at y = 1.0.
        (0.4, 1.0, SQUARE, True),
        (1.0, 0.5, FULL, True),
        (0.5, 1.0, FULL, True),
        (0.0, 0.0, FULL, True),
        (1.0, 1.0, FULL, True),
        (0.7, 1.0, SQUARE, False),  # on the bottom edge, but right of the zone
    ],
)
def test_point_in_polygon(
    x: float, y: float, polygon: list[tuple[float, float]], inside: bool
) -> None:
    assert point_in_polygon(x, y, polygon) is inside


@pytest.mark.parametrize(
    ("box", "margin", "near"),
    [
        ((0.3, 0.6, 0.4, 0.7), 0.0, True),
        ((0.62, 0.6, 0.7, 0.7), 0.0, False),
        ((0.62, 0.6, 0.7, 0.7), 0.05, True),
        ((0.0, 0.0, 0.1, 0.1), 0.05, False),
    ],
)
def test_box_near_zone(box: RelBox, margin: float, near: bool) -> None:
    assert box_near_zone(box, SQUARE, margin) is near


# Boxes: the bottom-centre decides, not the box's overlap with the zone.
OUT = (0.3, 0.1, 0.5, 0.4)  # bottom-centre (0.4, 0.4): above the zone
TOP_IN_FEET_OUT = (0.5, 0.6, 0.9, 0.9)  # most of it overlaps; bottom-centre (0.7, 0.9) is out
FEET_IN = (0.1, 0.1, 0.5, 0.55)  # mostly outside; bottom-centre (0.3, 0.55) is in


@pytest.mark.parametrize(
    ("inertia", "boxes", "inside", "entered_at"),
    [
        pytest.param(1, [IN], True, 0.0, id="inertia-1-enters-at-once"),
        pytest.param(3, [IN, IN], False, None, id="two-of-three-not-yet"),
        pytest.param(3, [IN, IN, IN], True, 0.0, id="three-in-a-row-entered-at-first"),
        pytest.param(3, [OUT, IN, IN, IN], True, 1.0, id="entered-at-first-of-the-streak"),
        pytest.param(3, [IN, IN, OUT, IN, IN], False, None, id="a-jitter-out-restarts-count"),
        pytest.param(3, [IN, IN, IN, OUT, OUT], True, 0.0, id="leaving-needs-inertia-too"),
        pytest.param(3, [IN, IN, IN, OUT, OUT, OUT], False, None, id="left"),
        pytest.param(1, [TOP_IN_FEET_OUT], False, None, id="bottom-centre-out"),
        pytest.param(1, [FEET_IN], True, 0.0, id="bottom-centre-in"),
    ],
)
def test_membership_with_inertia(
    inertia: int, boxes: list[RelBox], inside: bool, entered_at: float | None
) -> None:
    memberships = zones(inertia)
    for t, box in enumerate(boxes):
        memberships.observe([make_track(box)], float(t))
    member = memberships.get("z", 1)
    assert member.inside is inside
    assert member.entered_at == entered_at


def test_unseen_tracks_keep_their_membership_but_lose_their_count() -> None:
    memberships = zones(1)
    for t in range(4):
        memberships.observe([make_track(IN)], float(t))
    assert memberships.get("z", 1).consecutive_inside == 4
    assert memberships.get("z", 1).consecutive_since == 0.0
    # A missed run (seen_last_update False): still inside, the consecutive count restarts.
    memberships.observe([make_track(OUT, seen=False)], 4.0)
    member = memberships.get("z", 1)
    assert (member.inside, member.entered_at, member.consecutive_inside) == (True, 0.0, 0)
    assert member.consecutive_since is None
    memberships.observe([make_track(IN)], 5.0)
    assert memberships.get("z", 1).consecutive_since == 5.0


def test_forget_drops_a_track() -> None:
    memberships = zones(1)
    memberships.observe([make_track(IN, track_id=7)], 0.0)
    assert memberships.get("z", 7).inside
    memberships.forget(7)
    assert not memberships.get("z", 7).inside
