"""The figures' maths (pure, table-tested): percentiles, shares, grouping by quarter."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest

from gateway.figures import GroupBy, TicketFacts, compute, grouped, median, p90, quarter

TZ = ZoneInfo("Asia/Shanghai")


@pytest.mark.parametrize(
    ("values", "p90_value", "median_value"),
    [
        ([], None, None),
        ([5.0], 5.0, 5.0),
        ([float(v) for v in range(1, 11)], 9.0, 5.5),  # 0.9 * 10 = 9: the 9th smallest
        ([float(v) for v in range(1, 12)], 10.0, 6.0),  # ceil(9.9) = 10
        ([float(v) for v in range(20, 0, -1)], 18.0, 10.5),  # unsorted input
    ],
)
def test_nearest_rank_p90_and_median(
    values: list[float], p90_value: float | None, median_value: float | None
) -> None:
    assert p90(values) == p90_value
    assert median(values) == median_value


def _fact(n: int, **kw: object) -> TicketFacts:
    base: dict[str, object] = {
        "ticket_id": n,
        "site_id": "s",
        "grid_id": "g",
        "category": "litter",
        "created_at": 1_767_225_600.0,
        "acknowledged_at": None,
        "resolved_at": None,
        "tier": 1,
        "breached": False,
        "channel": None,
        "rating": None,
    }
    return TicketFacts(**(base | kw))  # type: ignore[arg-type]


def test_shares_rates_and_satisfaction() -> None:
    t = 1_767_225_600.0
    facts = [
        _fact(1, resolved_at=t + 60, tier=1, channel="qr", rating=5),
        _fact(2, resolved_at=t + 120, tier=1, channel="qr", rating=3),
        _fact(3, resolved_at=t + 180, tier=2, breached=True, channel="hotline"),
        _fact(4, resolved_at=t + 240, tier=3, breached=True),
        _fact(5, acknowledged_at=t + 30),
    ]
    got = compute("s", facts, households=500)
    assert got.resolved == 4
    assert got.resolved_share_by_tier == {"1": 0.5, "2": 0.25, "3": 0.25}
    assert got.sla_breach_rate == pytest.approx(0.4)
    assert got.satisfaction_average == 4.0
    assert got.satisfaction_distribution == {"1": 0, "2": 0, "3": 1, "4": 0, "5": 1}
    assert got.resident_reports == 3
    assert got.reports_per_1000_households == pytest.approx(6.0)
    assert got.response_median_s == 30.0
    assert compute("none", [], None).sla_breach_rate is None


@pytest.mark.parametrize(
    ("at", "name"),
    [
        (1_767_196_800.0, "2026Q1"),  # 2026-01-01 00:00 +08:00 (still 2025 in UTC)
        (1_767_196_799.0, "2025Q4"),
        (1_775_001_600.0, "2026Q2"),  # 2026-04-01 08:00 +08:00
    ],
)
def test_quarters_are_the_sites_local_quarters(at: float, name: str) -> None:
    assert quarter(at, TZ) == name


def test_grouping_by_grid_names_ticket_without_grid() -> None:
    groups = grouped([_fact(1), _fact(2, grid_id=None)], GroupBy.GRID, TZ, lambda _s: 100)
    assert [(g.group, g.tickets, g.reports_per_1000_households) for g in groups] == [
        ("(none)", 1, None),
        ("g", 1, None),
    ]
