"""The live view of a run (rich) and the summary table printed at its end."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text

from guanjia.sim.stats import KindCounts, Latency, Report


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def counts_table(counts: dict[str, KindCounts], title: str) -> Table:
    """Per kind: sent, broker-acked, gateway-acked, re-sent, awaiting an Ack."""
    table = Table(title=title, title_justify="left")
    for column in ("kind", "sent", "broker ack", "gateway ack", "re-sent", "awaiting ack"):
        table.add_column(column, justify="left" if column == "kind" else "right")
    for kind, c in counts.items():
        table.add_row(
            kind,
            str(c.sent),
            str(c.broker_acked),
            str(c.gateway_acked),
            str(c.resent),
            str(c.pending),
        )
    return table


def latency_line(name: str, lat: Latency) -> str:
    """`name: p50 … p95 … p99 … max … ms (n)`."""
    return (
        f"{name}: p50 {_ms(lat.p50_ms)} p95 {_ms(lat.p95_ms)} p99 {_ms(lat.p99_ms)} "
        f"max {_ms(lat.max_ms)} ms ({lat.count})"
    )


def live(report: Report, done: int, total: int) -> Group:
    """The live panel: progress, counters, latencies."""
    head = Text(
        f"site {report.site_id}: {report.devices} devices, {done}/{total} planned sends, "
        f"{report.wall_s:.1f} s, lag {report.max_lag_s:.2f} s"
    )
    return Group(
        head,
        counts_table(report.kinds, "messages"),
        Text(latency_line("broker PUBACK", report.broker_latency)),
        Text(latency_line("gateway Ack  ", report.gateway_latency)),
    )


def summary(report: Report) -> Group:
    """The end-of-run summary."""
    parts: list[Text | Table] = [
        Text(
            f"site {report.site_id}: {report.devices} devices for {report.wall_s:.1f} s; "
            f"{report.events_per_s} events/s acknowledged by the gateway; worst lag "
            f"{report.max_lag_s:.2f} s"
        ),
        counts_table(report.kinds, "summary"),
        Text(latency_line("broker PUBACK", report.broker_latency)),
        Text(latency_line("gateway Ack  ", report.gateway_latency)),
    ]
    if report.reflected is not None:
        r = report.reflected
        parts.append(
            Text(
                f"gateway: {r.tickets} tickets holding {r.ticket_events} events "
                f"(planned: {report.planned['event']} events on {report.planned['keys']} keys); "
                f"{r.sensors_with_points}/{r.sensors} sensor nodes with stored points"
            )
        )
    if report.unacked_keys:
        parts.append(Text(f"not acknowledged: {', '.join(report.unacked_keys)}", style="red"))
    return Group(*parts)
