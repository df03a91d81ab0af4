"""Prometheus metrics of one gateway process, on its own registry (never the global one, so
two apps in one process — as in tests — do not collide)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily, Metric

WORKER_COUNTERS = (
    "guanjia_ingest_messages",
    "guanjia_dead_letters",
    "guanjia_ack_publish_failures",
)
"""The counters an ingest worker reports to the gateway process (`gateway.ingest_workers`),
served there as ``guanjia_worker_<name>_total`` with a ``worker`` label."""

CounterSample = tuple[str, dict[str, str], float]
"""One counter's value: its name (without ``_total``), its labels, its value since start."""


class WorkerCounters:
    """The ingest workers' counters as last reported, for /metrics (a custom collector).

    A worker reports its totals since it started; when one is restarted its last report is
    kept as a base, so the served counters never go back."""

    def __init__(self) -> None:
        self._latest: dict[int, dict[tuple[str, tuple[tuple[str, str], ...]], float]] = {}
        self._base: dict[int, dict[tuple[str, tuple[tuple[str, str], ...]], float]] = {}

    def update(self, worker: int, samples: Sequence[CounterSample]) -> None:
        """Worker `worker`'s totals since its start (a report replaces the previous one)."""
        self._latest[worker] = {
            (name, tuple(sorted(labels.items()))): value
            for name, labels, value in samples
            if name in WORKER_COUNTERS
        }

    def restarted(self, worker: int) -> None:
        """Worker `worker` starts again from zero: keep what it had counted."""
        base = self._base.setdefault(worker, {})
        for key, value in self._latest.pop(worker, {}).items():
            base[key] = base.get(key, 0.0) + value

    def collect(self) -> Iterator[Metric]:
        families: dict[str, CounterMetricFamily] = {}
        for worker in sorted(self._latest.keys() | self._base.keys()):
            latest, base = self._latest.get(worker, {}), self._base.get(worker, {})
            for key in sorted(latest.keys() | base.keys()):
                name, labels = key
                family = families.get(name)
                if family is None:
                    family = CounterMetricFamily(
                        name.replace("guanjia_", "guanjia_worker_", 1),
                        f"{name}_total of each ingest worker (mqtt.ingest_processes > 1)",
                        labels=["worker", *(k for k, _ in labels)],
                    )
                    families[name] = family
                value = latest.get(key, 0.0) + base.get(key, 0.0)
                family.add_metric([str(worker), *(v for _, v in labels)], value)
        yield from families.values()


class GatewayMetrics:
    """Counters and gauges served on /metrics."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.messages = Counter(
            "guanjia_ingest_messages",
            "MQTT messages ingested, by channel and outcome",
            ["channel", "outcome"],
            registry=self.registry,
        )
        self.dead_letters = Counter(
            "guanjia_dead_letters",
            "Messages refused into the dead-letter table",
            ["channel"],
            registry=self.registry,
        )
        self.ack_publish_failures = Counter(
            "guanjia_ack_publish_failures",
            "End-to-end Acks whose publish failed (the device re-sends; it is acked then)",
            registry=self.registry,
        )
        self.sla_breaches = Counter(
            "guanjia_sla_breaches",
            "SLA breaches escalated by this replica",
            ["breach", "category"],
            registry=self.registry,
        )
        self.open_tickets = Gauge(
            "guanjia_open_tickets",
            "Open tickets by category (refreshed by the SLA loop)",
            ["category"],
            registry=self.registry,
        )
        self.webhook_deliveries = Counter(
            "guanjia_webhook_deliveries",
            "Webhook POST attempts by result",
            ["result"],
            registry=self.registry,
        )

        self.telemetry_points = Gauge(
            "guanjia_telemetry_points",
            "Telemetry points since start, by store and fate (written, dropped, buffered)",
            ["store", "fate"],
            registry=self.registry,
        )

        self.workers = WorkerCounters()
        self.registry.register(self.workers)

    def counter_samples(self) -> list[CounterSample]:
        """This process's totals of `WORKER_COUNTERS` (what a worker reports)."""
        return [
            (family.name, dict(sample.labels), sample.value)
            for family in self.registry.collect()
            if family.name in WORKER_COUNTERS
            for sample in family.samples
            if sample.name.endswith("_total")
        ]

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)
