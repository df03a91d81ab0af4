"""Planned sends become valid contract messages on the right topics (pure)."""

from __future__ import annotations

import hashlib

import pytest

import contract as c
from gateway.telemetry.esphome import EsphomeState, parse
from guanjia.sim.plan import EventSend, Planned, SimSpec, plan
from guanjia.sim.runner import kind_of
from guanjia.sim.wire import SNAPSHOT_JPEG, Outgoing, to_wire

T0 = 1_780_000_000.0
Wire = list[tuple[Planned, list[Outgoing]]]
SPEC = SimSpec(cameras=4, sensors=4, esphome=2, duration_s=40, event_rate=3, snapshot_ratio=0.5)


@pytest.fixture(scope="module")
def wire() -> Wire:
    return [(s, to_wire(s, SPEC.site_id, T0, T0 + s.at)) for s in plan(SPEC)]


def test_every_publication_decodes_on_its_topic(wire: Wire) -> None:
    kinds = set()
    for _, outs in wire:
        for out in outs:
            kind = kind_of(out.topic)
            kinds.add(kind)
            if kind == "esphome":
                assert isinstance(parse(out.topic, out.payload), EsphomeState)
                assert out.ack_key is None
                continue
            topic, message = c.decode_for_topic(out.topic, out.payload)
            assert topic.device_id == out.device_id
            if isinstance(message, c.DetectionEvent | c.TelemetryBatch):
                assert out.ack_key == message.msg_id
                assert out.qos == 1
            elif isinstance(message, c.Heartbeat):
                assert (out.ack_key, out.qos) == (None, 0)
            else:
                assert message == SNAPSHOT_JPEG
                assert out.ack_key == topic.name
    assert kinds == {"event", "snapshot", "heartbeat", "telemetry", "esphome"}


def test_snapshot_goes_first_and_matches_the_events_reference(
    wire: Wire,
) -> None:
    with_snapshot = [outs for s, outs in wire if isinstance(s, EventSend) and s.snapshot_id]
    assert with_snapshot
    for snap, ev in with_snapshot:
        _, event = c.decode_for_topic(ev.topic, ev.payload)
        assert isinstance(event, c.DetectionEvent)
        assert event.snapshot is not None
        assert snap.topic.endswith(f"/snapshot/{event.snapshot.snapshot_id}")
        assert event.snapshot.sha256 == hashlib.sha256(snap.payload).hexdigest()
        assert event.snapshot.size_bytes == len(snap.payload)


def test_event_times_follow_the_plan(wire: Wire) -> None:
    for send, outs in wire:
        if not isinstance(send, EventSend):
            continue
        _, event = c.decode_for_topic(outs[-1].topic, outs[-1].payload)
        assert isinstance(event, c.DetectionEvent)
        assert event.started_at == pytest.approx(T0 + send.started_at)
        assert event.ts == pytest.approx(T0 + send.at)
        assert event.dwell_s == pytest.approx(send.at - send.started_at, abs=1e-6)
        assert (event.phase, event.seq, event.zone_id) == (send.phase, send.seq, send.zone_id)
        assert (event.ended_at is not None) == (send.phase is c.EventPhase.END)


def test_msg_ids_are_unique(wire: Wire) -> None:
    keys = [out.ack_key for _, outs in wire for out in outs if out.ack_key is not None]
    assert len(keys) == len(set(keys))
