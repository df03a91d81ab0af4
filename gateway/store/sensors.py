"""Sensor nodes: which telemetry profile a device has and whether it speaks ESPHome."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import insert, select, update

from gateway.store.base import NotFoundError, StoreBase
from gateway.store.schema import devices, sensor_nodes


@dataclass(frozen=True)
class SensorNodeRow:
    """A sensor device's registry facts."""

    device_id: str
    site_id: str
    profile: str
    esphome: bool


class SensorNodeStore(StoreBase):
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
