"""Wires one gateway process: `create_app(settings)` builds everything, nothing at import.

The app's lifespan migrates the database, then runs four background tasks on the real clock:
MQTT ingest (when enabled; supervised: restarted with backoff whatever it raises), the
SLA/heartbeat loop, webhook delivery and the change feed that drives the console stream.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from contract import ack_topic, encode
from gateway.acks import build_acks
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
from gateway.ingest import IngestHandler, IngestQuotas, Outcome
from gateway.ingest_workers import IngestWorkers, drop_stale_worker_sessions
from gateway.login_limiter import LoginLimiter
from gateway.metrics import GatewayMetrics
from gateway.mqtt import IngestState, MqttIngest, Outbound, Refused, drop_session
from gateway.notify import WebhookSender
from gateway.readings import ingest_readings
from gateway.residents.service import ResidentService
from gateway.rollouts.service import rollout_step
from gateway.rounds.service import MAX_PHOTO_BYTES as MAX_SCAN_PHOTO_BYTES
from gateway.rounds.service import RoundsService
from gateway.runtime import Runtime
from gateway.sites import SiteConfig, load_sites
from gateway.sla import TicketCategory
from gateway.store import IngestTx, Store, StoreUnavailableError, migrate
from gateway.stream import ChangeFeed, ChangeHub, StreamSlots
from gateway.telemetry.ingest import takes as takes_reading

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


async def ingest_batch(
    runtime: Runtime,
    batch: Sequence[tuple[str, bytes]],
    changed: Callable[[], None] | None = None,
) -> list[Outbound]:
    """Apply a batch of MQTT messages (one transaction), push what it changed (`changed`,
    by default this process's change feed), and return the end-to-end Acks for what the
    commit holds (published by the MQTT edge)."""
    outbound: list[Outbound] = []
    if runtime.telemetry is not None:
        # Readings (TelemetryBatch, ESPHome) take the telemetry path (gateway.readings).
        readings = [(t, p) for t, p in batch if takes_reading(t)]
        if readings:
            batch = [(t, p) for t, p in batch if not takes_reading(t)]
            outbound = await ingest_readings(runtime, readings)
            if not batch:
                return outbound
    async with runtime.ingest_lock:
        return outbound + await _ingest_batch(runtime, batch, changed or runtime.feed.wake)


async def _ingest_batch(
    runtime: Runtime, batch: Sequence[tuple[str, bytes]], wake: Callable[[], None]
) -> list[Outbound]:
    now = time.time()
    outbound: list[Outbound] = []
    results = await asyncio.to_thread(runtime.handler.handle_batch, batch, now) if batch else []
    # Counted per batch, not per message: a labelled counter costs a few µs per call.
    outcomes = Counter((r.channel, r.outcome) for r in results)
    for (channel, outcome), n in outcomes.items():
        runtime.metrics.messages.labels(channel, outcome.value).inc(n)
        if outcome is Outcome.DEAD_LETTER:
            runtime.metrics.dead_letters.labels(channel).inc(n)
    if any(r.changes for r in results):
        wake()
    committed = [r.committed for r in results if r.committed is not None]
    return outbound + [
        Outbound(str(ack_topic(a.site_id, a.device_id)), encode(a))
        for a in build_acks(committed, now)
    ]


async def telemetry_step(runtime: Runtime, ingest: MqttIngest | None) -> None:
    """Offline sensor nodes, overdue relay cut-offs, retention and the telemetry gauges."""
    telemetry = runtime.telemetry
    if telemetry is None:
        return
    now = time.time()
    if await asyncio.to_thread(telemetry.tick, now):
        runtime.feed.wake()
    for command in telemetry.take_commands():
        if ingest is not None:
            await ingest.publish(command.topic, command.payload)
    await asyncio.to_thread(telemetry.derive)
    gauge = runtime.metrics.telemetry_points
    gauge.labels("embedded", "written").set(telemetry.sqlite.written)
    if telemetry.influx is not None:
        gauge.labels("influxdb", "written").set(telemetry.influx.written)
        gauge.labels("influxdb", "dropped").set(telemetry.influx.dropped)
        gauge.labels("influxdb", "buffered").set(telemetry.influx.buffered)


async def refuse(runtime: Runtime, refused: Sequence[Refused]) -> None:
    """Dead-letter messages the MQTT edge refused (retained outside `status`), in one
    transaction, within the per-device per-minute dead-letter quota like every other dead
    letter: beyond it a message is dropped (only counted, `outcome="dropped"`)."""
    now = time.time()
    per_minute = runtime.settings.dead_letters_per_device_per_minute

    def record(tx: IngestTx) -> list[bool]:
        return [
            tx.dead_letter(item.topic, item.payload, "RetainedRefused", item.reason, per_minute)
            for item in refused
        ]

    stored = await asyncio.to_thread(runtime.store.ingest, record, now)
    for item, kept in zip(refused, stored, strict=True):
        channel = item.topic.split("/")[4] if item.topic.count("/") >= 4 else "unknown"
        if kept:
            runtime.metrics.dead_letters.labels(channel).inc()
        else:
            runtime.metrics.messages.labels(channel, Outcome.DROPPED.value).inc()


async def supervise(
    ingest: MqttIngest, first_delay_s: float = 0.5, max_delay_s: float = 30.0
) -> None:
    """Run the ingest forever: whatever it raises is logged, /healthz reports it failed, and
    it restarts after a backoff (doubling up to `max_delay_s`; back to `first_delay_s` after
    a run that lasted longer than `max_delay_s` before it raised). Unacknowledged messages
    stay at the broker meanwhile."""
    delay = first_delay_s
    while True:
        started = time.monotonic()
        try:
            await ingest.run()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # any failure: a dead ingest would silently drop nothing
            # but also ingest nothing, for good, while /healthz said ok.
            ingest.state = IngestState.FAILED
            ingest.failure = f"{type(exc).__name__}: {str(exc)[:300]}"
            log.exception("MQTT ingest failed; restarting in %.1f s", delay)
        if time.monotonic() - started > max_delay_s:
            delay = first_delay_s
        await asyncio.sleep(delay)
        delay = min(delay * 2, max_delay_s)


async def sla_step(runtime: Runtime, now: float | None = None) -> None:
    """One pass of the SLA clock: escalations, stale devices, gauges, housekeeping
    (retention of message ids, the feed, dead letters and snapshots). `now` for tests."""
    now = time.time() if now is None else now
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
    await asyncio.to_thread(store.prune_processed, now - settings.processed_retention_s)
    await asyncio.to_thread(store.prune_changes, now - CHANGES_RETENTION_S)
    await asyncio.to_thread(
        store.prune_dead_letters,
        now - settings.dead_letter_retention_s,
        settings.dead_letters_kept_per_device,
    )
    # Announced snapshots that never came are kept as long as a redelivery could bring them.
    await asyncio.to_thread(
        store.prune_snapshots,
        orphaned_before=now - settings.snapshot_orphan_ttl_s,
        pending_before=now - settings.processed_retention_s,
    )
    if runtime.telemetry is not None:
        await asyncio.to_thread(runtime.telemetry.prune, now)
    await residents_step(runtime, now)


async def residents_step(runtime: Runtime, now: float) -> None:
    """Tickets for missed patrol rounds, and forgetting spent challenges once expired."""
    if runtime.rounds is not None:
        opened = await asyncio.to_thread(runtime.rounds.tick, now)
        if opened:
            runtime.feed.wake()
    ttl = runtime.settings.residents.challenge_ttl_s
    await asyncio.to_thread(runtime.store.prune_spent_challenges, now - 2 * ttl)


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


SHUTDOWN_GRACE_S = 10.0
"""How long shutdown waits for the background loops to end once cancelled."""


async def _stop_tasks(tasks: Sequence[asyncio.Task[None]]) -> None:
    """Cancel the background loops and wait for them, but not forever: a loop that does not
    end must not keep the process from exiting (SIGTERM, a test's teardown); it is logged."""
    for task in tasks:
        task.cancel()
    if not tasks:
        return
    _, pending = await asyncio.wait(tasks, timeout=SHUTDOWN_GRACE_S)
    if pending:
        log.warning(
            "shutdown: %d background task(s) did not stop within %.0f s: %s",
            len(pending),
            SHUTDOWN_GRACE_S,
            ", ".join(sorted(t.get_name() for t in pending)),
        )


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


def _owned_readings(app: FastAPI, runtime: Runtime) -> Coroutine[Any, Any, None]:
    """The telemetry session, run only while this replica holds the telemetry lease
    (`gateway.telemetry.lease`: one rule owner per telemetry subscription)."""
    from gateway.telemetry.lease import unshared

    mqtt = runtime.settings.mqtt
    shared = [f for f in mqtt.telemetry_filters if f.startswith("$share/")]
    readings = MqttIngest(
        mqtt.telemetry_connection(),
        lambda batch: ingest_batch(runtime, batch),
        lambda refused: refuse(runtime, refused),
        runtime.metrics.ack_publish_failures.inc,
        filters=unshared(mqtt.telemetry_filters),
        unsubscribe=shared,
    )
    app.state.telemetry_ingest = readings
    return _own_readings(runtime, readings)


async def _own_readings(runtime: Runtime, readings: MqttIngest) -> None:
    from gateway.telemetry.lease import LeaseKeeper, lease_name, own_telemetry

    telemetry, connection = runtime.telemetry, readings.settings
    assert telemetry is not None
    name, ttl_s = lease_name(connection.sites), telemetry.settings.lease_s
    await own_telemetry(
        LeaseKeeper(runtime.store, name, connection.session_id, ttl_s),
        run_session=lambda: supervise(readings),
        end_session=lambda: drop_session(connection),
        reset=telemetry.reset,
    )


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
                _every(settings.sla_tick_s, lambda: sla_step(runtime), "sla"), name="sla"
            ),
            asyncio.create_task(
                _every(settings.webhook_tick_s, sender.tick, "webhooks"), name="webhooks"
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
                owned = _owned_readings(app, runtime)
                tasks.append(asyncio.create_task(owned, name="readings"))
        publish = app.state.ingest.publish if settings.ingest_enabled else None
        service = rollouts.service_of(runtime)
        tasks.append(
            asyncio.create_task(
                _every(settings.models.tick_s, lambda: rollout_step(service, publish), "rollouts")
            )
        )
        workers = _start_workers(settings, runtime, tasks) if settings.ingest_enabled else None
        app.state.ingest_workers = workers
        if runtime.telemetry is not None:
            found = app.state.ingest if settings.ingest_enabled else None
            tasks.append(
                asyncio.create_task(
                    _every(
                        settings.telemetry_tick_s,
                        lambda: telemetry_step(runtime, found),
                        "telemetry",
                    )
                )
            )
        try:
            yield
        finally:
            await _stop_tasks(tasks)
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
