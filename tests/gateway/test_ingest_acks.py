"""`IngestResult.committed`: what a device may forget once the ingest transaction commits
(events, telemetry and command results by msg_id, snapshots by snapshot_id, dead letters the
input itself caused), and nothing for heartbeats and status, nor for letters that depend on
the gateway's state (an unregistered or moved device, a processing error): the device's
copy is the only full one, so it must keep re-sending."""

from __future__ import annotations

import json

import pytest

import contract as c
from gateway.acks import Committed
from gateway.ingest import IngestHandler, IngestQuotas, Outcome
from gateway.sla import DEFAULT_POLICIES
from gateway.store import Store
from tests.gateway.factories import T0, event, heartbeat, jpeg, pair, seed_site, status

SITE = "site-ack"


@pytest.fixture
def handler(store: Store) -> IngestHandler:
    seed_site(store, SITE, ("cam-a", "cam-b"))
    return IngestHandler(store, dict(DEFAULT_POLICIES), cooldown_s=600)


def _telemetry(msg_id: str) -> c.TelemetryBatch:
    return c.TelemetryBatch(
        msg_id=msg_id,
        ts=T0,
        site_id=SITE,
        device_id="cam-b",
        sensor_kind="smoke",
        points=[c.TelemetryPoint(metric="smoke_obscuration", value=0.5, ts=T0)],
    )


def _result(msg_id: str) -> c.CommandResult:
    return c.CommandResult(
        msg_id=msg_id,
        ts=T0,
        site_id=SITE,
        device_id="cam-a",
        command_id="cmd-00000001",
        name="reload",
        status=c.CommandStatus.OK,
    )


def test_handle_batch_names_every_committed_device_message(handler: IngestHandler) -> None:
    ev = event(SITE, "cam-a", "ev-ack-0001", msg_id="msg-ev-0001")
    snap = (str(c.snapshot_topic(SITE, "cam-a", "snap-1")), jpeg())
    batch = [
        pair(ev),
        pair(_telemetry("msg-tm-0001")),
        pair(_result("msg-cr-0001")),
        snap,
        pair(heartbeat(SITE, "cam-a")),
        pair(status(SITE, "cam-a", "online")),
        pair(ev),  # a duplicate within the batch
    ]
    results = handler.handle_batch(batch, T0)
    assert [r.committed for r in results] == [
        Committed(SITE, "cam-a", msg_id="msg-ev-0001"),
        Committed(SITE, "cam-b", msg_id="msg-tm-0001"),
        Committed(SITE, "cam-a", msg_id="msg-cr-0001"),
        Committed(SITE, "cam-a", snapshot_id="snap-1"),
        None,
        None,
        Committed(SITE, "cam-a", msg_id="msg-ev-0001"),
    ]
    assert results[-1].outcome is Outcome.DUPLICATE
    # Re-sent after the commit (the ack was lost): duplicates, acked again.
    again = handler.handle_batch([pair(ev), snap, pair(_result("msg-cr-0001"))], T0 + 1)
    assert [r.outcome for r in again] == [Outcome.DUPLICATE] * 3
    assert [r.committed for r in again] == [
        results[0].committed,
        results[3].committed,
        results[2].committed,
    ]


def test_input_dead_letters_are_committed_when_the_topic_names_a_device(
    handler: IngestHandler,
) -> None:
    body = json.loads(c.encode(event(SITE, "cam-a", "ev-ack-0002", msg_id="msg-bad-0001")))
    body["seq"] = 2**70  # refused by the contract
    bad = json.dumps(body).encode()
    cases = [
        (f"guanjia/v1/{SITE}/cam-a/event", bad),
        (f"guanjia/v1/{SITE}/cam-a/event", b"{not json"),  # no msg_id to read
        (f"guanjia/v1/{SITE}/cam-a/snapshot/snap-2", b"GIF89a"),
        (f"guanjia/v1/{SITE}/cam-a/heartbeat", b"{}"),  # heartbeats are never re-sent
        ("guanjia/v1/a/b", bad),  # no device channel
        (f"guanjia/v1/{SITE}/cam-a/event", json.dumps(body | {"msg_id": "a/b"}).encode()),
    ]
    for batched in (False, True):
        if batched:
            results = handler.handle_batch(cases, T0 + 5)
        else:
            results = [handler.handle(t, p, T0) for t, p in cases]
        assert {r.outcome for r in results} == {Outcome.DEAD_LETTER}
        assert [r.committed for r in results] == [
            Committed(SITE, "cam-a", msg_id="msg-bad-0001"),
            None,
            Committed(SITE, "cam-a", snapshot_id="snap-2"),
            None,
            None,
            None,
        ]


def test_registry_dead_letters_are_not_committed(handler: IngestHandler) -> None:
    """A letter that depends on the registry (a device not registered yet, or moved to
    another site) keeps only an excerpt: the device must keep its copy and re-send."""
    unknown = event(SITE, "cam-zzz", "ev-ack-0003", msg_id="msg-unk-0001")
    moved = event("site-elsewhere", "cam-a", "ev-ack-0004", msg_id="msg-mov-0001")
    for batched in (False, True):
        cases = [pair(unknown), pair(moved)]
        if batched:
            results = handler.handle_batch(cases, T0 + 5)
        else:
            results = [handler.handle(t, p, T0) for t, p in cases]
        assert [r.outcome for r in results] == [Outcome.DEAD_LETTER] * 2
        assert [r.reason.split(":")[0] for r in results if r.reason] == ["UnknownDevice"] * 2
        assert [r.committed for r in results] == [None, None]


def test_registry_dead_letters_over_the_quota_are_dropped_and_not_committed(
    store: Store,
) -> None:
    """An unregistered device re-sending forever fills at most its per-minute quota of dead
    letters; the rest are dropped (counted) and still not acked."""
    seed_site(store, SITE, ("cam-a",))
    handler = IngestHandler(
        store, dict(DEFAULT_POLICIES), quotas=IngestQuotas(dead_letters_per_minute=3)
    )
    msgs = [
        pair(event(SITE, "cam-zzz", f"ev-q-{i:04d}", msg_id=f"msg-q-{i:04d}")) for i in range(8)
    ]
    results = handler.handle_batch(msgs, T0)
    assert [r.outcome for r in results] == [Outcome.DEAD_LETTER] * 3 + [Outcome.DROPPED] * 5
    assert all(r.committed is None for r in results)
    assert len(store.inbox.list_dead_letters(None)) == 3
