"""Users, roles, password hashing (argon2-cffi), API tokens and stream tickets (PyJWT).

Roles, from most to least powerful: admin (every site, users), supervisor (its sites:
tickets, grids, rosters, devices), operator (its sites: the control room — acknowledge,
dispatch, close), worker (its sites: start and resolve tickets, upload photos). The matrix of
routes × roles is in docs/gateway.md and tests/gateway/test_api_roles.py.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from enum import StrEnum
from functools import cache

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

ALL_SITES = "*"
_HASHER = PasswordHasher()


class Role(StrEnum):
    """What a console user may do."""

    ADMIN = "admin"
    SUPERVISOR = "supervisor"
    OPERATOR = "operator"
    WORKER = "worker"


@dataclass(frozen=True)
class Principal:
    """The authenticated caller of an API request."""

    username: str
    role: Role
    sites: frozenset[str]

    def can_see(self, site_id: str) -> bool:
        """Whether the caller's scope includes `site_id`."""
        return ALL_SITES in self.sites or site_id in self.sites


class TokenError(ValueError):
    """A token that is missing, expired, forged, malformed or meant for another purpose."""


API_AUDIENCE = "guanjia-api"
"""`aud` of API tokens: accepted only in the Authorization header."""
STREAM_AUDIENCE = "guanjia-stream"
"""`aud` of stream tickets: accepted only by the SSE stream, in its URL."""
CONSOLE_AUDIENCE = "guanjia-console"
"""`aud` of console sessions: accepted only from the console's HttpOnly cookie."""


def hash_password(password: str) -> str:
    """An argon2id hash of `password`."""
    return _HASHER.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """Whether `password` matches `password_hash` (False on any mismatch or bad hash)."""
    try:
        return _HASHER.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


@cache
def _dummy_hash() -> str:
    """A hash of a random password with the hasher's own cost, made once per process."""
    return _HASHER.hash(secrets.token_urlsafe(24))


def check_login(password_hash: str | None, password: str) -> bool:
    """Whether `password` opens an account whose hash is `password_hash`; None (no such
    user, or disabled) costs the same argon2 verification against a dummy hash and fails,
    so the answer's timing does not tell which user names exist."""
    if password_hash is None:
        verify_password(_dummy_hash(), password)
        return False
    return verify_password(password_hash, password)


def _issue(username: str, audience: str, key: str, now: float, ttl_s: float) -> str:
    claims = {"sub": username, "aud": audience, "iat": int(now), "exp": int(now + ttl_s)}
    return jwt.encode(claims, key, algorithm="HS256")


def issue_token(username: str, key: str, now: float, ttl_s: float) -> str:
    """A signed HS256 API token naming the user; role and sites are read from the database
    on every request, so a change or a disabled account takes effect at once."""
    return _issue(username, API_AUDIENCE, key, now, ttl_s)


def issue_stream_ticket(username: str, key: str, now: float, ttl_s: float) -> str:
    """A short-lived ticket that opens the SSE stream for `username` and nothing else
    (EventSource cannot send headers, so this is the one credential that goes in a URL)."""
    return _issue(username, STREAM_AUDIENCE, key, now, ttl_s)


def issue_console_session(username: str, key: str, now: float, ttl_s: float) -> str:
    """A console session for `username` (kept in an HttpOnly cookie, refused by the API);
    like an API token it carries no role: the database is read on every request."""
    return _issue(username, CONSOLE_AUDIENCE, key, now, ttl_s)


def session_issued_at(token: str, key: str) -> float:
    """When a valid console session was issued (for sliding renewal), or TokenError."""
    read_token(token, key, CONSOLE_AUDIENCE)
    claims = jwt.decode(token, key, algorithms=["HS256"], audience=CONSOLE_AUDIENCE)
    return float(claims.get("iat", 0))


def read_token(token: str, key: str, audience: str = API_AUDIENCE) -> str:
    """The user name of a valid, unexpired token issued for `audience`, or TokenError."""
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=["HS256"],
            audience=audience,
            options={"require": ["exp", "sub", "aud"]},
        )
        subject = claims["sub"]
    except (jwt.PyJWTError, KeyError, ValueError, TypeError) as exc:
        raise TokenError(str(exc)) from None
    if not isinstance(subject, str) or not subject:
        raise TokenError("token names no user")
    return subject


def bearer_is_valid(authorization: str | None, key: str) -> bool:
    """Whether an Authorization header carries a well-signed, unexpired API token (no
    database look-up: a cheap check made before a large body is read)."""
    scheme, _, value = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return False
    try:
        read_token(value.strip(), key)
    except TokenError:
        return False
    return True
