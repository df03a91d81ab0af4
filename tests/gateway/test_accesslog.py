"""`gateway.api.accesslog`: credentials masked in uvicorn's access-log records."""

from __future__ import annotations

import logging

from gateway.api.accesslog import REDACTED, RedactCredentialsFilter, redact
from gateway.residents.tokens import new_tracking_token
from gateway.rollouts.links import signed_url

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJvcCJ9.c2lnbmF0dXJl"


def test_credential_parameters_and_jwts_are_masked() -> None:
    assert redact(f"/api/stream?stream_ticket={JWT}&max_events=1") == (
        f"/api/stream?stream_ticket={REDACTED}&max_events=1"
    )
    assert (
        redact("/api/x?site_id=s1&access_token=abc") == f"/api/x?site_id=s1&access_token={REDACTED}"
    )
    assert redact(f"/api/x?q={JWT}") == f"/api/x?q={REDACTED}"
    assert redact("/api/tickets?sort=-id&limit=5") == "/api/tickets?sort=-id&limit=5"


def test_filter_keeps_uvicorns_argument_tuple() -> None:
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5", "GET", f"/api/stream?stream_ticket={JWT}", "1.1", 200),
        None,
    )
    assert RedactCredentialsFilter().filter(record)
    assert isinstance(record.args, tuple)
    assert len(record.args) == 5
    assert JWT not in record.getMessage()
    assert "stream_ticket=[redacted]" in record.getMessage()


def test_a_model_download_link_is_logged_without_its_signature() -> None:
    url = signed_url(
        "http://gw:8000", "k" * 40, "a" * 64, site_id="site-1", device_id="cam-1", expires=99
    )
    path = url.removeprefix("http://gw:8000")
    sig = path.rsplit("sig=", 1)[1]
    line = redact(f'127.0.0.1:5 - "GET {path} HTTP/1.1" 200')
    assert sig not in line
    assert f"sig={REDACTED}" in line
    assert "device=cam-1" in line  # who fetched stays visible


def test_a_residents_tracking_token_is_masked_in_the_path() -> None:
    tracking = new_tracking_token()
    for path in (
        f"/api/public/track/{tracking}",
        f"/api/public/track/{tracking}/rating",
        f"/r/track/{tracking}",
        f"/r/track/{tracking}/rating",
    ):
        line = redact(f'127.0.0.1:5 - "GET {path} HTTP/1.1" 200')
        assert tracking not in line, path
        assert "/track/[redacted]" in line
    # A QR code's place token is on a wall for anyone to read: kept, so the log says where.
    place = "/api/public/places/site-1.b3-lobby.AAAAAAAAAAAAAAAAAAAAAA/reports"
    assert redact(place) == place
