"""Who sees what, in the browser: a worker cannot open admin pages; a site-A operator never
sees a site-B ticket on any page or on the live wall (while a site-B operator does, so the
alert did arrive); the queue works from the keyboard and every control has a label."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

import contract as c
from tests.console.conftest import assert_clean, sign_in
from tests.console.harness import DEVICE_A, DEVICE_B, PHONE, WALL, Console

pytestmark = pytest.mark.mqtt

ADMIN_PAGES = ("/console/dead-letters", "/console/devices", "/console/sla")


def test_a_worker_cannot_open_admin_pages(
    browser: Any, console: Console, shots: Callable[[Any, str], Path]
) -> None:
    phone = sign_in(browser, console, "worker", PHONE)
    for path in (*ADMIN_PAGES, "/console/wall"):
        response = phone.goto(console.url + path)
        assert response is not None
        assert response.status == 403, path
        assert "无权访问此页面" in phone.inner_text("h1")
    shots(phone, "forbidden-worker")
    menu = phone.locator("header nav").inner_text()
    for entry in ("死信", "设备", "SLA"):
        assert entry not in menu
    phone.context.close()


def _ticket_ids(page: Any) -> set[str]:
    html = page.content()
    return set(re.findall(r"/console/tickets/(\d+)", html))


def test_a_site_a_operator_never_sees_a_site_b_ticket(browser: Any, console: Console) -> None:
    op_a = sign_in(browser, console, "op", WALL)
    op_b = sign_in(browser, console, "op2", WALL)
    for page in (op_a, op_b):
        page.wait_for_selector("#live.live-on", timeout=10_000)
    zone_b = console.publish_alert(DEVICE_B, category=c.EventCategory.LITTER)
    # Site B's operator gets it: the alert was ingested and streamed.
    card_b = op_b.locator("article.card", has_text=zone_b)
    card_b.wait_for(timeout=5000)
    href = card_b.locator("h2 a").get_attribute("href")
    assert href is not None
    ticket_b = href.rsplit("/", 1)[1]
    # An alert of site A published after it reaches op A: B's, streamed first, was not sent.
    zone_a = console.publish_alert(DEVICE_A)
    op_a.locator("article.card", has_text=zone_a).wait_for(timeout=5000)
    assert op_a.locator("article.card", has_text=zone_b).count() == 0
    assert zone_b not in op_a.content()
    # No page shows it either: the wall, the queue (any filter), the detail, its snapshot.
    for path in ("/console/wall", "/console/queue", "/console/queue?site=site-2"):
        op_a.goto(console.url + path)
        assert ticket_b not in _ticket_ids(op_a), path
        assert zone_b not in op_a.content(), path
    for path in (f"/console/tickets/{ticket_b}", f"/console/wall/cards/{ticket_b}"):
        response = op_a.goto(console.url + path)
        assert response is not None
        assert response.status == 404, path
    # Its acknowledge form, posted by op A with a valid CSRF field, is refused the same way.
    op_a.goto(console.url + "/console/queue")
    csrf = op_a.locator("input[name=csrf]").first.get_attribute("value")
    answer = op_a.request.post(
        f"{console.url}/console/tickets/{ticket_b}/acknowledge",
        form={"csrf": csrf or ""},
        max_redirects=0,
    )
    assert answer.status == 404
    op_b.goto(f"{console.url}/console/tickets/{ticket_b}")
    assert "新告警" in op_b.locator("p.meta").inner_text()  # untouched
    for page in (op_a, op_b):
        page.context.close()


def test_the_stream_never_carries_another_sites_ticket(console: Console) -> None:
    """The wall's SSE stream itself (not only what the page shows), read as op of site A
    with a backlog that holds both sites' changes."""
    with httpx.Client(base_url=console.url) as client:
        login = client.get("/console/login")
        csrf = re.search(r'name="csrf" value="([^"]+)"', login.text)
        assert csrf
        form = {"username": "op", "password": "correct horse battery", "csrf": csrf[1]}
        assert client.post("/console/login", data=form).status_code in (200, 303)
        zone_b = console.publish_alert(DEVICE_B, with_snapshot=False)
        zone_a = console.publish_alert(DEVICE_A, with_snapshot=False)
        text = ""
        with client.stream(
            "GET", "/console/stream", headers={"Last-Event-ID": "0"}, timeout=10
        ) as stream:
            for line in stream.iter_lines():
                text += line + "\n"
                if zone_a in line:
                    break
        assert zone_a in text
        assert zone_b not in text
        assert "site-2" not in text


def test_queue_keyboard_navigation_and_labels(
    browser: Any, console: Console, shots: Callable[[Any, str], Path]
) -> None:
    for _ in range(3):
        console.publish_alert(DEVICE_A, with_snapshot=False)
    page = sign_in(browser, console, "op", WALL)
    page.goto(f"{console.url}/console/queue")
    rows = page.locator("tr.row")
    assert rows.count() >= 3
    # Sorted by the running deadline.
    dues = [
        float(x)
        for x in page.locator("tr.row .clock").evaluate_all("els => els.map(e => e.dataset.due)")
    ]
    assert dues == sorted(dues)
    rows.first.focus()
    page.keyboard.press("ArrowDown")
    second = rows.nth(1).get_attribute("id")
    assert page.evaluate("document.activeElement.id") == second
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/console/tickets/\d+$"))
    assert page.url.endswith("/" + (second or "").removeprefix("row-"))
    # Every form control on the queue and the detail has a label.
    for path in ("/console/queue", page.url.removeprefix(console.url)):
        page.goto(console.url + path)
        unlabelled = page.evaluate(
            """() => [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
                .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label'))
                .map(e => e.name)"""
        )
        assert unlabelled == [], path
    page.goto(f"{console.url}/console/queue")
    shots(page, "queue")
    assert_clean(page)
    page.context.close()


LOW_CONTRAST = """() => {
  const rgb = s => (s.match(/[\\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => {
    const f = c => {
      c /= 255;
      return c <= 0.03928 ? c / 12.92 : Math.pow((c + 0.055) / 1.055, 2.4);
    };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const background = el => {
    for (let e = el; e; e = e.parentElement) {
      const c = rgb(getComputedStyle(e).backgroundColor);
      if (c.length === 3 || (c.length === 4 && c[3] > 0.5)) { return c.slice(0, 3); }
    }
    return [255, 255, 255];
  };
  const bad = [];
  for (const el of document.querySelectorAll('body *')) {
    const own = [...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim());
    if (!own || el.closest('[hidden]') || el.offsetParent === null) { continue; }
    const fg = lum(rgb(getComputedStyle(el).color).slice(0, 3));
    const bg = lum(background(el));
    const ratio = (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05);
    if (ratio < 4.5) { bad.push(`${el.tagName}.${el.className}: ${ratio.toFixed(2)}`); }
  }
  return bad;
}"""


def test_text_has_readable_contrast(browser: Any, console: Console) -> None:
    """WCAG AA (4.5:1) for every piece of text on the wall, the queue, a detail page and the
    phone view, measured from the colours the browser computed."""
    console.publish_alert(DEVICE_A, severity=c.Severity.URGENT)
    page = sign_in(browser, console, "admin", WALL)
    page.wait_for_selector("article.card")
    href = page.locator("article.card h2 a").first.get_attribute("href")
    for path in ("/console/wall", "/console/queue", href or "", "/console/sla", "/console/my"):
        page.goto(console.url + path)
        assert page.evaluate(LOW_CONTRAST) == [], path
    page.context.close()
