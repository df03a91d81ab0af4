"""Prometheus metrics of one gateway process, on its own registry (never the global one, so
two apps in one process — as in tests — do not collide)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest


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

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)
