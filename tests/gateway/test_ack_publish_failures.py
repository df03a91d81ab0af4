"""Acks whose publish fails are not a loss (the device re-sends until it gets one), but they
are visible: counted in `guanjia_ack_publish_failures_total` and logged, at most once a
minute. Real broker: the gateway's connection is cut by killing it, then acks go out."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import aiomqtt
import pytest

from gateway.config import MqttSettings
from gateway.metrics import GatewayMetrics
from gateway.mqtt import MqttIngest, Outbound
from tests.support.broker import MosquittoBroker

pytestmark = pytest.mark.mqtt


async def _no_batch(batch: object) -> None:
    raise AssertionError("no message is delivered in this test")


async def test_failed_ack_publishes_are_counted_and_logged_once_a_minute(
    broker_factory: Callable[..., MosquittoBroker], caplog: pytest.LogCaptureFixture
) -> None:
    broker = broker_factory()
    metrics = GatewayMetrics()
    settings = MqttSettings(host=broker.host, port=broker.port, client_id="gw-ackfail")
    ingest = MqttIngest(settings, _no_batch, None, metrics.ack_publish_failures.inc)
    client = ingest._client()
    with contextlib.suppress(aiomqtt.MqttError):
        async with client:
            broker.kill()
            async with asyncio.timeout(10):
                # paho's connection flag has no event to wait on
                while client._client.is_connected():  # noqa: ASYNC110
                    await asyncio.sleep(0.05)
            acks = [Outbound(f"guanjia/v1/s/cam-{i}/ack", b"{}") for i in range(3)]
            with caplog.at_level(logging.WARNING, logger="gateway.mqtt"):
                await ingest._publish_after_commit(client, acks)
                async with asyncio.timeout(30):
                    while ingest._publishing:
                        await asyncio.wait(ingest._publishing)
    assert ingest.publish_failures == 3
    assert "guanjia_ack_publish_failures_total 3.0" in metrics.render().decode()
    lines = [r.getMessage() for r in caplog.records if "ack publish" in r.getMessage()]
    assert len(lines) == 1, lines  # rate-limited: the first failure, not one per ack
    assert "guanjia/v1/s/cam-0/ack" in lines[0]
