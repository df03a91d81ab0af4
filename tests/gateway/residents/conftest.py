"""A running app (TestClient) with the test site file, users of every role, and grid
g-site-1 (zone-a, supervisor `sup`, `worker` on duty)."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from gateway.main import create_app
from gateway.models import GridPublic, ShiftPublic
from gateway.residents import pow
from gateway.residents.settings import ResidentSettings
from gateway.store import Store
from tests.gateway.apphelpers import SITE, seed_users, settings_for, token
from tests.gateway.residents.sitefiles import GRID, write_sites

POW_BITS = 8


@dataclass
class ResidentApp:
    client: TestClient
    store: Store
    sites_dir: Path
    tokens: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def service(self) -> Any:
        return self.client.app.state.runtime.residents  # type: ignore[attr-defined]

    def qr_token(self, place_id: str = "b3-lobby") -> str:
        token: str = self.service.place_token(SITE, place_id)
        return token

    def report(
        self,
        place_id: str = "b3-lobby",
        *,
        photos: Sequence[bytes] = (),
        category: str = "litter",
        phone: str | None = "13800000000",
        headers: dict[str, str] | None = None,
    ) -> Any:
        """POST a report the way the page does: fetch the place, solve, send."""
        qr = self.qr_token(place_id)
        page = self.client.get(f"/api/public/places/{qr}")
        assert page.status_code == 200, page.text
        challenge = page.json()["challenge"]
        nonce = pow.solve(challenge["challenge"], challenge["bits"])
        data = {
            "category": category,
            "description": "3号楼门口有一堆垃圾",
            "challenge": challenge["challenge"],
            "nonce": nonce,
        }
        if phone:
            data["phone"] = phone
        files = [("photos", (f"p{n}.jpg", p, "image/jpeg")) for n, p in enumerate(photos)]
        return self.client.post(
            f"/api/public/places/{qr}/reports",
            data=data,
            files=files or None,
            headers=headers or {},
        )

    def headers(self, user: str) -> dict[str, str]:
        """A user's API token, logged in once per test (argon2 is slow on purpose)."""
        if user not in self.tokens:
            self.tokens[user] = token(self.client, user)
        return self.tokens[user]


def seed_grid(db_url: str) -> None:
    store = Store(db_url)
    store.grids.upsert_grid(
        GridPublic(grid_id=GRID, site_id=SITE, name="Grid 1", supervisor="sup", zones=["zone-a"])
    )
    now = time.time()
    store.grids.add_shift(
        ShiftPublic(grid_id=GRID, username="worker", starts_at=now - 3600, ends_at=now + 86400)
    )
    store.close()


@pytest.fixture
def resident_app(db_url: str, tmp_path: Path) -> Iterator[ResidentApp]:
    seed_users(db_url)
    seed_grid(db_url)
    sites_dir = write_sites(tmp_path / "sites")
    settings = settings_for(
        db_url,
        sites_dir=sites_dir,
        residents=ResidentSettings(pow_bits=POW_BITS, max_photo_bytes=2 * 1024 * 1024),
    )
    store = Store(db_url)
    with TestClient(create_app(settings)) as client:
        yield ResidentApp(client, store, sites_dir)
    store.close()
