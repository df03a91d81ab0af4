"""Login: no user enumeration, a lockout an attacker cannot aim at someone else, a bounded
limiter, users checked on every request, and a JWT secret long enough to mean something."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from pydantic import ValidationError
from sqlalchemy import create_engine, update
from sqlalchemy.engine import make_url

from gateway.auth import Role
from gateway.config import GatewaySettings, SettingsError, load_settings
from gateway.main import create_app
from gateway.store.schema import users
from tests.gateway.apphelpers import PASSWORD, SITE, running_app, seed_users, settings_for, token

PROXY = "10.9.9.9"
"""The TestClient's peer address in these tests, configured as a trusted proxy so each
request can name its client in X-Forwarded-For."""


def _from(address: str) -> dict[str, str]:
    return {"X-Forwarded-For": address}


@pytest.fixture
def client(sqlite_url: str) -> Iterator[TestClient]:
    seed_users(sqlite_url)
    settings = settings_for(
        sqlite_url,
        trusted_proxies=[PROXY],
        login_address_attempts=6,
        login_user_attempts=6,
        login_user_delay_s=0.0,
    )
    with TestClient(create_app(settings), client=(PROXY, 40000)) as test_client:
        yield test_client


def test_unknown_and_known_users_cost_the_same_password_verification(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every login runs exactly one argon2 verification with the same cost parameters,
    whether the user exists, is disabled or the password is wrong: the hash's parameter
    prefix (`$argon2id$v=19$m=…,t=…,p=…`) is recorded from the real verifier."""
    calls: list[str] = []
    original = PasswordHasher.verify

    def counting(self: PasswordHasher, hash: str | bytes, password: str | bytes) -> Any:
        text = hash.decode() if isinstance(hash, bytes) else hash
        calls.append(text.rsplit("$", 2)[0])
        return original(self, hash, password)

    monkeypatch.setattr(PasswordHasher, "verify", counting)
    seen: dict[str, list[str]] = {}
    for username, password in (
        ("ghost", "whatever-password"),
        ("op", "wrong-password"),
        ("op", PASSWORD),
        ("no-such-user-either", PASSWORD),
    ):
        calls.clear()
        answer = client.post(
            "/api/login",
            json={"username": username, "password": password},
            headers=_from("1.1.1.1"),
        )
        assert answer.status_code in (200, 401)
        seen[f"{username}:{answer.status_code}"] = list(calls)
    assert set(seen) == {"ghost:401", "op:401", "op:200", "no-such-user-either:401"}
    assert all(len(params) == 1 for params in seen.values()), seen
    assert len({params[0] for params in seen.values()}) == 1, seen


def test_lockout_from_one_address_does_not_lock_the_user_out_elsewhere(
    client: TestClient,
) -> None:
    for _ in range(5):
        answer = client.post(
            "/api/login", json={"username": "op", "password": "nope"}, headers=_from("6.6.6.6")
        )
        assert answer.status_code == 401
    refused = client.post(
        "/api/login", json={"username": "op", "password": PASSWORD}, headers=_from("6.6.6.6")
    )
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) > 0
    elsewhere = client.post(
        "/api/login", json={"username": "op", "password": PASSWORD}, headers=_from("8.8.4.4")
    )
    assert elsewhere.status_code == 200
    assert elsewhere.headers["cache-control"] == "no-store"


def test_many_addresses_guessing_one_user_do_not_lock_the_real_user_out(
    client: TestClient,
) -> None:
    """8 failures from 2 addresses: each address below its pair limit, the user past its
    cap of 6 (so slowed down, with no delay configured here), and still not locked."""
    codes = [
        client.post(
            "/api/login",
            json={"username": "sup", "password": "nope"},
            headers=_from(f"198.51.100.{i // 4}"),
        ).status_code
        for i in range(8)
    ]
    assert codes == [401] * 8
    real = client.post(
        "/api/login", json={"username": "sup", "password": PASSWORD}, headers=_from("192.0.2.7")
    )
    assert real.status_code == 200


def test_one_address_spraying_many_users_is_capped(client: TestClient) -> None:
    codes = [
        client.post(
            "/api/login",
            json={"username": f"name-{i}", "password": "nope"},
            headers=_from("6.6.6.7"),
        ).status_code
        for i in range(8)
    ]
    assert codes == [401] * 6 + [429, 429]
    other = client.post(
        "/api/login", json={"username": "op", "password": PASSWORD}, headers=_from("6.6.6.8")
    )
    assert other.status_code == 200


def test_login_limiter_stays_bounded_over_30000_names(client: TestClient) -> None:
    limiter = client.app.state.runtime.limiter  # type: ignore[attr-defined]
    now = time.time()
    for i in range(30_000):
        limiter.failed(f"user-{i}", f"10.{i // 65536}.{i // 256 % 256}.{i % 256}", now)
    assert len(limiter) <= limiter.max_tracked * 3


