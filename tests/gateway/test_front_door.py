"""The front door of a real `guanjia gateway run` (uvicorn, not the TestClient): request
bodies are limited before routing and before authentication, uploads are authenticated
before their body is read, and `X-Forwarded-For` counts only from a configured proxy.

Memory is measured from /proc of the gateway process and compared with the body size with a
wide margin: the point is "did the server take the body in", not a number of bytes.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.gateway.apphelpers import PASSWORD, seed_users
from tests.gateway.httpproc import pieces, rss_bytes, send_streaming, start_http_gateway
from tests.gateway.proc import GatewayProcess

BIG = 256 * 1024 * 1024
"""A body far above every limit; the server must answer without taking it in."""
MARGIN = BIG // 4


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    workdir = tmp_path_factory.mktemp("front-door")
    db_url = f"sqlite:///{workdir / 'gateway.db'}"
    seed_users(db_url)
    process = start_http_gateway(workdir, db_url, log_level="warning")
    yield process
    process.stop()


def _login(gateway: GatewayProcess, username: str) -> dict[str, str]:
    answer = httpx.post(
        f"{gateway.url}/api/login", json={"username": username, "password": PASSWORD}
    )
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


def test_declared_oversized_json_is_refused_before_it_is_read(gateway: GatewayProcess) -> None:
    before = rss_bytes(gateway.process.pid)
    answer = send_streaming(
        gateway.port,
        "/api/login",
        {"Content-Type": "application/json", "Content-Length": str(BIG)},
        pieces(BIG),
    )
    grown = rss_bytes(gateway.process.pid) - before
    assert answer.status == 413, answer.head
    assert answer.body_sent < MARGIN, "the server waited for the body before answering"
    assert grown < MARGIN, f"RSS grew by {grown / 2**20:.0f} MiB"
    _login(gateway, "op")  # still serving


def test_chunked_json_is_cut_off_at_the_limit(gateway: GatewayProcess) -> None:
    before = rss_bytes(gateway.process.pid)
    answer = send_streaming(
        gateway.port,
        "/api/login",
        {"Content-Type": "application/json", "Transfer-Encoding": "chunked"},
        pieces(BIG, chunked=True),
    )
    grown = rss_bytes(gateway.process.pid) - before
    assert answer.status == 413, answer.head
    assert answer.body_sent < MARGIN, "the server read the whole chunked body"
    assert grown < MARGIN, f"RSS grew by {grown / 2**20:.0f} MiB"


def test_unauthenticated_upload_is_refused_before_the_body_is_read(
    gateway: GatewayProcess,
) -> None:
    for auth in ({}, {"Authorization": "Bearer forged.token.value"}):
        answer = send_streaming(
            gateway.port,
            "/api/tickets/1/photos",
            {
                "Content-Type": "multipart/form-data; boundary=xyz",
                "Content-Length": str(BIG),
                **auth,
            },
            pieces(BIG),
        )
        assert answer.status == 401, answer.head
        assert answer.body_sent < MARGIN, "the upload was spooled before the 401"


def test_authenticated_upload_over_the_limit_is_refused_before_it_is_read(
    gateway: GatewayProcess,
) -> None:
    worker = _login(gateway, "worker")
    answer = send_streaming(
        gateway.port,
        "/api/tickets/1/photos",
        {"Content-Type": "multipart/form-data; boundary=xyz", "Content-Length": str(BIG), **worker},
        pieces(BIG),
    )
    assert answer.status == 413, answer.head
    assert answer.body_sent < MARGIN
    chunked = send_streaming(
        gateway.port,
        "/api/tickets/1/photos",
        {
            "Content-Type": "multipart/form-data; boundary=xyz",
            "Transfer-Encoding": "chunked",
            **worker,
        },
        _multipart_chunks(BIG),
    )
    assert chunked.status == 413, chunked.head
    assert chunked.body_sent < MARGIN


def _multipart_chunks(total: int, size: int = 1 << 20) -> Iterator[bytes]:
    """A well-formed multipart upload of `total` bytes of file data, as HTTP chunks (the
    parser must be kept busy with valid data, so only the limit can stop it)."""
    head = (
        b"--xyz\r\n"
        b'Content-Disposition: form-data; name="file"; filename="p.jpg"\r\n'
        b"Content-Type: image/jpeg\r\n\r\n"
    )
    parts = itertools.chain(
        [head],
        (b"\xff" * min(size, total - i) for i in range(0, total, size)),
        [b"\r\n--xyz--\r\n"],
    )
    for part in parts:
        yield f"{len(part):x}\r\n".encode() + part + b"\r\n"
    yield b"0\r\n\r\n"


def test_forwarded_for_from_an_unconfigured_proxy_does_not_reset_the_limit(
    gateway: GatewayProcess,
) -> None:
    """Loopback is not a trusted proxy unless configured: a client inventing a new
    X-Forwarded-For per attempt stays one address and is limited after 5 failures."""
    codes = [
        httpx.post(
            f"{gateway.url}/api/login",
            json={"username": "sup", "password": "wrong"},
            headers={"X-Forwarded-For": f"203.0.113.{i}"},
        ).status_code
        for i in range(7)
    ]
    assert codes[:5] == [401] * 5
    assert codes[5:] == [429, 429]


def test_too_short_jwt_secret_stops_gateway_run_with_one_line(tmp_path: Path) -> None:
    for secret in ("x", ""):  # the 31-byte boundary: tests/gateway/test_login.py
        env = {k: v for k, v in os.environ.items() if not k.startswith("GUANJIA_GATEWAY_")}
        env["GUANJIA_GATEWAY_JWT_SECRET"] = secret
        env["GUANJIA_GATEWAY_DATABASE_URL"] = f"sqlite:///{tmp_path / 'gw.db'}"
        done = subprocess.run(
            [sys.executable, "-m", "guanjia", "gateway", "run", "--port", "1"],
            capture_output=True,
            text=True,
            env=env,
            check=False,
            timeout=30,
        )
        assert done.returncode == 2, (secret, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1, done.stderr
        assert lines[0].startswith("error: GUANJIA_GATEWAY_JWT_SECRET: "), lines[0]
        assert "32 bytes" in lines[0]
