"""The gateway's MQTT socket acknowledges each read at once (TCP_QUICKACK), on a real
connection to a real Mosquitto.

Without it the gateway's socket delayed its TCP ACK of the broker's PUBACK for each
end-to-end Ack (Linux does so on a connection that usually answers with data), and
Mosquitto, Nagle on by default, held every following PUBLISH to the gateway behind that
ACK: at 200 alerts/s they arrived in bursts every ~40 ms (p50 23 ms alert → console). What
is checked is the socket's state right after each read, not a timing: the kernel reports
TCP_QUICKACK off while it would delay the ACK.
"""

from __future__ import annotations

import socket

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from gateway.mqtt_link import TCP_QUICKACK, MqttLink
from tests.support.broker import MosquittoBroker

pytestmark = [
    pytest.mark.mqtt,
    pytest.mark.skipif(TCP_QUICKACK is None, reason="TCP_QUICKACK is Linux only"),
]


async def test_each_read_is_acknowledged_at_once(
    mqtt_broker: MosquittoBroker, site_id: str
) -> None:
    link = await MqttLink.open(
        mqtt_broker.host,
        mqtt_broker.port,
        f"{site_id}-gw",
        username=None,
        password=None,
        keepalive=30,
        mqtt5=True,
        persistent=False,
    )
    device = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"{site_id}-dev")
    try:
        await link.subscribe([f"{site_id}/events"], mqtt5=True)
        sock = link._sock  # the link's own socket (paho's, put on the loop by `_attach`)
        assert isinstance(sock, socket.socket)
        assert TCP_QUICKACK is not None
        device.connect(mqtt_broker.host, mqtt_broker.port)
        device.loop_start()
        states = []
        for i in range(5):
            device.publish(f"{site_id}/events", b"alert %d" % i, qos=1)
            assert await link.wait_received(10)
            # Nothing was written since the read: quick-ack mode is what the read left.
            states.append(sock.getsockopt(socket.IPPROTO_TCP, TCP_QUICKACK))
            batch = link.take(10)
            assert [payload for _t, payload, _r, _m in batch] == [b"alert %d" % i]
            # As the ingest does after a commit: the end-to-end Ack, then the PUBACK. The
            # reply puts the socket back into delayed-ACK mode for the next read.
            acked = link.publish(f"{site_id}/ack", b"ack %d" % i, 1)
            link.ack(batch)
            await acked
        assert states == [1] * 5
    finally:
        device.loop_stop()
        device.disconnect()
        link.close()
