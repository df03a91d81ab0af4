"""Ingest on a real database: events become tickets idempotently; bad input is dead-lettered."""

from __future__ import annotations

import hashlib

import pytest

import contract as c
from gateway.ingest import IngestHandler, Outcome
from gateway.lifecycle import TicketState
from gateway.models import ShiftPublic
from gateway.sla import DEFAULT_POLICIES, TicketCategory
from gateway.store import Store
from tests.gateway.factories import T0, event, heartbeat, seed_site, topic_of

SITE = "site-1"


@pytest.fixture
def handler(store: Store) -> IngestHandler:
    seed_site(store, SITE, ("cam-a", "cam-b"))
    return IngestHandler(store, dict(DEFAULT_POLICIES), cooldown_s=600)


def send(handler: IngestHandler, message: c.Message, now: float = T0) -> Outcome:
    return handler.handle(topic_of(message), c.encode(message), now).outcome


def test_ingest_event_start_opens_one_ticket_routed_to_supervisor(
    handler: IngestHandler, store: Store
) -> None:
    assert send(handler, event(SITE, "cam-a", "ev-00000001")) is Outcome.ACCEPTED
    page = store.tickets.list_tickets()
    assert page.total == 1
    ticket = page.items[0]
    assert ticket.state is TicketState.NEW
    assert ticket.grid_id == f"g-{SITE}"
    assert ticket.assignee == "sup-1"  # nobody on duty: the grid supervisor
    assert ticket.ack_due_at == T0 + 20 * 60
    assert ticket.resolve_due_at == T0 + 30 * 60


def test_a_batch_routes_new_tickets_to_whoever_is_on_duty_in_the_zones_grid(
    handler: IngestHandler, store: Store
) -> None:
    # A batch reads its routing facts up front (`GridRouter.prefetch`): the zone's grid, its
    # supervisor and the shifts covering `now` — an ended or future shift routes nothing.
    store.grids.add_shift(
        ShiftPublic(grid_id=f"g-{SITE}", username="w-1", starts_at=T0 - 60, ends_at=T0 + 60)
    )
    store.grids.add_shift(
        ShiftPublic(grid_id=f"g-{SITE}", username="w-old", starts_at=T0 - 90, ends_at=T0 - 30)
    )
    store.grids.add_shift(
        ShiftPublic(grid_id=f"g-{SITE}", username="w-next", starts_at=T0 + 30, ends_at=T0 + 90)
    )
    batch = [event(SITE, cam, f"ev-duty-{cam}") for cam in ("cam-a", "cam-b")]
    results = handler.handle_batch([(topic_of(m), c.encode(m)) for m in batch], T0)
    assert [r.outcome for r in results] == [Outcome.ACCEPTED] * 2
    tickets = store.tickets.list_tickets().items
    assert [(t.grid_id, t.assignee) for t in tickets] == [(f"g-{SITE}", "w-1")] * 2


def test_ingest_same_message_twice_is_one_ticket_one_evidence(
    handler: IngestHandler, store: Store
) -> None:
    message = event(SITE, "cam-a", "ev-00000001")
    assert send(handler, message) is Outcome.ACCEPTED
    assert send(handler, message, T0 + 5) is Outcome.DUPLICATE
    page = store.tickets.list_tickets()
    assert page.total == 1
    detail = store.tickets.get_ticket(page.items[0].id)
    assert len(detail.evidence) == 1
    assert [a.action for a in detail.audit] == ["open"]


def test_ingest_update_attaches_evidence_and_end_auto_resolves_parking(
    handler: IngestHandler, store: Store
) -> None:
    send(handler, event(SITE, "cam-a", "ev-00000001"))
    send(handler, event(SITE, "cam-a", "ev-00000001", phase=c.EventPhase.UPDATE, seq=1), T0 + 10)
    send(handler, event(SITE, "cam-a", "ev-00000001", phase=c.EventPhase.END, seq=2), T0 + 20)
    ticket = store.tickets.get_ticket(store.tickets.list_tickets().items[0].id)
    assert [e.phase for e in ticket.evidence] == ["start", "update", "end"]
    assert ticket.state is TicketState.RESOLVED
    assert ticket.resolved_by == "system"
    assert ticket.condition_cleared_at == T0 + 20


