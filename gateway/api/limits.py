"""Request-body limits, enforced before routing, parsing and authentication.

FastAPI reads a JSON body whole (and python-multipart spools an upload to disk) before any
dependency runs, so without this one unauthenticated request could make the process hold
hundreds of MiB. This pure-ASGI middleware sits in front of the router:

- a declared `Content-Length` above the route's limit is answered 413 at once, unread;
- a streamed (chunked) body is counted as the app reads it and cut off with a 413 at the
  limit, so at most one limit's worth is ever buffered;
- routes that take large bodies (photo uploads) get their own limit and must present a valid
  API token *before* their body is read (401 otherwise); the route still makes its full
  check (user enabled, role, site) afterwards.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from fastapi import HTTPException, status
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MULTIPART_OVERHEAD = 64 * 1024
"""Room for the multipart boundaries and part headers around an upload's bytes."""


@dataclass(frozen=True)
class BodyRule:
    """A route family with its own body limit; `authenticated` routes need a valid bearer
    token before their body is read."""

    path: re.Pattern[str]
    limit: int
    authenticated: bool = False
    check: Callable[[Mapping[bytes, bytes]], bool] | None = None
    """The rule's own credential check on the raw headers (the console's session cookie);
    None: the middleware's bearer-token check."""
    refusal: ASGIApp | None = None
    """What answers a request that fails `check` (the console: 303 to its login page);
    None: 401."""


class BodyLimitMiddleware:
    """See the module docstring. `authenticate(authorization header)` is a cheap check
    (signature and expiry, no database) used for `authenticated` rules."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        default_limit: int,
        rules: Sequence[BodyRule],
        authenticate: Callable[[str | None], bool],
    ) -> None:
        self.app = app
        self.default_limit = default_limit
        self.rules = tuple(rules)
        self.authenticate = authenticate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        rule = next((r for r in self.rules if r.path.fullmatch(path)), None)
        limit = rule.limit if rule is not None else self.default_limit
        headers = {k.lower(): v for k, v in scope["headers"]}
        if rule is not None and rule.authenticated:
            raw = headers.get(b"authorization")
            if rule.check is not None:
                ok = rule.check(headers)
            else:
                ok = self.authenticate(raw.decode("latin-1") if raw is not None else None)
            if not ok and rule.refusal is not None:
                await rule.refusal(scope, receive, send)
                return
            if not ok:
                await _answer(
                    scope, receive, send, status.HTTP_401_UNAUTHORIZED, "not authenticated"
                )
                return
        declared = headers.get(b"content-length")
        if declared is not None:
            try:
                length = int(declared)
            except ValueError:
                await _answer(
                    scope, receive, send, status.HTTP_400_BAD_REQUEST, "bad Content-Length"
                )
                return
            if length > limit:
                await _answer(scope, receive, send, 413, _too_large(limit))
                return
        await self.app(scope, _counting(receive, limit), send)


def _too_large(limit: int) -> str:
    return f"request body larger than {limit} bytes"


def _counting(receive: Receive, limit: int) -> Receive:
    """`receive` that raises a 413 once more than `limit` body bytes came in. FastAPI lets
    an HTTPException from reading the body through to its handler, so the client gets 413."""
    seen = 0

    async def limited() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise HTTPException(413, _too_large(limit))
        return message

    return limited


async def _answer(scope: Scope, receive: Receive, send: Send, code: int, detail: str) -> None:
    headers = {"Connection": "close"}  # the unread body makes the connection unusable
    if code == status.HTTP_401_UNAUTHORIZED:
        headers["WWW-Authenticate"] = "Bearer"
    await JSONResponse({"detail": detail}, status_code=code, headers=headers)(scope, receive, send)
