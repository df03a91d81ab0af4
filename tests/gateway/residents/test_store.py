"""The store parts on SQLite and PostgreSQL: a report's transaction (challenge spent once, the
place's hourly quota), and the figures, which must equal figures computed here independently
from the raw ticket, escalation and report rows."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from gateway.figures import GroupBy
from gateway.figures_service import FiguresService
from gateway.lifecycle import Action
from gateway.models import GridPublic
from gateway.residents.models import Channel
from gateway.rounds.service import RoundsService
from gateway.sites import load_sites
from gateway.sla import DEFAULT_POLICIES, TicketCategory
from gateway.store import ConflictError, Store, database_url
from gateway.store.place_tickets import PlaceTicket
from gateway.store.residents import NewReport, PlaceLimitError
from tests.gateway.apphelpers import SITE
from tests.gateway.residents.sitefiles import GRID, write_sites
from tests.gateway.residents.test_photos import phone_jpeg

T0 = 1_767_225_600.0  # 2026-01-01 08:00 +08:00
POLICIES = dict(DEFAULT_POLICIES)


def _report(n: int, category: TicketCategory, place: str = "b3-lobby") -> NewReport:
    return NewReport(
        site_id=SITE,
        place_id=place,
        place_name=place,
        zone_id="zone-a" if place == "b3-lobby" else None,
        grid_id=None if place == "b3-lobby" else "g-east",
        category=category,
        description="d",
        phone=None,
        channel=Channel.QR.value if n % 3 else Channel.HOTLINE.value,
        tracking_hash=f"{n:064x}",
        entered_by=None if n % 3 else "op",
        photos=[("image/jpeg", phone_jpeg())],
    )


@pytest.fixture
def site_store(store: Store) -> Store:
    store.grids.upsert_grid(
        GridPublic(grid_id=GRID, site_id=SITE, name="G", supervisor="sup", zones=["zone-a"])
    )
    return store


def test_a_challenge_is_spent_once_and_the_place_quota_counts_every_sender(
    site_store: Store,
) -> None:
    policy = POLICIES[TicketCategory.LITTER]
    site_store.residents.create_report(
        _report(1, TicketCategory.LITTER), policy, T0, challenge_id="c1", per_place_per_hour=2
    )
    with pytest.raises(ConflictError, match="already used"):
        site_store.residents.create_report(
            _report(2, TicketCategory.LITTER), policy, T0, challenge_id="c1", per_place_per_hour=2
        )
    site_store.residents.create_report(
        _report(3, TicketCategory.LITTER), policy, T0 + 1, challenge_id="c3", per_place_per_hour=2
    )
    with pytest.raises(PlaceLimitError):
        site_store.residents.create_report(
            _report(4, TicketCategory.LITTER),
            policy,
            T0 + 2,
            challenge_id="c4",
            per_place_per_hour=2,
        )
    # Another place has its own quota; an hour later the first place has room again.
    site_store.residents.create_report(
        _report(5, TicketCategory.LITTER, "lane-east"),
        policy,
        T0 + 3,
        challenge_id="c5",
        per_place_per_hour=2,
    )
    site_store.residents.create_report(
        _report(6, TicketCategory.LITTER),
        policy,
        T0 + 3601,
        challenge_id="c4",
        per_place_per_hour=2,
    )
    assert site_store.tickets.list_tickets().total == 4
    assert site_store.residents.prune_spent_challenges(T0 + 2) == 2  # c1, c3


def test_a_residents_photo_does_not_count_as_the_butlers_site_photo(site_store: Store) -> None:
    ticket_id, _ = site_store.residents.create_report(
        _report(1, TicketCategory.LITTER),
        POLICIES[TicketCategory.LITTER],
        T0,
        challenge_id=None,
        per_place_per_hour=None,
    )
    with pytest.raises(ValueError, match="site photo"):
        site_store.tickets.transition(
            ticket_id,
            Action.RESOLVE,
            "worker",
            T0 + 60,
            note="ok",
            policy=POLICIES[TicketCategory.LITTER],
        )


def _build_history(store: Store) -> None:
    """Twelve reports over two quarters, two grids and two categories: some acknowledged,
    some resolved (at tiers 1 and 2), some breached, some rated; and one rounds ticket."""
    for n in range(12):
        category = TicketCategory.LITTER if n % 2 else TicketCategory.NOISE
        opened = T0 + n * 600 + (100 * 86400 if n >= 8 else 0)  # n >= 8: the second quarter
        place = "b3-lobby" if n % 4 else "lane-east"
        ticket_id, _ = store.residents.create_report(
            _report(n, category, place),
            POLICIES[category],
            opened,
            challenge_id=None,
            per_place_per_hour=None,
        )
        policy = POLICIES[category]
        if n % 5 != 4:
            store.tickets.transition(
                ticket_id, Action.ACKNOWLEDGE, "op", opened + 60 * (n + 1), policy=policy
            )
        if n == 9:  # escalated to tier 2 by the ack breach, then resolved
            store.escalations.run_escalations(opened + 40 * 60, POLICIES)
        if n % 3 != 2:
            store.tickets.add_attachment(
                ticket_id, phone_jpeg(), content_type="image/jpeg", actor="worker", now=opened + 900
            )
            store.tickets.transition(
                ticket_id,
                Action.RESOLVE,
                "worker",
                opened + 900 + 300 * n,
                note="done",
                policy=policy,
            )
            if n % 2 == 0:
                store.residents.record_rating(
                    ticket_id, 1 + n % 5, None, opened + 5000, low=None, policy=policy
                )
    store.rounds.open_round_tickets(
        SITE,
        [
            (
                "missed:x",
                PlaceTicket(
                    SITE,
                    "round:fire",
                    TicketCategory.ROUND_MISSED,
                    None,
                    GRID,
                    f"{SITE}|rounds|missed:x",
                    "system:rounds",
                    "missed",
                ),
            )
        ],
        POLICIES,
        T0 + 30,
    )
    store.escalations.run_escalations(T0 + 200 * 86400, POLICIES)


def _nearest_rank_p90(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[math.ceil(len(ordered) * 9 / 10) - 1]


def _median(values: list[float]) -> float | None:
    if not values:
        return None
    ordered, mid = sorted(values), len(values) // 2
    return ordered[mid] if len(values) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def _independent(db_url: str, where: str = "1=1") -> dict[str, object]:
    """The figures from raw rows, with plain SQL and arithmetic (no gateway code)."""
    engine = create_engine(database_url(db_url))
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT t.id, t.created_at, t.acknowledged_at, t.resolved_at, t.tier,"
                " r.channel, r.rating,"
                " (SELECT COUNT(*) FROM escalations e WHERE e.ticket_id = t.id) AS breaches"
                " FROM tickets t LEFT JOIN resident_reports r ON r.ticket_id = t.id"
                f" WHERE {where}"
            )
        ).all()
    engine.dispose()
    response = [r.acknowledged_at - r.created_at for r in rows if r.acknowledged_at is not None]
    resolved = [r for r in rows if r.resolved_at is not None]
    resolution = [r.resolved_at - r.created_at for r in resolved]
    ratings = [r.rating for r in rows if r.rating is not None]
    return {
        "tickets": len(rows),
        "response_median_s": _median(response),
        "response_p90_s": _nearest_rank_p90(response),
        "resolution_median_s": _median(resolution),
        "resolution_p90_s": _nearest_rank_p90(resolution),
        "sla_breach_rate": sum(1 for r in rows if r.breaches) / len(rows),
        "resolved": len(resolved),
        "resolved_share_by_tier": {
            str(t): sum(1 for r in resolved if r.tier == t) / len(resolved) for t in (1, 2, 3)
        },
        "ratings": len(ratings),
        "satisfaction_average": sum(ratings) / len(ratings) if ratings else None,
        "satisfaction_distribution": {str(n): ratings.count(n) for n in range(1, 6)},
        "resident_reports": sum(1 for r in rows if r.channel is not None),
    }


def test_figures_equal_figures_computed_from_the_raw_rows(
    site_store: Store, db_url: str, tmp_path: Path
) -> None:
    _build_history(site_store)
    sites = load_sites(write_sites(tmp_path / "sites"))
    service = FiguresService(site_store, sites, RoundsService(site_store, sites, POLICIES))
    end = T0 + 400 * 86400
    report = service.report(sites=[SITE], start=T0 - 1, end=end, group_by=GroupBy.SITE, now=end)
    (whole,) = report.groups
    got = whole.model_dump()
    expected = _independent(db_url)
    for key, value in expected.items():
        assert got[key] == pytest.approx(value), key
    assert got["tickets"] == 13
    assert got["resident_reports"] == 12
    assert got["sla_breach_rate"] > 0
    assert got["resolved_share_by_tier"]["1"] < 1  # #9 was escalated before it was resolved
    assert got["reports_per_1000_households"] == pytest.approx(12 / 1200 * 1000)
    by_quarter = service.report(
        sites=[SITE], start=T0 - 1, end=end, group_by=GroupBy.QUARTER, now=end
    )
    assert [g.group for g in by_quarter.groups] == ["2026Q1", "2026Q2"]
    q2 = f"t.created_at >= {T0 + 90 * 86400}"
    assert (
        by_quarter.groups[1].model_dump()["resident_reports"]
        == _independent(db_url, q2)["resident_reports"]
        == 4
    )
    by_grid = service.report(sites=[SITE], start=T0 - 1, end=end, group_by=GroupBy.GRID, now=end)
    assert {g.group: g.tickets for g in by_grid.groups} == {GRID: 10, "g-east": 3}
    litter = service.report(
        sites=[SITE], start=T0 - 1, end=end, group_by=GroupBy.CATEGORY, category="litter", now=end
    )
    (only,) = litter.groups
    for key, value in _independent(db_url, "t.category = 'litter'").items():
        assert only.model_dump()[key] == pytest.approx(value), key