def test_ingest_end_keeps_litter_open_for_a_person(handler: IngestHandler, store: Store) -> None:
    litter = c.EventCategory.LITTER
    send(handler, event(SITE, "cam-a", "ev-00000001", category=litter))
    send(
        handler,
        event(SITE, "cam-a", "ev-00000001", category=litter, phase=c.EventPhase.END, seq=1),
        T0 + 20,
    )
    ticket = store.tickets.list_tickets().items[0]
    assert ticket.state is TicketState.NEW
    assert ticket.condition_cleared_at == T0 + 20


def test_ingest_second_event_same_zone_merges_into_open_ticket(
    handler: IngestHandler, store: Store
) -> None:
    send(handler, event(SITE, "cam-a", "ev-00000001"))
    send(handler, event(SITE, "cam-a", "ev-00000002"), T0 + 30)
    send(handler, event(SITE, "cam-a", "ev-00000003", zone_id="zone-b"), T0 + 40)
    page = store.tickets.list_tickets(sort="id")
    assert page.total == 2
    assert [t.event_count for t in page.items] == [2, 1]


def test_ingest_event_within_cooldown_reopens_auto_resolved_ticket(
    handler: IngestHandler, store: Store
) -> None:
    send(handler, event(SITE, "cam-a", "ev-00000001"))
    send(handler, event(SITE, "cam-a", "ev-00000001", phase=c.EventPhase.END, seq=1), T0 + 10)
    send(handler, event(SITE, "cam-a", "ev-00000002"), T0 + 100)  # within 600 s cool-down
    assert store.tickets.list_tickets().total == 1
    assert store.tickets.list_tickets().items[0].state is TicketState.NEW
    send(handler, event(SITE, "cam-a", "ev-00000002", phase=c.EventPhase.END, seq=1), T0 + 110)
    send(handler, event(SITE, "cam-a", "ev-00000003"), T0 + 110 + 601)  # after the cool-down
    assert store.tickets.list_tickets().total == 2


def test_ingest_end_before_start_still_one_ticket(handler: IngestHandler, store: Store) -> None:
    # Two replicas may process a start and its end in either order.
    send(handler, event(SITE, "cam-a", "ev-00000001", phase=c.EventPhase.END, seq=1))
    send(handler, event(SITE, "cam-a", "ev-00000001"), T0 + 1)
    page = store.tickets.list_tickets()
    assert page.total == 1
    assert page.items[0].state is TicketState.RESOLVED


@pytest.mark.parametrize(
    ("topic", "payload", "kind"),
    [
        ("guanjia/v1/site-1/cam-a/event", b"{not json", "MalformedJSONError"),
        (
            "guanjia/v1/site-1/cam-a/event",
            b'{"schema": "guanjia.detection_event/9"}',
            "SchemaVersionError",
        ),
        ("guanjia/v2/site-1/cam-a/event", b"{}", "TopicError"),
        ("guanjia/v1/site-1/cam-a/snapshot/s1", b"GIF89a", "MalformedJSONError"),
        ("guanjia/v1/site-1/cam-a/event", b"x" * (300 * 1024), "PayloadTooLargeError"),
    ],
)
def test_ingest_bad_input_is_dead_lettered_with_reason(
    handler: IngestHandler, store: Store, topic: str, payload: bytes, kind: str
) -> None:
    result = handler.handle(topic, payload, T0)
    assert result.outcome is Outcome.DEAD_LETTER
    letters = store.inbox.list_dead_letters(None)
    assert len(letters) == 1
    assert letters[0].error_kind == kind
    assert letters[0].topic == topic
    assert letters[0].reason
    assert len(letters[0].payload_excerpt) <= 513
    assert store.tickets.list_tickets().total == 0


def test_ingest_unknown_device_and_wrong_site_are_dead_lettered(
    handler: IngestHandler, store: Store
) -> None:
    assert send(handler, event(SITE, "cam-zzz", "ev-00000001")) is Outcome.DEAD_LETTER
    assert send(handler, event("other-site", "cam-a", "ev-00000002")) is Outcome.DEAD_LETTER
    reasons = [d.reason for d in store.inbox.list_dead_letters(None)]
    assert any("not registered" in r for r in reasons)
    assert any("registered at site" in r for r in reasons)
    assert store.tickets.list_tickets().total == 0


