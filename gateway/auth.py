"""Users, roles, password hashing (argon2-cffi), API tokens (PyJWT) and the login limiter.

Roles, from most to least powerful: admin (every site, users), supervisor (its sites:
tickets, grids, rosters, devices), operator (its sites: the control room — acknowledge,
dispatch, close), worker (its sites: start and resolve tickets, upload photos). The matrix of
routes × roles is in docs/gateway.md and tests/gateway/test_api_roles.py.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum

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
    """A token that is missing, expired, forged or malformed."""


def hash_password(password: str) -> str:
    """An argon2id hash of `password`."""
    return _HASHER.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """Whether `password` matches `password_hash` (False on any mismatch or bad hash)."""
    try:
        return _HASHER.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def issue_token(principal: Principal, key: str, now: float, ttl_s: float) -> str:
    """A signed HS256 token carrying the user, role and site scope."""
    claims = {
        "sub": principal.username,
        "role": principal.role.value,
        "sites": sorted(principal.sites),
        "iat": int(now),
        "exp": int(now + ttl_s),
    }
    return jwt.encode(claims, key, algorithm="HS256")


def read_token(token: str, key: str) -> Principal:
    """The principal of a valid token, or TokenError."""
    try:
        claims = jwt.decode(token, key, algorithms=["HS256"], options={"require": ["exp", "sub"]})
        return Principal(claims["sub"], Role(claims["role"]), frozenset(claims["sites"]))
    except (jwt.PyJWTError, KeyError, ValueError, TypeError) as exc:
        raise TokenError(str(exc)) from None


@dataclass
class LoginLimiter:
    """At most `attempts` failed logins per (username, client) in a sliding window.

    Kept in process memory on purpose: it slows password guessing against one replica; the
    argon2 cost slows it everywhere. `now` is passed in so tests need no clock.
    """

    attempts: int
    window_s: float
    _failures: dict[tuple[str, str], deque[float]] = field(default_factory=dict)

    def _recent(self, key: tuple[str, str], now: float) -> deque[float]:
        times = self._failures.setdefault(key, deque())
        while times and times[0] <= now - self.window_s:
            times.popleft()
        return times

    def retry_after(self, username: str, client: str, now: float) -> float | None:
        """Seconds until a login may be tried again, or None if allowed now."""
        times = self._recent((username, client), now)
        if len(times) < self.attempts:
            return None
        return max(times[0] + self.window_s - now, 0.0)

    def failed(self, username: str, client: str, now: float) -> None:
        """Count one failed attempt."""
        self._recent((username, client), now).append(now)

    def succeeded(self, username: str, client: str) -> None:
        """Forget failures after a successful login."""
        self._failures.pop((username, client), None)
