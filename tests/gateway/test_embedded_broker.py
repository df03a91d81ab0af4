"""The embedded broker (amqtt) on the files provisioning writes for Mosquitto. That device A
cannot publish as device B nor read B's commands is the very test Mosquitto passes
(tests/gateway/test_provisioning.py, parametrized over both brokers); here: no retained
message leaks through a wide filter, a wrong password or a client id other than the username
is refused, a newly provisioned device gets in without a restart, loopback only."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import aiomqtt
import pytest

import contract as c
from gateway.embedded_broker import (
    EmbeddedBroker,
    EmbeddedBrokerError,
    filter_covered,
    parse_acl,
    topic_matches,
    verify_password,
)
from gateway.provisioning import mosquitto_hash
from tests.support.broker import free_port
from tests.support.mqtt_raw import CONNACK_ACCEPTED, connect_with_will


def guanjia(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "guanjia", *args], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr + done.stdout
    found = re.search(r"password \(shown once\): (\S+)", done.stdout)
    assert found, done.stdout
    return found.group(1)


@pytest.fixture(scope="module")
def files_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("provisioned")


@pytest.fixture(scope="module")
def provisioned(files_dir: Path) -> tuple[list[str], dict[str, str]]:
    """Two devices and a gateway account, provisioned once for the module by the CLI."""
    tmp_path = files_dir
    db = f"sqlite:///{tmp_path / 'gw.db'}"
    files = ["--database-url", db, "--passwd-file", str(tmp_path / "passwd")]
    files += ["--acl-file", str(tmp_path / "acl")]
    passwords = {
        "dev-a": guanjia("device", "add", "dev-a", "--site", "s1", "--kind", "camera", *files),
        "dev-b": guanjia("device", "add", "dev-b", "--site", "s1", "--kind", "camera", *files),
        "gw-1": guanjia("gateway", "mqtt-account", "gw-1", *files),
    }
    return files, passwords


@pytest.fixture
def broker(files_dir: Path, provisioned: object) -> Iterator[EmbeddedBroker]:
    running = EmbeddedBroker(free_port(), files_dir / "passwd", files_dir / "acl")
    running.start()
    yield running
    running.stop()


def client(broker: EmbeddedBroker, user: str, password: str, ident: str = "") -> aiomqtt.Client:
    return aiomqtt.Client(
        broker.host,
        broker.port,
        username=user,
        password=password,
        identifier=ident or user,
        protocol=aiomqtt.ProtocolVersion.V311,
    )


async def test_a_wide_subscription_gets_no_retained_message_of_another_device(
    broker: EmbeddedBroker, provisioned: tuple[list[str], dict[str, str]]
) -> None:
    """amqtt sends retained copies at SUBSCRIBE without the delivery check: a filter wider
    than the ACL must therefore be refused whole, or dev-a would read dev-b's retained status."""
    _, pw = provisioned
    status_b = "guanjia/v1/s1/dev-b/status"
    async with client(broker, "dev-b", pw["dev-b"]) as dev_b:
        await dev_b.publish(status_b, b'{"state":"online"}', qos=1, retain=True)
    async with client(broker, "dev-a", pw["dev-a"]) as dev_a:
        for wide in ("guanjia/#", "guanjia/v1/s1/+/status", "#"):
            granted = await dev_a.subscribe(wide, qos=1)
            assert getattr(granted[0], "value", granted[0]) == 0x80, wide
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(1.5):
                await anext(dev_a.messages)
    async with client(broker, "gw-1", pw["gw-1"]) as gateway:  # the gateway may read it
        await gateway.subscribe("guanjia/v1/+/+/status", qos=1)
        async with asyncio.timeout(5):
            message = await anext(gateway.messages)
        assert str(message.topic) == status_b


async def test_wrong_password_and_borrowed_client_id_are_refused(
    broker: EmbeddedBroker, provisioned: tuple[list[str], dict[str, str]]
) -> None:
    _, pw = provisioned
    with pytest.raises(aiomqtt.MqttError):
        async with client(broker, "dev-a", pw["dev-b"]):
            pass
    with pytest.raises(aiomqtt.MqttError):  # dev-a's own password, the gateway's client id
        async with client(broker, "dev-a", pw["dev-a"], ident="gw-1"):
            pass
    with pytest.raises(aiomqtt.MqttError):  # anonymous
        async with aiomqtt.Client(broker.host, broker.port, identifier="x"):
            pass


