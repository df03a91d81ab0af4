"""Dead letters written by an ingest transaction: storable text, the owner from the topic,
and the per-device per-minute quota.

A dead letter keeps what a person needs to see why a message was refused — topic, a bounded
excerpt, size, error kind, reason — as text every database stores: PostgreSQL refuses NUL
in text, and no database stores a lone surrogate as UTF-8. It belongs to the site and device
its topic names (who may list it, whose quota and cap it counts against).
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import Connection, bindparam, func, insert, select

from gateway.store.schema import dead_letters

EXCERPT_BYTES = 512
"""How much of a refused payload a dead letter keeps: enough to see what it was, bounded so
garbage input cannot fill the database."""
DEAD_LETTER_WINDOW_S = 60.0
"""The window of the per-device dead-letter quota."""

_SEGMENT = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_INSERT = insert(dead_letters)
_SINCE = select(func.count()).where(
    dead_letters.c.site_id == bindparam("site"),
    dead_letters.c.device_id == bindparam("device"),
    dead_letters.c.received_at >= bindparam("since"),
)
_SINCE_NO_OWNER = select(func.count()).where(
    dead_letters.c.site_id.is_(None), dead_letters.c.received_at >= bindparam("since")
)


def storable(text: str, limit: int) -> str:
    """`text` as every database stores it: NUL escaped (PostgreSQL refuses it in text),
    lone surrogates escaped (not encodable as UTF-8), at most `limit` characters."""
    if "\x00" in text:
        text = text.replace("\x00", "\\x00")
    safe = text.encode("utf-8", errors="backslashreplace").decode("utf-8")
    return safe[:limit]


def excerpt(payload: bytes) -> str:
    """The first bytes of a payload as storable text (bad UTF-8 and NULs escaped), for a
    dead letter: at most 4 characters per byte kept."""
    head = payload[:EXCERPT_BYTES]
    text = storable(head.decode("utf-8", errors="backslashreplace"), 4 * EXCERPT_BYTES)
    return text + ("…" if len(payload) > EXCERPT_BYTES else "")


def topic_device(topic: str) -> tuple[str | None, str | None]:
    """(site, device) a topic names as ``guanjia/v1/{site}/{device}/…`` with legal
    segments, else (None, None): whose dead letter it is, whatever its channel."""
    parts = topic.split("/", 4)
    if (
        len(parts) >= 4
        and parts[0] == "guanjia"
        and parts[1] == "v1"
        and _SEGMENT.match(parts[2])
        and _SEGMENT.match(parts[3])
    ):
        return parts[2], parts[3]
    return None, None


class DeadLetterLedger:
    """The dead letters of one transaction, buffered and written in one executemany."""

    def __init__(self, conn: Connection, now: float) -> None:
        self.conn = conn
        self.now = now
        self._rows: list[dict[str, Any]] = []
        self._recent: dict[tuple[str | None, str | None], int] = {}

    def add(
        self,
        topic: str,
        payload: bytes,
        error_kind: str,
        reason: str,
        per_minute: int | None = None,
    ) -> bool:
        """Queue a dead letter; False (nothing queued) when its device already has
        `per_minute` of them in the last minute."""
        site_id, device_id = topic_device(topic)
        if per_minute is not None:
            owner = (site_id, device_id)
            if owner not in self._recent:
                since = self.now - DEAD_LETTER_WINDOW_S
                params = {"site": site_id, "device": device_id, "since": since}
                query = _SINCE if site_id is not None else _SINCE_NO_OWNER
                self._recent[owner] = int(self.conn.execute(query, params).scalar_one())
            if self._recent[owner] >= per_minute:
                return False
            self._recent[owner] += 1
        self._rows.append(
            {
                "received_at": self.now,
                "topic": storable(topic, 300),
                "payload_excerpt": excerpt(payload),
                "payload_size": len(payload),
                "error_kind": storable(error_kind, 64),
                "reason": storable(reason, 2000),
                "site_id": site_id,
                "device_id": device_id,
            }
        )
        return True

    def flush(self) -> None:
        """Write the queued rows."""
        if self._rows:
            self.conn.execute(_INSERT, self._rows)
