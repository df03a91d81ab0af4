"""Issue 8, finding 13 (retained): only `status` may be retained; anything else retained is
dead-lettered with the reason and never applied, whether it arrives live or at subscribe."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

import contract as c
from tests.gateway.factories import event
from tests.gateway.proc import Publisher, start_gateway, wait_for
from tests.gateway.test_multiprocess import counts, prepare, rows
from tests.support.broker import MosquittoBroker

pytestmark = pytest.mark.mqtt


def test_retained_event_is_dead_lettered_and_retained_status_applies(
    broker_factory: Callable[..., MosquittoBroker], tmp_path: Path, sqlite_url: str, site_id: str
) -> None:
    broker = broker_factory()
    prepare(sqlite_url, site_id, ("cam-a",))
    publisher = Publisher(broker, "pub-retained")
    # One retained before the gateway first subscribes (it arrives at subscribe) ...
    early = event(site_id, "cam-a", "ev-ret-early")
    topic = str(c.event_topic(site_id, "cam-a"))
    publisher.client.publish(topic, c.encode(early), qos=1, retain=True).wait_for_publish(10)
    gateway = start_gateway(tmp_path, sqlite_url, broker, "gw-retained")
    try:
        gateway.wait_ready()
        wait_for(lambda: counts(sqlite_url)["dead_letters"] == 1, 15, "the early dead letter")
        # ... one retained while it runs (arrives live), then a plain event and a status.
        live = event(site_id, "cam-a", "ev-ret-live", zone_id="zone-b")
        publisher.client.publish(topic, c.encode(live), qos=1, retain=True).wait_for_publish(10)
        plain = event(site_id, "cam-a", "ev-plain", zone_id="zone-c")
        publisher.send(plain, topic)
        status = c.Status(
            msg_id=c.new_msg_id(),
            ts=time.time(),
            site_id=site_id,
            device_id="cam-a",
            state="online",
        )
        publisher.client.publish(
            str(c.status_topic(site_id, "cam-a")), c.encode(status), qos=1, retain=True
        ).wait_for_publish(10)
        publisher.close()
        wait_for(lambda: counts(sqlite_url)["tickets"] == 1, 15, "the plain event's ticket")
        wait_for(lambda: counts(sqlite_url)["dead_letters"] == 2, 15, "the live dead letter")
        wait_for(
            lambda: rows(sqlite_url, "SELECT online FROM devices")[0][0] in (1, True),
            15,
            "the retained status applied",
        )
        letters = rows(sqlite_url, "SELECT error_kind, reason, topic FROM dead_letters")
        assert {r[0] for r in letters} == {"RetainedRefused"}
        assert all("only 'status' may be retained" in str(r[1]) for r in letters)
        assert all(str(r[2]) == topic for r in letters)
        evidence = rows(sqlite_url, "SELECT event_id FROM evidence")
        assert evidence == [("ev-plain",)]

        # A restart resumes the session: the retained copies are not replayed (they would
        # arrive at subscribe, before the event published after it).
        gateway.stop()
        gateway = start_gateway(tmp_path, sqlite_url, broker, "gw-retained")
        gateway.wait_ready()
        after = Publisher(broker, "pub-retained-2")
        after.send(event(site_id, "cam-a", "ev-after", zone_id="zone-d"), topic)
        after.close()
        wait_for(lambda: counts(sqlite_url)["tickets"] == 2, 15, "the later event's ticket")
        assert counts(sqlite_url)["dead_letters"] == 2
    finally:
        gateway.stop()


def test_a_device_flooding_retained_events_stays_within_its_dead_letter_quota(
    broker_factory: Callable[..., MosquittoBroker], tmp_path: Path, sqlite_url: str, site_id: str
) -> None:
    """Retained refusals count against the same per-device per-minute quota as every other
    dead letter: beyond it they are dropped (counted in the metrics), not stored."""
    broker = broker_factory()
    prepare(sqlite_url, site_id, ("cam-a",))
    gateway = start_gateway(
        tmp_path, sqlite_url, broker, "gw-retained-flood", dead_letters_per_device_per_minute=3
    )
    try:
        gateway.wait_ready()
        publisher = Publisher(broker, "pub-retained-flood")
        topic = str(c.event_topic(site_id, "cam-a"))
        for i in range(12):
            flood = event(site_id, "cam-a", f"ev-flood-{i:02d}")
            publisher.client.publish(topic, c.encode(flood), qos=1, retain=True)
        # After the flood, in order on the same connection: when its ticket exists, every
        # retained copy before it was handled.
        publisher.send(event(site_id, "cam-a", "ev-after-flood", zone_id="zone-z"), topic)
        publisher.close()
        wait_for(lambda: counts(sqlite_url)["tickets"] == 1, 15, "the event after the flood")
        assert counts(sqlite_url)["dead_letters"] == 3
        metrics = gateway.metrics()
        assert 'guanjia_ingest_messages_total{channel="event",outcome="dropped"} 9.0' in metrics
        assert 'guanjia_dead_letters_total{channel="event"} 3.0' in metrics
    finally:
        gateway.stop()
