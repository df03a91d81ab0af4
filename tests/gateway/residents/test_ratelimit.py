"""The per-address sliding window: limits per key, forgets old events, bounded keys."""

from __future__ import annotations

import threading

import pytest

from gateway.residents.ratelimit import SlidingWindow, address_key
from gateway.residents.service import ReportRefusedError
from gateway.store import migrate
from tests.gateway.residents.conftest import ResidentApp


@pytest.fixture
def db_url(sqlite_url: str) -> str:
    """SQLite only: the limits are counted in memory."""
    migrate(sqlite_url)
    return sqlite_url


def test_sliding_window_limits_per_key_and_forgets_old_events() -> None:
    window = SlidingWindow(limit=3, window_s=60.0, max_keys=2)
    assert [window.allow("a", t) for t in (0, 1, 2, 3)] == [True, True, True, False]
    assert window.allow("b", 3)
    assert window.allow("a", 60.5)  # the event at 0 left the window
    assert not window.allow("a", 60.6)
    window.allow("c", 61)  # three keys: the longest idle ("b") is forgotten
    assert window.allow("b", 61)


def test_the_wait_is_until_the_oldest_event_leaves_the_window() -> None:
    window = SlidingWindow(limit=2, window_s=3600.0)
    assert window.wait_s("a", 0.0) == 0.0
    window.allow("a", 10.0)
    window.allow("a", 20.0)
    assert window.wait_s("a", 100.0) == 3610.0 - 100.0
    assert window.wait_s("a", 3611.0) == 0.0


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


def test_an_ipv6_client_is_counted_by_its_64_prefix() -> None:
    """A phone gets a whole /64 from its carrier: counted per address, it could send from
    2**64 of them."""
    assert address_key("2001:db8:1:2::1") == address_key("2001:db8:1:2:ffff:ffff:ffff:ffff")
    assert address_key("2001:db8:1:2::1") != address_key("2001:db8:1:3::1")
    assert address_key("203.0.113.7") == "203.0.113.7"
    assert address_key("::ffff:203.0.113.7") == "203.0.113.7"  # IPv4 mapped: its IPv4
    assert address_key("testclient") == "testclient"  # not an address: as it is


def test_the_report_limit_holds_across_one_ipv6_prefix(resident_app: ResidentApp) -> None:
    service = resident_app.service
    limit = service.settings.reports_per_address_per_hour
    for n in range(limit):
        service.allow_report(f"2001:db8:1:2::{n + 1:x}", 1000.0)
    with pytest.raises(ReportRefusedError):
        service.allow_report("2001:db8:1:2:dead:beef:0:1", 1000.0)
    service.allow_report("2001:db8:1:3::1", 1000.0)  # another prefix: another phone
