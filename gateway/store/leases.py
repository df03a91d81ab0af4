"""Leases: one row per lease (holder, expiry), changed only by compare-and-set, so of two
replicas that read the same row and both decide to take it, exactly one UPDATE matches.

What to write is decided elsewhere (`gateway.telemetry.lease.decide`, pure); this part only
reads the row and swaps it if it is still what was read."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from gateway.store.base import Part
from gateway.store.schema import telemetry_leases


@dataclass(frozen=True)
class LeaseRow:
    """A lease as stored: who holds it, until when (epoch s), since when."""

    holder: str
    expires_at: float
    taken_at: float


class LeaseStore(Part):
    """Read a lease; swap it only if nobody changed it since."""

    def lease(self, name: str) -> LeaseRow | None:
        """The lease `name` as stored, or None when nobody ever took it."""
        with self._read() as conn:
            row = conn.execute(
                select(
                    telemetry_leases.c.holder,
                    telemetry_leases.c.expires_at,
                    telemetry_leases.c.taken_at,
                ).where(telemetry_leases.c.name == name)
            ).first()
        return None if row is None else LeaseRow(row.holder, row.expires_at, row.taken_at)

    def swap_lease(self, name: str, seen: LeaseRow | None, new: LeaseRow) -> bool:
        """Write `new` if the row is still `seen` (None: still absent). False: another
        replica changed it first (the caller reads again next round)."""
        try:
            with self._tx() as conn:
                if seen is None:
                    conn.execute(insert(telemetry_leases).values(name=name, **_values(new)))
                    return True
                t = telemetry_leases.c
                done = conn.execute(
                    update(telemetry_leases)
                    .where(
                        t.name == name,
                        t.holder == seen.holder,
                        t.expires_at == seen.expires_at,
                    )
                    .values(**_values(new))
                )
                return done.rowcount == 1
        except IntegrityError:  # another replica inserted it first
            return False


def _values(row: LeaseRow) -> dict[str, object]:
    return {"holder": row.holder, "expires_at": row.expires_at, "taken_at": row.taken_at}
