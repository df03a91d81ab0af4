"""Security headers on every response, errors and middleware answers included.

- `X-Content-Type-Options: nosniff`: a browser renders a response only as its declared type,
  so a stored photo can never be sniffed into HTML or script.
- `Referrer-Policy: no-referrer`: a page that opened the stream with `?stream_ticket=` does not
  hand its URL to other sites.

Routes serving user content (photos, snapshots) add their own restrictive
Content-Security-Policy (`gateway.api.tickets`).
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
)


class SecurityHeadersMiddleware:
    """Adds `SECURITY_HEADERS` to every HTTP response that does not set them itself."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers += [(k, v) for k, v in SECURITY_HEADERS if k not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)
