"""The residents' public pages without a browser (TestClient on the real app): the report
page of a QR code, the tracking page and its rating form, their limits, and what the
tracking page must never show."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from gateway.console.render import CONTENT_SECURITY_POLICY
from gateway.main import create_app
from gateway.residents import pow
from gateway.residents.settings import ResidentSettings
from tests.gateway.apphelpers import SITE, seed_users, settings_for, token
from tests.gateway.imagedata import encoded
from tests.gateway.residents.conftest import seed_grid
from tests.gateway.residents.sitefiles import write_sites

READS_PER_MINUTE = 12


@pytest.fixture
def client(sqlite_url: str, tmp_path: Path) -> Iterator[TestClient]:
    seed_users(sqlite_url)
    seed_grid(sqlite_url)
    settings = settings_for(
        sqlite_url,
        sites_dir=write_sites(tmp_path / "sites"),
        residents=ResidentSettings(pow_bits=8, reads_per_address_per_minute=READS_PER_MINUTE),
    )
    with TestClient(create_app(settings), follow_redirects=False) as test_client:
        yield test_client


def _qr(client: TestClient, place: str = "b3-lobby") -> str:
    found: str = client.app.state.runtime.residents.place_token(SITE, place)  # type: ignore[attr-defined]
    return found


def _report(client: TestClient, qr: str) -> str:
    """Send a report as the page's script does (challenge from the page); its tracking path."""
    page = client.get(f"/r/{qr}")
    challenge = re.search(r'name="challenge" value="([^"]+)" data-bits="(\d+)"', page.text)
    assert challenge, page.text
    data = {
        "category": "litter",
        "description": "东单元门口一堆装修垃圾",
        "phone": "13800000000",
        "challenge": challenge[1],
        "nonce": pow.solve(challenge[1], int(challenge[2])),
    }
    files = [("photos", ("p.jpg", encoded(".jpg"), "image/jpeg"))]
    r = client.post(f"/api/public/places/{qr}/reports", data=data, files=files)
    assert r.status_code == 201, r.text
    path: str = r.json()["tracking_path"]
    return path


def test_report_page_shows_the_place_in_chinese_with_the_strict_policy(
    client: TestClient,
) -> None:
    page = client.get(f"/r/{_qr(client)}")
    assert page.status_code == 200
    assert page.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert "龙海家园 · 3号楼大堂" in page.text
    assert "消防通道堵塞" in page.text
    assert "设施损坏报修" in page.text
    assert '<script src="/console/static/resident.js" defer></script>' in page.text
    assert "<script>" not in page.text  # nothing inline
    client.cookies.set("guanjia_lang", "en")
    assert "Fire lane blocked" in client.get(f"/r/{_qr(client)}").text


def test_a_forged_or_unknown_code_is_a_404_page(client: TestClient) -> None:
    qr = _qr(client)
    forged = qr[:-2] + ("AA" if not qr.endswith("AA") else "BB")
    for token_ in (forged, "site-1.nowhere.x", "x"):
        page = client.get(f"/r/{token_}")
        assert page.status_code == 404
        assert "text/html" in page.headers["content-type"]


def test_page_views_count_against_the_public_read_limit(client: TestClient) -> None:
    qr = _qr(client)
    codes = [client.get(f"/r/{qr}").status_code for _ in range(READS_PER_MINUTE + 3)]
    assert codes[:READS_PER_MINUTE] == [200] * READS_PER_MINUTE
    assert codes[READS_PER_MINUTE:] == [429] * 3
    refused = client.get(f"/r/{qr}")
    assert refused.headers["retry-after"] == "60"
    assert "请求太频繁" in refused.text
    # The API's reads share the same counter.
    assert client.get(f"/api/public/places/{qr}").status_code == 429


def test_tracking_shows_progress_without_anyones_data_and_takes_one_rating(
    client: TestClient,
) -> None:
    path = _report(client, _qr(client))
    assert re.fullmatch(r"/r/track/[A-Za-z0-9_-]{40,}", path)
    page = client.get(path)
    assert page.status_code == 200
    assert "已受理" in page.text
    assert "垃圾杂物" in page.text
    assert 'id="rate"' not in page.text  # not resolved yet
    admin = token(client, "admin")
    tickets = client.get("/api/tickets", headers=admin, params={"device_id": "place:b3-lobby"})
    ticket = tickets.json()["items"][0]
    for step, body in (("photos", None), ("resolve", {"note": "清运完毕，联系人 worker"})):
        if body is None:
            files = {"file": ("p.jpg", encoded(".jpg"), "image/jpeg")}
            r = client.post(f"/api/tickets/{ticket['id']}/{step}", headers=admin, files=files)
        else:
            r = client.post(f"/api/tickets/{ticket['id']}/{step}", headers=admin, json=body)
        assert r.status_code in (200, 201), r.text
    client.headers.pop("authorization", None)
    page = client.get(path)
    assert "已处理" in page.text
    assert 'id="rate"' in page.text
    for secret in ("13800000000", "东单元门口", "清运完毕", "worker", "admin", f"#{ticket['id']}"):
        assert secret not in page.text, secret
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf
    no_csrf = client.post(f"{path}/rating", data={"rating": "5"})
    assert no_csrf.status_code == 403
    rated = client.post(f"{path}/rating", data={"rating": "2", "comment": "太慢", "csrf": csrf[1]})
    assert rated.status_code == 303
    assert rated.headers["location"] == f"{path}?notice=resident.rated_low"  # site file: flag
    page = client.get(rated.headers["location"])
    assert "主管跟进" in page.text
    assert "2 星" in page.text
    assert 'id="rate"' not in page.text
    again = client.post(f"{path}/rating", data={"rating": "5", "csrf": csrf[1]})
    assert again.headers["location"].endswith("notice=resident.rate_refused")
    flagged = client.get(f"/api/tickets/{ticket['id']}/report", headers=admin).json()
    assert flagged["rating"] == 2
    assert flagged["flagged_at"] is not None


def test_an_unknown_tracking_link_is_a_404_page(client: TestClient) -> None:
    assert client.get("/r/track/" + "A" * 43).status_code == 404
