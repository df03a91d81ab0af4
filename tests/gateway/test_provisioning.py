"""`guanjia device add` writes credentials a real Mosquitto accepts, and an ACL under which
device A cannot publish as device B nor read B's commands."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from pathlib import Path

import aiomqtt
import pytest

import contract as c
from gateway.provisioning import BrokerAccount, acl_file, mosquitto_hash
from gateway.store import Store
from tests.support.broker import MosquittoBroker, mosquitto_binary

pytestmark = pytest.mark.mqtt


def guanjia(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "guanjia", *args], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr + done.stdout
    return done.stdout


def password_of(output: str) -> str:
    found = re.search(r"password \(shown once\): (\S+)", output)
    assert found, output
    return found.group(1)


class ProvisionedBroker(MosquittoBroker):
    """A MosquittoBroker that runs on the password file and ACL the CLI generated."""

    def __init__(self, workdir: Path, passwd: Path, acl: Path) -> None:
        super().__init__(workdir)
        self.passwd = passwd
        self.acl = acl

    def _write_config(self) -> Path:
        config = super()._write_config()
        text = config.read_text().replace("allow_anonymous true\n", "")
        text += f"allow_anonymous false\npassword_file {self.passwd}\nacl_file {self.acl}\n"
        config.write_text(text)
        return config


def test_acl_lines_for_device_and_gateway() -> None:
    text = acl_file(
        [
            BrokerAccount("gw-1", "x", "gateway", None),
            BrokerAccount("cam-a", "x", "device", "site-1"),
        ]
    )
    assert "user gw-1\ntopic readwrite guanjia/#" in text
    assert "topic write guanjia/v1/site-1/cam-a/event" in text
    assert "topic read guanjia/v1/site-1/cam-a/cmd/+" in text
    assert "guanjia/v1/+/" not in text  # the site is pinned, not wildcarded


def test_mosquitto_hash_is_verified_by_mosquitto_format() -> None:
    hashed = mosquitto_hash("secret", salt=b"0123456789ab")
    assert hashed.startswith("$7$101$MDEyMzQ1Njc4OWFi$")
    assert mosquitto_hash("secret") != mosquitto_hash("secret")  # random salt


async def _connect_and_probe(
    broker: MosquittoBroker, user: str, password: str, sub_topics: list[str], pub: list[str]
) -> None:
    async with aiomqtt.Client(
        broker.host, broker.port, username=user, password=password, identifier=f"{user}-probe"
    ) as client:
        for topic in sub_topics:
            await client.subscribe(topic, qos=1)
        for topic in pub:
            await client.publish(topic, b"{}", qos=1)


async def test_device_add_real_broker_device_a_cannot_publish_as_b(
    tmp_path: Path, site_id: str
) -> None:
    if mosquitto_binary() is None:
        pytest.skip("mosquitto binary not available")
    db = f"sqlite:///{tmp_path / 'gw.db'}"
    passwd, acl = tmp_path / "passwd", tmp_path / "acl"
    files = ["--database-url", db, "--passwd-file", str(passwd), "--acl-file", str(acl)]
    pw_a = password_of(
        guanjia("device", "add", "dev-a", "--site", site_id, "--kind", "camera", *files)
    )
    pw_b = password_of(
        guanjia("device", "add", "dev-b", "--site", site_id, "--kind", "camera", *files)
    )
    pw_gw = password_of(guanjia("gateway", "mqtt-account", "gw-1", *files))
    assert oct(passwd.stat().st_mode & 0o777) == "0o600"
    assert pw_a not in passwd.read_text()
    store = Store(db)
    assert [d.device_id for d in store.list_devices()] == ["dev-a", "dev-b"]
    store.close()

    broker = ProvisionedBroker(tmp_path / "broker", passwd, acl)
    broker.start()
    try:
        async with aiomqtt.Client(
            broker.host, broker.port, username="gw-1", password=pw_gw, identifier="gw-watch"
        ) as gateway:
            await gateway.subscribe("guanjia/#", qos=1)
            own = str(c.event_topic(site_id, "dev-a"))
            as_b = str(c.event_topic(site_id, "dev-b"))
            other_site = str(c.event_topic("elsewhere", "dev-a"))
            await _connect_and_probe(broker, "dev-a", pw_a, [], [as_b, other_site, own])
            await _connect_and_probe(broker, "dev-b", pw_b, [], [as_b])
            got: list[str] = []
            async with asyncio.timeout(5):
                async for message in gateway.messages:
                    got.append(str(message.topic))
                    if len(got) == 2:
                        break
            # Only each device's own publication arrived; dev-a's forgery as dev-b and its
            # publish under another site were dropped by the broker (and dev-b's own arrived
            # after them, so they were not merely late).
            assert got == [own, as_b]

            # dev-a cannot read dev-b's commands, only its own.
            async with aiomqtt.Client(
                broker.host, broker.port, username="dev-a", password=pw_a, identifier="a-cmd"
            ) as dev_a:
                await dev_a.subscribe(f"guanjia/v1/{site_id}/+/cmd/+", qos=1)
                await gateway.publish(str(c.command_topic(site_id, "dev-b", "ping")), b"b", qos=1)
                await gateway.publish(str(c.command_topic(site_id, "dev-a", "ping")), b"a", qos=1)
                async with asyncio.timeout(5):
                    message = await anext(dev_a.messages)
                assert str(message.topic) == str(c.command_topic(site_id, "dev-a", "ping"))
                assert message.payload == b"a"

        # A wrong password is refused outright.
        with pytest.raises(aiomqtt.MqttError):
            await _connect_and_probe(broker, "dev-a", pw_b, [], [])
    finally:
        broker.stop()
