"""Database seeding shared by tests and benchmarks."""

from __future__ import annotations

from gateway.models import GridPublic
from gateway.store import Store
from tests.support.messages import T0


def seed_site(store: Store, site_id: str, devices: tuple[str, ...] = ("cam-a",)) -> None:
    """One grid `g-<site>` (supervisor `sup-1`) owning zone-a, and the given devices in it."""
    store.grids.upsert_grid(
        GridPublic(
            grid_id=f"g-{site_id}",
            site_id=site_id,
            name="Grid 1",
            supervisor="sup-1",
            zones=["zone-a"],
        )
    )
    for device_id in devices:
        store.devices.upsert_device(device_id, site_id, "camera", grid_id=f"g-{site_id}", now=T0)
