"""The resident report flow through the real app (SQLite and PostgreSQL): a QR code's report
becomes a ticket routed to that place's grid and on-duty butler, with the photo's EXIF gone;
the tracking link shows progress without personal data; the rating lands once; abuse is
refused before it costs anything."""

from __future__ import annotations

import io
from typing import Any

import pytest
from PIL import Image

from gateway.residents.tokens import tracking_hash
from tests.gateway.apphelpers import OTHER_SITE, SITE
from tests.gateway.residents.conftest import ResidentApp
from tests.gateway.residents.sitefiles import GRID
from tests.gateway.residents.test_photos import GPS_IFD, phone_jpeg


def _tickets(app: ResidentApp, **params: str) -> list[dict[str, Any]]:
    r = app.client.get(
        "/api/tickets", headers=app.headers("admin"), params={"limit": 500, **params}
    )
    # Only the reports: the rounds tick at start-up opens tickets for missed rounds too.
    return [t for t in r.json()["items"] if str(t["device_id"]).startswith("place:")]


def test_a_qr_report_opens_a_ticket_for_the_places_grid_and_on_duty_butler(
    resident_app: ResidentApp,
) -> None:
    r = resident_app.report(photos=[phone_jpeg()])
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["tracking_path"] == f"/r/track/{created['tracking_token']}"
    (ticket,) = _tickets(resident_app)
    assert ticket["category"] == "litter"
    assert ticket["grid_id"] == GRID  # zone-a's grid: the resident never named it
    assert ticket["assignee"] == "worker"  # on duty now
    assert ticket["device_id"] == "place:b3-lobby"
    assert ticket["ack_due_at"] - ticket["created_at"] == pytest.approx(20 * 60)  # litter SLA
    detail = resident_app.client.get(
        f"/api/tickets/{ticket['id']}", headers=resident_app.headers("admin")
    ).json()
    assert detail["audit"][0]["action"] == "open"
    assert detail["audit"][0]["detail"]["channel"] == "qr"
    (photo,) = detail["attachments"]
    data = resident_app.client.get(photo["url"], headers=resident_app.headers("admin")).content
    with Image.open(io.BytesIO(data)) as image:
        assert image.getexif().get_ifd(GPS_IFD) == {}
    assert b"PhoneModel" not in data


def test_a_place_routed_by_grid_works_too(resident_app: ResidentApp) -> None:
    assert resident_app.report("lane-east").status_code == 201
    (ticket,) = _tickets(resident_app)
    assert (ticket["grid_id"], ticket["assignee"]) == (GRID, "worker")


def test_tracking_shows_progress_without_personal_data_then_takes_one_rating(
    resident_app: ResidentApp,
) -> None:
    app = resident_app
    tracking = app.report(photos=[phone_jpeg()]).json()["tracking_token"]
    other = app.report("lane-east").json()["tracking_token"]
    view = app.client.get(f"/api/public/track/{tracking}")
    assert view.status_code == 200
    body = view.json()
    assert body["state"] == "new"
    assert [s["step"] for s in body["steps"]] == ["reported"]
    assert not body["can_rate"]
    assert (
        app.client.post(f"/api/public/track/{tracking}/rating", json={"rating": 5}).status_code
        == 409
    )
    # The butler resolves it with a photo.
    ticket_id = next(t["id"] for t in _tickets(app) if t["device_id"] == "place:b3-lobby")
    worker = app.headers("worker")
    files = {"file": ("fixed.jpg", phone_jpeg(), "image/jpeg")}
    assert (
        app.client.post(f"/api/tickets/{ticket_id}/photos", headers=worker, files=files).status_code
        == 201
    )
    r = app.client.post(
        f"/api/tickets/{ticket_id}/resolve",
        headers=worker,
        json={"note": "王师傅 13912345678 已清理"},
    )
    assert r.status_code == 200, r.text
    text = app.client.get(f"/api/public/track/{tracking}").text
    body = app.client.get(f"/api/public/track/{tracking}").json()
    assert [s["step"] for s in body["steps"]] == ["reported", "resolved"]
    assert body["can_rate"]
    for secret in ("13800000000", "13912345678", "worker", "王师傅", "一堆垃圾", other):
        assert secret not in text, secret
    assert set(body) == {
        "site_name",
        "place_name",
        "category",
        "category_label",
        "state",
        "reported_at",
        "steps",
        "rating",
        "can_rate",
    }  # no ticket id, assignee, grid, note or photos
    rated = app.client.post(
        f"/api/public/track/{tracking}/rating", json={"rating": 4, "comment": "很快"}
    )
    assert rated.json() == {"rating": 4, "outcome": "recorded"}
    again = app.client.post(f"/api/public/track/{tracking}/rating", json={"rating": 1})
    assert again.status_code == 409
    assert app.client.get(f"/api/public/track/{tracking}").json()["rating"] == 4


