"""The live stream's guards, against a real `guanjia gateway run` (uvicorn's own connection
handling decides when a vanished client is noticed, which the in-process TestClient cannot
show):

- open streams are bounded per user and in all (429 with a one-line reason beyond), and a
  slot comes back when a stream ends, also when its client just goes away;
- an open stream re-reads its user: disabled, or given other sites or another role, the
  stream sends `end` with the reason and closes (before: it kept sending changes).
"""

from __future__ import annotations

import json
from collections.abc import Generator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, update
from sqlalchemy.engine import make_url

from gateway.store.schema import users
from tests.gateway.apphelpers import OTHER_SITE, PASSWORD, SITE, seed_users
from tests.gateway.httpproc import start_http_gateway
from tests.gateway.proc import GatewayProcess, wait_for

TIMEOUT = httpx.Timeout(10, read=30)


def login(gateway: GatewayProcess, username: str) -> dict[str, str]:
    response = httpx.post(
        f"{gateway.url}/api/login", json={"username": username, "password": PASSWORD}
    )
    response.raise_for_status()
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def set_user(db_url: str, username: str, **values: Any) -> None:
    engine = create_engine(make_url(db_url))
    with engine.begin() as conn:
        conn.execute(update(users).where(users.c.username == username).values(**values))
    engine.dispose()


def events_of(response: httpx.Response) -> Generator[tuple[str, dict[str, Any]]]:
    """(event name, data) of each event until the server closes the stream."""
    buffer = ""
    for chunk in response.iter_text():
        buffer += chunk
        *blocks, buffer = buffer.split("\n\n")
        for block in blocks:
            fields = dict(
                line.split(": ", 1) for line in block.splitlines() if not line.startswith(":")
            )
            if "event" in fields:
                yield fields["event"], json.loads(fields["data"])


def open_stream(stack: ExitStack, gateway: GatewayProcess, bearer: dict[str, str]) -> int:
    """Open a stream held by `stack`; its status (after `hello` when 200)."""
    response = stack.enter_context(
        httpx.stream("GET", f"{gateway.url}/api/stream", headers=bearer, timeout=TIMEOUT)
    )
    if response.status_code == 200:
        events = events_of(response)
        assert next(events)[0] == "hello"
        # Held with the stack: a reader dropped would close the connection (httpx does).
        stack.callback(events.close)
    return response.status_code


def refused(gateway: GatewayProcess, bearer: dict[str, str]) -> str:
    """The 429's reason for one more stream (fails if it opens)."""
    response = httpx.get(
        f"{gateway.url}/api/stream", params={"max_events": 1}, headers=bearer, timeout=TIMEOUT
    )
    assert response.status_code == 429, response.text
    assert response.headers["retry-after"]
    reason: str = response.json()["detail"]
    assert "\n" not in reason
    return reason


def opens(gateway: GatewayProcess, bearer: dict[str, str]) -> bool:
    response = httpx.get(
        f"{gateway.url}/api/stream", params={"max_events": 1}, headers=bearer, timeout=TIMEOUT
    )
    return response.status_code == 200


def test_open_streams_are_bounded_per_user_and_in_all(tmp_path: Path, db_url: str) -> None:
    seed_users(db_url)
    gateway = start_http_gateway(
        tmp_path, db_url, stream_max_per_user=2, stream_max_total=3, stream_recheck_s=60
    )
    try:
        op, sup, op2 = login(gateway, "op"), login(gateway, "sup"), login(gateway, "op2")
        with ExitStack() as held:
            assert open_stream(held, gateway, op) == 200
            with ExitStack() as vanishing:
                assert open_stream(vanishing, gateway, op) == 200
                assert "for this user (limit 2)" in refused(gateway, op)
                assert open_stream(held, gateway, sup) == 200
                assert "on this server (limit 3)" in refused(gateway, op2)
                # The client goes away mid-stream, without reading to the end.
            wait_for(lambda: opens(gateway, op2), 30, "a vanished client's slot back")
            # Streams that ended by themselves (max_events) gave their slots back too.
            assert opens(gateway, op)
            assert opens(gateway, op)
        wait_for(lambda: opens(gateway, op2) and opens(gateway, op), 30, "all slots back")
        with ExitStack() as again:
            assert open_stream(again, gateway, op) == 200
            assert open_stream(again, gateway, op) == 200
            assert open_stream(again, gateway, op2) == 200
    finally:
        gateway.stop()


def test_stream_ends_when_its_user_is_disabled_or_changed(tmp_path: Path, db_url: str) -> None:
    seed_users(db_url)
    gateway = start_http_gateway(tmp_path, db_url, stream_recheck_s=0.2)
    try:
        changes: list[tuple[str, dict[str, Any]]] = [
            ("op", {"disabled": True}),
            ("op2", {"sites": [SITE, OTHER_SITE]}),
            ("worker", {"role": "operator"}),
        ]
        bearers = {username: login(gateway, username) for username, _ in changes}
        for username, change in changes:
            bearer = bearers[username]
            with httpx.stream(
                "GET", f"{gateway.url}/api/stream", headers=bearer, timeout=TIMEOUT
            ) as response:
                assert response.status_code == 200
                stream = events_of(response)
                assert next(stream)[0] == "hello"
                set_user(db_url, username, **change)
                rest = list(stream)  # ends only when the server closes the stream
            assert [name for name, _ in rest] == ["end"], (username, rest)
            expected = "disabled" if "disabled" in change else "role or sites changed"
            assert expected in rest[0][1]["reason"]
        # A disabled user cannot come back; a changed one reconnects with the new scope.
        answer = httpx.get(f"{gateway.url}/api/stream", headers=bearers["op"])
        assert answer.status_code == 401
        assert opens(gateway, bearers["op2"])
    finally:
        gateway.stop()
