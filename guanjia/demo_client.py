"""The demo's view of the gateway: its public REST API and metrics, over stdlib `urllib`.

The demo watches the gateway the way a console would (login, then bearer-token requests), so
what it shows is what the API serves. `parse_counter` is pure and tested on its own.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from typing import Any


class GatewayError(RuntimeError):
    """The gateway did not answer, or answered with an error status."""


def parse_counter(metrics: str, name: str, **labels: str) -> float:
    """Sum of the Prometheus samples of `name` whose labels include `labels`."""
    total = 0.0
    pattern = re.compile(rf"^{re.escape(name)}(?:\{{(?P<labels>[^}}]*)\}})? (?P<value>\S+)$")
    for line in metrics.splitlines():
        match = pattern.match(line)
        if match is None:
            continue
        found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match["labels"] or ""))
        if all(found.get(key) == value for key, value in labels.items()):
            total += float(match["value"])
    return total


class GatewayClient:
    """Bearer-token client of one gateway's REST API."""

    def __init__(self, base_url: str, timeout_s: float = 5.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.token: str | None = None

    def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> bytes:
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if self.token is not None:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(  # noqa: S310 - the URL is the demo's own gateway
            self.base_url + path, data=data, headers=headers, method=method
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:  # noqa: S310
                return bytes(response.read())
        except urllib.error.HTTPError as exc:
            raise GatewayError(f"{method} {path}: HTTP {exc.code} {exc.reason}") from exc
        except (urllib.error.URLError, OSError) as exc:
            raise GatewayError(f"{method} {path}: {exc}") from exc

    def _json(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        return json.loads(self._request(method, path, body))

    def health(self) -> dict[str, Any]:
        """``/healthz`` (public)."""
        return dict(self._json("GET", "/healthz"))

    def login(self, username: str, password: str) -> str:
        """Log in and keep the token for the next requests."""
        answer = self._json("POST", "/api/login", {"username": username, "password": password})
        self.token = str(answer["access_token"])
        return self.token

    def tickets(self) -> list[dict[str, Any]]:
        """Every ticket the caller may see, oldest first."""
        page = self._json("GET", "/api/tickets?sort=id&limit=500")
        return list(page["items"])

    def ticket(self, ticket_id: int) -> dict[str, Any]:
        """One ticket with its evidence and audit log."""
        return dict(self._json("GET", f"/api/tickets/{ticket_id}"))

    def devices(self) -> list[dict[str, Any]]:
        """Registered devices with their last health."""
        return list(self._json("GET", "/api/devices?limit=500"))

    def metrics(self) -> str:
        """``/metrics`` (Prometheus text)."""
        return self._request("GET", "/metrics").decode()