async def test_a_device_added_while_running_gets_in(
    broker: EmbeddedBroker, provisioned: tuple[list[str], dict[str, str]]
) -> None:
    files, _ = provisioned
    pw = guanjia("device", "add", "dev-c", "--site", "s1", "--kind", "camera", *files)
    async with client(broker, "dev-c", pw) as dev_c:
        await dev_c.publish(str(c.event_topic("s1", "dev-c")), b"{}", qos=1)


def test_loopback_only_and_missing_files(tmp_path: Path) -> None:
    (tmp_path / "p").write_text("")
    (tmp_path / "a").write_text("")
    with pytest.raises(EmbeddedBrokerError, match="loopback"):
        EmbeddedBroker(1883, tmp_path / "p", tmp_path / "a", host="0.0.0.0")
    with pytest.raises(EmbeddedBrokerError, match="no such file"):
        EmbeddedBroker(1883, tmp_path / "missing", tmp_path / "a")


def test_port_in_use_is_one_error(tmp_path: Path) -> None:
    import socket

    (tmp_path / "p").write_text("")
    (tmp_path / "a").write_text("")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        broker = EmbeddedBroker(port, tmp_path / "p", tmp_path / "a")
        with pytest.raises(EmbeddedBrokerError, match=f"127.0.0.1:{port}"):
            broker.start()
        broker.stop()


def test_password_and_topic_rules() -> None:
    hashed = mosquitto_hash("secret")
    assert verify_password("secret", hashed)
    assert not verify_password("Secret", hashed)
    assert not verify_password("secret", "$6$rounds$x$y")
    assert topic_matches("a/b/c", "a/+/c")
    assert topic_matches("a/b/c", "a/#")
    assert not topic_matches("a/b", "a/b/c")
    assert not topic_matches("a/b/c/d", "a/+/c")
    assert filter_covered("a/x/c", "a/+/c")
    assert filter_covered("a/+/c", "a/+/c")
    assert not filter_covered("a/#", "a/+")
    assert not filter_covered("a/+/c", "a/x/c")
    rules = parse_acl("topic read anon/#\nuser u\ntopic read r/#\ntopic write w\ntopic rw/x\n")
    assert set(rules) == {"u"}  # rules before any `user` (anonymous) are ignored: deny
    assert rules["u"].read == ("r/#", "rw/x")
    assert rules["u"].write == ("w", "rw/x")


async def _publish_as(port: int, user: str, password: str, topic: str, payload: bytes) -> None:
    async with aiomqtt.Client(
        "127.0.0.1",
        port,
        username=user,
        password=password,
        identifier=user,
        protocol=aiomqtt.ProtocolVersion.V311,
    ) as device:
        await device.publish(topic, payload, qos=1)


