"""`guanjia site qr`: the sheet's codes decode (OpenCV's QR detector) to URLs holding valid
place tokens; the PDF has a page per 12 codes; bad input is one error line."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from gateway.residents.tokens import derive_key, read_place_token
from guanjia.cli import app
from tests.gateway.apphelpers import SITE
from tests.gateway.residents.sitefiles import write_sites

SECRET = "qr-secret-" + "x" * 32
ENV = {
    "GUANJIA_GATEWAY_JWT_SECRET": SECRET,
    "GUANJIA_GATEWAY_RESIDENTS__PUBLIC_BASE_URL": "https://gj.example.cn",
}


def _run(*args: str, **env: Any) -> Any:
    return CliRunner().invoke(app, list(args), env={**ENV, **env})


def test_png_sheet_codes_decode_to_signed_place_urls(tmp_path: Path) -> None:
    sites = write_sites(tmp_path / "sites")
    out = tmp_path / "sheet.png"
    result = _run("site", "qr", SITE, "--out", str(out), "--sites-dir", str(sites))
    assert result.exit_code == 0, result.output
    assert "2 codes" in result.output
    image = cv2.imdecode(np.frombuffer(out.read_bytes(), np.uint8), cv2.IMREAD_GRAYSCALE)
    assert image is not None
    ok, texts, _points, _ = cv2.QRCodeDetector().detectAndDecodeMulti(image)
    assert ok
    key = derive_key(SECRET, "place")
    places = set()
    for text in texts:
        found = re.fullmatch(r"https://gj\.example\.cn/r/(.+)", text)
        assert found, text
        ref = read_place_token(key, found[1])
        assert ref is not None
        assert ref.site_id == SITE
        places.add(ref.place_id)
    assert places == {"b3-lobby", "lane-east"}


def test_pdf_sheet_has_a_page_per_twelve_codes(tmp_path: Path) -> None:
    places = [{"place_id": f"b{n}", "name": f"{n}号楼", "zone_id": "zone-a"} for n in range(13)]
    sites = write_sites(tmp_path / "sites", places=places)
    out = tmp_path / "sheet.pdf"
    result = _run("site", "qr", SITE, "--out", str(out), "--sites-dir", str(sites))
    assert result.exit_code == 0, result.output
    data = out.read_bytes()
    assert data.startswith(b"%PDF-")
    assert len(re.findall(rb"/Type\s*/Page\b", data)) == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["site", "qr", SITE, "--out", "x.gif"], "error: --out: x.gif: must end in .pdf or .png"),
        (["site", "qr", "nope", "--out", "x.png"], "error: SITE: 'nope' has no site file"),
    ],
)
def test_bad_input_is_one_error_line(tmp_path: Path, args: list[str], message: str) -> None:
    sites = write_sites(tmp_path / "sites")
    result = _run(*args, "--sites-dir", str(sites))
    assert result.exit_code == 2
    assert result.output.startswith(message)
    assert "Traceback" not in result.output


def test_a_bad_site_file_is_one_error_line(tmp_path: Path) -> None:
    sites = write_sites(tmp_path / "sites", timezone="Mars/Base")
    result = _run("site", "check", "--sites-dir", str(sites))
    assert result.exit_code == 2
    assert result.output.strip() == (
        f"error: {sites}/{SITE}.yaml: timezone: 'Mars/Base' is not an IANA time zone "
        "(e.g. Asia/Shanghai)"
    )


def test_gateway_run_with_a_bad_site_file_is_one_error_line(tmp_path: Path) -> None:
    sites = write_sites(tmp_path / "sites", places=[{"place_id": "p", "name": "P"}])
    result = _run("gateway", "run", GUANJIA_GATEWAY_SITES_DIR=str(sites))
    assert result.exit_code == 2
    assert result.output.strip() == (
        f"error: {sites}/{SITE}.yaml: places[0]: give zone_id or grid_id "
        "(where reports from here are routed)"
    )


def test_codes_for_a_loopback_address_come_with_a_warning(tmp_path: Path) -> None:
    """The default public URL is this machine's loopback: codes posted on a wall would lead
    every phone nowhere. Printed anyway (a test sheet), with one line saying so."""
    sites = write_sites(tmp_path / "sites")
    out = tmp_path / "sheet.png"
    args = ("site", "qr", SITE, "--out", str(out), "--sites-dir", str(sites))
    local = _run(*args, GUANJIA_GATEWAY_RESIDENTS__PUBLIC_BASE_URL="http://127.0.0.1:8080")
    assert local.exit_code == 0, local.output
    assert (
        "warning: GUANJIA_GATEWAY_RESIDENTS__PUBLIC_BASE_URL: http://127.0.0.1:8080 is this "
        "machine only; phones cannot open these codes" in local.output
    )
    public = _run(*args)
    assert "warning" not in public.output
