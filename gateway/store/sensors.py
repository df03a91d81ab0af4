"""Sensor nodes: which telemetry profile a device has and whether it speaks ESPHome; and the
one escalation telemetry makes outside the SLA clock (a relay cut-off nobody confirmed)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from gateway.models import Change
from gateway.sla import Tier
from gateway.store import audit
from gateway.store.base import NotFoundError, Part
from gateway.store.escalations import announce_escalation
from gateway.store.schema import devices, escalations, sensor_nodes, tickets

CUTOFF_BREACH = "cut_off"
"""The escalations row of an unconfirmed cut-off: once per ticket and SLA cycle, so replicas
that see the same overdue cut-off escalate it once."""


@dataclass(frozen=True)
class SensorNodeRow:
    """A sensor device's registry facts."""

    device_id: str
    site_id: str
    profile: str
    esphome: bool


class SensorNodeStore(Part):
    """The profile of each sensor device (set by `guanjia device add --profile`)."""

    def set_sensor_node(self, device_id: str, profile: str, *, esphome: bool) -> None:
        """Give a registered device a profile (replacing any it had)."""
        with self._tx() as conn:
            if (
                conn.execute(
                    select(devices.c.device_id).where(devices.c.device_id == device_id)
                ).first()
                is None
            ):
                raise NotFoundError(f"device {device_id!r} is not registered")
            values = {"profile": profile, "esphome": esphome}
            done = conn.execute(
                update(sensor_nodes).where(sensor_nodes.c.device_id == device_id).values(values)
            )
            if done.rowcount == 0:
                conn.execute(insert(sensor_nodes).values(device_id=device_id, **values))

    def sensor_node(self, device_id: str) -> SensorNodeRow | None:
        """A device's sensor facts, or None when it has no profile."""
        with self._read() as conn:
            row = conn.execute(
                select(
                    sensor_nodes.c.device_id,
                    devices.c.site_id,
                    sensor_nodes.c.profile,
                    sensor_nodes.c.esphome,
                )
                .join(devices, devices.c.device_id == sensor_nodes.c.device_id)
                .where(sensor_nodes.c.device_id == device_id)
            ).first()
        if row is None:
            return None
        return SensorNodeRow(str(row[0]), str(row[1]), str(row[2]), bool(row[3]))

    def escalate_unconfirmed_cutoff(
        self, active_key: str, reason: str, now: float
    ) -> Change | None:
        """Move the open ticket under `active_key` one tier up at once and say why on it
        (audit, notification); None when there is no open ticket, it is at the top tier, or
        it was escalated for a cut-off already in this cycle."""
        try:
            with self._tx() as conn:
                row = conn.execute(
                    select(tickets).where(tickets.c.active_key == active_key)
                ).first()
                if row is None or int(row.tier) >= int(Tier.GOVERNMENT):
                    return None
                cycle, tier = int(row.sla_cycle), int(row.tier)
                conn.execute(
                    insert(escalations).values(
                        ticket_id=row.id,
                        cycle=cycle,
                        breach=CUTOFF_BREACH,
                        due_at=now,
                        at=now,
                        from_tier=tier,
                        to_tier=tier + 1,
                        handoff_to=None,
                    )
                )
                moved = conn.execute(
                    update(tickets)
                    .where(tickets.c.id == row.id, tickets.c.tier == tier)
                    .values(tier=tier + 1, updated_at=now)
                ).rowcount
                if not moved:
                    raise IntegrityError("tier moved", None, ValueError("tier moved"))
                detail = {
                    "breach": CUTOFF_BREACH,
                    "from_tier": tier,
                    "to_tier": tier + 1,
                    "reason": reason,
                }
                audit.write(
                    conn, audit.entry(row.id, now, "system:telemetry", "escalate", detail=detail)
                )
                text = (
                    f"[管家] Ticket #{row.id} ({row.category}) escalated to L{tier + 1}: {reason}"
                )
                change = announce_escalation(
                    conn, row.id, row, now, text, postgres=not self.is_sqlite
                )
        except IntegrityError:
            return None
        return change

    def open_port_hazards(self, device_id: str, port: int) -> list[tuple[int, str]]:
        """(ticket id, condition) of the port's conditions that are open and not cleared:
        a port may be switched on again only once none is (read from the database, so
        every replica answers alike)."""
        with self._read() as conn:
            rows = conn.execute(
                select(tickets.c.id, tickets.c.zone_id).where(
                    tickets.c.device_id == device_id,
                    tickets.c.active_key.is_not(None),
                    tickets.c.condition_cleared_at.is_(None),
                    tickets.c.zone_id.like(f"port{port}\\_%", escape="\\"),
                )
            ).all()
        return [(int(r.id), str(r.zone_id)) for r in rows]

    def note_port_enabled(
        self, device_id: str, port: int, actor: str, reason: str, now: float
    ) -> list[int]:
        """Write the re-enabling on the audit of the port's tickets still open (its
        cleared hazards); the ticket ids."""
        with self._tx() as conn:
            ids = [
                int(r.id)
                for r in conn.execute(
                    select(tickets.c.id).where(
                        tickets.c.device_id == device_id,
                        tickets.c.active_key.is_not(None),
                        tickets.c.zone_id.like(f"port{port}\\_%", escape="\\"),
                    )
                )
            ]
            for ticket_id in ids:
                detail = {"port": port, "reason": reason}
                audit.write(conn, audit.entry(ticket_id, now, actor, "port_enabled", detail=detail))
        return ids
