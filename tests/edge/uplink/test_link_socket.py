"""The uplink's socket sends each packet at once (TCP_NODELAY), on a real connection.

Without it, each small PUBLISH of the in-flight window waited for the broker's delayed TCP
ACK: PUBACKs took ~40 ms (p50) and delivery stalled near 600 events/s. What is checked is the
socket option on the live connection, not a timing.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.edge.uplink.support import make_uplink, wait_until
from tests.support.broker import MosquittoBroker

pytestmark = pytest.mark.mqtt


def test_uplink_socket_has_no_delay(
    mqtt_broker: MosquittoBroker, site_id: str, tmp_path: Path
) -> None:
    uplink, outbox = make_uplink(mqtt_broker, site_id, tmp_path / "o.db")
    uplink.start()
    try:
        wait_until(lambda: uplink.link.connected, 10, "link connected")
        sock = uplink.link._client.socket()  # paho's public accessor of our link's client
        assert isinstance(sock, socket.socket)
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    finally:
        uplink.stop(drain_timeout=0)
        outbox.close()
