"""MqttSettings: one identity per replica (client id = broker username) and what it
subscribes to (plain persistent subscriptions by default; a site partition per replica)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from pydantic import ValidationError

from gateway.mqtt import refusal
from gateway.mqtt_settings import MqttSettings


def test_client_id_follows_the_username() -> None:
    assert MqttSettings(username="gateway-2").session_id == "gateway-2"
    assert MqttSettings(username="gateway-2", client_id="gateway-2").session_id == "gateway-2"
    assert MqttSettings().session_id == "guanjia-gateway-1"
    assert MqttSettings(client_id="dev-gw").session_id == "dev-gw"


def test_client_id_differing_from_the_username_is_an_error() -> None:
    with pytest.raises(ValidationError, match=r"mqtt.client_id: must equal mqtt.username"):
        MqttSettings(username="gateway-1", client_id="guanjia-gateway-1")


def test_default_subscriptions_are_plain_and_cover_every_device_channel() -> None:
    subs = MqttSettings().subscriptions
    assert not any(s.startswith("$share/") for s in subs)
    assert "guanjia/v1/+/+/event" in subs
    assert "guanjia/v1/+/+/snapshot/+" in subs
    assert not any(s.endswith(("/cmd/+", "/ack")) for s in subs)  # the gateway's own traffic


def test_sites_partition_and_share_group() -> None:
    subs = MqttSettings(sites=["s1", "s2"]).subscriptions
    assert {s.split("/")[2] for s in subs} == {"s1", "s2"}
    shared = MqttSettings(share_group="g").subscriptions
    assert all(s.startswith("$share/g/guanjia/v1/+/+/") for s in shared)
    with pytest.raises(ValidationError, match=r"mqtt\.sites"):
        MqttSettings(sites=["a/b"])
    with pytest.raises(ValidationError, match="each site once"):
        MqttSettings(sites=["a", "a"])


@pytest.mark.parametrize(
    ("topic", "retain", "refused"),
    [
        ("guanjia/v1/s/d/status", True, False),
        ("guanjia/v1/s/d/event", False, False),
        ("guanjia/v1/s/d/event", True, True),
        ("guanjia/v1/s/d/snapshot/x", True, True),
        ("guanjia/v1/s/d/heartbeat", True, True),
        ("odd", True, True),
    ],
)
def test_only_status_may_be_retained(topic: str, retain: bool, refused: bool) -> None:
    assert (refusal(topic, retain) is not None) == refused


def _gateway_run(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`guanjia gateway run` with `env`, to its end (a bad setting ends it at once)."""
    return subprocess.run(
        [sys.executable, "-m", "guanjia", "gateway", "run"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=60,
    )


def test_gateway_run_refuses_a_mismatched_client_id_in_one_line() -> None:
    env = {
        **os.environ,
        "GUANJIA_GATEWAY_JWT_SECRET": "a-secret-long-enough-0123456789abcdef",
        "GUANJIA_GATEWAY_MQTT__USERNAME": "gateway-1",
        "GUANJIA_GATEWAY_MQTT__CLIENT_ID": "guanjia-gateway-1",
    }
    done = _gateway_run(env)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error: GUANJIA_GATEWAY_MQTT__CLIENT_ID: must equal mqtt.username "
        "('gateway-1') or be left unset: the broker uses the username as the client id"
    ]


def test_telemetry_processes_needs_a_telemetry_session_of_its_own_in_one_line() -> None:
    # With a username, the telemetry session needs an account of its own: without one there
    # is no second session whose edge a receiver process could hold.
    with pytest.raises(ValidationError) as raised:
        MqttSettings(telemetry_processes=2, username="gw", telemetry_session=True)
    (error,) = raised.value.errors()
    message = str(error["msg"])
    assert "\n" not in message
    assert message.startswith("Value error, mqtt.telemetry_processes: 2 needs the telemetry")
    assert "mqtt.telemetry_username" in message
    with pytest.raises(ValidationError, match=r"mqtt\.telemetry_processes"):
        MqttSettings(telemetry_processes=2, telemetry_session=False)
    # Either a second account, or no accounts at all (a development broker), will do.
    split = MqttSettings(telemetry_processes=2, username="gw", telemetry_username="gw-t")
    assert split.telemetry_split
    assert split.telemetry_connection().session_id == "gw-t"
    assert MqttSettings(telemetry_processes=2).telemetry_split
    # A worker of the event ingest never runs a receiver.
    assert split.ingest_worker(1).telemetry_processes == 1


def test_gateway_run_refuses_telemetry_processes_without_a_telemetry_account_in_one_line() -> None:
    env = {
        **os.environ,
        "GUANJIA_GATEWAY_JWT_SECRET": "a-secret-long-enough-0123456789abcdef",
        "GUANJIA_GATEWAY_MQTT__USERNAME": "gw",
        "GUANJIA_GATEWAY_MQTT__TELEMETRY_PROCESSES": "2",
    }
    env.pop("GUANJIA_GATEWAY_MQTT__TELEMETRY_USERNAME", None)
    done = _gateway_run(env)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error: GUANJIA_GATEWAY_MQTT__TELEMETRY_PROCESSES: 2 needs the telemetry session of "
        "its own (mqtt.telemetry_session true, and mqtt.telemetry_username when mqtt.username "
        "is set)"
    ]
