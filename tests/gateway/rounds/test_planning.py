"""Rounds planning with a fake clock: slots, states, missed and failed decisions, completion."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from gateway.rounds.config import RoundsConfig
from gateway.rounds.planning import (
    DecisionKind,
    RoundState,
    Scan,
    completion,
    failed_item_decisions,
    missed_decisions,
    plan,
    round_status,
    slots,
)
from gateway.sites import SiteConfigError, parse_site

TZ = ZoneInfo("Asia/Shanghai")


def at(day: int, hh: int, mm: int = 0) -> float:
    """A local time on 2026-03-<day> in the site's zone."""
    return dt.datetime(2026, 3, day, hh, mm, tzinfo=TZ).timestamp()


def _checkpoint(cid: str, kind: str, items: list[str], photo: bool = False) -> dict[str, object]:
    return {
        "checkpoint_id": cid,
        "name": f"点 {cid}",
        "kind": kind,
        "tag_id": f"tag-{cid}",
        "zone_id": f"z-{cid}",
        "checklist": [
            {"item_id": i, "text": i, "pass_criteria": "ok", "photo_required": photo} for i in items
        ],
    }


CONFIG = RoundsConfig.model_validate(
    {
        "routes": [
            {
                "route_id": "fire",
                "name": "消防巡检",
                "checkpoints": [
                    _checkpoint("ext1", "fire_extinguisher", ["pressure", "seal"]),
                    _checkpoint("door1", "fire_door", ["closes"], photo=True),
                ],
            },
            {
                "route_id": "lane",
                "name": "消防通道",
                "checkpoints": [
                    _checkpoint("lane1", "fire_lane", ["clear"]),
                    _checkpoint("shed1", "charging_shed", ["no_smoke"]),
                ],
            },
        ],
        "schedules": [
            {
                "schedule_id": "fire-day",
                "route_id": "fire",
                "grid_id": "g1",
                "every_min": 240,
                "shifts": [{"name": "day", "start": "08:00", "end": "20:00"}],
                "effective_from": "2026-03-01",
            },
            {
                "schedule_id": "lane-night",
                "route_id": "lane",
                "grid_id": "g2",
                "every_min": 360,
                "grace_min": 30,
                "shifts": [{"name": "night", "start": "20:00", "end": "08:00"}],
                "effective_from": "2026-03-01",
            },
        ],
    }
)


def test_slots_follow_shifts_in_the_site_time_zone_across_midnight() -> None:
    fire = slots(CONFIG.schedules[0], TZ, at(10, 0), at(11, 0))
    assert [s.starts_at for s in fire] == [at(10, 8), at(10, 12), at(10, 16)]
    assert fire[0].late_at == at(10, 10)  # half of every_min
    assert fire[-1].ends_at == at(10, 20)
    night = slots(CONFIG.schedules[1], TZ, at(10, 0), at(11, 0))
    # The night of the 9th still runs on the 10th until 08:00; the 10th's starts at 20:00.
    assert [s.starts_at for s in night] == [at(9, 20), at(10, 2), at(10, 20)]
    assert night[1].missed_at == at(10, 8, 30)  # window end 08:00 + 30 min grace


def test_no_slot_before_effective_from() -> None:
    assert slots(CONFIG.schedules[0], TZ, at(1, 0) - 3 * 86400, at(1, 0)) == []


ROUTE = CONFIG.routes[0]
SLOT = slots(CONFIG.schedules[0], TZ, at(10, 8), at(10, 9))[0]  # 08:00-12:00, late 10:00


@pytest.mark.parametrize(
    ("scanned", "now", "state"),
    [
        ((), at(10, 7), RoundState.UPCOMING),
        ((), at(10, 8), RoundState.DUE),
        (("ext1",), at(10, 9), RoundState.IN_PROGRESS),
        (("ext1",), at(10, 10), RoundState.LATE),
        ((), at(10, 11, 59), RoundState.LATE),
        (("ext1", "door1"), at(10, 9), RoundState.DONE),
        (("ext1", "door1"), at(10, 13), RoundState.DONE),
        (("ext1",), at(10, 12), RoundState.MISSED),
        ((), at(10, 12), RoundState.MISSED),
    ],
)
def test_round_state(scanned: tuple[str, ...], now: float, state: RoundState) -> None:
    scans = [Scan(n, "fire", c, at(10, 8, 30 + n), "w") for n, c in enumerate(scanned)]
    assert round_status(SLOT, ROUTE, scans, now).state is state


@pytest.mark.parametrize(
    ("scan_at", "counts"),
    [
        (at(10, 7, 59), False),  # before the window
        (at(10, 8), True),
        (at(10, 11, 59), True),
        (at(10, 12), False),  # the next round's
    ],
)
def test_a_scan_counts_only_inside_the_window(scan_at: float, counts: bool) -> None:
    status = round_status(SLOT, ROUTE, [Scan(1, "fire", "ext1", scan_at, "w")], at(10, 13))
    assert ("ext1" in status.scanned) is counts


