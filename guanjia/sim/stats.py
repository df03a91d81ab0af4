"""What the simulator counts while it runs, and the summary it ends with.

`SimStats` is fed from the MQTT threads (PUBACKs, Acks) and the scheduler (sends); it only
counts, under one lock. `Report` is the end-of-run summary (JSON with ``--json``).
"""

from __future__ import annotations

import math
import threading
from collections import defaultdict
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field

KINDS = ("event", "snapshot", "heartbeat", "telemetry", "esphome", "status")


def percentile(values: Sequence[float], q: float) -> float | None:
    """The `q`-th percentile (0-100, nearest rank) of `values`; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


class KindCounts(BaseModel):
    """One kind of publication: how many went out and how far each got."""

    model_config = ConfigDict(extra="forbid")

    sent: int = 0
    broker_acked: int = 0
    gateway_acked: int = Field(default=0, description="Named by an end-to-end Ack.")
    resent: int = 0
    pending: int = Field(default=0, description="Sent, awaiting an Ack at the end.")


class Latency(BaseModel):
    """Milliseconds from first send to the acknowledgement."""

    model_config = ConfigDict(extra="forbid")

    count: int
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    max_ms: float | None


def latency(samples_s: Sequence[float]) -> Latency:
    """Percentiles of latencies given in seconds."""
    ms = [s * 1000.0 for s in samples_s]
    return Latency(
        count=len(ms),
        p50_ms=percentile(ms, 50),
        p95_ms=percentile(ms, 95),
        p99_ms=percentile(ms, 99),
        max_ms=max(ms) if ms else None,
    )


class Reflected(BaseModel):
    """What the gateway shows for the run (through its API), when it was asked."""

    model_config = ConfigDict(extra="forbid")

    tickets: int
    ticket_events: int = Field(description="Sum of the site's tickets' event counts.")
    sensors_with_points: int
    sensors: int


class Report(BaseModel):
    """The end-of-run summary."""

    model_config = ConfigDict(extra="forbid")

    site_id: str
    devices: int
    duration_s: float
    wall_s: float
    planned: dict[str, int]
    kinds: dict[str, KindCounts]
    broker_latency: Latency
    gateway_latency: Latency
    events_per_s: float = Field(description="Events gateway-acked ÷ wall time of the run.")
    max_lag_s: float = Field(description="Worst delay of a send behind its planned time.")
    unacked_keys: list[str] = Field(default_factory=list, description="At most 20 shown.")
    reflected: Reflected | None = None

    @property
    def complete(self) -> bool:
        """Every end-to-end message acknowledged by the gateway."""
        return all(k.pending == 0 for k in self.kinds.values())


class SimStats:
    """Thread-safe counters and latency samples."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counts: dict[str, KindCounts] = defaultdict(KindCounts)
        self.broker_latency_s: list[float] = []
        self.gateway_latency_s: list[float] = []
        self.max_lag_s = 0.0

    def sent(self, kind: str, *, resend: bool = False) -> None:
        with self._lock:
            if resend:
                self.counts[kind].resent += 1
            else:
                self.counts[kind].sent += 1

    def broker_acked(self, kind: str, seconds: float) -> None:
        with self._lock:
            self.counts[kind].broker_acked += 1
            self.broker_latency_s.append(seconds)

    def gateway_acked(self, kind: str, seconds: float) -> None:
        with self._lock:
            self.counts[kind].gateway_acked += 1
            self.gateway_latency_s.append(seconds)

    def lag(self, seconds: float) -> None:
        with self._lock:
            self.max_lag_s = max(self.max_lag_s, seconds)

    def snapshot(self) -> dict[str, KindCounts]:
        """A copy of the counters."""
        with self._lock:
            return {k: v.model_copy() for k, v in self.counts.items()}

    def latencies(self) -> tuple[list[float], list[float]]:
        """Copies of (broker, gateway) samples in seconds."""
        with self._lock:
            return list(self.broker_latency_s), list(self.gateway_latency_s)
