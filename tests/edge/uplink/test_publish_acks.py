"""Which publish a PUBACK answers (`edge.publish_acks.PendingAcks`), without a broker."""

from __future__ import annotations

from edge.publish_acks import PendingAcks, Waiting


def _waiting(topic: str) -> Waiting:
    return Waiting(topic, lambda ok, why: None)


def test_an_ack_that_beats_its_mid_is_handed_to_track() -> None:
    acks: PendingAcks[str] = PendingAcks()
    assert acks.acked(7, "success") == (False, None)
    assert acks.track(7, 42) == "success"  # the caller delivers it at once
    assert acks.acked(7, "again") == (False, None)  # not recorded twice


def test_a_recorded_mid_returns_its_token_once() -> None:
    acks: PendingAcks[str] = PendingAcks()
    assert acks.track(1, 42) is None
    assert acks.acked(1, "success") == (True, 42)
    assert acks.track(1, 43) is None  # a new publish with the reused mid
    assert acks.acked(1, "success") == (True, 43)


def test_reset_forgets_everything_and_returns_the_waiting_callers() -> None:
    acks: PendingAcks[str] = PendingAcks()
    waiting = _waiting("ctl/door")
    acks.track(1, 42)
    acks.track(2, waiting)
    acks.track(3, None)
    acks.acked(9, "early")
    assert acks.reset() == [waiting]
    assert acks.acked(1, "success") == (False, None)
    assert acks.track(9, 5) is None  # the early ack of the old connection is gone


def test_a_dropped_connection_forgets_only_the_waiting_callers() -> None:
    acks: PendingAcks[str] = PendingAcks()
    waiting = _waiting("ctl/door")
    acks.track(1, 42)
    acks.track(2, waiting)
    assert acks.drop_waiting() == [waiting]
    assert acks.acked(2, "success") == (False, None)
    assert acks.acked(1, "success") == (True, 42)  # the outbox row's attempt still counts
