"""Micro-grids, the zones mapped to them, and their duty rosters (shifts)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update

from gateway.models import GridPublic, ShiftPublic
from gateway.store.base import ConflictError, NotFoundError, Part
from gateway.store.schema import grids, shifts, zones
from gateway.store.scope import OutOfScopeError, SiteChangeError


def grid_exists(conn: Connection, grid_id: str) -> bool:
    """Whether a grid row with this id exists."""
    return grid_site(conn, grid_id) is not None


def grid_site(conn: Connection, grid_id: str) -> str | None:
    """The site of a grid, or None when there is no such grid."""
    found = conn.execute(select(grids.c.site_id).where(grids.c.grid_id == grid_id)).first()
    return None if found is None else str(found.site_id)


def check_grid_of_site(conn: Connection, grid_id: str | None, site_id: str) -> None:
    """NotFoundError unless `grid_id` is None or a grid of `site_id` (the text is the same
    whether the grid is missing or in another site, so it tells nothing about other sites)."""
    if grid_id is not None and grid_site(conn, grid_id) != site_id:
        raise NotFoundError(f"grid {grid_id!r} is not a grid of site {site_id!r}")


def _grids(conn: Connection, *where: Any) -> list[GridPublic]:
    rows = conn.execute(select(grids).where(*where).order_by(grids.c.grid_id)).all()
    zone_rows = conn.execute(select(zones)).all()
    by_grid: dict[str, list[str]] = {}
    for z in zone_rows:
        by_grid.setdefault(z.grid_id, []).append(z.zone_id)
    return [
        GridPublic(
            grid_id=r.grid_id,
            site_id=r.site_id,
            name=r.name,
            supervisor=r.supervisor,
            zones=sorted(by_grid.get(r.grid_id, [])),
        )
        for r in rows
    ]


class GridStore(Part):
    """Grids, zones and shifts: what grid routing reads (`gateway.store.grid_routing`)."""

    def upsert_grid(self, grid: GridPublic, scope: Sequence[str] | None = None) -> None:
        """Create or replace a grid and the zones mapped to it.

        `scope` is the caller's sites (None: all). An id taken by a grid outside them is
        OutOfScopeError; a grid never changes site (SiteChangeError): its zones, devices and
        tickets would be left in the old one.
        """
        with self._tx() as conn:
            row = {k: getattr(grid, k) for k in ("grid_id", "site_id", "name", "supervisor")}
            current = grid_site(conn, grid.grid_id)
            if current is not None and scope is not None and current not in scope:
                raise OutOfScopeError("grid", grid.grid_id)
            if current is not None and current != grid.site_id:
                raise SiteChangeError("grid", grid.grid_id, current)
            if current is not None:
                conn.execute(update(grids).where(grids.c.grid_id == grid.grid_id).values(row))
            else:
                conn.execute(insert(grids).values(row))
            for zone in grid.zones:
                # A zone belongs to one grid: mapping it here moves it from any other.
                conn.execute(
                    delete(zones).where(zones.c.site_id == grid.site_id, zones.c.zone_id == zone)
                )
                conn.execute(
                    insert(zones).values(site_id=grid.site_id, zone_id=zone, grid_id=grid.grid_id)
                )

    def list_grids(self, sites: Sequence[str] | None = None) -> list[GridPublic]:
        """Grids (of `sites`, or all) with their zones."""
        with self._read() as conn:
            if sites is None:
                return _grids(conn)
            return _grids(conn, grids.c.site_id.in_(sites))

    def get_grid(self, grid_id: str) -> GridPublic:
        """One grid or NotFoundError."""
        with self._read() as conn:
            found = _grids(conn, grids.c.grid_id == grid_id)
        if not found:
            raise NotFoundError(f"grid {grid_id!r} does not exist")
        return found[0]

    def add_shift(self, shift: ShiftPublic) -> ShiftPublic:
        """Add a roster entry."""
        if shift.ends_at <= shift.starts_at:
            raise ConflictError("a shift must end after it starts")
        with self._tx() as conn:
            if not grid_exists(conn, shift.grid_id):
                raise NotFoundError(f"grid {shift.grid_id!r} does not exist")
            result = conn.execute(insert(shifts).values(shift.model_dump(exclude={"id"})))
            new_id = result.inserted_primary_key
        assert new_id is not None
        return shift.model_copy(update={"id": int(new_id[0])})

    def list_shifts(self, grid_id: str | None = None) -> list[ShiftPublic]:
        """Roster entries, oldest first."""
        with self._read() as conn:
            query = select(shifts).order_by(shifts.c.starts_at, shifts.c.id)
            if grid_id is not None:
                query = query.where(shifts.c.grid_id == grid_id)
            rows = conn.execute(query).all()
        return [ShiftPublic(**dict(r._mapping)) for r in rows]
