"""Command handling: table-driven on a real outbox ledger, then end to end through Mosquitto."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import contract as c
from edge.actions import LoggingActionSink
from edge.commands import CommandHandler, ConfigRejectedError
from edge.link_options import LinkOptions
from edge.node_config import CommandSettings, RuntimeConfig
from edge.outbox import Outbox
from edge.uplink import Uplink
from tests.edge.uplink.support import DEVICE, Subscriber, link_options, wait_until
from tests.support.broker import MosquittoBroker

SITE = "site-cmd"
NOW = 1_795_300_000.0


class Node:
    """A handler wired to a real outbox (through an unstarted Uplink) and a logging sink."""

    def __init__(self, tmp_path: Path) -> None:
        self.outbox = Outbox(tmp_path / "o.db")
        # Never started: results only need the outbox behind it.
        options = LinkOptions(
            host="127.0.0.1", port=1, site_id=SITE, device_id=DEVICE, software_version="0.1.0"
        )
        self.uplink = Uplink(options, self.outbox)
        self.actions = LoggingActionSink()
        self.applied: list[RuntimeConfig] = []
        self.handler = CommandHandler(
            site_id=SITE,
            device_id=DEVICE,
            settings=CommandSettings(allowed_actions=["voice_warning", "door_hold"]),
            results=self.uplink,
            actions=self.actions,
            apply_config=self.apply,
            ping_detail=lambda: {"uptime_s": 1.0},
        )

    def apply(self, runtime: RuntimeConfig) -> None:
        if runtime.config_version == "refuse-me":
            raise ConfigRejectedError("camera cam-x: source unreachable")
        self.applied.append(runtime)

    def results(self) -> list[c.CommandResult]:
        out = []
        for row in self.outbox.peek(limit=1000):
            message = c.decode(c.CommandResult, row.payload)
            assert isinstance(message, c.CommandResult)
            out.append(message)
        return out


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    n = Node(tmp_path)
    yield n
    n.outbox.close()


def command(
    topic_name: str, args: dict[str, object] | None = None, **fields: object
) -> tuple[str, bytes]:
    body: dict[str, object] = {
        "schema": "guanjia.command/1",
        "msg_id": "m" + "0" * 15,
        "ts": NOW,
        "site_id": SITE,
        "device_id": DEVICE,
        "command_id": "cmd-00000001",
        "name": topic_name,
        "args": args or {},
        "issued_by": "operator:li.wei",
    }
    body.update(fields)
    return str(c.command_topic(SITE, DEVICE, topic_name)), json.dumps(body).encode()


@pytest.mark.parametrize(
    ("message", "status", "reason_part"),
    [
        (command("ping"), c.CommandStatus.OK, None),
        (command("reboot"), c.CommandStatus.UNSUPPORTED, "unknown command 'reboot'"),
        (command("model_update"), c.CommandStatus.UNSUPPORTED, "model updates are not enabled"),
        (command("ping", issued_by="stranger"), c.CommandStatus.REJECTED, "unauthorised"),
        (command("ping", issued_by=None), c.CommandStatus.REJECTED, "unauthorised"),
        (command("ping", expires_at=NOW - 1), c.CommandStatus.EXPIRED, "expired"),
        (
            command("actuate", {"action": "relay", "channel": 1}),
            c.CommandStatus.REJECTED,
            "action 'relay' is not enabled",
        ),
        (
            command("actuate", {"action": "launch"}),
            c.CommandStatus.REJECTED,
            "invalid actuate args: action",
        ),
        (
            command("actuate", {"action": "voice_warning", "volume": 11}),
            c.CommandStatus.REJECTED,
            "volume",
        ),
        (
            command("config", {"heartbeat_interval_s": 5}),
            c.CommandStatus.REJECTED,
            "config_version",
        ),
        (
            command("config", {"config_version": "refuse-me"}),
            c.CommandStatus.REJECTED,
            "source unreachable",
        ),
        (command("ping", colour="red"), c.CommandStatus.REJECTED, "unknown field 'colour'"),
        (command("ping", site_id="elsewhere"), c.CommandStatus.REJECTED, "does not match"),
        (command("ping", name="config"), c.CommandStatus.REJECTED, "does not match"),
        (command("ping", schema="guanjia.command/9"), c.CommandStatus.REJECTED, "schema"),
    ],
)
def test_command_gets_one_result(
    node: Node,
    message: tuple[str, bytes],
    status: c.CommandStatus,
    reason_part: str | None,
) -> None:
    result = node.handler.handle(*message, now=NOW)
    assert result is not None
    assert result.status is status
    if reason_part is None:
        assert result.reason is None
    else:
        assert result.reason is not None
        assert reason_part in result.reason
    assert result.command_id == "cmd-00000001"
    assert node.results() == [result]  # queued durably, exactly once


@pytest.mark.parametrize(
    ("payload", "reason_part"),
    [
        (b'{"a": "\xc3\x28"}', "not UTF-8"),
        (b"{not json", "not JSON"),
        (b"[1, 2]", "not an object"),
        (b'{"command_id": 5}', "schema"),
        (b"{" + b" " * (300 * 1024) + b"}", "limit is 262144 bytes"),
    ],
)
def test_unreadable_command_is_answered_as_unknown(
    node: Node, payload: bytes, reason_part: str
) -> None:
    topic = str(c.command_topic(SITE, DEVICE, "ping"))
    result = node.handler.handle(topic, payload, now=NOW)
    assert result is not None
    assert result.status is c.CommandStatus.REJECTED
    assert result.command_id == "unknown"
    assert result.name == "ping"
    assert result.reason is not None
    assert reason_part in result.reason
    assert node.results() == [result]


def test_repeated_command_id_is_not_executed_twice(node: Node) -> None:
    message = command("actuate", {"action": "door_hold", "duration_s": 30})
    first = node.handler.handle(*message, now=NOW)
    second = node.handler.handle(*message, now=NOW + 1)
    assert first is not None
    assert first.status is c.CommandStatus.OK
    assert second is None
    assert len(node.actions.fired) == 1
    assert node.actions.fired[0].params == {"duration_s": 30.0}
    assert len(node.results()) == 1


def test_repeated_command_id_survives_restart(tmp_path: Path) -> None:
    message = command("actuate", {"action": "voice_warning", "text": "请勿推车进电梯"})
    first = Node(tmp_path)
    assert first.handler.handle(*message, now=NOW) is not None
    first.outbox.close()
    second = Node(tmp_path)
    assert second.handler.handle(*message, now=NOW + 5) is None
    assert second.actions.fired == []
    second.outbox.close()


def test_command_interrupted_by_a_crash_is_answered_not_rerun(node: Node) -> None:
    node.outbox.claim_command("cmd-00000001", NOW)  # claimed, then the node died
    result = node.handler.handle(*command("actuate", {"action": "door_hold"}), now=NOW + 9)
    assert result is not None
    assert result.status is c.CommandStatus.ERROR
    assert result.reason is not None
    assert "interrupted" in result.reason
    assert node.actions.fired == []


def test_config_command_applies_whole_runtime_config(node: Node) -> None:
    args = {"config_version": "2026-11-21.2", "heartbeat_interval_s": 10}
    result = node.handler.handle(*command("config", args), now=NOW)
    assert result is not None
    assert result.status is c.CommandStatus.OK
    assert result.detail == {"config_version": "2026-11-21.2"}
    assert node.applied == [RuntimeConfig(config_version="2026-11-21.2", heartbeat_interval_s=10)]


def test_handler_bug_answers_error_and_keeps_going(node: Node) -> None:
    def broken(runtime: RuntimeConfig) -> None:
        raise RuntimeError("disk on fire")

    node.handler._apply_config = broken
    result = node.handler.handle(*command("config", {"config_version": "x"}), now=NOW)
    assert result is not None
    assert result.status is c.CommandStatus.ERROR
    assert result.reason == "RuntimeError: disk on fire"
    ok = node.handler.handle(*command("ping", command_id="cmd-00000002"), now=NOW)
    assert ok is not None
    assert ok.status is c.CommandStatus.OK


@pytest.mark.mqtt
def test_bad_commands_over_mqtt_get_error_results_and_node_keeps_running(
    mqtt_auth_broker: MosquittoBroker, site_id: str, tmp_path: Path
) -> None:
    """Through a real password+ACL broker: the gateway sends garbage; every message is answered."""
    from dataclasses import replace

    from pydantic import SecretStr

    from tests.conftest import DEVICE_PASSWORDS, GATEWAY_PASSWORD

    device = "device-b"
    outbox = Outbox(tmp_path / "o.db")
    options = replace(
        link_options(
            mqtt_auth_broker,
            site_id,
            device_id=device,
            subscriptions=(c.subscription(c.Channel.CMD, site_id=site_id, device_id=device),),
        ),
        username=device,
        password=SecretStr(DEVICE_PASSWORDS[device]),
    )
    uplink = Uplink(options, outbox)
    sink = LoggingActionSink()
    handler = CommandHandler(
        site_id=site_id,
        device_id=device,
        settings=CommandSettings(),
        results=uplink,
        actions=sink,
        apply_config=lambda runtime: None,
        ping_detail=lambda: {"outbox_depth": outbox.stats().depth},
    )
    uplink.set_command_handler(lambda topic, payload: handler.handle(topic, payload, time.time()))
    gateway = Subscriber(
        mqtt_auth_broker,
        [c.subscription(c.Channel.CMD_RESULT, site_id=site_id)],
        username="gateway",
        password=GATEWAY_PASSWORD,
    ).start()
    # Another device may not command this one: the broker's ACL refuses the write.
    intruder = Subscriber(
        mqtt_auth_broker, [], username="device-a", password=DEVICE_PASSWORDS["device-a"]
    ).start()
    uplink.start()
    try:
        wait_until(lambda: uplink.link.subscribed, 10, "node connected and subscribed")

        def send(name: str, payload: bytes, by: Subscriber = gateway) -> None:
            by.publish(str(c.command_topic(site_id, device, name)), payload)

        def body(name: str, command_id: str, **extra: object) -> bytes:
            data: dict[str, object] = {
                "schema": "guanjia.command/1",
                "msg_id": "m" + command_id.replace("-", "") * 2,
                "ts": time.time(),
                "site_id": site_id,
                "device_id": device,
                "command_id": command_id,
                "name": name,
                "args": {},
                "issued_by": "gateway",
            }
            data.update(extra)
            return json.dumps(data).encode()

        send("ping", b"garbage \x00\xff")
        send("ping", b'{"schema": "guanjia.command/1"' + b" " * (300 * 1024) + b"}")
        send("selfdestruct", body("selfdestruct", "cmd-00000010"))
        send("ping", body("ping", "cmd-00000011", issued_by="someone"))
        send("actuate", body("actuate", "cmd-00000012", args={"action": "door_hold"}))
        send("actuate", body("actuate", "cmd-00000012", args={"action": "door_hold"}))  # repeat
        send("ping", body("ping", "cmd-00000013"), by=intruder)  # dropped by the broker's ACL
        send("ping", body("ping", "cmd-00000014"))
        # Commands are handled and answered in arrival order, through one outbox: once the
        # last one's result is here, a duplicate of an earlier one would be here too.
        wait_until(
            lambda: any(r["command_id"] == "cmd-00000014" for r in gateway.json("cmd_result")),
            10,
            "the last command's result",
        )
        results = {r["command_id"]: r for r in gateway.json("cmd_result")}
        statuses = [(r["command_id"], r["status"]) for r in gateway.json("cmd_result")]
        assert sorted(statuses) == sorted(
            [
                ("unknown", "rejected"),
                ("unknown", "rejected"),
                ("cmd-00000010", "unsupported"),
                ("cmd-00000011", "rejected"),
                ("cmd-00000012", "ok"),
                ("cmd-00000014", "ok"),
            ]
        )
        assert "unauthorised" in str(results["cmd-00000011"]["reason"])
        assert len(sink.fired) == 1  # the repeated actuate ran once
        assert uplink.link.connected  # still running
    finally:
        uplink.stop()
        outbox.close()
        gateway.stop()
        intruder.stop()


@pytest.mark.mqtt
def test_command_sent_while_node_offline_is_answered_after_reconnect(
    mqtt_broker: MosquittoBroker, site_id: str, tmp_path: Path
) -> None:
    """The persistent session (MQTT 5 clean_start=False + session expiry) queues commands."""
    device = "edge-sleepy-01"
    options = link_options(
        mqtt_broker,
        site_id,
        device_id=device,
        subscriptions=(c.subscription(c.Channel.CMD, site_id=site_id, device_id=device),),
    )
    gateway = Subscriber(mqtt_broker, [c.subscription(c.Channel.CMD_RESULT, site_id=site_id)])
    gateway.start()

    def node() -> tuple[Uplink, Outbox]:
        outbox = Outbox(tmp_path / "o.db")
        uplink = Uplink(options, outbox)
        handler = CommandHandler(
            site_id=site_id,
            device_id=device,
            settings=CommandSettings(),
            results=uplink,
            actions=LoggingActionSink(),
            apply_config=lambda runtime: None,
            ping_detail=dict,
        )
        uplink.set_command_handler(lambda t, p: handler.handle(t, p, time.time()))
        uplink.start()
        # Subscribed: the subscription is part of the broker's session for this client id.
        wait_until(lambda: uplink.link.subscribed, 10, "node connected and subscribed")
        return uplink, outbox

    uplink, outbox = node()
    uplink.stop()
    outbox.close()
    ping = c.Command(
        ts=time.time(),
        site_id=site_id,
        device_id=device,
        command_id="cmd-while-away-1",
        name="ping",
        issued_by="gateway",
    )
    gateway.publish(str(c.command_topic(site_id, device, "ping")), c.encode(ping))
    uplink, outbox = node()
    try:
        wait_until(lambda: len(gateway.received("cmd_result")) == 1, 10, "result after return")
    finally:
        uplink.stop()
        outbox.close()
        gateway.stop()
    result = gateway.json("cmd_result")[0]
    assert result["command_id"] == "cmd-while-away-1"
    assert result["status"] == "ok"