def test_ingest_heartbeat_marks_online_and_timeout_opens_maintenance_ticket(
    handler: IngestHandler, store: Store
) -> None:
    assert send(handler, heartbeat(SITE, "cam-a"), T0) is Outcome.ACCEPTED
    assert store.devices.get("cam-a").online
    offline_policy = DEFAULT_POLICIES[TicketCategory.DEVICE_OFFLINE]
    assert (
        store.devices.mark_stale_devices(T0 + 60, 3.0, 30.0, offline_policy) == []
    )  # 60 s < 3 × 30 s
    changes = store.devices.mark_stale_devices(T0 + 91, 3.0, 30.0, offline_policy)
    assert [ch.action for ch in changes] == ["offline", "opened"]
    assert not store.devices.get("cam-a").online
    assert store.devices.mark_stale_devices(T0 + 200, 3.0, 30.0, offline_policy) == []
    send(handler, heartbeat(SITE, "cam-a", ts=T0 + 300), T0 + 300)
    ticket = store.tickets.list_tickets(categories=["device_offline"]).items[0]
    assert ticket.state is TicketState.RESOLVED


def test_ingest_snapshot_stored_and_linked_from_evidence(
    handler: IngestHandler, store: Store
) -> None:
    jpeg = b"\xff\xd8\xff\xe0" + b"\x00" * 100
    ref = c.SnapshotRef(
        snapshot_id="snap-1",
        sha256=hashlib.sha256(jpeg).hexdigest(),
        size_bytes=len(jpeg),
        width=4,
        height=4,
    )
    topic = str(c.snapshot_topic(SITE, "cam-a", "snap-1"))
    assert handler.handle(topic, jpeg, T0).outcome is Outcome.ACCEPTED
    assert handler.handle(topic, jpeg, T0).outcome is Outcome.DUPLICATE
    send(handler, event(SITE, "cam-a", "ev-00000001", snapshot=ref))
    detail = store.tickets.get_ticket(store.tickets.list_tickets().items[0].id)
    assert detail.evidence[0].snapshot_id == "snap-1"
    assert store.tickets.snapshot(SITE, "cam-a", "snap-1") == jpeg


def test_ingest_smoke_telemetry_opens_urgent_fire_alarm(
    handler: IngestHandler, store: Store
) -> None:
    batch = c.TelemetryBatch(
        ts=T0,
        site_id=SITE,
        device_id="cam-b",
        sensor_kind="smoke",
        points=[c.TelemetryPoint(metric="smoke_obscuration", value=6.0, ts=T0)],
    )
    assert send(handler, batch) is Outcome.ACCEPTED
    assert send(handler, batch) is Outcome.DUPLICATE
    page = store.tickets.list_tickets(categories=["fire_alarm"])
    assert page.total == 1
    assert page.items[0].ack_due_at == T0 + 60


@pytest.mark.parametrize("heard_by", ["heartbeat", "status"])
def test_ingest_device_heard_again_honours_configured_offline_policy(
    store: Store, heard_by: str
) -> None:
    """`policies.device_offline.auto_resolve_on_end = false`: the device coming back only
    marks the maintenance ticket cleared; a person closes it (the built-in policy would
    auto-resolve it)."""
    seed_site(store, SITE, ("cam-a",))
    keep = DEFAULT_POLICIES[TicketCategory.DEVICE_OFFLINE].model_copy(
        update={"auto_resolve_on_end": False}
    )
    policies = dict(DEFAULT_POLICIES) | {TicketCategory.DEVICE_OFFLINE: keep}
    handler = IngestHandler(store, policies, cooldown_s=600)
    send(handler, heartbeat(SITE, "cam-a"), T0)
    assert [ch.action for ch in store.devices.mark_stale_devices(T0 + 91, 3.0, 30.0, keep)] == [
        "offline",
        "opened",
    ]
    back = (
        heartbeat(SITE, "cam-a", ts=T0 + 300)
        if heard_by == "heartbeat"
        else c.Status(ts=T0 + 300, site_id=SITE, device_id="cam-a", state="online")
    )
    assert send(handler, back, T0 + 300) is Outcome.ACCEPTED
    assert store.devices.get("cam-a").online
    ticket = store.tickets.list_tickets(categories=["device_offline"]).items[0]
    assert ticket.state is TicketState.NEW
    assert ticket.condition_cleared_at == T0 + 300
    actions = [a.action for a in store.tickets.get_ticket(ticket.id).audit]
    assert actions == ["open", "condition_cleared"]
    # Silent again: the next outage lands on the same open ticket.
    changes = store.devices.mark_stale_devices(T0 + 300 + 91, 3.0, 30.0, keep)
    assert [ch.action for ch in changes] == ["offline", "merged"]
    assert store.tickets.list_tickets(categories=["device_offline"]).total == 1