def _set_user(db_url: str, username: str, **values: Any) -> None:
    engine = create_engine(make_url(db_url))
    with engine.begin() as conn:
        conn.execute(update(users).where(users.c.username == username).values(**values))
    engine.dispose()


def test_disabled_or_demoted_user_is_checked_on_every_request(sqlite_url: str) -> None:
    seed_users(sqlite_url)
    with running_app(settings_for(sqlite_url)) as client:
        sup, op = token(client, "sup"), token(client, "op")
        assert client.get("/api/users", headers=sup).status_code == 200
        _set_user(sqlite_url, "sup", disabled=True)
        assert client.get("/api/me", headers=sup).status_code == 401
        assert client.get("/api/tickets", headers=sup).status_code == 401
        assert client.post("/api/stream-ticket", headers=sup).status_code == 401

        assert client.get("/api/me", headers=op).json()["role"] == "operator"
        _set_user(sqlite_url, "op", role=Role.WORKER.value, sites=["site-9"])
        me = client.get("/api/me", headers=op).json()
        assert (me["role"], me["sites"]) == ("worker", ["site-9"])
        assert client.get("/api/devices", headers=op).status_code == 403
        assert client.get("/api/tickets", headers=op, params={"site_id": SITE}).status_code == 404


@pytest.mark.parametrize("secret", ["x", "", "s" * 31, "é" * 15])
def test_jwt_secret_shorter_than_32_bytes_is_refused(secret: str) -> None:
    with pytest.raises(ValidationError, match="at least 32 bytes"):
        GatewaySettings(jwt_secret=secret, ingest_enabled=False)


def test_jwt_secret_of_32_bytes_is_accepted() -> None:
    assert GatewaySettings(jwt_secret="s" * 32).signing_key() == "s" * 32
    assert GatewaySettings(jwt_secret="é" * 16).signing_key() == "é" * 16  # 32 bytes
    assert len(GatewaySettings(demo=True).signing_key().encode()) >= 32


def test_bad_proxy_settings_are_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    secret = "s" * 32
    with pytest.raises(SettingsError) as caught:
        load_settings(jwt_secret=secret, trusted_proxies=["10.0.0.1", "nope"])
    assert str(caught.value) == (
        "GUANJIA_GATEWAY_TRUSTED_PROXIES: 'nope' is not an IP address or CIDR network"
    )
    monkeypatch.setenv("GUANJIA_GATEWAY_TRUSTED_PROXIES", "10.0.0.1")  # not JSON
    with pytest.raises(SettingsError, match=r"^GUANJIA_GATEWAY_TRUSTED_PROXIES: must be JSON"):
        load_settings(jwt_secret=secret)
    monkeypatch.setenv("GUANJIA_GATEWAY_TRUSTED_PROXIES", '["10.0.0.0/8", "::1"]')
    assert load_settings(jwt_secret=secret).trusted_proxies == ["10.0.0.0/8", "::1"]


def test_concurrent_wrong_passwords_are_verified_at_most_the_pair_limit(
    client: TestClient,
) -> None:
    """40 wrong passwords at once for one (user, address): each takes its slot in the
    limiter before argon2 runs, so only `login_attempts` (5) are verified (401) and the
    rest refused (429) — not 40 verifications that all pass the check before any failure
    is counted. Real concurrency: the requests run together on the app's own event loop."""

    async def burst() -> list[int]:
        transport = httpx.ASGITransport(app=client.app, client=(PROXY, 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as http:
            answers = await asyncio.gather(
                *(
                    http.post(
                        "/api/login",
                        json={"username": "op", "password": f"wrong-{i}"},
                        headers=_from("7.7.7.7"),
                    )
                    for i in range(40)
                )
            )
        return [a.status_code for a in answers]

    codes = client.portal.call(burst)  # type: ignore[union-attr]
    assert sorted(set(codes)) == [401, 429]
    assert codes.count(401) == 5, codes
    assert codes.count(429) == 35
    # The real password from that address is refused too; from elsewhere it works.
    for address, expected in (("7.7.7.7", 429), ("8.8.8.8", 200)):
        answer = client.post(
            "/api/login", json={"username": "op", "password": PASSWORD}, headers=_from(address)
        )
        assert answer.status_code == expected


def test_concurrent_good_logins_do_not_count_as_failures(client: TestClient) -> None:
    """A slot taken for a login that then succeeds is released: after many right
    passwords (in waves no larger than the pair limit) the address is not refused."""

    async def wave() -> list[int]:
        transport = httpx.ASGITransport(app=client.app, client=(PROXY, 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as http:
            answers = await asyncio.gather(
                *(
                    http.post(
                        "/api/login",
                        json={"username": "op", "password": PASSWORD},
                        headers=_from("9.9.9.9"),
                    )
                    for _ in range(5)
                )
            )
        return [a.status_code for a in answers]

    for _ in range(3):  # 15 successes > the address's 6 failures allowed here
        assert client.portal.call(wave) == [200] * 5  # type: ignore[union-attr]
