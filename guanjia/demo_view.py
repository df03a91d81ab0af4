"""What the demo shows: a line for every ticket change (every state it passed through, from
the ticket's audit log), a live status block (every camera, every device, sensors included,
tickets by state), and the final table. Everything comes from the gateway's public API with
the operator's token, the way a console sees it."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

from guanjia.demo_camera import CameraServer
from guanjia.demo_client import GatewayClient, GatewayError, parse_counter


def _clock(ts: float | None) -> str:
    return "-" if ts is None else time.strftime("%H:%M:%S", time.localtime(ts))


def sla_deadline(ticket: dict[str, Any]) -> str:
    """The deadline that matters now: acknowledgement while new, else resolution."""
    state = ticket["state"]
    if state == "new":
        return f"ack by {_clock(ticket['ack_due_at'])}"
    if state in {"resolved", "closed"}:
        return f"resolved {_clock(ticket['resolved_at'])}"
    return f"resolve by {_clock(ticket['resolve_due_at'])}"


def tickets_table(tickets: list[dict[str, Any]]) -> Table:
    """The final table: one row per ticket, whole in 80 columns (long values wrap, never cut)."""
    table = Table(
        title="Tickets",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        padding=(0, 0),  # the box's one-space divider only: the table fits 80 columns
        show_edge=False,
    )
    table.add_column("id", no_wrap=True, justify="right")
    table.add_column("category", overflow="fold")
    table.add_column("zone", overflow="fold")
    table.add_column("state", no_wrap=True)
    table.add_column("SLA deadline", no_wrap=True)
    table.add_column("assignee", overflow="fold")
    for ticket in tickets:
        table.add_row(
            str(ticket["id"]),
            ticket["category"],
            ticket["zone_id"] or "-",
            ticket["state"],
            sla_deadline(ticket),
            ticket["assignee"] or "-",
        )
    return table


def change_lines(ticket: dict[str, Any], audit: list[dict[str, Any]]) -> list[str]:
    """One line per state change in `audit` (oldest first): every step, none skipped."""
    lines = []
    for entry in audit:
        if entry.get("to_state") is None or entry.get("from_state") in (None, entry["to_state"]):
            continue  # not a change of state (or the opening, announced on its own)
        why = ""
        if entry["to_state"] == "resolved" and ticket.get("condition_cleared_at"):
            why = " (the edge saw the condition clear)"
        by = f" by {entry['actor']}" if entry.get("actor") else ""
        lines.append(
            f"ticket #{ticket['id']} {ticket['category']}: {entry['from_state']} → "
            f"{entry['to_state']}{by}{why}"
        )
    return lines


@dataclass
class Watch:
    """What the demo has seen of the gateway so far."""

    tickets: dict[int, dict[str, Any]] = field(default_factory=dict)
    audit_seen: dict[int, int] = field(default_factory=dict)
    devices: list[dict[str, Any]] = field(default_factory=list)
    events: int = 0
    snapshots: int = 0
    last_change: float = field(default_factory=time.monotonic)

    def device(self, device_id: str) -> dict[str, Any] | None:
        """The device's last API record."""
        return next((d for d in self.devices if d["device_id"] == device_id), None)


class Watcher:
    """Polls the gateway and prints what changed."""

    def __init__(self, client: GatewayClient, console: Console) -> None:
        self.client = client
        self.console = console
        self.watch = Watch()

    def poll(self) -> None:
        """One look at the gateway; print what is new."""
        try:
            tickets = self.client.tickets()
            devices = self.client.devices()
            metrics = self.client.metrics()
        except GatewayError:
            return  # a busy moment; the next poll catches up
        watch = self.watch
        events = int(parse_counter(metrics, "guanjia_ingest_messages_total", channel="event"))
        snapshots = int(parse_counter(metrics, "guanjia_ingest_messages_total", channel="snapshot"))
        if (events, snapshots) != (watch.events, watch.snapshots):
            watch.events, watch.snapshots = events, snapshots
            watch.last_change = time.monotonic()
        watch.devices = devices
        for ticket in tickets:
            before = watch.tickets.get(ticket["id"])
            if before is None:
                self.console.print(
                    f"[bold]ticket #{ticket['id']} opened[/]: {ticket['category']} in "
                    f"{ticket['zone_id']} ({ticket['severity']}), assigned to "
                    f"{ticket['assignee'] or 'nobody'}, {sla_deadline(ticket)}"
                )
                watch.last_change = time.monotonic()
            if before is None or before["updated_at"] != ticket["updated_at"]:
                self._print_changes(ticket)
            watch.tickets[ticket["id"]] = ticket

    def _print_changes(self, ticket: dict[str, Any]) -> None:
        try:
            audit = self.client.ticket(ticket["id"])["audit"]
        except GatewayError:
            return
        seen = self.watch.audit_seen.get(ticket["id"], 0)
        for line in change_lines(ticket, audit[seen:]):
            self.console.print(line, highlight=False)
            self.watch.last_change = time.monotonic()
        self.watch.audit_seen[ticket["id"]] = len(audit)

    def status(self, cameras: CameraServer | None, started: float) -> Table:
        """The live block: elapsed, each camera, each device, tickets by state."""
        now = time.monotonic()
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold")
        table.add_column()
        table.add_row("elapsed", f"{now - started:5.1f} s")
        fps: dict[str, float] = {}
        for device in self.watch.devices:
            for camera in (device.get("health") or {}).get("cameras", []):
                fps[camera["camera_id"]] = camera["fps"]
        for cam, clip in (cameras.clips if cameras else {}).items():
            rate = f", {fps[cam]:.1f} fps at the node" if cam in fps else ""
            table.add_row(f"camera {cam}", f"clip {clip.progress(now):4.0%}{rate}")
        for device in self.watch.devices:
            health = device.get("health") or {}
            seen = device.get("last_seen")
            ago = f", heard {time.time() - seen:.0f} s ago" if seen else ""
            outbox = health.get("outbox_depth")
            table.add_row(
                f"device {device['device_id']}",
                f"{device['kind']}, "
                + ("online" if device.get("online") else "offline")
                + ago
                + ("" if outbox is None else f", outbox {outbox}"),
            )
        table.add_row("events", f"{self.watch.events} (snapshots {self.watch.snapshots})")
        states = Counter(t["state"] for t in self.watch.tickets.values())
        table.add_row(
            "tickets", ", ".join(f"{k} {v}" for k, v in sorted(states.items())) or "none yet"
        )
        return table

    def status_line(self, cameras: CameraServer | None, started: float) -> str:
        """The status block as one line (for a log file or a pipe, where nothing is live)."""
        now = time.monotonic()
        clips = ", ".join(
            f"{cam} {clip.progress(now):.0%}"
            for cam, clip in (cameras.clips if cameras else {}).items()
        )
        online = sum(1 for d in self.watch.devices if d.get("online"))
        states = Counter(t["state"] for t in self.watch.tickets.values())
        return (
            f"[{now - started:5.1f} s] clips {clips or '-'}; devices online {online}/"
            f"{len(self.watch.devices)}; events {self.watch.events}; tickets "
            + (", ".join(f"{k} {v}" for k, v in sorted(states.items())) or "none yet")
        )
