"""Webhooks and the delivery ledger of their notifications.

Notifications are queued by the transaction that changed the ticket (`gateway.store.outbox`);
`gateway.notify` leases the due ones here, POSTs them and records each attempt. On
PostgreSQL the lease is ``FOR UPDATE SKIP LOCKED``, so replicas never send the same one at
the same time; SQLite serialises writers anyway.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select, update

from gateway.store.base import Part
from gateway.store.schema import notifications, webhooks


@dataclass(frozen=True)
class Delivery:
    """A claimed webhook notification."""

    id: int
    url: str
    body: dict[str, Any]
    attempts: int


class WebhookStore(Part):
    """Registering webhooks; leasing, and recording, notification deliveries."""

    def add_webhook(
        self, url: str, flavour: str, grid_id: str | None = None, category: str | None = None
    ) -> int:
        """Register a webhook for a grid and/or category (None = all)."""
        with self._tx() as conn:
            result = conn.execute(
                insert(webhooks).values(
                    url=url, flavour=flavour, grid_id=grid_id, category=category
                )
            )
        assert result.inserted_primary_key is not None
        return int(result.inserted_primary_key[0])

    def claim_deliveries(self, now: float, lease_s: float, limit: int = 20) -> list[Delivery]:
        """Notifications due now, leased for `lease_s` so another replica skips them."""
        claimed: list[Delivery] = []
        with self._tx() as conn:
            query = (
                select(
                    notifications.c.id,
                    notifications.c.body,
                    notifications.c.attempts,
                    webhooks.c.url,
                )
                .join(webhooks, webhooks.c.id == notifications.c.webhook_id)
                .where(
                    notifications.c.delivered_at.is_(None),
                    notifications.c.failed.is_(False),
                    notifications.c.next_attempt_at <= now,
                )
                .order_by(notifications.c.id)
                .limit(limit)
            )
            if not self.is_sqlite:
                query = query.with_for_update(skip_locked=True, of=notifications)
            for row in conn.execute(query).all():
                # The lease: pushing the next attempt past now hides the row from other
                # claimers until it is finished or the lease runs out.
                conn.execute(
                    update(notifications)
                    .where(notifications.c.id == row.id)
                    .values(next_attempt_at=now + lease_s)
                )
                claimed.append(Delivery(row.id, row.url, row.body, row.attempts))
        return claimed

    def finish_delivery(
        self,
        delivery_id: int,
        now: float,
        *,
        error: str | None,
        retry_at: float | None,
    ) -> None:
        """Record a delivery attempt: delivered, retry later, or give up (retry_at None)."""
        values: dict[str, Any] = {"attempts": notifications.c.attempts + 1}
        if error is None:
            values["delivered_at"] = now
        else:
            values["last_error"] = error[:500]
            if retry_at is None:
                values["failed"] = True
            else:
                values["next_attempt_at"] = retry_at
        with self._tx() as conn:
            conn.execute(
                update(notifications).where(notifications.c.id == delivery_id).values(values)
            )

    def notification_states(self) -> list[dict[str, Any]]:
        """Every notification's attempts and outcome (for tests and the admin view)."""
        with self._read() as conn:
            rows = conn.execute(select(notifications).order_by(notifications.c.id)).all()
        return [dict(r._mapping) for r in rows]
