"""Events end when their object is gone, not when its lost track finally expires (issue 14).

On the real model with generated clips: a car towed away with nothing in front ends its event
within seconds; a van standing in front of a parked car neither ends nor restarts it; a car
whose wheels the frame's bottom edge cuts off is still in the zone that reaches that edge.
"""

from __future__ import annotations

from contract import EventCategory, EventPhase
from edge.detector import OnnxDetector
from guanjia import scenes as S  # noqa: N812 - short name for many scenario calls
from tests.edge.test_scenarios import T0, by_id, lifecycle_ok, run

# The tracker's own default: a lost stationary track lives a minute. These tests must not
# lean on the short value of the scenario config.
LONG_LOST = {"stationary_s": 1.0, "max_lost_stationary_s": 60.0}


def test_towed_car_ends_its_event_within_seconds(detector: OnnxDetector) -> None:
    scenario = S.car_towed(park_s=10.0, tail_s=10.0)
    out, _ = run(scenario, S.lane_config(tracker=LONG_LOST), detector)
    events = by_id(out)
    assert len(events) == 1, [(o.event.phase, o.event.ts - T0) for o in out]
    (stream,) = events.values()
    lifecycle_ok(stream)
    start, end = stream[0], stream[-1]
    assert start.category is EventCategory.ILLEGAL_PARKING
    assert end.phase is EventPhase.END, "the event is still open 10 s after the car vanished"
    assert end.ended_at is not None
    towed = 12.0
    assert towed < end.ended_at - T0 <= towed + 6.0
    assert end.snapshot is not None


def test_van_in_front_of_a_parked_car_neither_ends_nor_restarts_it(
    detector: OnnxDetector,
) -> None:
    scenario = S.car_behind_van(towed_at=22.0, tail_s=8.0)
    out, pipeline = run(scenario, S.lane_config(tracker=LONG_LOST), detector)
    events = by_id(out)
    assert len(events) == 1, [(o.event.phase, o.event.ts - T0) for o in out]
    (stream,) = events.values()
    lifecycle_ok(stream)
    start, end = stream[0], stream[-1]
    assert start.category is EventCategory.ILLEGAL_PARKING
    # The car stopped at 2 s; the van hid it from 8 s to 16 s (and while pulling in and out).
    assert 2.0 <= start.started_at - T0 <= 3.2
    assert all(e.started_at == start.started_at for e in stream)
    assert end.phase is EventPhase.END
    assert end.ended_at is not None
    assert 22.0 < end.ended_at - T0 <= 28.0  # ended by the tow, not by the van
    assert pipeline.stats().tracks <= 1


def test_car_cut_off_by_the_frame_bottom_is_in_the_zone(detector: OnnxDetector) -> None:
    out, _ = run(S.car_cut_off_by_frame(park_s=8.0), S.lane_config(), detector)
    starts = [o.event for o in out if o.event.phase is EventPhase.START]
    assert [(e.category, e.zone_id) for e in starts] == [
        (EventCategory.ILLEGAL_PARKING, "no-parking-a")
    ]
    assert starts[0].boxes[-1].box[3] == 1.0  # the box really is cut by the bottom edge


def test_one_zone_with_two_rules_raises_both_under_distinct_ids(detector: OnnxDetector) -> None:
    kerb = {
        "id": "kerb",
        "polygon": [[0.0, 0.75], [0.5, 0.75], [0.5, 1.0], [0.0, 1.0]],
        "rules": {
            "illegal_parking": {"dwell_s": 4.0, "update_interval_s": 2.0},
            "fire_lane_blocked": {"dwell_s": 3.0},
        },
    }
    out, _ = run(S.car_parks(park_s=8.0, tail_s=2.0), S.lane_config(zones=[kerb]), detector)
    starts = [o.event for o in out if o.event.phase is EventPhase.START]
    assert sorted((e.category, e.zone_id) for e in starts) == [
        (EventCategory.FIRE_LANE_BLOCKED, "kerb"),
        (EventCategory.ILLEGAL_PARKING, "kerb"),
    ]
    assert len({e.event_id for e in starts}) == 2
    for events in by_id(out).values():
        lifecycle_ok(events)
