"""The wall left alone: it never holds more than its limit of cards, an urgent alert plays
the cue unless muted, and it keeps working when the gateway restarts under it; the wall of a
user disabled meanwhile does not stay live (its stream re-reads the user and ends)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, update
from sqlalchemy.engine import make_url

import contract as c
from gateway.auth import Role, hash_password
from gateway.store import Store
from gateway.store.schema import users
from tests.console.conftest import assert_clean, sign_in
from tests.console.harness import DEVICE_A, PASSWORD, SITE_A, WALL, Console, start_console

pytestmark = pytest.mark.mqtt

MAX_CARDS = 10

COUNT_PLAYS = """() => {
  window.plays = 0;
  const play = HTMLMediaElement.prototype.play;
  HTMLMediaElement.prototype.play = function () {
    if (!this.muted) { window.plays += 1; }
    return play.call(this);
  };
}"""


@pytest.fixture(scope="module")
def small_wall(
    mosquitto_available: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Console]:
    running = start_console(
        tmp_path_factory.mktemp("wall"), CONSOLE__WALL_CARDS=MAX_CARDS, STREAM_RECHECK_S=0.5
    )
    yield running
    running.close()


def _live_wall(browser: Any, console: Console) -> Any:
    page = sign_in(browser, console, "op", WALL)
    page.wait_for_selector("#live.live-on", timeout=10_000)
    page.evaluate(COUNT_PLAYS)
    return page


def test_the_wall_keeps_at_most_its_limit_and_cues_urgent_alerts(
    browser: Any, small_wall: Console, shots: Callable[[Any, str], Path]
) -> None:
    page = _live_wall(browser, small_wall)
    zones = [
        small_wall.publish_alert(DEVICE_A, severity=c.Severity.URGENT, with_snapshot=False)
        for _ in range(MAX_CARDS + 4)
    ]
    page.locator("article.card", has_text=zones[-1]).wait_for(timeout=10_000)
    page.wait_for_function(f"document.getElementById('wall').dataset.cues === '{len(zones)}'")
    assert page.locator("article.card").count() == MAX_CARDS
    first = page.locator("article.card").first.inner_text()
    assert zones[-1] in first  # newest first
    assert page.locator("article.card", has_text=zones[0]).count() == 0  # oldest dropped
    assert page.inner_text("#count") == str(MAX_CARDS)
    assert page.evaluate("window.plays") == 0  # muted by default

    page.get_by_role("button", name="声音：关").click()
    assert page.get_by_role("button", name="声音：开").get_attribute("aria-pressed") == "true"
    loud = small_wall.publish_alert(DEVICE_A, severity=c.Severity.URGENT, with_snapshot=False)
    page.locator("article.card", has_text=loud).wait_for(timeout=5000)
    page.wait_for_function("window.plays === 1")
    quiet = small_wall.publish_alert(DEVICE_A, severity=c.Severity.LOW, with_snapshot=False)
    page.locator("article.card", has_text=quiet).wait_for(timeout=5000)
    assert page.evaluate("window.plays") == 1  # no cue for a low alert
    assert page.locator("article.card").count() == MAX_CARDS
    shots(page, "wall-full")
    assert_clean(page)
    page.context.close()


@pytest.mark.slow
def test_the_wall_keeps_working_when_the_gateway_restarts(
    browser: Any, small_wall: Console, shots: Callable[[Any, str], Path]
) -> None:
    page = _live_wall(browser, small_wall)
    before = small_wall.publish_alert(DEVICE_A, with_snapshot=False)
    page.locator("article.card", has_text=before).wait_for(timeout=5000)
    small_wall.gateway.kill()
    page.wait_for_selector("#live.live-off", timeout=15_000)
    shots(page, "wall-reconnecting")
    # Published while no gateway runs: the broker keeps it for the gateway's session.
    during = small_wall.publish_alert(DEVICE_A, with_snapshot=False)
    small_wall.restart_gateway()
    page.wait_for_selector("#live.live-on", timeout=30_000)
    page.errors.clear()  # the browser reports each refused reconnect during the outage
    page.locator("article.card", has_text=during).wait_for(timeout=15_000)
    started = time.monotonic()
    after = small_wall.publish_alert(DEVICE_A, with_snapshot=False)
    page.locator("article.card", has_text=after).wait_for(timeout=5000)
    print(f"after the restart, an alert reached the wall in {time.monotonic() - started:.2f} s")
    assert page.locator("article.card", has_text=before).count() == 1  # not duplicated
    # One-click acknowledge still works on the new process.
    card = page.locator("article.card", has_text=after)
    card.get_by_role("button", name="确认").click()
    page.locator("article.card.state-acknowledged", has_text=after).wait_for(timeout=5000)
    assert_clean(page)
    page.context.close()


def test_the_wall_of_a_disabled_user_goes_to_the_login_page(
    browser: Any, small_wall: Console
) -> None:
    store = Store(small_wall.db_url)
    store.users.create_user("op-leaving", hash_password(PASSWORD), Role.OPERATOR, [SITE_A])
    store.close()
    page = sign_in(browser, small_wall, "op-leaving", WALL)
    page.wait_for_selector("#live.live-on", timeout=10_000)
    engine = create_engine(make_url(small_wall.db_url))
    with engine.begin() as conn:
        conn.execute(update(users).where(users.c.username == "op-leaving").values(disabled=True))
    engine.dispose()
    # The stream ends with `end`; the page reloads and meets the login page.
    page.wait_for_url(lambda url: "/console/login" in url, timeout=15_000)
    page.context.close()
