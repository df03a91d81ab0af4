"""Sensor readings from the broker to the stores: what the telemetry MQTT session calls.

`ingest_readings(runtime, batch)` runs the telemetry ingest's three steps
(`gateway.telemetry.ingest`) off the event loop. Only the commit takes the gateway's ingest
lock (one writer at a time across the MQTT sessions), so an event batch waits at most for
one telemetry transaction — a few claims and the odd alert — never for decoding, rules or
the point writes. What is not a reading of a profiled node goes to the event ingest
(`IngestHandler`) in the same pass. The returned messages (relay cut-offs, end-to-end Acks)
are published by the MQTT edge, which acknowledges the batch to the broker after this
returns: after the commit and after the points are written.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from gateway.acks import Committed
from gateway.ingest import IngestResult, Outcome
from gateway.mqtt import Outbound
from gateway.runtime import Runtime
from gateway.telemetry.acks import ack_messages


async def ingest_readings(runtime: Runtime, batch: Sequence[tuple[str, bytes]]) -> list[Outbound]:
    """Apply a batch of telemetry-channel and ESPHome messages; what to publish after.

    `runtime.readings_lock` keeps the prepare and commit steps of batches in the order the
    calls began, should two overlap, and lets the clock loop take relay commands only
    between batches (never one whose batch has not committed)."""
    telemetry = runtime.telemetry
    assert telemetry is not None
    now = time.time()
    results: list[IngestResult] = []
    async with runtime.readings_lock:
        prepared = await asyncio.to_thread(telemetry.prepare, batch, now)
        async with runtime.ingest_lock:
            await asyncio.to_thread(telemetry.commit, prepared)
            if prepared.fallback:
                results = await asyncio.to_thread(
                    runtime.handler.handle_batch, prepared.fallback, now
                )
        # This batch's commands (and any an earlier batch left): all committed by now.
        commands = telemetry.take_commands()
    await asyncio.to_thread(telemetry.store_points, prepared)
    metrics = runtime.metrics.messages
    if prepared.fresh:
        metrics.labels("telemetry", Outcome.ACCEPTED.value).inc(len(prepared.fresh))
    if prepared.duplicates:
        metrics.labels("telemetry", Outcome.DUPLICATE.value).inc(len(prepared.duplicates))
    if prepared.dead_stored:
        runtime.metrics.dead_letters.labels("esphome").inc(prepared.dead_stored)
    changed = bool(prepared.changes)
    for result in results:
        metrics.labels(result.channel, result.outcome.value).inc()
        if result.outcome is Outcome.DEAD_LETTER:
            runtime.metrics.dead_letters.labels(result.channel).inc()
        changed = changed or bool(result.changes)
    if changed:
        runtime.feed.wake()
    committed: list[Committed] = prepared.acked
    committed += [r.committed for r in results if r.committed is not None]
    outbound = [Outbound(c.topic, c.payload) for c in commands]
    return outbound + [Outbound(topic, payload) for topic, payload in ack_messages(committed, now)]
