"""`guanjia device add … --kind esphome --profile …`: the node's profile is registered and
its broker ACL keeps it inside its own ESPHome prefix (real Mosquitto)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiomqtt
import pytest

from gateway.store import Store
from gateway.telemetry.esphome import prefix
from tests.gateway.test_provisioning import guanjia, password_of, run_guanjia
from tests.support.broker import MosquittoBroker

pytestmark = pytest.mark.mqtt


def test_esphome_device_add_refuses_unknown_profile_in_one_line(tmp_path: Path) -> None:
    done = run_guanjia(
        "device",
        "add",
        "shed-9",
        "--site",
        "s1",
        "--kind",
        "esphome",
        "--profile",
        "toaster",
        "--database-url",
        f"sqlite:///{tmp_path / 'gw.db'}",
        "--passwd-file",
        str(tmp_path / "passwd"),
        "--acl-file",
        str(tmp_path / "acl"),
    )
    assert done.returncode != 0
    assert "--profile" in done.stderr
    assert "charging_monitor" in done.stderr
    assert "Traceback" not in done.stderr


async def test_esphome_node_acl_keeps_it_in_its_prefix(
    mosquitto_available: None, tmp_path: Path, site_id: str
) -> None:
    db = f"sqlite:///{tmp_path / 'gw.db'}"
    passwd, acl = tmp_path / "passwd", tmp_path / "acl"
    files = ["--database-url", db, "--passwd-file", str(passwd), "--acl-file", str(acl)]
    add = ["device", "add", "--site", site_id, "--kind", "esphome", "--profile"]
    pw_a = password_of(guanjia(*add[:2], "shed-a", *add[2:], "charging_monitor", *files))
    guanjia(*add[:2], "shed-b", *add[2:], "charging_monitor", *files)
    pw_gw = password_of(guanjia("gateway", "mqtt-account", "gw-1", *files))
    assert f"topic write {prefix(site_id, 'shed-a')}/#" in acl.read_text()
    store = Store(db)
    node = store.sensors.sensor_node("shed-a")
    store.close()
    assert node is not None
    assert (node.site_id, node.profile, node.esphome) == (site_id, "charging_monitor", True)

    a, b = prefix(site_id, "shed-a"), prefix(site_id, "shed-b")
    broker = MosquittoBroker(tmp_path / "broker", passwd_file=passwd, acl_file=acl)
    broker.start()
    try:
        async with (
            aiomqtt.Client(
                broker.host, broker.port, username="gw-1", password=pw_gw, identifier="gw-1"
            ) as gateway,
            aiomqtt.Client(
                broker.host, broker.port, username="shed-a", password=pw_a, identifier="shed-a"
            ) as node_a,
        ):
            await gateway.subscribe("esphome/#", qos=1)
            await node_a.subscribe(f"esphome/{site_id}/+/switch/+/command", qos=1)
            # forgeries first (another node's prefix, the contract's topics), then its own
            await node_a.publish(f"{b}/sensor/port1_temperature/state", b"99", qos=1)
            await node_a.publish(f"guanjia/v1/{site_id}/shed-a/telemetry", b"{}", qos=1)
            await node_a.publish(f"{a}/sensor/port1_temperature/state", b"25.5", qos=1)
            async with asyncio.timeout(5):
                got = await anext(gateway.messages)
            assert (str(got.topic), got.payload) == (f"{a}/sensor/port1_temperature/state", b"25.5")
            # it reads its own relay commands only
            await gateway.publish(f"{b}/switch/port1_relay/command", b"OFF", qos=1)
            await gateway.publish(f"{a}/switch/port2_relay/command", b"OFF", qos=1)
            async with asyncio.timeout(5):
                cmd = await anext(node_a.messages)
            assert str(cmd.topic) == f"{a}/switch/port2_relay/command"
    finally:
        broker.stop()
