"""Snapshots: checked against the event's SnapshotRef in either arrival order (finding 12),
orphans deleted after a TTL and a per-device hourly byte quota (finding 13)."""

from __future__ import annotations

import pytest

import contract as c
from gateway.ingest import IngestHandler, IngestQuotas, Outcome
from gateway.sla import DEFAULT_POLICIES
from gateway.store import NotFoundError, Store
from tests.gateway.factories import T0, event, jpeg, pair, seed_site, snapshot_ref

SITE = "site-s"


@pytest.fixture
def handler(store: Store) -> IngestHandler:
    seed_site(store, SITE, ("cam-a", "cam-b"))
    return IngestHandler(store, dict(DEFAULT_POLICIES), cooldown_s=600)


def _snap(handler: IngestHandler, snapshot_id: str, data: bytes, now: float = T0) -> Outcome:
    topic = str(c.snapshot_topic(SITE, "cam-a", snapshot_id))
    return handler.handle(topic, data, now).outcome


def _evidence(store: Store, event_id: str) -> list[tuple[str | None, dict[str, object]]]:
    out = []
    for ticket in store.tickets.list_tickets(limit=500).items:
        for e in store.tickets.get_ticket(ticket.id).evidence:
            if e.event_id == event_id:
                out.append((e.snapshot_id, e.detail))
    return out


@pytest.mark.parametrize("snapshot_first", [True, False])
def test_matching_snapshot_is_attached_in_either_order(
    handler: IngestHandler, store: Store, snapshot_first: bool
) -> None:
    data = jpeg(b"real")
    ev = event(SITE, "cam-a", "ev-snap-0001", snapshot=snapshot_ref("snap-1", data))
    if snapshot_first:
        assert _snap(handler, "snap-1", data) is Outcome.ACCEPTED
    assert handler.handle(*pair(ev), T0 + 1).outcome is Outcome.ACCEPTED
    if not snapshot_first:
        assert _snap(handler, "snap-1", data, T0 + 2) is Outcome.ACCEPTED
    [(snapshot_id, detail)] = _evidence(store, "ev-snap-0001")
    assert snapshot_id == "snap-1"
    assert "snapshot_refused" not in detail
    assert store.tickets.snapshot(SITE, "cam-a", "snap-1") == data


def test_snapshot_that_arrived_first_and_does_not_match_is_not_evidence(
    handler: IngestHandler, store: Store
) -> None:
    forged, announced = jpeg(b"forged", 300), jpeg(b"real", 300)
    assert _snap(handler, "snap-2", forged) is Outcome.ACCEPTED
    ev = event(SITE, "cam-a", "ev-snap-0002", snapshot=snapshot_ref("snap-2", announced))
    assert handler.handle(*pair(ev), T0 + 1).outcome is Outcome.ACCEPTED  # the alert stands
    [(snapshot_id, detail)] = _evidence(store, "ev-snap-0002")
    assert snapshot_id is None
    assert "sha256" in str(detail["snapshot_refused"])
    assert [d.error_kind for d in store.inbox.list_dead_letters(None)] == ["SnapshotMismatch"]


@pytest.mark.parametrize("wrong", ["bytes", "size"])
def test_snapshot_that_arrives_after_the_event_and_does_not_match_is_refused(
    handler: IngestHandler, store: Store, wrong: str
) -> None:
    announced = jpeg(b"real", 300)
    ev = event(SITE, "cam-a", "ev-snap-0003", snapshot=snapshot_ref("snap-3", announced))
    handler.handle(*pair(ev), T0)
    sent = jpeg(b"fake", 300) if wrong == "bytes" else announced + b"\x00"
    assert _snap(handler, "snap-3", sent, T0 + 1) is Outcome.DEAD_LETTER
    with pytest.raises(NotFoundError):
        store.tickets.snapshot(SITE, "cam-a", "snap-3")
    # The real one can still come.
    assert _snap(handler, "snap-3", announced, T0 + 2) is Outcome.ACCEPTED
    assert store.tickets.snapshot(SITE, "cam-a", "snap-3") == announced


def test_orphan_snapshots_are_deleted_after_their_ttl(handler: IngestHandler, store: Store) -> None:
    batch = [
        (str(c.snapshot_topic(SITE, "cam-a", f"orphan-{i}")), jpeg(str(i).encode()))
        for i in range(200)
    ]
    kept = jpeg(b"kept")
    batch.append((str(c.snapshot_topic(SITE, "cam-a", "kept")), kept))
    assert {r.outcome for r in handler.handle_batch(batch, T0)} == {Outcome.ACCEPTED}
    ev = event(SITE, "cam-a", "ev-kept-0001", snapshot=snapshot_ref("kept", kept))
    handler.handle(*pair(ev), T0 + 10)
    assert store.inbox.prune_snapshots(orphaned_before=T0 - 1, pending_before=T0 - 1) == 0
    assert store.inbox.prune_snapshots(orphaned_before=T0 + 1, pending_before=T0 - 1) == 200
    with pytest.raises(NotFoundError):
        store.tickets.snapshot(SITE, "cam-a", "orphan-7")
    assert store.tickets.snapshot(SITE, "cam-a", "kept") == kept


def test_snapshot_bytes_per_device_per_hour_are_capped(store: Store) -> None:
    seed_site(store, SITE, ("cam-a", "cam-b"))
    quotas = IngestQuotas(snapshot_bytes_per_hour=10_000)
    handler = IngestHandler(store, dict(DEFAULT_POLICIES), cooldown_s=600, quotas=quotas)
    outcomes = [_snap(handler, f"q-{i}", jpeg(str(i).encode(), 3000), T0 + i) for i in range(5)]
    assert outcomes == [Outcome.ACCEPTED] * 3 + [Outcome.DROPPED] * 2
    other = handler.handle(str(c.snapshot_topic(SITE, "cam-b", "q-0")), jpeg(size=3000), T0)
    assert other.outcome is Outcome.ACCEPTED  # another device has its own budget
    assert _snap(handler, "q-9", jpeg(b"9", 3000), T0 + 3601) is Outcome.ACCEPTED


@pytest.mark.parametrize("name", ["a.b", "x" * 65, "../etc", "snap 1"])
def test_snapshots_are_stored_only_under_contract_ids(
    handler: IngestHandler, store: Store, name: str
) -> None:
    result = handler.handle(f"guanjia/v1/{SITE}/cam-a/snapshot/{name}", jpeg(), T0)
    assert result.outcome is Outcome.DEAD_LETTER
    assert (result.reason or "").startswith("TopicError")
    assert store.inbox.prune_snapshots(orphaned_before=T0 + 1, pending_before=T0 + 1) == 0
