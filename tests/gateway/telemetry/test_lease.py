"""The telemetry lease (`gateway.telemetry.lease`): the pure decision as a table, and the
store's compare-and-set on SQLite and PostgreSQL (two replicas deciding at once: one wins)."""

from __future__ import annotations

import pytest

from gateway.store import Store
from gateway.store.leases import LeaseRow
from gateway.telemetry.lease import LeaseKeeper, Verdict, decide, lease_name, unshared

TTL = 15.0


@pytest.mark.parametrize(
    ("row", "me", "now", "verdict", "expires_at", "taken_at", "resume"),
    [
        # nobody ever held it: take
        (None, "a", 100.0, Verdict.TAKE, 115.0, 100.0, False),
        # mine, not expired: renew (same term: taken_at kept)
        (LeaseRow("a", 110.0, 90.0), "a", 100.0, Verdict.RENEW, 115.0, 90.0, True),
        # another's, not expired: a steal is refused
        (LeaseRow("b", 110.0, 90.0), "a", 100.0, Verdict.REFUSED, None, None, False),
        # another's, expiring exactly now: taken (expires_at is the first instant it is free)
        (LeaseRow("b", 100.0, 90.0), "a", 100.0, Verdict.TAKE, 115.0, 100.0, False),
        # another's, expired: taken, a new term, the old holder's backlog not resumed
        (LeaseRow("b", 99.0, 90.0), "a", 100.0, Verdict.TAKE, 115.0, 100.0, False),
        # mine but expired (restarted after a while, nobody took it): a new term, resumed
        (LeaseRow("a", 50.0, 10.0), "a", 100.0, Verdict.TAKE, 115.0, 100.0, True),
    ],
)
def test_decide(
    *,
    row: LeaseRow | None,
    me: str,
    now: float,
    verdict: Verdict,
    expires_at: float | None,
    taken_at: float | None,
    resume: bool,
) -> None:
    decision = decide(row, me, now, TTL)
    assert decision.verdict is verdict
    assert decision.resume is resume
    if expires_at is None:
        assert decision.write is None
    else:
        assert decision.write == LeaseRow(me, expires_at, taken_at or 0.0)


def test_lease_name_and_filters() -> None:
    assert lease_name([]) == "telemetry:*"
    assert lease_name(["b", "a"]) == lease_name(["a", "b"]) == "telemetry:a,b"
    assert unshared(["$share/g/guanjia/v1/+/+/telemetry", "esphome/+/+/status"]) == [
        "guanjia/v1/+/+/telemetry",
        "esphome/+/+/status",
    ]


def test_two_replicas_one_holder_then_expiry_hands_over(store: Store) -> None:
    a = LeaseKeeper(store, "telemetry:*", "gw-a", TTL)
    b = LeaseKeeper(store, "telemetry:*", "gw-b", TTL)
    first = a.claim(100.0)
    assert first.held
    assert first.expires_at == 115.0
    refused = b.claim(101.0)
    assert not refused.held
    assert refused.holder == "gw-a"
    assert a.claim(105.0).held  # renewed to 120
    assert not b.claim(119.0).held
    taken = b.claim(120.5)
    assert taken.held
    assert not taken.resume
    assert not a.claim(121.0).held  # the old holder is refused now
    assert store.lease("telemetry:*") == LeaseRow("gw-b", 135.5, 120.5)


def test_compare_and_set_lets_one_of_two_racing_takers_win(store: Store) -> None:
    # Both read the same (absent, then expired) row and decide to take it; one write wins.
    name = "telemetry:site-1"
    assert store.swap_lease(name, None, LeaseRow("gw-a", 115.0, 100.0))
    assert not store.swap_lease(name, None, LeaseRow("gw-b", 115.0, 100.0))
    seen = store.lease(name)
    assert seen == LeaseRow("gw-a", 115.0, 100.0)
    assert store.swap_lease(name, seen, LeaseRow("gw-b", 135.0, 120.0))
    assert not store.swap_lease(name, seen, LeaseRow("gw-c", 135.0, 120.0))
    assert store.lease(name) == LeaseRow("gw-b", 135.0, 120.0)


def test_a_clean_stop_releases_the_lease_at_once(store: Store) -> None:
    a = LeaseKeeper(store, "telemetry:*", "gw-a", TTL)
    b = LeaseKeeper(store, "telemetry:*", "gw-b", TTL)
    assert a.claim(100.0).held
    assert not b.release(101.0)  # not b's to release
    assert not b.claim(102.0).held
    assert a.release(103.0)
    taken = b.claim(103.5)
    assert taken.held
    assert taken.expires_at == 118.5
