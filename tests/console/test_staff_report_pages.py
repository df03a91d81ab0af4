"""The staff pages of resident reports without a browser (TestClient on the real app): the
operator's entry form (hotline / WeChat group), the resident's part of the ticket page, the
figures page with its downloads and the supervisor's low ratings."""

from __future__ import annotations

import csv
import io
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from openpyxl import load_workbook

from gateway.auth import issue_console_session
from gateway.console.session import CSRF_COOKIE, SESSION_COOKIE, csrf_token
from gateway.main import create_app
from gateway.residents.settings import ResidentSettings
from tests.gateway.apphelpers import SITE, seed_users, settings_for
from tests.gateway.imagedata import encoded
from tests.gateway.residents.conftest import seed_grid
from tests.gateway.residents.sitefiles import write_sites

CSRF_VALUE = "csrf-cookie-of-the-staff-pages"


@pytest.fixture
def client(sqlite_url: str, tmp_path: Path) -> Iterator[TestClient]:
    seed_users(sqlite_url)
    seed_grid(sqlite_url)
    settings = settings_for(
        sqlite_url,
        sites_dir=write_sites(tmp_path / "sites"),
        residents=ResidentSettings(pow_bits=8, public_base_url="https://guanjia.example.cn"),
    )
    with TestClient(create_app(settings), follow_redirects=False) as test_client:
        yield test_client


def _key(client: TestClient) -> str:
    key: str = client.app.state.runtime.settings.signing_key()  # type: ignore[attr-defined]
    return key


def _as(client: TestClient, username: str) -> str:
    """Sign the client in as `username` (a session cookie as the login form sets); the form's
    CSRF field."""
    key = _key(client)
    client.cookies.clear()
    client.cookies.set(SESSION_COOKIE, issue_console_session(username, key, time.time(), 3600))
    client.cookies.set(CSRF_COOKIE, CSRF_VALUE)
    return csrf_token(key, CSRF_VALUE)


def _enter(client: TestClient, csrf: str, **changes: str) -> Any:
    form = {
        "csrf": csrf,
        "site_id": SITE,
        "place_id": "lane-east",
        "channel": "hotline",
        "category": "facility_repair",
        "description": "东侧通道路灯不亮",
        "phone": "13700001111",
        **changes,
    }
    return client.post("/console/reports", data=form)


def test_operator_enters_a_hotline_call_and_gets_the_tracking_link(client: TestClient) -> None:
    csrf = _as(client, "op")
    form = client.get("/console/reports/new")
    assert form.status_code == 200
    assert "东侧通道" in form.text
    assert "设施损坏报修" in form.text
    created = _enter(client, csrf)
    assert created.status_code == 201, created.text
    text = created.text
    url = re.search(r'value="(https://guanjia\.example\.cn/r/track/[A-Za-z0-9_-]+)"', text)
    assert url, text
    ticket_id = re.search(r'href="/console/tickets/(\d+)"', text)
    assert ticket_id
    # The tracking link works for the resident (no session), and shows no personal data.
    client.cookies.clear()
    page = client.get(url[1].removeprefix("https://guanjia.example.cn"))
    assert page.status_code == 200
    assert "13700001111" not in page.text
    assert "东侧通道路灯不亮" not in page.text
    # The ticket page shows staff the resident's part: channel, description, phone, who.
    _as(client, "sup")
    detail = client.get(f"/console/tickets/{ticket_id[1]}")
    part = re.search(r'<section class="resident-report".*?</section>', detail.text, re.DOTALL)
    assert part, detail.text
    for shown in ("24 小时热线", "东侧通道路灯不亮", "13700001111", "op", "东侧通道"):
        assert shown in part[0], shown


def test_entry_form_checks_fields_role_and_site(client: TestClient) -> None:
    csrf = _as(client, "op")
    bad = _enter(client, csrf, phone="call me")
    assert bad.status_code == 422
    assert "手机号 5–20 位数字" in bad.text
    assert _enter(client, csrf, channel="qr").status_code == 422
    assert _enter(client, csrf, place_id="nowhere").status_code == 422
    assert _enter(client, "forged").status_code == 403
    csrf = _as(client, "op2")  # an operator of site-2
    assert _enter(client, csrf).status_code == 404
    csrf = _as(client, "worker")
    assert _enter(client, csrf).status_code == 403
    assert client.get("/console/reports/new").status_code == 403


def test_a_ticket_no_resident_reported_has_no_resident_part(client: TestClient) -> None:
    csrf = _as(client, "op")
    created = _enter(client, csrf)
    ticket_id = re.search(r'href="/console/tickets/(\d+)"', created.text)
    assert ticket_id
    # A rounds ticket (a failed checklist item) is a ticket at a place no resident reported.
    _as(client, "worker")
    scan = client.post(
        f"/console/rounds/{SITE}/scans",
        data={
            "csrf": csrf_token(_key(client), CSRF_VALUE),
            "tag_id": "tag-ext1",
            "item.pressure": "fail",
            "item.seal": "pass",
        },
    )
    assert scan.status_code == 303, scan.text
    assert scan.headers["location"].endswith("notice=notice.scan_failed_items")
    _as(client, "sup")
    queue = client.get("/console/queue", params={"category": "inspection_failed"})
    found = re.search(r'data-href="/console/tickets/(\d+)"', queue.text)
    assert found
    detail = client.get(f"/console/tickets/{found[1]}")
    assert detail.status_code == 200
    assert 'id="resident-report"' not in detail.text
    assert 'id="resident-report"' in client.get(f"/console/tickets/{ticket_id[1]}").text


