"""Wires one gateway process: `create_app(settings)` builds everything, nothing at import.

The app's lifespan migrates the database, then runs four background tasks on the real clock:
MQTT ingest (when enabled), the SLA/heartbeat loop, webhook delivery and the change feed
that drives the console stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager

from fastapi import FastAPI

from gateway.api import (
    commands,
    dead_letters,
    devices,
    grids,
    rosters,
    session,
    tickets,
    users,
    webhooks,
)
from gateway.auth import LoginLimiter
from gateway.config import GatewaySettings
from gateway.ingest import IngestHandler, Outcome
from gateway.metrics import GatewayMetrics
from gateway.mqtt import MqttIngest
from gateway.notify import WebhookSender
from gateway.runtime import Runtime
from gateway.sla import TicketCategory
from gateway.store import Store, StoreUnavailableError, migrate
from gateway.stream import ChangeFeed, ChangeHub

log = logging.getLogger(__name__)

PROCESSED_RETENTION_S = 7 * 24 * 3600.0
"""Message ids are remembered a week: far longer than any broker keeps a redelivery."""
ROUTE_MODULES = (session, tickets, devices, commands, grids, rosters, users, dead_letters, webhooks)
"""Every module whose `router` the app serves: one per resource."""
CHANGES_RETENTION_S = 24 * 3600.0
"""The change feed keeps a day: a console away longer reloads through the REST API."""


async def _every(period_s: float, step: Callable[[], Awaitable[object]], name: str) -> None:
    while True:
        try:
            await step()
        except StoreUnavailableError as exc:
            log.warning("%s: database unavailable (%s)", name, exc)
        except Exception:  # a loop that dies silently stops SLA clocks: log and keep going
            log.exception("%s failed; continuing", name)
        await asyncio.sleep(period_s)


def build_runtime(settings: GatewaySettings) -> Runtime:
    """The store and services of one process (the app and the benchmarks use this)."""
    store = Store(settings.database_url)
    hub = ChangeHub()
    return Runtime(
        settings=settings,
        store=store,
        hub=hub,
        feed=ChangeFeed(store, hub, settings.stream_poll_s),
        metrics=GatewayMetrics(),
        handler=IngestHandler(store, settings.policies, settings.cooldown_s),
        limiter=LoginLimiter(settings.login_attempts, settings.login_window_s),
    )


async def ingest_batch(runtime: Runtime, batch: Sequence[tuple[str, bytes]]) -> None:
    """Apply a batch of MQTT messages (one transaction) and push what it changed."""
    results = await asyncio.to_thread(runtime.handler.handle_batch, batch, time.time())
    changed = False
    for result in results:
        runtime.metrics.messages.labels(result.channel, result.outcome.value).inc()
        if result.outcome is Outcome.DEAD_LETTER:
            runtime.metrics.dead_letters.labels(result.channel).inc()
        changed = changed or bool(result.changes)
    if changed:
        runtime.feed.wake()


async def sla_step(runtime: Runtime) -> None:
    """One pass of the SLA clock: escalations, stale devices, gauges, housekeeping."""
    now = time.time()
    store, settings = runtime.store, runtime.settings
    escalated = await asyncio.to_thread(store.run_escalations, now, settings.policies)
    for esc, change in escalated:
        runtime.metrics.sla_breaches.labels(esc.breach.value, change.category or "").inc()
    stale = await asyncio.to_thread(
        store.mark_stale_devices,
        now,
        settings.heartbeat_grace,
        settings.default_heartbeat_interval_s,
        settings.policies[TicketCategory.DEVICE_OFFLINE],
    )
    if escalated or stale:
        runtime.feed.wake()
    counts = await asyncio.to_thread(store.open_tickets_by_category)
    for category in TicketCategory:
        runtime.metrics.open_tickets.labels(category.value).set(counts.get(category.value, 0))
    await asyncio.to_thread(store.prune_processed, now - PROCESSED_RETENTION_S)
    await asyncio.to_thread(store.prune_changes, now - CHANGES_RETENTION_S)


def create_app(settings: GatewaySettings) -> FastAPI:
    """The gateway application for `settings`."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await asyncio.to_thread(migrate, settings.database_url)
        runtime = build_runtime(settings)
        app.state.runtime = runtime
        await runtime.feed.start()
        sender = WebhookSender(
            runtime.store,
            runtime.metrics,
            settings.webhook_timeout_s,
            settings.webhook_max_attempts,
        )
        tasks = [
            asyncio.create_task(_every(settings.sla_tick_s, lambda: sla_step(runtime), "sla")),
            asyncio.create_task(_every(settings.webhook_tick_s, sender.tick, "webhooks")),
            asyncio.create_task(runtime.feed.run()),
        ]
        if settings.ingest_enabled:
            ingest = MqttIngest(settings.mqtt, lambda batch: ingest_batch(runtime, batch))
            app.state.ingest = ingest
            tasks.append(asyncio.create_task(ingest.run()))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await sender.aclose()
            runtime.store.close()

    app = FastAPI(
        title="Guanjia gateway",
        summary="Alerts to tickets with SLA clocks, escalation and grid routing.",
        version="1",
        lifespan=lifespan,
    )
    for module in ROUTE_MODULES:
        app.include_router(module.router)
    return app
