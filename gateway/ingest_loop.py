"""The MQTT ingest's callbacks and its supervision: `ingest_batch` applies a batch of
messages, `refuse` dead-letters what the MQTT edge refused, `supervise` keeps an ingest
session running (restarted with backoff whatever it raises). `gateway.main` wires them to
the gateway's sessions; ingest workers (`gateway.ingest_workers`) and benchmarks call them
the same way."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Protocol

from contract import ack_topic, encode
from gateway.acks import build_acks
from gateway.ingest import Outcome
from gateway.mqtt import IngestState, Outbound, Refused
from gateway.readings import ingest_readings
from gateway.runtime import Runtime
from gateway.store import IngestTx
from gateway.telemetry.ingest import takes as takes_reading

log = logging.getLogger(__name__)


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


class Session(Protocol):
    """What `supervise` runs: an `MqttIngest`, or a `ReceiverIngest` (its MQTT edge in a
    receiver process)."""

    state: IngestState
    failure: str | None

    async def run(self) -> None:
        """Run until cancelled; raise what stopped it."""


async def supervise(ingest: Session, first_delay_s: float = 0.5, max_delay_s: float = 30.0) -> None:
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
