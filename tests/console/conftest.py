"""Browser fixtures: Debian's Chromium driven by Playwright (one browser for this package, never
`playwright install`), and a real console to point it at (one per session)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import missing
from tests.console.harness import PASSWORD, Console, artifacts_dir, start_console

CHROMIUM = os.environ.get("GUANJIA_CHROMIUM", "/usr/bin/chromium")


@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    """Headless Chromium; skipped locally without it (or without Playwright), fails in CI."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing("playwright (pip install -e '.[dev]')")
    if not (Path(CHROMIUM).exists() or shutil.which("chromium")):
        missing(f"chromium at {CHROMIUM}")
    with sync_playwright() as playwright:
        found = playwright.chromium.launch(
            executable_path=CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium"),
            headless=True,
            args=["--autoplay-policy=no-user-gesture-required"],
        )
        yield found
        found.close()


@pytest.fixture(scope="session")
def console(
    mosquitto_available: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Console]:
    # One for the session: tests tell their alerts apart by zone, so they can share it.
    running = start_console(tmp_path_factory.mktemp("console"))
    yield running
    running.close()


@pytest.fixture(scope="session")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Callable[[Any, str], Path]:
    """`shots(page, name)` saves a full-page screenshot to the artifacts folder."""
    folder = artifacts_dir(tmp_path_factory.mktemp("artifacts"))

    def save(page: Any, name: str) -> Path:
        path = folder / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return save


def sign_in(browser: Any, console: Console, username: str, viewport: dict[str, int]) -> Any:
    """A fresh browser context signed in as `username` through the login form; its page."""
    context = browser.new_context(viewport=viewport, locale="zh-CN")
    page = context.new_page()
    watch_errors(page)
    page.goto(f"{console.url}/console/login")
    page.get_by_label("用户名").fill(username)
    page.get_by_label("密码").fill(PASSWORD)
    page.get_by_role("button", name="登录").click()
    page.wait_for_url(lambda url: "/console/login" not in url)
    return page


def watch_errors(page: Any) -> list[str]:
    """Collect the page's console errors and uncaught exceptions (a CSP violation is one)
    on `page.errors`; `assert_clean(page)` checks there were none."""
    errors: list[str] = []
    page.on(
        "console",
        lambda m: (
            errors.append(f"{m.text} {m.location.get('url', '')}") if m.type == "error" else None
        ),
    )
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.errors = errors
    return errors


def assert_clean(page: Any) -> None:
    """No script error and no Content-Security-Policy violation on the page so far. Not
    counted: a refused stream reconnect while the gateway was away, and a thumbnail asked
    for before its snapshot arrived (the wall asks again)."""
    found = [
        e
        for e in page.errors
        if "ERR_CONNECTION_REFUSED" not in e and not ("404" in e and "/snapshots/" in e)
    ]
    assert found == [], found


@pytest.fixture(scope="session")
def sites_console(
    mosquitto_available: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Console]:
    """A console whose gateway reads a site file (places with QR codes, patrol rounds) and
    has grid g-site-1 (zone-a, `worker` on duty): the residents' and rounds pages' tests.
    Its own gateway, so the rounds' missed-round tickets never reach the shared console."""
    from tests.gateway.residents.conftest import seed_grid
    from tests.gateway.residents.sitefiles import write_sites

    workdir = tmp_path_factory.mktemp("sites-console")
    sites = write_sites(workdir / "sites")
    # Low proof-of-work difficulty: the page's script still solves it, only faster.
    running = start_console(workdir, SITES_DIR=str(sites), RESIDENTS__POW_BITS=12)
    seed_grid(running.db_url)
    yield running
    running.close()
