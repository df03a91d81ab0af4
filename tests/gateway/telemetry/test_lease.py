"""The telemetry lease (`gateway.telemetry.lease`): the pure decision as a table, and the
store's compare-and-set on SQLite and PostgreSQL (two replicas deciding at once: one wins)."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from gateway.store import Store, StoreUnavailableError
from gateway.store.leases import LeaseRow
from gateway.telemetry.lease import (
    Claim,
    LeaseKeeper,
    Verdict,
    decide,
    lease_name,
    own_telemetry,
    unshared,
)

TTL = 15.0


@pytest.mark.parametrize(
    ("row", "me", "now", "verdict", "expires_at", "taken_at", "resume"),
    [
        # nobody ever held it: take (our session's backlog is nobody else's: resumed)
        (None, "a", 100.0, Verdict.TAKE, 115.0, 100.0, True),
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
    assert store.leases.lease("telemetry:*") == LeaseRow("gw-b", 135.5, 120.5)


def test_compare_and_set_lets_one_of_two_racing_takers_win(store: Store) -> None:
    # Both read the same (absent, then expired) row and decide to take it; one write wins.
    name = "telemetry:site-1"
    assert store.leases.swap_lease(name, None, LeaseRow("gw-a", 115.0, 100.0))
    assert not store.leases.swap_lease(name, None, LeaseRow("gw-b", 115.0, 100.0))
    seen = store.leases.lease(name)
    assert seen == LeaseRow("gw-a", 115.0, 100.0)
    assert store.leases.swap_lease(name, seen, LeaseRow("gw-b", 135.0, 120.0))
    assert not store.leases.swap_lease(name, seen, LeaseRow("gw-c", 135.0, 120.0))
    assert store.leases.lease(name) == LeaseRow("gw-b", 135.0, 120.0)


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


class _Script:
    """A keeper whose claims follow a script (held?, at which clock), then block."""

    def __init__(self, claims: list[Claim | None]) -> None:
        self.name, self.me, self.ttl_s = "telemetry:*", "gw-a", 0.03
        self.claims = claims
        self.released: list[float] = []
        self.loop = asyncio.get_running_loop()
        self.done = asyncio.Event()
        """Set at the claim after the script: everything scripted was acted on."""

    def claim(self, now: float) -> Claim:
        if not self.claims:
            self.loop.call_soon_threadsafe(self.done.set)
            raise StoreUnavailableError("end of script")
        claim = self.claims.pop(0)
        if claim is None:
            raise StoreUnavailableError("database away")
        return claim

    def release(self, now: float) -> bool:
        self.released.append(now)
        return True


def _run(claims: list[Claim | None], times: list[float]) -> list[str]:
    """Run `own_telemetry` over the script; what it did to the session, in order."""
    did: list[str] = []
    clock = iter(times)

    async def session() -> None:
        did.append("start")
        try:
            await asyncio.Event().wait()
        finally:
            did.append("stop")

    async def end() -> bool:
        did.append("end")
        return True

    async def main() -> None:
        script = _Script(claims)
        task = asyncio.create_task(
            own_telemetry(
                script,  # type: ignore[arg-type]  # duck-typed keeper
                run_session=session,
                end_session=end,
                reset=lambda: did.append("reset"),
                clock=lambda: next(clock, times[-1]),
            )
        )
        await script.done.wait()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    asyncio.run(main())
    return did


HELD = Claim(True, "gw-a", 115.0, resume=True)
TAKEN = Claim(True, "gw-a", 115.0, resume=False)
OTHERS = Claim(False, "gw-b", 115.0)


def test_a_non_holder_ends_its_old_session_once_and_never_subscribes() -> None:
    assert _run([OTHERS, OTHERS, OTHERS], [100.0, 105.0, 110.0]) == ["end"]


def test_a_holder_resumes_its_session_and_steps_down_when_another_holds_it() -> None:
    did = _run([HELD, HELD, OTHERS, OTHERS], [100.0, 105.0, 120.0, 125.0])
    assert did == ["reset", "start", "stop", "reset", "end"]


def test_taking_over_from_another_holder_starts_from_a_fresh_subscription() -> None:
    assert _run([TAKEN], [100.0])[:3] == ["reset", "end", "start"]


def test_a_holder_that_cannot_renew_steps_down_before_its_expiry() -> None:
    # Held until 100.03 (the script's ttl 0.03: a third is 0.01): the database away at
    # 100.01 keeps the session; at 100.025 (past 2/3 of the term) it stops, before any
    # other replica may take over at 100.03.
    held = Claim(True, "gw-a", 100.03, resume=True)
    did = _run([held, None, None], [100.0, 100.01, 100.025])
    assert did == ["reset", "start", "stop", "reset", "end"]


def test_a_clean_stop_releases_a_held_lease() -> None:
    did: list[str] = []
    released: list[float] = []

    async def session() -> None:
        await asyncio.Event().wait()

    async def end() -> bool:
        return True

    async def main() -> None:
        script = _Script([HELD])
        task = asyncio.create_task(
            own_telemetry(
                script,  # type: ignore[arg-type]
                run_session=session,
                end_session=end,
                reset=lambda: did.append("reset"),
                clock=lambda: 100.0,
            )
        )
        await script.done.wait()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        released.extend(script.released)

    asyncio.run(main())
    assert released == [100.0]
