"""The readings' Acks (msgspec) are the bytes the contract writes for the Acks
`gateway.acks.build_acks` builds: the same grouping, order, chunks and JSON."""

from __future__ import annotations

import json

import contract as c
from contract.codec import decode_careful
from gateway.acks import Committed, build_acks
from gateway.telemetry.acks import ack_messages

NOW = 1_800_000_000.123456


def test_ack_messages_are_the_contracts_acks_byte_for_byte() -> None:
    committed = [Committed("s", f"shed-{i % 3}", msg_id=f"tb-0000-{i:06d}") for i in range(3500)]
    committed += [Committed("s", "shed-0", msg_id="tb-0000-000000")]  # named once
    committed += [Committed("s", "cam-1", snapshot_id="snap-1"), Committed("t", "shed-0")]
    got = ack_messages(committed, NOW)
    want = build_acks(committed, NOW)
    assert len(got) == len(want) == 7  # ~1,167 ids a shed: 1,000 per Ack at most
    for (topic, payload), ack in zip(got, want, strict=True):
        decode_careful(c.Ack, payload)  # the contract's full validation accepts it
        assert topic == str(c.ack_topic(ack.site_id, ack.device_id))
        same = ack.model_copy(update={"msg_id": json.loads(payload)["msg_id"]})
        assert payload == c.encode(same)