def test_figures_page_downloads_and_low_ratings(client: TestClient) -> None:
    csrf = _as(client, "op")
    created = _enter(client, csrf)
    text = created.text
    ticket_id = re.search(r'href="/console/tickets/(\d+)"', text)
    track = re.search(r'value="https://guanjia\.example\.cn(/r/track/[A-Za-z0-9_-]+)"', text)
    assert ticket_id
    assert track
    _as(client, "sup")
    csrf = csrf_token(_key(client), CSRF_VALUE)
    for step, data in (("dispatch", {"assignee": "worker"}),):
        r = client.post(f"/console/tickets/{ticket_id[1]}/{step}", data={"csrf": csrf, **data})
        assert r.status_code == 303, r.text
    r = client.post(
        f"/console/tickets/{ticket_id[1]}/photos",
        data={"csrf": csrf},
        files={"file": ("p.jpg", encoded(".jpg"), "image/jpeg")},
    )
    assert r.status_code == 303, r.text
    r = client.post(
        f"/console/tickets/{ticket_id[1]}/resolve", data={"csrf": csrf, "note": "换灯泡"}
    )
    assert r.status_code == 303, r.text
    # The resident rates it 1 (the site file flags ratings of 2 or less).
    client.cookies.clear()
    page = client.get(track[1])
    field = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert field
    rated = client.post(
        f"{track[1]}/rating", data={"rating": "1", "comment": "灯还是不亮", "csrf": field[1]}
    )
    assert rated.status_code == 303, page.text
    _as(client, "sup")
    figures = client.get("/console/figures", params={"site": SITE, "group_by": "category"})
    assert figures.status_code == 200, figures.text
    row = re.search(r"<tr>\s*<th scope=\"row\">设施报修</th>.*?</tr>", figures.text, re.DOTALL)
    assert row, figures.text
    assert "1.00 (1)" in row[0]  # satisfaction average (ratings)
    # The charts sla.js draws: the one rating counted under "1", one bar per group.
    chart = re.search(r"<div class=\"chart\" id=\"chart-satisfaction\"([^>]*)>", figures.text)
    assert chart, figures.text
    assert "data-counts='[1, 0, 0, 0, 0]'" in chart[1]
    assert 'data-labels=\'["1", "2", "3", "4", "5"]\'' in chart[1]
    assert '<div class="chart" id="chart-tickets"' in figures.text
    assert "/console/static/sla.js" in figures.text
    flagged = re.search(r'<table id="flagged">.*?</table>', figures.text, re.DOTALL)
    assert flagged
    assert "灯还是不亮" in flagged[0]
    link = re.search(r'href="(/console/figures/export\?[^"]+format=csv)"', figures.text)
    assert link
    download = client.get(link[1].replace("&amp;", "&"))
    assert download.status_code == 200, download.text
    rows = list(csv.reader(io.StringIO(download.text)))
    assert any("facility_repair" in r for r in rows), rows
    xlsx = client.get(link[1].replace("&amp;", "&").replace("format=csv", "format=xlsx"))
    assert xlsx.status_code == 200
    assert load_workbook(io.BytesIO(xlsx.content)).active is not None
    _as(client, "worker")
    assert client.get("/console/figures").status_code == 403
    assert client.get(link[1].replace("&amp;", "&")).status_code == 403


def test_the_scan_upload_wants_a_session_before_its_body_and_has_a_limit(
    client: TestClient,
) -> None:
    big = b"\xff" * (9 * 1024 * 1024)
    files = {"file": ("p.jpg", big, "image/jpeg")}
    client.cookies.clear()
    anonymous = client.post(f"/console/rounds/{SITE}/scans", files=files)
    assert anonymous.status_code == 303
    assert anonymous.headers["location"] == "/console/login"
    csrf = _as(client, "worker")
    data = {"csrf": csrf, "tag_id": "tag-door1", "item.closes": "pass"}
    too_big = client.post(f"/console/rounds/{SITE}/scans", data=data, files=files)
    assert too_big.status_code == 413
    no_photo = client.post(f"/console/rounds/{SITE}/scans", data=data)
    assert no_photo.status_code == 422
    assert "需要照片" in no_photo.text
    csrf = _as(client, "op2")  # another site's staff: no such site
    assert client.get(f"/console/rounds/{SITE}/checkpoints/tag-door1").status_code == 404


def test_a_site_id_that_is_not_one_is_refused_before_the_download(client: TestClient) -> None:
    _as(client, "admin")
    bad = 'x"\r\nSet-Cookie: a=b'
    params: dict[str, str | int] = {"start": 0, "end": 86400, "format": "csv", "site_id": bad}
    assert client.get("/console/figures/export", params=params).status_code == 422
    assert client.get("/console/figures", params={"site": bad}).status_code == 422
