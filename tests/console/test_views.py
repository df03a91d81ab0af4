"""The pure presentation rules: local times, countdown colours, offered actions, redirects."""

from __future__ import annotations

import time
from zoneinfo import ZoneInfo

import pytest

from gateway.auth import Principal, Role
from gateway.console.deps import safe_next
from gateway.console.ticket_pages import notice_for
from gateway.console.views import Clock, actions_for, clock, deadline_of, duration, local_time
from gateway.lifecycle import Action, TicketState
from gateway.models import TicketPublic
from gateway.sla import TicketCategory


def _ticket(state: TicketState, assignee: str | None = None) -> TicketPublic:
    now = 1_700_000_000.0
    return TicketPublic(
        id=1, site_id="s", device_id="d", category=TicketCategory.LITTER, zone_id=None,
        grid_id=None, severity="normal", state=state, tier=1, assignee=assignee,
        escalated_to=None, event_count=1, created_at=now, updated_at=now,
        acknowledged_at=None, resolved_at=None, resolved_by=None, closed_at=None,
        condition_cleared_at=None, sla_cycle=0, ack_due_at=now + 1200, resolve_due_at=now + 1800,
        resolution_note=None,
    )  # fmt: skip


def test_local_time_is_the_sites_zone() -> None:
    ts = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC
    assert local_time(ts, ZoneInfo("Asia/Shanghai")) == "2023-11-15 06:13:20"
    assert local_time(ts, ZoneInfo("UTC")) == "2023-11-14 22:13:20"
    assert local_time(None, ZoneInfo("UTC")) == ""


@pytest.mark.parametrize(
    ("seconds", "text"), [(59, "0:59"), (605, "10:05"), (3725, "1:02:05"), (-30, "-0:30")]
)
def test_duration(seconds: float, text: str) -> None:
    assert duration(seconds) == text


def test_clock_turns_amber_then_red() -> None:
    due, window = 10_000.0, 1800.0
    assert clock(due, window, due - 1000) is Clock.OK
    assert clock(due, window, due - 400) is Clock.AMBER  # under a quarter of the window
    assert clock(due, 600, due - 299) is Clock.AMBER  # under five minutes (of ten)
    assert clock(due, 20 * 3600, due - 6 * 3600) is Clock.OK
    assert clock(due, window, due) is Clock.RED
    assert clock(None, window, due) is Clock.STOPPED


def test_the_running_deadline() -> None:
    assert deadline_of(_ticket(TicketState.NEW)) == _ticket(TicketState.NEW).ack_due_at
    dispatched = _ticket(TicketState.DISPATCHED)
    assert deadline_of(dispatched) == dispatched.resolve_due_at
    assert deadline_of(_ticket(TicketState.CLOSED)) is None


def test_actions_follow_the_permission_table_the_state_and_ownership() -> None:
    op = Principal("op", Role.OPERATOR, frozenset({"s"}))
    worker = Principal("w", Role.WORKER, frozenset({"s"}))
    assert actions_for(op, _ticket(TicketState.NEW)) == [
        Action.ACKNOWLEDGE,
        Action.DISPATCH,
    ]  # operators do not work tickets (no resolve)
    assert actions_for(worker, _ticket(TicketState.DISPATCHED, "w")) == [
        Action.START,
        Action.RESOLVE,
    ]
    assert actions_for(worker, _ticket(TicketState.DISPATCHED, "someone")) == []
    assert actions_for(op, _ticket(TicketState.RESOLVED)) == [Action.CLOSE, Action.REOPEN]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("/console/my/3", "/console/my/3"),
        ("//evil.example/console", "/console"),
        ("https://evil.example/", "/console"),
        ("/api/users", "/console"),
        ("/console\\@evil", "/console"),
        (None, "/console"),
    ],
)
def test_redirects_stay_in_the_console(value: str | None, expected: str) -> None:
    assert safe_next(value) == expected


def test_refusals_become_catalogue_keys() -> None:
    assert notice_for("resolve needs a site photo for this category: upload one first") == (
        "notice.needs_photo"
    )
    assert notice_for("cannot acknowledge a ticket that is dispatched") == "notice.wrong_state"
    assert notice_for("something new") == "notice.refused"
    assert time.time() > 0


def test_a_site_files_time_zone_wins_over_the_console_default() -> None:
    from types import SimpleNamespace

    from gateway.console.render import zone_of
    from gateway.console.settings import ConsoleSettings
    from gateway.sites import SiteConfig

    berlin = SiteConfig(site_id="s1", name="A", timezone="Europe/Berlin")
    runtime = SimpleNamespace(
        figures=SimpleNamespace(sites={"s1": berlin}),
        settings=SimpleNamespace(console=ConsoleSettings()),
    )
    zone = zone_of(runtime)  # type: ignore[arg-type]
    assert zone("s1") == ZoneInfo("Europe/Berlin")
    assert zone("s2") == ZoneInfo("Asia/Shanghai")
