"""A device's model_update report on its rollout row, written by the ingest transaction
(its own module: `rollouts` needs `Part`, which needs the ingest transaction).

Matched by site, device and one of the row's command ids (the install or the last one
sent); a report older than the last one applied, by the device's clock, is ignored.
"""

from __future__ import annotations

from sqlalchemy import Connection, or_, update

from gateway.rollouts.plan import DeviceState
from gateway.store.schema import rollout_devices


def record_report(
    conn: Connection,
    *,
    site_id: str,
    device_id: str,
    command_id: str,
    state: str,
    reason: str | None,
    running: str | None,
    ts: float,
    now: float,
) -> bool:
    """A device's model_update report on its rollout row (in the ingest transaction)."""
    try:
        value = DeviceState(state)
    except ValueError:
        return False
    if value is DeviceState.PENDING:
        return False
    result = conn.execute(
        update(rollout_devices)
        .where(
            rollout_devices.c.site_id == site_id,
            rollout_devices.c.device_id == device_id,
            or_(
                rollout_devices.c.install_command_id == command_id,
                rollout_devices.c.last_command_id == command_id,
            ),
            or_(rollout_devices.c.report_ts.is_(None), rollout_devices.c.report_ts <= ts),
        )
        .values(state=value.value, reason=reason, running=running, report_ts=ts, updated_at=now)
    )
    return bool(result.rowcount)
