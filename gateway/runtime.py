"""What one gateway process holds while it runs; built by `create_app`, reached by routes."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from gateway.config import GatewaySettings
from gateway.figures_service import FiguresService
from gateway.ingest import IngestHandler
from gateway.login_limiter import LoginLimiter
from gateway.metrics import GatewayMetrics
from gateway.residents.service import ResidentService
from gateway.rounds.service import RoundsService
from gateway.store import Store
from gateway.stream import ChangeFeed, ChangeHub, StreamSlots

if TYPE_CHECKING:
    from gateway.telemetry.service import TelemetryService


@dataclass
class Runtime:
    """The process's store, settings and shared services."""

    settings: GatewaySettings
    store: Store
    hub: ChangeHub
    feed: ChangeFeed
    metrics: GatewayMetrics
    handler: IngestHandler
    limiter: LoginLimiter
    streams: StreamSlots
    telemetry: TelemetryService | None = None
    residents: ResidentService | None = None
    rounds: RoundsService | None = None
    figures: FiguresService | None = None
    ingest_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    """One ingest transaction at a time across the MQTT sessions (events, telemetry): on
    SQLite two writers would fight over the file lock and retry; this way an event waits
    for at most one telemetry batch."""
    readings_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    """Telemetry batches are prepared and committed one at a time, in the order they came
    (the sensor rules see readings in order), and a batch's relay commands are taken only
    after its commit, by it or by the clock loop (`gateway.readings`, `gateway.periodic`)."""