def test_a_scan_of_another_route_does_not_count() -> None:
    status = round_status(SLOT, ROUTE, [Scan(1, "lane", "ext1", at(10, 9), "w")], at(10, 9))
    assert status.scanned == ()


def test_a_day_of_two_routes_gives_exactly_the_expected_tickets_and_completion() -> None:
    """Fire route: 08, 12, 16 rounds; 12:00 misses the door. Lane route: the night of the
    10th (20:00, 02:00): complete, but the 02:00 round fails the charging shed."""
    scans = [
        Scan(1, "fire", "ext1", at(10, 8, 10), "w"),
        Scan(2, "fire", "door1", at(10, 8, 20), "w"),
        Scan(3, "fire", "ext1", at(10, 12, 30), "w"),  # door1 missed in the 12:00 round
        Scan(4, "fire", "ext1", at(10, 16, 10), "w"),
        Scan(5, "fire", "door1", at(10, 16, 40), "w"),
        Scan(6, "lane", "lane1", at(10, 20, 30), "w"),
        Scan(7, "lane", "shed1", at(10, 20, 40), "w"),
        Scan(8, "lane", "lane1", at(11, 2, 30), "w"),
        Scan(9, "lane", "shed1", at(11, 2, 40), "w", frozenset({"no_smoke"})),
    ]
    now = at(11, 9)
    statuses = plan(CONFIG, TZ, scans, start=at(10, 8), end=at(11, 8), now=now)
    assert [(s.slot.schedule_id, s.state) for s in statuses] == [
        ("fire-day", RoundState.DONE),
        ("fire-day", RoundState.MISSED),
        ("fire-day", RoundState.DONE),
        ("lane-night", RoundState.DONE),
        ("lane-night", RoundState.DONE),
    ]
    missed = missed_decisions(CONFIG, statuses)
    assert [(d.kind, d.checkpoint_id, d.grid_id, d.for_supervisor) for d in missed] == [
        (DecisionKind.CHECKPOINT_MISSED, "door1", "g1", True)
    ]
    assert missed[0].key == f"missed:fire-day:{int(at(10, 12))}:door1"
    lane = CONFIG.routes[1]
    failed = [
        d
        for scan in scans
        for d in failed_item_decisions(
            lane if scan.route_id == "lane" else ROUTE,
            (lane if scan.route_id == "lane" else ROUTE).checkpoint(scan.checkpoint_id),  # type: ignore[arg-type]
            scan,
        )
    ]
    assert [(d.kind, d.checkpoint_id, d.item_id, d.zone_id) for d in failed] == [
        (DecisionKind.ITEM_FAILED, "shed1", "no_smoke", "z-shed1")
    ]
    figure = completion(statuses, now)
    assert (figure.checkpoints_done, figure.checkpoints_planned) == (9, 10)
    assert (figure.rounds_done, figure.rounds_planned) == (4, 5)
    assert figure.rate == pytest.approx(0.9)


def test_a_round_with_nothing_scanned_is_one_ticket_for_the_supervisor() -> None:
    statuses = plan(CONFIG, TZ, [], start=at(10, 8), end=at(10, 9), now=at(10, 12))
    missed = missed_decisions(CONFIG, statuses)
    assert [(d.kind, d.checkpoint_id, d.key) for d in missed] == [
        (DecisionKind.ROUND_MISSED, None, f"missed:fire-day:{int(at(10, 8))}")
    ]


def test_planning_is_stable_so_keys_repeat_exactly() -> None:
    """Planning twice (another tick, another replica) names the same tickets."""
    one = missed_decisions(
        CONFIG, plan(CONFIG, TZ, [], start=at(10, 0), end=at(10, 23), now=at(11, 9))
    )
    two = missed_decisions(
        CONFIG, plan(CONFIG, TZ, [], start=at(10, 0), end=at(10, 23), now=at(11, 9))
    )
    assert one == two
    # 3 day rounds; night rounds from 20:00 on the 9th, 02:00 and 20:00 on the 10th.
    assert len({d.key for d in one}) == len(one) == 6


BASE = {"site_id": "s1", "name": "S"}


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"timezone": "Mars/Base"}, "s.yaml: timezone: 'Mars/Base' is not an IANA time zone"),
        ({"places": [{"place_id": "p", "name": "P"}]}, "s.yaml: places[0]: give zone_id"),
        (
            {"rounds": {"schedules": [{**CONFIG.schedules[0].model_dump(), "route_id": "x"}]}},
            "s.yaml: rounds.schedules[0].route_id: 'x' is not a route of this site",
        ),
        ({"colour": "red"}, "s.yaml: colour: Extra inputs are not permitted"),
    ],
)
def test_site_file_errors_are_one_line(doc: dict[str, object], message: str) -> None:
    with pytest.raises(SiteConfigError) as err:
        parse_site({**BASE, **doc}, "s.yaml")
    assert str(err.value).startswith(message)
    assert "\n" not in str(err.value)