def test_unknown_or_forged_tokens_answer_the_same_404(resident_app: ResidentApp) -> None:
    app = resident_app
    qr = app.qr_token()
    forged = qr.replace("b3-lobby", "b9-lobby")
    other_site = qr.replace(SITE, OTHER_SITE)
    for url in (
        f"/api/public/places/{forged}",
        f"/api/public/places/{other_site}",
        "/api/public/track/" + "A" * 43,
        "/api/public/track/not-a-token",
    ):
        r = app.client.get(url)
        assert (r.status_code, r.json()) == (404, {"detail": "not found"}), url


@pytest.mark.parametrize(
    ("action", "state", "flagged"), [("flag", "resolved", True), ("reopen", "new", False)]
)
def test_a_low_rating_flags_or_reopens_as_the_site_file_says(
    resident_app: ResidentApp, action: str, state: str, flagged: bool
) -> None:
    app = resident_app
    from tests.gateway.residents.sitefiles import write_sites

    write_sites(app.sites_dir, residents={"low_rating_at_or_below": 2, "low_rating_action": action})
    from gateway.sites import load_sites

    app.service.sites = load_sites(app.sites_dir)
    tracking = app.report().json()["tracking_token"]
    (ticket,) = _tickets(app)
    admin = app.headers("admin")
    assert (
        app.client.post(
            f"/api/tickets/{ticket['id']}/dispatch", headers=admin, json={"assignee": "worker"}
        ).status_code
        == 200
    )
    files = {"file": ("fixed.jpg", phone_jpeg(), "image/jpeg")}
    app.client.post(f"/api/tickets/{ticket['id']}/photos", headers=admin, files=files)
    assert (
        app.client.post(
            f"/api/tickets/{ticket['id']}/resolve", headers=admin, json={"note": "ok"}
        ).status_code
        == 200
    )
    r = app.client.post(
        f"/api/public/track/{tracking}/rating", json={"rating": 2, "comment": "没人来"}
    )
    assert r.json()["outcome"] == ("flagged" if flagged else "reopened")
    (after,) = _tickets(app)
    assert after["state"] == state
    hashed = tracking_hash(tracking)
    assert hashed is not None
    row = app.store.residents.report_by_tracking(hashed)
    assert row.rating == 2
    detail = app.client.get(f"/api/tickets/{ticket['id']}", headers=admin).json()
    assert "rated" in [a["action"] for a in detail["audit"]]
    listed = [f.ticket_id for f in app.service.flagged([SITE])]
    assert listed == ([ticket["id"]] if flagged else [])
    assert app.service.flagged(["site-2"]) == []
    if not flagged:
        assert after["sla_cycle"] == 1  # a new SLA cycle, as any reopen


def test_operators_enter_hotline_and_wechat_reports_with_the_channel_recorded(
    resident_app: ResidentApp,
) -> None:
    app = resident_app
    body = {
        "place_id": "b3-lobby",
        "channel": "hotline",
        "category": "noise",
        "description": "夜里装修",
    }
    r = app.client.post(f"/api/sites/{SITE}/reports", headers=app.headers("op"), json=body)
    assert r.status_code == 201, r.text
    created = r.json()
    detail = app.client.get(
        f"/api/tickets/{created['ticket_id']}", headers=app.headers("op")
    ).json()
    assert detail["audit"][0]["actor"] == "op"
    assert detail["audit"][0]["detail"]["channel"] == "hotline"
    report = app.client.get(
        f"/api/tickets/{created['ticket_id']}/report", headers=app.headers("worker")
    )
    assert report.status_code == 200
    assert (report.json()["channel"], report.json()["place_name"], report.json()["entered_by"]) == (
        "hotline",
        "3号楼大堂",
        "op",
    )
    hidden = app.client.get(
        f"/api/tickets/{created['ticket_id']}/report", headers=app.headers("op2")
    )
    assert hidden.status_code == 404
    assert app.client.get(f"/api/public/track/{created['tracking_token']}").status_code == 200
    # Another site's operator, an unknown place, the residents' channel: refused.
    assert (
        app.client.post(
            f"/api/sites/{SITE}/reports", headers=app.headers("op2"), json=body
        ).status_code
        == 404
    )
    unknown = {**body, "place_id": "nowhere"}
    assert (
        app.client.post(
            f"/api/sites/{SITE}/reports", headers=app.headers("op"), json=unknown
        ).status_code
        == 422
    )
    qr = {**body, "channel": "qr"}
    assert (
        app.client.post(
            f"/api/sites/{SITE}/reports", headers=app.headers("op"), json=qr
        ).status_code
        == 422
    )
    assert (
        app.client.post(
            f"/api/sites/{SITE}/reports", headers=app.headers("worker"), json=body
        ).status_code
        == 403
    )
