"""`build_acks` builds Acks without validating them again: what it builds must still be what
the contract accepts, split at MAX_ACK_IDS, ids in order and once each."""

from __future__ import annotations

import contract as c
from gateway.acks import Committed, build_acks


def test_built_acks_decode_under_the_contract_and_split_at_the_limit() -> None:
    ids = [f"msg-{i:08d}" for i in range(c.MAX_ACK_IDS * 2 + 5)]
    committed = [Committed("site-a", "cam-a", msg_id=m) for m in ids]
    committed += [Committed("site-a", "cam-a", msg_id=ids[0])]  # a duplicate: named once
    committed += [Committed("site-a", "cam-b", snapshot_id="snap-1")]
    acks = build_acks(committed, 1_795_300_000.0)
    decoded = [c.decode(c.Ack, c.encode(a)) for a in acks]
    assert decoded == acks
    mine = [a for a in acks if a.device_id == "cam-a"]
    assert [len(a.msg_ids) for a in mine] == [c.MAX_ACK_IDS, c.MAX_ACK_IDS, 5]
    assert [m for a in mine for m in a.msg_ids] == ids
    other = [a for a in acks if a.device_id == "cam-b"]
    assert [(a.msg_ids, a.snapshot_ids) for a in other] == [([], ["snap-1"])]
    assert len({a.msg_id for a in decoded}) == len(decoded)
