"""`guanjia device add` writes credentials a real Mosquitto accepts, and an ACL under which
device A cannot publish as device B nor read B's commands; grants a node its controller
topics (`--grant-write`); writes files Debian's Mosquitto can read (0640, group mosquitto)
with a PBKDF2 cost far above mosquitto_passwd 2.0's 101 rounds."""

from __future__ import annotations

import asyncio
import contextlib
import grp
import os
import re
import subprocess
import sys
from pathlib import Path

import aiomqtt
import pytest

import contract as c
from gateway.embedded_broker import EmbeddedBroker
from gateway.provisioning import (
    PBKDF2_ITERATIONS,
    BrokerAccount,
    acl_file,
    check_grant,
    mosquitto_hash,
)
from gateway.store import Store
from tests.conftest import missing
from tests.support.broker import MosquittoBroker, free_port, mosquitto_binary
from tests.support.mqtt_raw import connect_with_will

pytestmark = pytest.mark.mqtt


def run_guanjia(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "guanjia", *args], capture_output=True, text=True, check=False
    )


def guanjia(*args: str) -> str:
    done = run_guanjia(*args)
    assert done.returncode == 0, done.stderr + done.stdout
    return done.stdout


def password_of(output: str) -> str:
    found = re.search(r"password \(shown once\): (\S+)", output)
    assert found, output
    return found.group(1)


def test_acl_lines_for_device_and_gateway() -> None:
    text = acl_file(
        [
            BrokerAccount("gw-1", "x", "gateway", None),
            BrokerAccount("cam-a", "x", "device", "site-1"),
        ]
    )
    gateway = text.split("user gw-1\n")[1]
    device = text.split("user cam-a\n")[1].split("user gw-1\n")[0]
    assert "topic write guanjia/v1/site-1/cam-a/event" in device
    assert "topic write guanjia/v1/site-1/cam-a/snapshot/+" in device
    assert "topic read guanjia/v1/site-1/cam-a/cmd/+" in device
    assert "topic read guanjia/v1/site-1/cam-a/ack" in device
    assert "guanjia/v1/+/" not in device  # the site is pinned, not wildcarded
    # A gateway reads device channels and writes only commands and acks: no readwrite #.
    assert "topic read guanjia/v1/+/+/event" in gateway
    assert "topic write guanjia/v1/+/+/cmd/+" in gateway
    assert "topic write guanjia/v1/+/+/ack" in gateway
    assert "readwrite" not in text
    assert "guanjia/#" not in text


def test_mosquitto_hash_format_and_cost() -> None:
    hashed = mosquitto_hash("secret", salt=b"0123456789ab")
    assert hashed.startswith(f"$7${PBKDF2_ITERATIONS}$MDEyMzQ1Njc4OWFi$")
    assert PBKDF2_ITERATIONS >= 10_000
    assert mosquitto_hash("secret") != mosquitto_hash("secret")  # random salt


@pytest.mark.parametrize(
    ("topic", "why"),
    [
        ("lift/block3/lift2/cmd", None),
        ("lift/block3/+", None),
        ("lift/#", None),
        ("#", "wildcard"),
        ("+/cmd", "wildcard"),
        ("lift/+/cmd", "wildcard"),
        ("lift/b+/cmd", "wildcard"),
        ("guanjia/#", "guanjia/"),
        ("guanjia/v1/s/other-cam/event", "guanjia/"),
        ("$SYS/broker", "'$'"),
        ("lift//cmd", "segments"),
        ("", "segments"),
    ],
)
def test_check_grant(topic: str, why: str | None) -> None:
    if why is None:
        assert check_grant(topic) == topic
    else:
        with pytest.raises(ValueError, match=re.escape(why)):
            check_grant(topic)


async def _connect_and_probe(
    broker: MosquittoBroker | EmbeddedBroker,
    user: str,
    password: str,
    sub_topics: list[str],
    pub: list[str],
) -> None:
    async with aiomqtt.Client(
        broker.host, broker.port, username=user, password=password, identifier=user
    ) as client:
        for topic in sub_topics:
            await client.subscribe(topic, qos=1)
        for topic in pub:
            await client.publish(topic, b"{}", qos=1)


@pytest.mark.parametrize("kind", ["mosquitto", "embedded"])
async def test_device_add_real_broker_device_a_cannot_publish_as_b(
    kind: str, tmp_path: Path, site_id: str
) -> None:
    """The same probes on Mosquitto and on the embedded broker (amqtt, docs/embedded-broker.md),
    both reading the files `guanjia device add` wrote."""
    if kind == "mosquitto" and mosquitto_binary() is None:
        missing("the mosquitto binary")
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
    for path in (passwd, acl):
        # Debian's Mosquitto reads these after dropping to its own user: group mosquitto,
        # readable by the group, by nobody else.
        assert oct(path.stat().st_mode & 0o777) == "0o640"
        assert grp.getgrgid(path.stat().st_gid).gr_name == "mosquitto"
    assert pw_a not in passwd.read_text()
    assert f"dev-a:$7${PBKDF2_ITERATIONS}$" in passwd.read_text()
    store = Store(db)
    assert [d.device_id for d in store.devices.list_devices()] == ["dev-a", "dev-b"]
    store.close()

    broker: MosquittoBroker | EmbeddedBroker
    if kind == "mosquitto":
        broker = MosquittoBroker(tmp_path / "broker", passwd_file=passwd, acl_file=acl)
    else:
        broker = EmbeddedBroker(free_port(), passwd, acl)
    broker.start()
    try:
        async with aiomqtt.Client(
            broker.host, broker.port, username="gw-1", password=pw_gw, identifier="gw-1"
        ) as gateway:
            await gateway.subscribe(f"guanjia/v1/{site_id}/+/event", qos=1)
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
                broker.host, broker.port, username="dev-a", password=pw_a, identifier="dev-a"
            ) as dev_a:
                granted = await dev_a.subscribe(f"guanjia/v1/{site_id}/+/cmd/+", qos=1)
                if kind == "embedded":
                    # Mosquitto grants the wide filter and checks each delivery; amqtt sends
                    # retained copies unchecked, so the embedded broker refuses a filter that
                    # reaches beyond the ACL at SUBSCRIBE (docs/embedded-broker.md).
                    assert getattr(granted[0], "value", granted[0]) == 0x80
                    await dev_a.subscribe(f"guanjia/v1/{site_id}/dev-a/cmd/+", qos=1)
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


