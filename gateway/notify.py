"""Webhook delivery: the only module that imports httpx.

Notifications are rows written in the same transaction as the ticket change, so ingest never
waits on a chat service; this loop leases due rows, POSTs them and records the result,
retrying with exponential backoff (1 s, 2 s, 4 s … capped at 5 min) up to a limit.
"""

from __future__ import annotations

import asyncio
import logging
import time

import httpx

from gateway.metrics import GatewayMetrics
from gateway.store import Delivery, Store

log = logging.getLogger(__name__)

LEASE_S = 60.0
"""How long a claimed notification is hidden from other senders: well over a POST timeout."""
MAX_BACKOFF_S = 300.0
"""The longest wait between attempts, so a bot that comes back is used within minutes."""


def backoff_s(attempts: int) -> float:
    """Delay before attempt `attempts + 1` (attempts already made >= 1)."""
    return float(min(2 ** (attempts - 1), MAX_BACKOFF_S))


def _error_of(response: httpx.Response) -> str | None:
    if response.status_code >= 300:
        return f"HTTP {response.status_code}"
    try:
        body = response.json()
    except ValueError:
        return None
    # WeCom/DingTalk answer 200 with {"errcode": n}, Feishu with {"code": n}: 0 is success.
    if isinstance(body, dict):
        code = body.get("errcode", body.get("code", 0))
        if code not in (0, None):
            return f"bot error {code}: {body.get('errmsg') or body.get('msg')}"
    return None


class WebhookSender:
    """Delivers due notifications; run `tick()` periodically."""

    def __init__(
        self, store: Store, metrics: GatewayMetrics, timeout_s: float, max_attempts: int
    ) -> None:
        self.store = store
        self.metrics = metrics
        self.max_attempts = max_attempts
        self.client = httpx.AsyncClient(timeout=timeout_s)

    async def aclose(self) -> None:
        """Close the HTTP connection pool."""
        await self.client.aclose()

    async def tick(self) -> int:
        """Deliver what is due now; returns how many were attempted."""
        due = await asyncio.to_thread(self.store.webhooks.claim_deliveries, time.time(), LEASE_S)
        await asyncio.gather(*(self._send(d) for d in due))
        return len(due)

    async def _send(self, delivery: Delivery) -> None:
        try:
            response = await self.client.post(delivery.url, json=delivery.body)
            error = _error_of(response)
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        attempts = delivery.attempts + 1
        now = time.time()
        retry_at = None if attempts >= self.max_attempts else now + backoff_s(attempts)
        self.metrics.webhook_deliveries.labels("ok" if error is None else "error").inc()
        if error is not None:
            log.warning("webhook %d attempt %d failed: %s", delivery.id, attempts, error)
        await asyncio.to_thread(
            self.store.webhooks.finish_delivery, delivery.id, now, error=error, retry_at=retry_at
        )
