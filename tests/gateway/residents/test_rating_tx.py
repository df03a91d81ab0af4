"""A resident's low rating and the reopen it causes are one transaction: a crash between them
(a database error on the reopen's audit line, raised by a trigger) takes the rating back too,
so the resident can rate again and the reopen is never lost."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from gateway.residents.tokens import tracking_hash
from gateway.sites import load_sites
from tests.gateway.residents.conftest import ResidentApp
from tests.gateway.residents.sitefiles import write_sites
from tests.gateway.residents.test_photos import phone_jpeg

_SQLITE_CRASH = (
    "CREATE TRIGGER crash_on_reopen BEFORE INSERT ON audit_log WHEN NEW.action = 'reopen' "
    "BEGIN SELECT RAISE(ABORT, 'power cut'); END",
)
_POSTGRES_CRASH = (
    "CREATE FUNCTION crash_on_reopen() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
    "IF NEW.action = 'reopen' THEN RAISE EXCEPTION 'power cut'; END IF; RETURN NEW; END $$",
    "CREATE TRIGGER crash_on_reopen BEFORE INSERT ON audit_log FOR EACH ROW "
    "EXECUTE FUNCTION crash_on_reopen()",
)


def _resolved_report(app: ResidentApp, action: str) -> tuple[str, int]:
    """A report whose ticket a butler resolved, at a site whose low ratings `action`."""
    write_sites(app.sites_dir, residents={"low_rating_at_or_below": 2, "low_rating_action": action})
    app.service.sites = load_sites(app.sites_dir)
    tracking = app.report().json()["tracking_token"]
    hashed = tracking_hash(tracking)
    assert hashed is not None
    ticket_id = app.store.residents.report_by_tracking(hashed).ticket_id
    admin = app.headers("admin")
    files = {"file": ("fixed.jpg", phone_jpeg(), "image/jpeg")}
    app.client.post(f"/api/tickets/{ticket_id}/photos", headers=admin, files=files)
    r = app.client.post(f"/api/tickets/{ticket_id}/resolve", headers=admin, json={"note": "ok"})
    assert r.status_code == 200, r.text
    return tracking, ticket_id


def _state(app: ResidentApp, ticket_id: int) -> str:
    r = app.client.get(f"/api/tickets/{ticket_id}", headers=app.headers("admin"))
    state: str = r.json()["state"]
    return state


def test_a_crash_in_the_reopen_takes_the_low_rating_back(resident_app: ResidentApp) -> None:
    app = resident_app
    tracking, ticket_id = _resolved_report(app, "reopen")
    crash = _SQLITE_CRASH if app.store.is_sqlite else _POSTGRES_CRASH
    with app.store.engine.begin() as conn:
        for statement in crash:
            conn.execute(text(statement))
    rating = f"/api/public/track/{tracking}/rating"
    with pytest.raises(DBAPIError, match="power cut"):
        app.client.post(rating, json={"rating": 1, "comment": "没人来"})
    view = app.client.get(f"/api/public/track/{tracking}").json()
    assert (view["rating"], view["can_rate"]) == (None, True)  # no rating without its reopen
    assert _state(app, ticket_id) == "resolved"
    with app.store.engine.begin() as conn:
        conn.execute(
            text("DROP TRIGGER crash_on_reopen" + ("" if app.store.is_sqlite else " ON audit_log"))
        )
    r = app.client.post(rating, json={"rating": 1, "comment": "没人来"})
    assert r.json() == {"rating": 1, "outcome": "reopened"}
    assert _state(app, ticket_id) == "new"
    actions = [
        a["action"]
        for a in app.client.get(f"/api/tickets/{ticket_id}", headers=app.headers("admin")).json()[
            "audit"
        ]
    ]
    assert actions[-2:] == ["rated", "reopen"]
