"""Soak (``--run-slow``): end-to-end delivery through broker restarts and kills, none lost.

2,000 events (every 10th with a snapshot) are produced over ~20 s while the broker is
restarted gracefully, killed with -9 (losing what it had not saved: messages it PUBACKed to
the node and never gave the gateway) and started again, and the gateway stand-in withholds its
first 100 acks. Every event and snapshot must end up committed, the outbox empty.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from edge.outbox import Outbox
from edge.uplink import AckPolicy, Uplink
from tests.edge.uplink.support import link_options, make_event, wait_until
from tests.support.ack_gateway import AckingGateway
from tests.support.broker import MosquittoBroker

pytestmark = [pytest.mark.mqtt, pytest.mark.slow]

EVENTS = 2000


def test_soak_broker_restarts_and_kills_lose_no_event(
    broker_factory: Callable[..., MosquittoBroker], site_id: str, tmp_path: Path
) -> None:
    broker = broker_factory()
    gateway = AckingGateway(broker, site_id, withhold_first=100).start()
    outbox = Outbox(tmp_path / "o.db")
    uplink = Uplink(
        link_options(broker, site_id),
        outbox,
        acks=AckPolicy(timeout_s=1.0, max_timeout_s=4.0, window=256),
    )
    uplink.start()
    produced = [make_event(site_id, n, snapshot=n % 10 == 0) for n in range(EVENTS)]

    def produce() -> None:
        start = time.monotonic()
        for i, (event, jpeg) in enumerate(produced):
            uplink.send_event(event, jpeg)
            time.sleep(max(0.0, start + 20.0 * i / EVENTS - time.monotonic()))

    producer = threading.Thread(target=produce)
    producer.start()
    try:
        for fault in ("restart", "kill", "restart", "kill"):
            time.sleep(4)
            if fault == "restart":
                broker.restart()
            else:
                broker.kill()
                broker.start()
        producer.join(timeout=60)
        wait_until(lambda: outbox.stats().depth == 0, 120, "every row acked end to end")
    finally:
        uplink.stop()
        outbox.close()
        gateway.stop()
    msg_ids = {event.msg_id for event, _ in produced}
    snapshot_ids = {e.snapshot.snapshot_id for e, _ in produced if e.snapshot is not None}
    assert set(gateway.committed_msg_ids) == msg_ids
    assert set(gateway.committed_snapshot_ids) == snapshot_ids
    assert set(gateway.received_msg_ids) == msg_ids  # duplicates only by msg_id
    assert uplink.stats().outbox.dropped == 0
    # The withheld ones were received again (re-sent) before they were committed.
    for key in gateway.withheld:
        assert gateway.received_msg_ids[key] + gateway.received_snapshot_ids[key] >= 2
