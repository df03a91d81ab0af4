"""The login limiter, table-driven with an injected clock (`gateway.login_limiter`)."""

from __future__ import annotations

import tracemalloc

import pytest

from gateway.login_limiter import LoginLimiter


def limiter(**overrides: float) -> LoginLimiter:
    values: dict[str, float] = {
        "pair_attempts": 3,
        "address_attempts": 5,
        "user_attempts": 4,
        "user_delay_s": 2.0,
        "window_s": 60.0,
        "max_tracked": 100,
    }
    values.update(overrides)
    return LoginLimiter(**values)  # type: ignore[arg-type]


def test_pair_is_refused_after_its_attempts_and_recovers_when_the_window_ends() -> None:
    lim = limiter()
    for t in (0, 1, 2):
        assert lim.check("ann", "1.2.3.4", t).retry_after is None
        lim.failed("ann", "1.2.3.4", t)
    assert lim.check("ann", "1.2.3.4", 3).retry_after == pytest.approx(57)
    assert lim.check("ann", "5.6.7.8", 3).retry_after is None  # the user, elsewhere
    assert lim.check("bob", "1.2.3.4", 3).retry_after is None  # the address, another user
    assert lim.check("ann", "1.2.3.4", 60.0).retry_after is None  # window over


def test_success_forgets_the_pair_but_not_the_address_or_user_counts() -> None:
    lim = limiter()
    for t in range(2):
        lim.failed("ann", "a", t)
    assert lim.attempt("ann", "a", 2).retry_after is None
    lim.succeeded("ann", "a", 2)  # gives the attempt's slot back
    for t in range(2):
        lim.failed("ann", "a", 2 + t)
    assert lim.check("ann", "a", 5).retry_after is None  # 2 since the success, not 4
    for user in ("x", "y"):
        lim.failed(user, "a", 6)  # the address's fifth and sixth failures
    assert lim.check("zed", "a", 7).retry_after is not None


@pytest.mark.parametrize(
    ("failures_elsewhere", "delay"),
    [(0, 0.0), (3, 0.0), (4, 2.0), (40, 2.0)],
)
def test_user_past_its_cap_is_slowed_never_refused(failures_elsewhere: int, delay: float) -> None:
    lim = limiter(address_attempts=1000)
    for i in range(failures_elsewhere):
        lim.failed("ann", f"10.0.0.{i // 2}", 0)  # 2 per address: no pair is refused
    decision = lim.check("ann", "192.0.2.1", 1)
    assert decision.retry_after is None
    assert decision.delay_s == delay


def test_30000_names_keep_the_limiter_bounded_in_keys_and_memory() -> None:
    lim = limiter(max_tracked=1000, address_attempts=10**9)
    tracemalloc.start()
    try:
        for i in range(1000):
            lim.failed(f"warm-{i}", f"10.1.{i // 256}.{i % 256}", 0)
        warm, _ = tracemalloc.get_traced_memory()
        for i in range(30_000):
            lim.failed(f"user-{i}", f"10.2.{i // 256}.{i % 256}", 1)
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(lim) == 3 * 1000
    # Full at 1,000 keys per counter before; 30,000 more names must not add to that.
    assert after - warm < 256 * 1024, after - warm


def test_full_counter_forgets_the_least_recently_failed_key() -> None:
    lim = limiter(max_tracked=2, pair_attempts=1)
    lim.failed("old", "a", 0)
    lim.failed("mid", "b", 50)
    lim.failed("new", "c", 55)  # "old" goes, though its window is not over
    assert lim.check("mid", "b", 56).retry_after is not None
    assert lim.check("new", "c", 56).retry_after is not None
    assert lim.check("old", "a", 56).retry_after is None
    assert len(lim) == 6
