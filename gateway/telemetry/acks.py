"""The end-to-end Acks of a telemetry batch, encoded cheaply (msgspec).

The readings' Acks are the contract's `Ack` (`gateway.acks.build_acks` decides which ids
each names); only the encoding differs. Through pydantic (`contract.encode`) an Ack cost
~35 µs here, a quarter of the bare broker drain's cost per message: with nodes reporting
every 10 s every reading of a batch is from another node, so every reading costs one Ack.
msgspec writes the same bytes in ~3 µs (tests/gateway/telemetry/test_acks.py holds the two
byte for byte, and the contract's decoder accepts them). Each Ack's own msg id is one random
id per call plus a counter (``<uuid4 hex>-<n>``): a uuid4 per Ack (a getrandom system call
each) cost ~2.4 µs, as much as the encoding.
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from contract import MAX_ACK_IDS, Ack, new_msg_id
from contract.topics import ack_topic
from gateway.acks import Committed, ids_by_device


class _WireAck(msgspec.Struct, frozen=True):
    """`contract.Ack`'s JSON, field for field, in the order pydantic writes them."""

    schema: str
    msg_id: str
    ts: float
    site_id: str
    device_id: str
    msg_ids: list[str]
    snapshot_ids: list[str]


_ENCODER = msgspec.json.Encoder()

_TOPICS: dict[tuple[str, str], str] = {}
"""Each device's Ack topic: building one checks both segments (~9 µs here, as much as the
Ack's encoding), and the same few thousand devices report all day."""

TOPIC_CACHE = 50_000
"""The most Ack topics remembered (cleared when full: devices come from the broker)."""


def _ack_topic(site_id: str, device_id: str) -> str:
    topic = _TOPICS.get((site_id, device_id))
    if topic is None:
        if len(_TOPICS) >= TOPIC_CACHE:
            _TOPICS.clear()
        topic = _TOPICS[(site_id, device_id)] = str(ack_topic(site_id, device_id))
    return topic


def ack_messages(committed: Iterable[Committed], now: float) -> list[tuple[str, bytes]]:
    """(topic, payload) of the Acks naming `committed`: what `build_acks` builds (one per
    device, ids in order, each once, at most MAX_ACK_IDS each), without a pydantic model
    per Ack (`Ack.model_construct` alone cost ~9 µs)."""
    by_device = ids_by_device(committed)
    out: list[tuple[str, bytes]] = []
    base = new_msg_id()
    for (site_id, device_id), (msg_ids, snapshot_ids) in by_device.items():
        mids, sids = list(msg_ids), list(snapshot_ids)
        topic = _ack_topic(site_id, device_id)
        for start in range(0, max(len(mids), len(sids)), MAX_ACK_IDS):
            wire = _WireAck(
                Ack.SCHEMA,
                f"{base}-{len(out)}",
                now,
                site_id,
                device_id,
                mids[start : start + MAX_ACK_IDS],
                sids[start : start + MAX_ACK_IDS],
            )
            out.append((topic, _ENCODER.encode(wire)))
    return out
