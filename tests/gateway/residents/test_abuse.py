"""Abuse of the public report route: floods, oversized and fake uploads, replayed or unsolved
proofs of work, and the per-place quota across addresses. Each is refused before the work it
would cost (no ticket, no photo decoded, no database row)."""

from __future__ import annotations

import time

import pytest

from gateway.residents import pow
from gateway.residents.service import ReportForm
from gateway.store import ConflictError, migrate
from gateway.store.residents import PlaceLimitError
from tests.gateway.residents.conftest import ResidentApp
from tests.gateway.residents.test_photos import phone_jpeg


@pytest.fixture
def db_url(sqlite_url: str) -> str:
    """SQLite only: these limits are checked before the database (the per-place quota, which
    is a database count, is tested on both in test_store.py)."""
    migrate(sqlite_url)
    return sqlite_url


def _solved(app: ResidentApp) -> dict[str, str]:
    issued = app.service._challenge("site-1", time.time())
    return {
        "category": "litter",
        "description": "垃圾",
        "challenge": issued.challenge,
        "nonce": pow.solve(issued.challenge, issued.bits),
    }


def _count_reports(app: ResidentApp) -> int:
    page = app.client.get(
        "/api/tickets", headers=app.headers("admin"), params={"category": "litter", "limit": 500}
    ).json()
    return int(page["total"])


def test_a_thousand_reports_from_one_address_are_rate_limited_without_flooding_the_queue(
    resident_app: ResidentApp,
) -> None:
    app = resident_app
    url = f"/api/public/places/{app.qr_token()}/reports"
    forms = [_solved(app) for _ in range(1000)]
    started = time.monotonic()
    codes = [app.client.post(url, data=form).status_code for form in forms]
    elapsed = time.monotonic() - started
    limit = app.service.settings.reports_per_address_per_hour
    assert codes.count(201) == limit
    assert codes.count(429) == 1000 - limit
    assert _count_reports(app) == limit
    refused = app.client.post(url, data=_solved(app))
    # The limit is hourly: the first of the 10 leaves the window an hour after it came.
    assert 3600 - 60 <= int(refused.headers["retry-after"]) <= 3600
    assert "too many reports" in refused.json()["detail"]
    print(f"1000 reports from one address: {elapsed:.2f} s")


def test_a_50_mb_upload_is_refused_before_it_is_read(resident_app: ResidentApp) -> None:
    app = resident_app
    url = f"/api/public/places/{app.qr_token()}/reports"
    huge = b"\xff\xd8\xff" + b"\x00" * (50 * 1024 * 1024)
    r = app.client.post(url, data=_solved(app), files={"photos": ("big.jpg", huge, "image/jpeg")})
    assert r.status_code == 413
    assert "larger than" in r.json()["detail"]
    assert _count_reports(app) == 0


def test_a_photo_over_the_per_photo_limit_is_refused(resident_app: ResidentApp) -> None:
    app = resident_app
    url = f"/api/public/places/{app.qr_token()}/reports"
    big = phone_jpeg() + b"\x00" * (app.service.settings.max_photo_bytes)
    r = app.client.post(url, data=_solved(app), files={"photos": ("big.jpg", big, "image/jpeg")})
    assert r.status_code == 413
    assert "photos[0]" in r.json()["detail"]


def test_a_non_image_is_refused_with_a_clear_message(resident_app: ResidentApp) -> None:
    app = resident_app
    url = f"/api/public/places/{app.qr_token()}/reports"
    page = b"<html><script>alert(1)</script></html>"
    r = app.client.post(url, data=_solved(app), files={"photos": ("x.jpg", page, "image/jpeg")})
    assert r.status_code == 415
    assert r.json()["detail"] == "photos[0]: not a JPEG, PNG or WebP photo"
    assert _count_reports(app) == 0


