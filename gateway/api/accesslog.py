"""Keeps credentials out of the server's logs.

Uvicorn's access log prints each request's path with its query string. The credentials the
API accepts in a URL are the stream ticket (`?stream_ticket=`) and a device's model download
link (`?sig=`, `gateway.rollouts.links`), but clients send others by mistake
(`?access_token=` used to work), so the values of every credential-like parameter are
replaced, and anything shaped like a JWT is masked wherever it appears in the line.

One credential travels in the path: a resident's tracking token (`/api/public/track/{token}`,
`/r/track/{token}`), the only thing needed to follow and rate their report. The database keeps
only its hash (`gateway.residents.tokens`); the log must not keep it whole either. A place
token (the QR code's) is printed on a wall: not a secret.
"""

from __future__ import annotations

import logging
import re

REDACTED = "[redacted]"
_SECRET_PARAM = re.compile(
    r"(?P<name>(?:^|[?&;\s])(?:[\w.-]*(?:token|ticket|password|secret|key|sig)[\w.-]*)=)"
    r"(?P<value>[^&;\s\"]*)",
    re.IGNORECASE,
)
_JWT = re.compile(r"eyJ[\w-]*\.[\w-]*\.[\w-]*")
_TRACKING = re.compile(r"(?P<route>/(?:api/public|r)/track/)[A-Za-z0-9_-]+")
LOGGERS = ("uvicorn.access", "uvicorn.error")


def redact(text: str) -> str:
    """`text` with credential-like query values, tracking tokens and JWT-shaped strings
    masked."""
    text = _SECRET_PARAM.sub(lambda m: m.group("name") + REDACTED, text)
    text = _TRACKING.sub(lambda m: m.group("route") + REDACTED, text)
    return _JWT.sub(REDACTED, text)


class RedactCredentialsFilter(logging.Filter):
    """Masks credentials in a record's message and in each of its string arguments (never
    drops a record). The arguments are rewritten in place, not merged into the message:
    uvicorn's AccessFormatter unpacks them (client, method, path, version, status)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {
                k: redact(v) if isinstance(v, str) else v for k, v in record.args.items()
            }
        return True


def install() -> None:
    """Attach the filter to uvicorn's loggers (idempotent)."""
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactCredentialsFilter) for f in logger.filters):
            logger.addFilter(RedactCredentialsFilter())