def _wait(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"no {what} within {timeout:.0f} s"
        time.sleep(0.2)


def test_gateway_run_with_embedded_broker_turns_an_event_into_a_ticket(
    files_dir: Path, provisioned: tuple[list[str], dict[str, str]]
) -> None:
    """`guanjia gateway run --embedded-broker`: the broker in the gateway's process, the
    gateway on it over MQTT 3.1.1, a device's event committed as a ticket."""
    import httpx

    from tests.gateway.factories import event, topic_of

    files, pw = provisioned
    db = files[1]
    user_add = ["gateway", "user-add", "op", "--role", "operator", "--site", "s1"]
    done = subprocess.run(
        [sys.executable, "-m", "guanjia", *user_add, "--database-url", db],
        env={**os.environ, "GUANJIA_NEW_USER_PASSWORD": "operator-password-1"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    mqtt_port, http_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GUANJIA_GATEWAY_")}
    env |= {
        "GUANJIA_GATEWAY_DATABASE_URL": db,
        "GUANJIA_GATEWAY_JWT_SECRET": "a-secret-long-enough-0123456789abcdef",
        "GUANJIA_GATEWAY_MQTT__PORT": str(mqtt_port),
        "GUANJIA_GATEWAY_MQTT__USERNAME": "gw-1",
        "GUANJIA_GATEWAY_MQTT__PASSWORD": pw["gw-1"],
    }
    files_args = ["--passwd-file", str(files_dir / "passwd"), "--acl-file", str(files_dir / "acl")]
    run = ["gateway", "run", "--port", str(http_port), "--embedded-broker", *files_args]
    proc = subprocess.Popen(
        [sys.executable, "-m", "guanjia", *run, "--log-level", "warning"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{http_port}", timeout=5) as http:

            def connected() -> bool:
                assert proc.poll() is None, "the gateway exited"
                try:
                    return http.get("/healthz").json().get("mqtt_connected") is True
                except httpx.HTTPError:
                    return False

            _wait(connected, 30, "gateway connected to its embedded broker")
            alert = event("s1", "dev-a", "ev-embedded-1")
            asyncio.run(
                _publish_as(mqtt_port, "dev-a", pw["dev-a"], topic_of(alert), c.encode(alert))
            )
            login = http.post(
                "/api/login", json={"username": "op", "password": "operator-password-1"}
            )
            headers = {"Authorization": f"Bearer {login.json()['access_token']}"}

            def tickets() -> list[dict[str, object]]:
                return list(http.get("/api/tickets", headers=headers).json()["items"])

            _wait(lambda: bool(tickets()), 15, "ticket")
            (ticket,) = tickets()
            assert ticket["device_id"] == "dev-a"
    finally:
        proc.terminate()
        output, _ = proc.communicate(timeout=30)
    assert "broker: embedded amqtt (MQTT 3.1.1, loopback only)" in output
    assert "Traceback" not in output


async def _no_message_within(subscriber: aiomqtt.Client, seconds: float) -> None:
    try:
        async with asyncio.timeout(seconds):
            message = await anext(subscriber.messages)
    except TimeoutError:
        return
    pytest.fail(f"got {message.topic}: {message.payload!r}")


async def test_a_last_will_on_another_device_topic_is_refused(
    broker: EmbeddedBroker, provisioned: tuple[list[str], dict[str, str]]
) -> None:
    """amqtt sends a will without the publish check: dev-a's will on dev-b's event topic would
    reach the gateway as dev-b's event. The CONNECT is refused, as Mosquitto 2 does."""
    _, pw = provisioned
    event_b = str(c.event_topic("s1", "dev-b"))
    async with client(broker, "gw-1", pw["gw-1"]) as gateway:
        for wanted in ("guanjia/v1/+/+/event", "guanjia/v1/+/+/status"):
            granted = await gateway.subscribe(wanted, qos=1)
            assert getattr(granted[0], "value", granted[0]) == 1, wanted
        forged = aiomqtt.Will(event_b, b'{"forged":true}', qos=1)
        dev_a = aiomqtt.Client(
            broker.host,
            broker.port,
            username="dev-a",
            password=pw["dev-a"],
            identifier="dev-a",
            protocol=aiomqtt.ProtocolVersion.V311,
            will=forged,
        )
        with pytest.raises(aiomqtt.MqttError):
            async with dev_a:
                pass
        # Its own topic is fine, and the will is sent when the connection drops.
        status_a = str(c.status_topic("s1", "dev-a"))
        reader, writer = await connect_with_will(
            broker.host, broker.port, "dev-a", pw["dev-a"], will=(status_a, b"gone")
        )
        assert await reader.readexactly(4) == CONNACK_ACCEPTED
        writer.transport.abort()  # no DISCONNECT: the will goes out
        async with asyncio.timeout(5):
            message = await anext(gateway.messages)
        assert (str(message.topic), message.payload) == (status_a, b"gone")


async def test_a_refused_connect_cannot_plant_a_will_in_another_session(
    broker: EmbeddedBroker, provisioned: tuple[list[str], dict[str, str]]
) -> None:
    """amqtt copies a CONNECT's will into the existing session of its client id before
    authenticating it, and a take-over then drops that session as if it failed: a client with
    no password must not get its will published as dev-b's."""
    _, pw = provisioned
    event_b = str(c.event_topic("s1", "dev-b"))
    async with client(broker, "gw-1", pw["gw-1"]) as gateway:
        for wanted in ("guanjia/v1/+/+/event", "guanjia/v1/+/+/status"):
            granted = await gateway.subscribe(wanted, qos=1)
            assert getattr(granted[0], "value", granted[0]) == 1, wanted
        victim = aiomqtt.Client(
            broker.host,
            broker.port,
            username="dev-b",
            password=pw["dev-b"],
            identifier="dev-b",
            protocol=aiomqtt.ProtocolVersion.V311,
            clean_session=False,
        )
        async with victim:
            reader, writer = await connect_with_will(
                broker.host,
                broker.port,
                "dev-b",
                "wrong",
                will=(event_b, b'{"forged":true}'),
                clean=False,
            )
            with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
                await reader.read(4)
            writer.close()
            await _no_message_within(gateway, 1.5)