@pytest.mark.parametrize("kind", ["mosquitto", "embedded"])
async def test_a_device_last_will_cannot_speak_as_another(
    kind: str, tmp_path: Path, site_id: str
) -> None:
    """dev-a's last will on dev-b's event topic, its connection then dropped: the gateway
    must not get it as dev-b's event, on either broker (Mosquitto 2 refuses the CONNECT or
    the will; the embedded broker refuses the CONNECT)."""
    if kind == "mosquitto" and mosquitto_binary() is None:
        missing("the mosquitto binary")
    db = f"sqlite:///{tmp_path / 'gw.db'}"
    passwd, acl = tmp_path / "passwd", tmp_path / "acl"
    files = ["--database-url", db, "--passwd-file", str(passwd), "--acl-file", str(acl)]
    pw_a = password_of(
        guanjia("device", "add", "dev-a", "--site", site_id, "--kind", "camera", *files)
    )
    guanjia("device", "add", "dev-b", "--site", site_id, "--kind", "camera", *files)
    pw_gw = password_of(guanjia("gateway", "mqtt-account", "gw-1", *files))
    broker: MosquittoBroker | EmbeddedBroker
    if kind == "mosquitto":
        broker = MosquittoBroker(tmp_path / "broker", passwd_file=passwd, acl_file=acl)
    else:
        broker = EmbeddedBroker(free_port(), passwd, acl)
    broker.start()
    try:
        async with aiomqtt.Client(
            broker.host,
            broker.port,
            username="gw-1",
            password=pw_gw,
            identifier="gw-1",
            protocol=aiomqtt.ProtocolVersion.V311,
        ) as gateway:
            await gateway.subscribe(f"guanjia/v1/{site_id}/+/event", qos=1)
            as_b = str(c.event_topic(site_id, "dev-b"))
            own = str(c.event_topic(site_id, "dev-a"))
            for topic in (as_b, own):  # the forged will first, then a will dev-a may send
                reader, writer = await connect_with_will(
                    broker.host, broker.port, "dev-a", pw_a, will=(topic, topic.encode())
                )
                with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
                    await reader.readexactly(4)
                writer.transport.abort()
            async with asyncio.timeout(5):
                message = await anext(gateway.messages)
            # Only dev-a's will on its own topic came (so the forged one was not merely late).
            assert (str(message.topic), message.payload) == (own, own.encode())
    finally:
        broker.stop()


async def test_grant_write_lets_a_node_reach_its_controller_and_nothing_else(
    mosquitto_available: None, tmp_path: Path, site_id: str
) -> None:
    db = f"sqlite:///{tmp_path / 'gw.db'}"
    passwd, acl = tmp_path / "passwd", tmp_path / "acl"
    files = ["--database-url", db, "--passwd-file", str(passwd), "--acl-file", str(acl)]
    node = ["device", "add", "lift-node", "--site", site_id, "--kind", "camera", *files]
    refused = run_guanjia(*node, "--grant-write", "guanjia/#")
    assert refused.returncode != 0
    assert "--grant-write" in refused.stderr
    assert "guanjia/" in refused.stderr
    assert "Traceback" not in refused.stderr
    pw = password_of(guanjia(*node, "--grant-write", "lift/block3/lift2/cmd"))
    assert "topic write lift/block3/lift2/cmd" in acl.read_text()
    # The lift controller's own account (the site provisions it; here by hand): reads lift/#.
    ctl_pw = "controller-password-1"
    with passwd.open("a") as out:
        out.write(f"lift-ctl:{mosquitto_hash(ctl_pw)}\n")
    with acl.open("a") as out:
        out.write("user lift-ctl\ntopic read lift/#\n")
    broker = MosquittoBroker(tmp_path / "broker", passwd_file=passwd, acl_file=acl)
    broker.start()
    try:
        async with aiomqtt.Client(
            broker.host, broker.port, username="lift-ctl", password=ctl_pw, identifier="lift-ctl"
        ) as controller:
            await controller.subscribe("lift/#", qos=1)
            await _connect_and_probe(
                broker, "lift-node", pw, [], ["lift/block3/lift1/cmd", "lift/block3/lift2/cmd"]
            )
            async with asyncio.timeout(5):
                message = await anext(controller.messages)
            # Only the granted topic arrived; lift1 (not granted) was dropped by the broker.
            assert str(message.topic) == "lift/block3/lift2/cmd"
    finally:
        broker.stop()


def test_files_without_the_broker_group_are_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gateway import provisioning

    accounts = [BrokerAccount("cam-a", "x", "device", "site-1")]
    monkeypatch.setattr(provisioning, "broker_gid", lambda: None)  # no group mosquitto here
    assert not provisioning.write_broker_files(accounts, tmp_path / "p", tmp_path / "a")
    assert oct((tmp_path / "p").stat().st_mode & 0o777) == "0o600"
    monkeypatch.setattr(provisioning, "broker_gid", os.getgid)
    assert provisioning.write_broker_files(accounts, tmp_path / "p", tmp_path / "a")
    assert oct((tmp_path / "p").stat().st_mode & 0o777) == "0o640"
