"""`gateway.api.accesslog`: credentials masked in uvicorn's access-log records."""

from __future__ import annotations

import logging

from gateway.api.accesslog import REDACTED, RedactCredentialsFilter, redact

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
