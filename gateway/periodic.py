"""The gateway's periodic steps and the loops that run them on the real clock: the SLA
clock (`sla_step`, with the residents' and housekeeping work), telemetry (`telemetry_step`),
`every` to run a step each period whatever it raises, and `stop_tasks` to end the loops at
shutdown. `gateway.main` starts them."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence

from gateway.mqtt import MqttIngest
from gateway.runtime import Runtime
from gateway.sla import TicketCategory
from gateway.store import StoreUnavailableError

log = logging.getLogger(__name__)

CHANGES_RETENTION_S = 24 * 3600.0
"""The change feed keeps a day: a console away longer reloads through the REST API."""


async def every(period_s: float, step: Callable[[], Awaitable[object]], name: str) -> None:
    while True:
        try:
            await step()
        except StoreUnavailableError as exc:
            log.warning("%s: database unavailable (%s)", name, exc)
        except Exception:  # a loop that dies silently stops SLA clocks: log and keep going
            log.exception("%s failed; continuing", name)
        await asyncio.sleep(period_s)


async def telemetry_step(runtime: Runtime, ingest: MqttIngest | None) -> None:
    """Offline sensor nodes, overdue relay cut-offs, retention and the telemetry gauges."""
    telemetry = runtime.telemetry
    if telemetry is None:
        return
    now = time.time()
    if await asyncio.to_thread(telemetry.tick, now):
        runtime.feed.wake()
    async with runtime.readings_lock:  # not a batch's commands before that batch committed
        commands = telemetry.take_commands()
    for command in commands:
        if ingest is not None:
            await ingest.publish(command.topic, command.payload)
    await asyncio.to_thread(telemetry.derive_if_due, now)
    await asyncio.to_thread(telemetry.checkpoint)
    gauge = runtime.metrics.telemetry_points
    gauge.labels("embedded", "written").set(telemetry.sqlite.written)
    if telemetry.influx is not None:
        gauge.labels("influxdb", "written").set(telemetry.influx.written)
        gauge.labels("influxdb", "dropped").set(telemetry.influx.dropped)
        gauge.labels("influxdb", "buffered").set(telemetry.influx.buffered)


async def sla_step(runtime: Runtime, now: float | None = None) -> None:
    """One pass of the SLA clock: escalations, stale devices, gauges, housekeeping
    (retention of message ids, the feed, dead letters and snapshots). `now` for tests."""
    now = time.time() if now is None else now
    store, settings = runtime.store, runtime.settings
    escalated = await asyncio.to_thread(store.escalations.run_escalations, now, settings.policies)
    for esc, change in escalated:
        runtime.metrics.sla_breaches.labels(esc.breach.value, change.category or "").inc()
    stale = await asyncio.to_thread(
        store.devices.mark_stale_devices,
        now,
        settings.heartbeat_grace,
        settings.default_heartbeat_interval_s,
        settings.policies[TicketCategory.DEVICE_OFFLINE],
    )
    if escalated or stale:
        runtime.feed.wake()
    counts = await asyncio.to_thread(store.tickets.open_tickets_by_category)
    for category in TicketCategory:
        runtime.metrics.open_tickets.labels(category.value).set(counts.get(category.value, 0))
    await asyncio.to_thread(store.inbox.prune_processed, now - settings.processed_retention_s)
    await asyncio.to_thread(store.feed.prune_changes, now - CHANGES_RETENTION_S)
    await asyncio.to_thread(
        store.inbox.prune_dead_letters,
        now - settings.dead_letter_retention_s,
        settings.dead_letters_kept_per_device,
    )
    # Announced snapshots that never came are kept as long as a redelivery could bring them.
    await asyncio.to_thread(
        store.inbox.prune_snapshots,
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
    await asyncio.to_thread(runtime.store.residents.prune_spent_challenges, now - 2 * ttl)


SHUTDOWN_GRACE_S = 10.0
"""How long shutdown waits for the background loops to end once cancelled."""


async def stop_tasks(tasks: Sequence[asyncio.Task[None]]) -> None:
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