def test_more_than_three_photos_are_refused(resident_app: ResidentApp) -> None:
    app = resident_app
    url = f"/api/public/places/{app.qr_token()}/reports"
    files = [("photos", (f"{n}.jpg", phone_jpeg(), "image/jpeg")) for n in range(4)]
    r = app.client.post(url, data=_solved(app), files=files)
    assert r.status_code == 400  # the form parser stops at the fourth file
    assert _count_reports(app) == 0


def test_a_replayed_or_unsolved_proof_of_work_is_refused(resident_app: ResidentApp) -> None:
    app = resident_app
    url = f"/api/public/places/{app.qr_token()}/reports"
    form = _solved(app)
    assert app.client.post(url, data=form).status_code == 201
    replay = app.client.post(url, data=form)
    assert (replay.status_code, replay.json()["detail"]) == (
        409,
        "challenge: already used; fetch a new one",
    )
    unsolved = {**_solved(app), "nonce": "zz"}
    r = app.client.post(url, data=unsolved)
    if r.status_code != 201:  # "zz" could solve an 8-bit challenge by chance (1 in 256)
        assert (r.status_code, r.json()["detail"]) == (403, "nonce: does not solve the challenge")
    missing = {k: v for k, v in _solved(app).items() if k != "challenge"}
    assert app.client.post(url, data=missing).status_code == 403


def test_a_replayed_proof_is_refused_before_its_photos_are_decoded(
    resident_app: ResidentApp,
) -> None:
    """Decoding photos is the costly step: one solved challenge must not buy a photo
    decode per replay (a non-photo shows which check came first: 409, not 415)."""
    app = resident_app
    url = f"/api/public/places/{app.qr_token()}/reports"
    form = _solved(app)
    assert app.client.post(url, data=form).status_code == 201
    junk = {"photos": ("x.jpg", b"<html></html>", "image/jpeg")}
    replay = app.client.post(url, data=form, files=junk)
    assert (replay.status_code, replay.json()["detail"]) == (
        409,
        "challenge: already used; fetch a new one",
    )


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("category", "fire_alarm", "category: choose one from the list"),
        ("description", "   ", "description: 1 to 1000 characters"),
        ("phone", "call me", "phone: 5 to 20 digits"),
    ],
)
def test_bad_fields_are_refused_before_the_proof_is_spent(
    resident_app: ResidentApp, field: str, value: str, message: str
) -> None:
    app = resident_app
    url = f"/api/public/places/{app.qr_token()}/reports"
    form = {**_solved(app), field: value}
    r = app.client.post(url, data=form)
    assert r.status_code == 422
    assert r.json()["detail"].startswith(message)
    fixed = {
        **form,
        field: {"category": "litter", "description": "垃圾", "phone": "13800000000"}[field],
    }
    assert app.client.post(url, data=fixed).status_code == 201  # the challenge was not spent


def test_the_place_quota_holds_across_addresses(resident_app: ResidentApp) -> None:
    """The per-place hourly quota is counted in the database: every replica, every address."""
    app = resident_app
    service = app.service
    token = app.qr_token()
    limit = service.sites["site-1"].residents.reports_per_place_per_hour
    now = time.time()
    for _ in range(limit):
        form = _solved(app)
        service.submit(
            token,
            ReportForm(form["category"], "x", None, form["challenge"], form["nonce"]),
            [],
            now,
        )
    form = _solved(app)
    with pytest.raises(PlaceLimitError):
        service.submit(
            token, ReportForm("litter", "x", None, form["challenge"], form["nonce"]), [], now
        )
    # The refused report did not spend its challenge either: an hour later it goes through
    # (while unexpired), and spending it twice is a conflict.
    later = now + 3601
    issued = pow.issue(service._pow_key, "site-1", later, bits=8, ttl_s=600)
    nonce = pow.solve(issued.challenge, 8)
    service.submit(token, ReportForm("litter", "x", None, issued.challenge, nonce), [], later)
    with pytest.raises(ConflictError):
        service.submit(token, ReportForm("litter", "x", None, issued.challenge, nonce), [], later)
