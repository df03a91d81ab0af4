"""Rounds through the service and the store with a fake clock (SQLite and PostgreSQL): a day
of scans, one failed item and one missed checkpoint give exactly the expected tickets, each
once however often the tick runs; the completion figure matches."""

from __future__ import annotations

import copy
import datetime as dt
from pathlib import Path

import pytest

from gateway.lifecycle import Action
from gateway.models import GridPublic, ShiftPublic
from gateway.rounds.service import RoundsError, RoundsService, UnknownError
from gateway.sites import load_sites
from gateway.sla import DEFAULT_POLICIES
from gateway.store import Store
from tests.gateway.apphelpers import SITE
from tests.gateway.residents.sitefiles import GRID, SITE_DOC, write_sites
from tests.gateway.residents.test_photos import GPS_IFD, phone_jpeg

TZ = dt.timezone(dt.timedelta(hours=8))


def at(hh: int, mm: int = 0, day: int = 10) -> float:
    return dt.datetime(2026, 3, day, hh, mm, tzinfo=TZ).timestamp()


PASS = {"pressure": True, "seal": True}


@pytest.fixture
def rounds(store: Store, tmp_path: Path) -> RoundsService:
    store.grids.upsert_grid(
        GridPublic(grid_id=GRID, site_id=SITE, name="G", supervisor="sup", zones=["zone-a"])
    )
    store.grids.add_shift(
        ShiftPublic(grid_id=GRID, username="worker", starts_at=0, ends_at=at(23, 59, 28))
    )
    # Rounds start on the 10th: the tick looks back two days, and nobody walked before.
    doc = copy.deepcopy(SITE_DOC["rounds"])
    doc["schedules"][0]["effective_from"] = "2026-03-10"
    sites = load_sites(write_sites(tmp_path / "sites", rounds=doc))
    return RoundsService(store, sites, dict(DEFAULT_POLICIES))


def _tickets(store: Store) -> list[tuple[str, str, str | None, str | None]]:
    page = store.tickets.list_tickets(sort="id", limit=500)
    return [(t.category.value, t.device_id, t.zone_id, t.assignee) for t in page.items]


def _walk(rounds: RoundsService, t: float, ext: dict[str, bool] = PASS) -> None:
    rounds.record_scan(SITE, "tag-ext1", "worker", results=ext, note=None, photo=None, now=t)
    rounds.record_scan(
        SITE,
        "tag-door1",
        "worker",
        results={"closes": True},
        note=None,
        photo=phone_jpeg(),
        now=t + 60,
    )


def test_a_day_with_one_failed_item_and_one_missed_checkpoint(
    rounds: RoundsService, store: Store
) -> None:
    # Day shift 08:00-20:00 every 2 h: six rounds.
    _walk(rounds, at(8, 10))
    _walk(rounds, at(10, 10), ext={"pressure": False, "seal": True})  # failed item
    _walk(rounds, at(12, 10))
    rounds.record_scan(
        SITE, "tag-ext1", "worker", results=PASS, note=None, photo=None, now=at(14, 10)
    )
    # door1 missed in the 14:00 round
    _walk(rounds, at(16, 10))
    _walk(rounds, at(18, 10))
    assert _tickets(store) == [("inspection_failed", "checkpoint:ext1", "zone-a", "worker")]
    for now in (at(20, 30), at(21), at(8, 0, day=11)):  # the tick runs again and again
        rounds.tick(now)
    assert _tickets(store) == [
        ("inspection_failed", "checkpoint:ext1", "zone-a", "worker"),
        ("round_missed", "checkpoint:door1", None, "sup"),
    ]
    figure = rounds.completion(SITE, at(0), at(0, day=11), at(21))
    assert (figure.checkpoints_done, figure.checkpoints_planned) == (11, 12)
    assert (figure.rounds_done, figure.rounds_planned) == (5, 6)
    assert figure.rate == pytest.approx(11 / 12)


def test_the_same_failure_again_merges_into_the_open_ticket(
    rounds: RoundsService, store: Store
) -> None:
    failing = {"pressure": False, "seal": True}
    first, _ = rounds.record_scan(
        SITE, "tag-ext1", "w", results=failing, note=None, photo=None, now=at(8, 10)
    )
    again, _ = rounds.record_scan(
        SITE, "tag-ext1", "w", results=failing, note=None, photo=None, now=at(10, 10)
    )
    assert first.ticket_ids == again.ticket_ids
    assert store.tickets.get_ticket(first.ticket_ids[0]).event_count == 2


def test_a_round_nobody_walked_is_one_ticket_for_the_supervisor(
    rounds: RoundsService, store: Store
) -> None:
    rounds.tick(at(10, 5))
    rounds.tick(at(10, 6))
    assert _tickets(store) == [("round_missed", "round:fire", None, "sup")]  # the 08:00 round
    # Resolved (the supervisor found out why), it stays resolved: the round is not missed again.
    (ticket,) = store.tickets.list_tickets().items
    policy = DEFAULT_POLICIES[ticket.category]
    store.tickets.transition(
        ticket.id, Action.RESOLVE, "sup", at(10, 7), note="病假", policy=policy
    )
    rounds.tick(at(10, 8))
    assert store.tickets.list_tickets().total == 1


def test_today_shows_each_rounds_state(rounds: RoundsService) -> None:
    _walk(rounds, at(8, 10))
    rounds.record_scan(
        SITE, "tag-ext1", "worker", results=PASS, note=None, photo=None, now=at(10, 10)
    )
    today = rounds.today(SITE, at(11, 30))
    assert today.date == "2026-03-10"
    assert [r.state for r in today.rounds] == [
        "done",
        "late",
        "upcoming",
        "upcoming",
        "upcoming",
        "upcoming",
    ]
    assert [c.scanned for c in today.rounds[1].checkpoints] == [True, False]


def test_scans_must_tick_every_item_and_carry_required_photos(
    rounds: RoundsService, store: Store
) -> None:
    with pytest.raises(RoundsError, match="missing seal"):
        rounds.record_scan(
            SITE, "tag-ext1", "w", results={"pressure": True}, note=None, photo=None, now=at(9)
        )
    with pytest.raises(RoundsError, match="needs a photo"):
        rounds.record_scan(
            SITE, "tag-door1", "w", results={"closes": True}, note=None, photo=None, now=at(9)
        )
    with pytest.raises(RoundsError, match="not a JPEG"):
        rounds.record_scan(
            SITE, "tag-door1", "w", results={"closes": True}, note=None, photo=b"<html>", now=at(9)
        )
    with pytest.raises(UnknownError):
        rounds.record_scan(SITE, "tag-nope", "w", results={}, note=None, photo=None, now=at(9))
    assert store.rounds.scans_between(SITE, 0, at(23)) == []


def test_scan_photos_are_stored_without_exif(rounds: RoundsService, store: Store) -> None:
    import io

    from PIL import Image
    from sqlalchemy import select

    from gateway.store.schema import round_scans

    rounds.record_scan(
        SITE, "tag-door1", "w", results={"closes": True}, note=None, photo=phone_jpeg(), now=at(9)
    )
    with store.engine.connect() as conn:
        data = conn.execute(select(round_scans.c.photo)).scalar_one()
    with Image.open(io.BytesIO(data)) as image:
        assert image.getexif().get_ifd(GPS_IFD) == {}
