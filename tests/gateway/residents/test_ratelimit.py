"""The per-address sliding window: limits per key, forgets old events, bounded keys."""

from __future__ import annotations

import threading

from gateway.residents.ratelimit import SlidingWindow


def test_sliding_window_limits_per_key_and_forgets_old_events() -> None:
    window = SlidingWindow(limit=3, window_s=60.0, max_keys=2)
    assert [window.allow("a", t) for t in (0, 1, 2, 3)] == [True, True, True, False]
    assert window.allow("b", 3)
    assert window.allow("a", 60.5)  # the event at 0 left the window
    assert not window.allow("a", 60.6)
    window.allow("c", 61)  # three keys: the longest idle ("b") is forgotten
    assert window.allow("b", 61)


def test_concurrent_callers_never_get_more_than_the_limit() -> None:
    window = SlidingWindow(limit=50, window_s=60.0)
    allowed: list[bool] = []

    def hammer() -> None:
        allowed.extend(window.allow("a", 1.0) for _ in range(100))

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert allowed.count(True) == 50
