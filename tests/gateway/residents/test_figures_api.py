"""The figures route and its exports: the JSON the console reads, the same numbers in the CSV
and in an XLSX that openpyxl opens; scope and bounds."""

from __future__ import annotations

import csv
import io
import time
from urllib.parse import quote

import pytest
from openpyxl import load_workbook

from tests.gateway.apphelpers import SITE
from tests.gateway.residents.conftest import ResidentApp
from tests.gateway.residents.test_photos import phone_jpeg


def _period() -> dict[str, float]:
    now = time.time()
    return {"start": now - 3600, "end": now + 3600}


def test_figures_json_csv_and_xlsx_agree(resident_app: ResidentApp) -> None:
    app = resident_app
    tracking = [
        app.report(category=c).json()["tracking_token"] for c in ("litter", "noise", "litter")
    ]
    admin = app.headers("admin")
    tickets = app.client.get("/api/tickets", headers=admin, params={"category": "litter"}).json()
    first = tickets["items"][-1]["id"]
    app.client.post(
        f"/api/tickets/{first}/photos",
        headers=admin,
        files={"file": ("f.jpg", phone_jpeg(), "image/jpeg")},
    )
    assert (
        app.client.post(
            f"/api/tickets/{first}/resolve", headers=admin, json={"note": "ok"}
        ).status_code
        == 200
    )
    rated = [
        app.client.post(f"/api/public/track/{t}/rating", json={"rating": 5}).status_code
        for t in tracking
    ]
    assert rated.count(200) == 1
    params: dict[str, str | float] = {**_period(), "site_id": SITE, "group_by": "category"}
    report = app.client.get("/api/figures", headers=app.headers("op"), params=params).json()
    groups = {g["group"]: g for g in report["groups"]}
    assert groups["litter"]["resident_reports"] == 2
    assert groups["litter"]["resolved"] == 1
    assert groups["litter"]["satisfaction_average"] == 5.0
    assert groups["noise"]["resident_reports"] == 1
    exported = app.client.get(
        "/api/figures/export", headers=app.headers("op"), params={**params, "format": "csv"}
    )
    assert exported.headers["content-type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(exported.text)))
    by_group = {r["group"]: r for r in table if r.get("group") in groups}
    for name, group in groups.items():
        assert int(by_group[name]["tickets"]) == group["tickets"]
        assert int(by_group[name]["resident_reports"]) == group["resident_reports"]
    xlsx = app.client.get(
        "/api/figures/export", headers=app.headers("op"), params={**params, "format": "xlsx"}
    )
    assert xlsx.status_code == 200
    book = load_workbook(io.BytesIO(xlsx.content))
    sheet = book["figures"]
    header = [c.value for c in sheet[1]]
    found = {
        row[0]: dict(zip(header, row, strict=True))
        for row in sheet.iter_rows(min_row=2, values_only=True)
    }
    for name, group in groups.items():
        assert found[name]["tickets"] == group["tickets"]
        assert found[name]["satisfaction_average"] == group["satisfaction_average"]
    assert "patrol" in book.sheetnames  # one site with rounds: completion is included


def test_figures_keep_to_the_callers_sites_and_a_bounded_period(resident_app: ResidentApp) -> None:
    app = resident_app
    app.report()
    period = _period()
    other = app.client.get("/api/figures", headers=app.headers("op2"), params=period).json()
    assert other["groups"] == []  # op2 works at site-2 only
    assert (
        app.client.get(
            "/api/figures", headers=app.headers("op2"), params={**period, "site_id": SITE}
        ).status_code
        == 404
    )
    too_long = {"start": 0, "end": 400 * 86400}
    assert (
        app.client.get("/api/figures", headers=app.headers("op"), params=too_long).status_code
        == 422
    )
    assert (
        app.client.get("/api/figures", headers=app.headers("worker"), params=period).status_code
        == 403
    )


def test_export_cells_never_become_formulas() -> None:
    from gateway.figures import GroupBy, compute
    from gateway.figures_export import to_csv, to_xlsx
    from gateway.figures_service import FigureReport

    report = FigureReport(
        sites=None,
        start=0,
        end=1,
        group_by=GroupBy.GRID,
        groups=[compute("=1+1", [], None)],
        patrol=None,
    )
    assert "'=1+1" in to_csv(report)
    sheet = load_workbook(io.BytesIO(to_xlsx(report)))["figures"]
    assert sheet["A2"].value == "'=1+1"
    assert sheet["A2"].data_type == "s"


def test_the_monthly_report_is_a_four_page_pdf_of_the_months_figures(
    resident_app: ResidentApp,
) -> None:
    import datetime as dt
    import re

    app = resident_app
    app.report()
    month = dt.datetime.now(dt.timezone(dt.timedelta(hours=8))).strftime("%Y-%m")
    service = app.client.app.state.runtime.figures  # type: ignore[attr-defined]
    monthly = service.monthly(SITE, month, time.time())
    assert monthly.site is not None
    assert monthly.site.resident_reports == 1
    r = app.client.get(
        f"/api/figures/monthly/{SITE}", headers=app.headers("sup"), params={"month": month}
    )
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/pdf"
    assert r.content.startswith(b"%PDF-")
    assert len(re.findall(rb"/Type\s*/Page\b", r.content)) == 4
    bad = app.client.get(
        f"/api/figures/monthly/{SITE}", headers=app.headers("sup"), params={"month": "2026-13"}
    )
    assert bad.status_code == 422
    other = app.client.get(
        f"/api/figures/monthly/{SITE}", headers=app.headers("op2"), params={"month": month}
    )
    assert other.status_code == 404


@pytest.mark.parametrize("site_id", ['a"b', "a\r\nX-Injected: 1", "园区一"])
def test_a_site_id_that_cannot_be_a_file_name_is_refused(
    resident_app: ResidentApp, site_id: str
) -> None:
    """The site id goes into the download's file name (a header): anything but a site id is
    422, not a broken or failed answer (an admin may name any site)."""
    app = resident_app
    admin = app.headers("admin")
    export = app.client.get(
        "/api/figures/export", headers=admin, params={**_period(), "site_id": site_id}
    )
    assert export.status_code == 422, export.text
    monthly = app.client.get(
        f"/api/figures/monthly/{quote(site_id, safe='')}",
        headers=admin,
        params={"month": "2026-03"},
    )
    assert monthly.status_code == 422, monthly.text
