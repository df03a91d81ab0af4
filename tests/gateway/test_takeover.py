"""Issue 8, finding 1: a login cannot take another client's id, on the broker config we ship.

The broker runs on docker/mosquitto/mosquitto.conf as shipped (only its listener, file paths
and logging replaced) with the password file and ACL of `gateway.provisioning`. Without
``use_username_as_clientid`` a device's credentials plus the gateway's client id kick the
gateway off the broker, again and again, while other devices' QoS 1 events are PUBACKed
and lost.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

import contract as c
from gateway.store import Store, migrate
from tests.gateway.factories import event, seed_site
from tests.gateway.proc import Publisher, start_gateway, wait_for
from tests.gateway.test_multiprocess import counts
from tests.support.broker import SHIPPED_MOSQUITTO_CONF, MosquittoBroker

pytestmark = pytest.mark.mqtt

PASSWORDS = {"gateway-1": "pw-gw-1-0123456789", "cam-a": "pw-cam-a-0123", "cam-b": "pw-cam-b-0123"}


def shipped_broker(factory: Callable[..., MosquittoBroker], site_id: str) -> MosquittoBroker:
    return factory(
        PASSWORDS,
        site_id=site_id,
        gateways=frozenset({"gateway-1"}),
        shipped_config=SHIPPED_MOSQUITTO_CONF,
    )


def connect(broker: MosquittoBroker, user: str, client_id: str) -> paho.Client:
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
    client.username_pw_set(user, PASSWORDS[user])
    client.connect(broker.host, broker.port)
    return client


def test_device_cannot_take_over_the_gateways_client_id(
    broker_factory: Callable[..., MosquittoBroker], tmp_path: Path, sqlite_url: str, site_id: str
) -> None:
    broker = shipped_broker(broker_factory, site_id)
    migrate(sqlite_url)
    store = Store(sqlite_url)
    seed_site(store, site_id, ("cam-a", "cam-b"))
    store.close()
    gateway = start_gateway(
        tmp_path, sqlite_url, broker, "gateway-1", password=PASSWORDS["gateway-1"]
    )
    stop = threading.Event()
    attempts = 0

    def rogue() -> None:
        # cam-a's own password, the gateway's client id, a fresh login every 0.2 s. Its id
        # is its username (gateway-1); before the fix it was the documented default.
        nonlocal attempts
        while not stop.is_set():
            client = connect(broker, "cam-a", ("gateway-1", "guanjia-gateway-1")[attempts % 2])
            client.loop_start()
            attempts += 1
            stop.wait(0.2)
            client.disconnect()  # the loop thread sends it and closes the socket
            client.loop_stop()

    try:
        gateway.wait_ready()
        thread = threading.Thread(target=rogue)
        thread.start()
        publisher = Publisher(broker, "cam-b", password=PASSWORDS["cam-b"])
        topic = str(c.event_topic(site_id, "cam-b"))
        total = 40
        for i in range(total):
            publisher.send(event(site_id, "cam-b", f"ev-to-{i:03d}", zone_id=f"z{i}"), topic)
            time.sleep(0.1)  # spread over the rogue's reconnects (4 s)
        publisher.close()
        stop.set()
        thread.join()
        assert attempts >= 5
        # A stock device never re-sends what the broker PUBACKed: all must be tickets.
        wait_for(lambda: counts(sqlite_url)["tickets"] == total, 30, f"{total} tickets")
        health = gateway.health()
        assert health is not None
        assert health["mqtt_connected"] is True
    finally:
        stop.set()
        gateway.stop()


def test_device_cannot_kick_another_device_off(
    broker_factory: Callable[..., MosquittoBroker], site_id: str
) -> None:
    broker = shipped_broker(broker_factory, site_id)
    disconnects: list[Any] = []
    victim = connect(broker, "cam-b", "cam-b")
    victim.on_disconnect = lambda *args: disconnects.append(args)
    victim.loop_start()
    wait_for(victim.is_connected, 10, "cam-b connected")
    try:
        for _ in range(5):
            rogue = connect(broker, "cam-a", "cam-b")  # cam-a's password, cam-b's id
            rogue.loop_start()
            wait_for(rogue.is_connected, 10, "the rogue's CONNACK")
            rogue.disconnect()
            rogue.loop_stop()
        # A takeover closes the old socket before the new CONNACK; a PUBACK on the victim's
        # connection after that proves the connection survived.
        info = victim.publish(str(c.heartbeat_topic(site_id, "cam-b")), b"{}", qos=1)
        info.wait_for_publish(10)
        assert info.is_published()
        assert disconnects == []
    finally:
        victim.disconnect()
        victim.loop_stop()
