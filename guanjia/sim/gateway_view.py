"""What the gateway shows for a simulated site, through its REST API (httpx): tickets and
their event counts, and which sensor nodes have stored points."""

from __future__ import annotations

import httpx

from guanjia.sim.plan import SimSpec
from guanjia.sim.stats import Reflected

_PAGE = 500


class GatewayView:
    """A logged-in API client for one site."""

    def __init__(self, url: str, username: str, password: str, timeout_s: float = 10.0) -> None:
        self._client = httpx.Client(base_url=url.rstrip("/"), timeout=timeout_s)
        response = self._client.post(
            "/api/login", json={"username": username, "password": password}
        )
        response.raise_for_status()
        token = response.json()["access_token"]
        self._client.headers["Authorization"] = f"Bearer {token}"

    def close(self) -> None:
        """Release the connection pool."""
        self._client.close()

    def tickets(self, site_id: str) -> list[dict[str, object]]:
        """Every ticket of the site (all pages)."""
        out: list[dict[str, object]] = []
        offset = 0
        while True:
            response = self._client.get(
                "/api/tickets",
                params={"site_id": site_id, "offset": offset, "limit": _PAGE, "sort": "id"},
            )
            response.raise_for_status()
            page = response.json()
            out += page["items"]
            offset += len(page["items"])
            if not page["items"] or offset >= page["total"]:
                return out

    def has_points(self, device_id: str) -> bool:
        """Whether the gateway stored any reading of a sensor node."""
        response = self._client.get(f"/api/devices/{device_id}/latest")
        if response.status_code == httpx.codes.NOT_FOUND:
            return False
        response.raise_for_status()
        return bool(response.json())

    def reflected(self, spec: SimSpec) -> Reflected:
        """The run as the gateway shows it."""
        tickets = self.tickets(spec.site_id)
        sensors = [*spec.sensor_ids(), *spec.esphome_ids()]
        return Reflected(
            tickets=len(tickets),
            ticket_events=sum(int(str(t["event_count"])) for t in tickets),
            sensors_with_points=sum(1 for d in sensors if self.has_points(d)),
            sensors=len(sensors),
        )
