"""Webhook notifications queued in the transaction that made the ticket change.

Ingest must never wait on a chat service, so a new ticket or an escalation only writes
``notifications`` rows (one per matching webhook); `WebhookStore` and `gateway.notify`
deliver them later. `Outbox` reads the webhooks once per transaction and writes what was
queued with one executemany.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Row, insert, select

from gateway.store.schema import notifications, webhooks

_WEBHOOKS = select(webhooks.c.id, webhooks.c.grid_id, webhooks.c.category, webhooks.c.flavour)
_INSERT = insert(notifications)


def webhook_body(flavour: str, text: str) -> dict[str, Any]:
    """A text message in the shape the WeCom, DingTalk or Feishu group bots accept."""
    if flavour == "feishu":
        return {"msg_type": "text", "content": {"text": text}}
    # WeCom (企业微信) and DingTalk (钉钉) robots share this shape.
    return {"msgtype": "text", "text": {"content": text}}


class Outbox:
    """Notifications for one transaction on `conn`, due at `now`; `flush` before COMMIT."""

    def __init__(self, conn: Connection, now: float) -> None:
        self.conn = conn
        self.now = now
        self._hooks: list[Row[Any]] | None = None
        self._pending: list[dict[str, Any]] = []

    def notify(self, ticket_id: int, *, grid_id: str | None, category: str, text: str) -> None:
        """Queue `text` for every webhook of this grid and category (NULL on a hook = any)."""
        if self._hooks is None:
            self._hooks = list(self.conn.execute(_WEBHOOKS))
        for hook in self._hooks:
            if hook.grid_id not in (None, grid_id) or hook.category not in (None, category):
                continue
            self._pending.append(
                {
                    "webhook_id": hook.id,
                    "ticket_id": ticket_id,
                    "body": webhook_body(hook.flavour, text),
                    "attempts": 0,
                    "next_attempt_at": self.now,
                    "failed": False,
                }
            )

    def flush(self) -> None:
        """Write what was queued."""
        if self._pending:
            self.conn.execute(_INSERT, self._pending)
            self._pending = []
