"""Acks whose publish fails are not a loss (the device re-sends until it gets one), but they
are visible: counted in `guanjia_ack_publish_failures_total` and logged, at most once a
minute. Real broker: it is killed while the batch commits, so the batch's acks go out on a
connection that is gone."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

import pytest

from gateway.metrics import GatewayMetrics
from gateway.mqtt import MqttIngest, Outbound
from gateway.mqtt_settings import MqttSettings
from tests.gateway.test_mqtt_ack import publish
from tests.support.broker import MosquittoBroker

pytestmark = pytest.mark.mqtt


async def test_failed_ack_publishes_are_counted_and_logged_once_a_minute(
    broker_factory: Callable[..., MosquittoBroker], caplog: pytest.LogCaptureFixture
) -> None:
    broker = broker_factory()
    metrics = GatewayMetrics()
    settings = MqttSettings(
        host=broker.host, port=broker.port, client_id="gw-ackfail", sites=["s"], reconnect_s=30
    )
    committed = asyncio.Event()

    async def commit_while_the_broker_dies(batch: Sequence[tuple[str, bytes]]) -> list[Outbound]:
        broker.kill()
        await asyncio.sleep(0.5)  # the loss reaches the connection before the acks go
        committed.set()
        return [Outbound(f"guanjia/v1/s/cam-{i}/ack", b"{}") for i in range(3)]

    three_failed = asyncio.Event()

    def failed() -> None:
        metrics.ack_publish_failures.inc()
        if ingest.publish_failures >= 3:
            three_failed.set()

    ingest = MqttIngest(settings, commit_while_the_broker_dies, None, failed)
    task = asyncio.create_task(ingest.run())
    try:
        await asyncio.wait_for(ingest.connected.wait(), 10)
        with caplog.at_level(logging.WARNING, logger="gateway.mqtt"):
            await asyncio.to_thread(publish, broker, "guanjia/v1/s/cam-0/event", [b"{}"])
            await asyncio.wait_for(committed.wait(), 10)
            await asyncio.wait_for(three_failed.wait(), 10)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert ingest.publish_failures == 3
    assert "guanjia_ack_publish_failures_total 3.0" in metrics.render().decode()
    lines = [r.getMessage() for r in caplog.records if "ack publish" in r.getMessage()]
    assert len(lines) == 1, lines  # rate-limited: the first failure, not one per ack
    assert "guanjia/v1/s/cam-0/ack" in lines[0]
