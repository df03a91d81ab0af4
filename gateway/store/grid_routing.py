"""Who a new ticket goes to: the routing facts read from the database, once per transaction.

The decision itself is the pure `gateway.routing`; this reads what it needs (the zone's and
the device's grid, the grid's supervisor, the shifts covering `now`) and keeps it for the
rest of the transaction, so a batch of alerts in one grid costs one read of each.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection, bindparam, select

from gateway.alerts import Alert
from gateway.routing import GridInfo, Shift, assignee_for, resolve_grid
from gateway.store.plain_sql import Driver, probe
from gateway.store.schema import devices, grids, shifts, zones

_ZONE_GRID = select(zones.c.grid_id).where(
    zones.c.site_id == bindparam("site"), zones.c.zone_id == bindparam("zone")
)
_DEVICE_GRID = select(devices.c.grid_id).where(devices.c.device_id == bindparam("device"))
_GRID = select(grids.c.supervisor).where(grids.c.grid_id == bindparam("grid"))
_SHIFTS = select(shifts.c.grid_id, shifts.c.username, shifts.c.starts_at, shifts.c.ends_at).where(
    shifts.c.grid_id == bindparam("grid"),
    shifts.c.starts_at <= bindparam("now"),
    shifts.c.ends_at > bindparam("now"),
)


# A batch's facts, read on the plain driver (`plain_sql`): through SQLAlchemy, compiling
# the IN lists of a 500-message batch cost more than the four reads (11 µs per message).
# Zones are read per site (their key's first column): every zone of the batch's sites.
_ZONES_IN = probe("site_id, zone_id, grid_id", "zones", "site_id", "text")
_DEVICE_GRIDS_IN = probe("device_id, grid_id", "devices", "device_id", "text")
_GRIDS_IN = probe("grid_id, supervisor", "grids", "grid_id", "text")
_SHIFTS_IN = probe(
    "grid_id, username, starts_at, ends_at",
    "shifts",
    "grid_id",
    "text",
    "starts_at <= ? AND ends_at > ?",
)


class GridRouter:
    """Routes alerts on `conn` at `now`, reading each fact at most once; `driver` (the
    transaction's plain driver) reads a batch's facts up front (`prefetch`)."""

    def __init__(self, conn: Connection, now: float, driver: Driver | None = None) -> None:
        self.conn = conn
        self.now = now
        self.driver = driver
        self._zone_grid: dict[tuple[str, str], str | None] = {}
        self._device_grid: dict[str, str | None] = {}
        self._grid: dict[str, GridInfo | None] = {}  # None: a grid id no grid row has
        self._shifts: dict[str, list[Shift]] = {}

    def prefetch(self, alerts: Iterable[Alert]) -> None:
        """Read the routing facts of every alert in a batch up front, one query per table.

        Any alert may open a ticket, and on PostgreSQL each lazy read in the middle of a
        batch sends the deferred UPDATEs queued before it (one round trip per new ticket);
        four reads per batch cost less than that even when most alerts merge."""
        driver = self.driver
        assert driver is not None, "prefetch reads through the transaction's plain driver"
        batch = list(alerts)
        zone_keys = {
            (a.site_id, a.zone_id) for a in batch if a.zone_id is not None
        } - self._zone_grid.keys()
        device_ids = {a.device_id for a in batch} - self._device_grid.keys()
        if zone_keys:
            self._zone_grid.update(dict.fromkeys(zone_keys))
            sites = sorted({site_id for site_id, _ in zone_keys})
            for site_id, zone_id, grid_id in driver.rows_in(_ZONES_IN, sites):
                if (site_id, zone_id) in zone_keys:
                    self._zone_grid[(site_id, zone_id)] = grid_id
        if device_ids:
            self._device_grid.update(dict.fromkeys(device_ids))
            for device_id, grid_id in driver.rows_in(_DEVICE_GRIDS_IN, sorted(device_ids)):
                self._device_grid[device_id] = grid_id
        wanted = {
            g for g in (*self._zone_grid.values(), *self._device_grid.values()) if g is not None
        } - self._grid.keys()
        if not wanted:
            return
        self._grid.update(dict.fromkeys(wanted))
        self._shifts.update((grid_id, []) for grid_id in wanted)
        for grid_id, supervisor in driver.rows_in(_GRIDS_IN, sorted(wanted)):
            self._grid[grid_id] = GridInfo(grid_id, supervisor)
        for grid_id, username, starts_at, ends_at in driver.rows_in(
            _SHIFTS_IN, sorted(wanted), (self.now, self.now)
        ):
            self._shifts[grid_id].append(Shift(grid_id, username, starts_at, ends_at))

    def route(self, alert: Alert) -> tuple[str | None, str | None]:
        """(grid id, assignee) of a new ticket for `alert`; either may be None."""
        zone_grid = self._grid_of_zone(alert.site_id, alert.zone_id)
        if alert.device_id not in self._device_grid:
            self._device_grid[alert.device_id] = self.conn.execute(
                _DEVICE_GRID, {"device": alert.device_id}
            ).scalar_one_or_none()
        return self._assign(resolve_grid(zone_grid, self._device_grid[alert.device_id]))

    def route_place(
        self, site_id: str, zone_id: str | None, grid_id: str | None, *, supervisor: bool = False
    ) -> tuple[str | None, str | None]:
        """(grid id, assignee) of a ticket at a place with no device (a resident's report, a
        patrol checkpoint): the zone's grid wins over the place's own; `supervisor` sends it
        to the grid's supervisor rather than the on-duty worker."""
        grid = self._assign(resolve_grid(self._grid_of_zone(site_id, zone_id), grid_id))
        if supervisor and grid[0] is not None:
            info = self._grid[grid[0]]
            return grid[0], info.supervisor if info is not None else None
        return grid

    def _grid_of_zone(self, site_id: str, zone_id: str | None) -> str | None:
        if zone_id is None:
            return None
        zkey = (site_id, zone_id)
        if zkey not in self._zone_grid:
            self._zone_grid[zkey] = self.conn.execute(
                _ZONE_GRID, {"site": site_id, "zone": zone_id}
            ).scalar_one_or_none()
        return self._zone_grid[zkey]

    def _assign(self, grid_id: str | None) -> tuple[str | None, str | None]:
        if grid_id is None:
            return None, None
        if grid_id not in self._grid:
            row = self.conn.execute(_GRID, {"grid": grid_id}).first()
            self._grid[grid_id] = None if row is None else GridInfo(grid_id, row.supervisor)
            self._shifts[grid_id] = [
                Shift(r.grid_id, r.username, r.starts_at, r.ends_at)
                for r in self.conn.execute(_SHIFTS, {"grid": grid_id, "now": self.now})
            ]
        return grid_id, assignee_for(self._grid[grid_id], self._shifts[grid_id], self.now)
