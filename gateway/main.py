"""Wires one gateway process: `create_app(settings)` builds everything, nothing at import.

The app's lifespan migrates the database, then runs four background tasks on the real clock:
MQTT ingest (when enabled; supervised: restarted with backoff whatever it raises), the
SLA/heartbeat loop, webhook delivery and the change feed that drives the console stream.
What those tasks run lives beside this module: the ingest callbacks and supervision in
`gateway.ingest_loop`, the periodic steps and their loops in `gateway.periodic`, the
lease-owned telemetry session in `gateway.readings_owner`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

from fastapi import FastAPI

from gateway.api import (
    accesslog,
    commands,
    dead_letters,
    devices,
    grids,
    models,
    ports,
    residents,
    rollouts,
    rosters,
    session,
    tickets,
    users,
    webhooks,
)
from gateway.api import figures as figures_api
from gateway.api import rounds as rounds_api
from gateway.api import telemetry as telemetry_api
from gateway.api.headers import SecurityHeadersMiddleware
from gateway.api.limits import MULTIPART_OVERHEAD, BodyLimitMiddleware, BodyRule
from gateway.auth import bearer_is_valid
from gateway.config import GatewaySettings
from gateway.console import app as console
from gateway.figures_service import FiguresService
from gateway.heap import settled
from gateway.ingest import IngestHandler, IngestQuotas
from gateway.ingest_loop import ingest_batch, refuse, supervise
from gateway.ingest_workers import IngestWorkers, drop_stale_worker_sessions
from gateway.login_limiter import LoginLimiter
from gateway.metrics import GatewayMetrics
from gateway.mqtt import MqttIngest
from gateway.notify import WebhookSender
from gateway.periodic import every, sla_step, stop_tasks, telemetry_step
from gateway.readings_owner import owned_readings
from gateway.residents.service import ResidentService
from gateway.rollouts.service import rollout_step
from gateway.rounds.service import MAX_PHOTO_BYTES as MAX_SCAN_PHOTO_BYTES
from gateway.rounds.service import RoundsService
from gateway.runtime import Runtime
from gateway.sites import SiteConfig, load_sites
from gateway.store import Store, migrate
from gateway.stream import ChangeFeed, ChangeHub, StreamSlots

log = logging.getLogger(__name__)

ROUTE_MODULES = (
    session,
    tickets,
    devices,
    commands,
    grids,
    rosters,
    users,
    dead_letters,
    webhooks,
    telemetry_api,
    models,
    rollouts,
    residents,
    rounds_api,
    figures_api,
    ports,
    *console.ROUTERS,
)
"""Every module whose `router` the app serves: one per resource (then the console's pages)."""


def build_runtime(
    settings: GatewaySettings, sites: Mapping[str, SiteConfig] | None = None
) -> Runtime:
    """The store and services of one process (the app and the benchmarks use this); `sites`
    are the site files (default: read from `settings.sites_dir`)."""
    sites = load_sites(settings.sites_dir) if sites is None else sites
    store = Store(settings.database_url)
    hub = ChangeHub()
    telemetry = None
    if settings.telemetry.enabled:
        from gateway.telemetry.service import TelemetryService

        telemetry = TelemetryService(
            store,
            settings.telemetry,
            settings.policies,
            settings.cooldown_s,
            path=settings.telemetry.store_path(settings.database_url),
        )
        telemetry.dead_letters_per_minute = settings.dead_letters_per_device_per_minute
    rounds = RoundsService(store, sites, settings.policies)
    return Runtime(
        settings=settings,
        store=store,
        hub=hub,
        feed=ChangeFeed(store, hub, settings.stream_poll_s),
        metrics=GatewayMetrics(),
        handler=IngestHandler(
            store,
            settings.policies,
            settings.cooldown_s,
            IngestQuotas(
                dead_letters_per_minute=settings.dead_letters_per_device_per_minute,
                snapshot_bytes_per_hour=settings.snapshot_bytes_per_device_per_hour,
            ),
        ),
        limiter=LoginLimiter(
            pair_attempts=settings.login_attempts,
            address_attempts=settings.login_address_attempts,
            user_attempts=settings.login_user_attempts,
            user_delay_s=settings.login_user_delay_s,
            window_s=settings.login_window_s,
            max_tracked=settings.login_tracked_max,
        ),
        streams=StreamSlots(settings.stream_max_per_user, settings.stream_max_total),
        telemetry=telemetry,
        residents=ResidentService(
            store, sites, settings.signing_key(), settings.policies, settings.residents
        ),
        rounds=rounds,
        figures=FiguresService(store, sites, rounds),
    )


def _start_workers(
    settings: GatewaySettings, runtime: Runtime, tasks: list[asyncio.Task[None]]
) -> IngestWorkers | None:
    """Start the ingest workers (`mqtt.ingest_processes > 1`), and end the sessions of
    workers an earlier configuration had."""
    tasks.append(asyncio.create_task(_drop_stale_workers(settings), name="drop-stale-workers"))
    if settings.mqtt.ingest_processes == 1:
        return None
    # More cores for events: workers on the event subscription, sharing it.
    workers = IngestWorkers(settings, runtime.feed.wake, runtime.metrics.workers)
    workers.start()
    tasks.append(asyncio.create_task(workers.supervise(), name="ingest-workers"))
    return workers


async def _drop_stale_workers(settings: GatewaySettings) -> None:
    try:
        ended = await drop_stale_worker_sessions(settings)
    except Exception:  # best effort: a stale session only queues events nobody reads
        log.exception("could not end stale ingest worker sessions")
        return
    if ended:
        log.warning("ended the sessions of ingest workers no longer configured: %s", ended)


def _body_rules(settings: GatewaySettings, key: str) -> list[BodyRule]:
    """The routes allowed a body larger than `max_body_bytes`, and their limits."""
    return [
        BodyRule(
            tickets.PHOTO_UPLOAD_PATH,
            settings.max_photo_bytes + MULTIPART_OVERHEAD,
            authenticated=True,
        ),
        BodyRule(models.UPLOAD_PATH, settings.models.max_artifact_bytes, authenticated=True),
        BodyRule(
            residents.REPORT_PATH,
            settings.residents.max_photos * settings.residents.max_photo_bytes + MULTIPART_OVERHEAD,
        ),
        BodyRule(
            rounds_api.SCAN_PATH, MAX_SCAN_PHOTO_BYTES + MULTIPART_OVERHEAD, authenticated=True
        ),
        console.upload_rule(settings.max_photo_bytes, key),
        console.scan_rule(MAX_SCAN_PHOTO_BYTES, key),
    ]


def create_app(settings: GatewaySettings) -> FastAPI:
    """The gateway application for `settings` (SiteConfigError for a bad site file)."""
    sites = load_sites(settings.sites_dir)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        accesslog.install()  # after the server configured its loggers
        await asyncio.to_thread(migrate, settings.database_url)
        runtime = build_runtime(settings, sites)
        app.state.runtime = runtime
        await runtime.feed.start()
        sender = WebhookSender(
            runtime.store,
            runtime.metrics,
            settings.webhook_timeout_s,
            settings.webhook_max_attempts,
        )
        tasks = [
            asyncio.create_task(
                every(settings.sla_tick_s, lambda: sla_step(runtime), "sla"), name="sla"
            ),
            asyncio.create_task(
                every(settings.webhook_tick_s, sender.tick, "webhooks"), name="webhooks"
            ),
            asyncio.create_task(runtime.feed.run(), name="feed"),
        ]
        if settings.ingest_enabled:
            mqtt = settings.mqtt
            split = mqtt.telemetry_split and runtime.telemetry is not None
            everything = mqtt.subscriptions + mqtt.esphome_subscriptions
            filters = mqtt.event_filters if split else everything
            ingest = MqttIngest(
                settings.mqtt,
                lambda batch: ingest_batch(runtime, batch),
                lambda refused: refuse(runtime, refused),
                runtime.metrics.ack_publish_failures.inc,
                # With ingest workers, they take the events (`gateway.ingest_workers`).
                filters=mqtt.gateway_filters(filters),
                unsubscribe=settings.mqtt.telemetry_filters if split else (),
            )
            app.state.ingest = ingest
            tasks.append(asyncio.create_task(supervise(ingest), name="ingest"))
            if settings.mqtt.telemetry_split and runtime.telemetry is not None:
                # Readings on a session of their own: a flood of them is queued at the
                # broker behind other readings, never in front of an event.
                # Only the holder of the telemetry lease runs this session and the rules.
                owned = owned_readings(app, runtime)
                tasks.append(asyncio.create_task(owned, name="readings"))
        publish = app.state.ingest.publish if settings.ingest_enabled else None
        service = rollouts.service_of(runtime)
        tasks.append(
            asyncio.create_task(
                every(settings.models.tick_s, lambda: rollout_step(service, publish), "rollouts")
            )
        )
        workers = _start_workers(settings, runtime, tasks) if settings.ingest_enabled else None
        app.state.ingest_workers = workers
        if runtime.telemetry is not None:
            found = app.state.ingest if settings.ingest_enabled else None
            tasks.append(
                asyncio.create_task(
                    every(
                        settings.telemetry_tick_s,
                        lambda: telemetry_step(runtime, found),
                        "telemetry",
                    )
                )
            )
        try:
            # Start-up is done: its objects stay out of every collection (`gateway.heap`).
            # No collection first: tests build hundreds of apps in one process.
            with settled(collect=False):
                yield
        finally:
            await stop_tasks(tasks)
            if workers is not None:
                await asyncio.to_thread(workers.stop)
            await sender.aclose()
            if runtime.telemetry is not None:
                await asyncio.to_thread(runtime.telemetry.close)
            runtime.store.close()

    app = FastAPI(
        title="Guanjia gateway",
        summary="Alerts to tickets with SLA clocks, escalation and grid routing.",
        version="1",
        lifespan=lifespan,
    )
    for module in ROUTE_MODULES:
        app.include_router(module.router)
    console.install(app)
    key = settings.signing_key()
    # Body limits wrap the router (before parsing and auth); security headers wrap everything,
    # so the limits' own 401/413 answers carry them too.
    app.add_middleware(
        BodyLimitMiddleware,
        default_limit=settings.max_body_bytes,
        rules=_body_rules(settings, key),
        authenticate=lambda header: bearer_is_valid(header, key),
    )
    app.add_middleware(SecurityHeadersMiddleware)
    return app
