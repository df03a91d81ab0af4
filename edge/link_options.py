"""What the node's MQTT link is built from and reports to, without paho-mqtt.

`LinkOptions` (connection settings, built from NODE.yaml by `edge.node_links`), the
`LinkListener` the link tells its events, and the `Outcome` callback of a publish whose caller
wants the broker's verdict. Kept apart from `edge.mqtt_link` so that the uplink, the node's
wiring, tests and benchmarks can name them without importing paho.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from pydantic import SecretStr

Outcome = Callable[[bool, str | None], None]
"""Told once whether a `publish_now` reached the broker: (True, None) or (False, why)."""


class LinkListener(Protocol):
    """Receives the link's events. Called on paho's network thread: return quickly."""

    def link_up(self, generation: int) -> None:
        """Connected (again); `generation` counts connections. Replay from the outbox head."""

    def link_down(self) -> None:
        """The connection is gone; nothing in flight will be acknowledged."""

    def published(self, generation: int, token: int) -> None:
        """The broker acknowledged the message published with `token` on `generation`."""

    def message(self, topic: str, payload: bytes, ack: Callable[[], None]) -> None:
        """A message arrived on a subscribed topic; call `ack` once it is safely handled.

        Until `ack` is called the broker keeps a QoS 1 message and redelivers it after a
        reconnect, so a command is never lost between arrival and its ledger entry.
        """


@dataclass(frozen=True)
class LinkOptions:
    """Everything the link needs to connect (built from the node config by the app)."""

    host: str
    port: int
    site_id: str
    device_id: str
    software_version: str
    username: str | None = None
    password: SecretStr | None = None
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    tls: bool = False
    keepalive_s: int = 30
    reconnect_min_s: float = 1.0
    reconnect_max_s: float = 30.0
    inflight: int = 64
    subscriptions: tuple[str, ...] = ()
    session_expiry_s: int = 7 * 24 * 3600
    protocol: str = "5"
    """"5", or "3.1.1" for the embedded broker: a persistent session (clean session off) that
    the broker keeps until it stops, and PUBACKs without a reason code."""
