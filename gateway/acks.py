"""End-to-end acknowledgements: which device messages a commit made safe. Pure.

A broker's PUBACK is not proof that the gateway has a message; the gateway's commit is. After
each ingest transaction the MQTT edge publishes one `Ack` per device on that device's
``…/ack`` topic, naming every message the commit holds: applied, dropped as a duplicate
(committed before), or dead-lettered (the decision is committed: re-sending cannot change it).
The device deletes a message from its outbox only then, and re-sends it until then.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from contract import MAX_ACK_IDS, Ack, new_msg_id


@dataclass(frozen=True)
class Committed:
    """One device message whose outcome is committed: an event or command result by
    `msg_id`, or a snapshot by `snapshot_id`."""

    site_id: str
    device_id: str
    msg_id: str | None = None
    snapshot_id: str | None = None


def ids_by_device(
    committed: Iterable[Committed],
) -> dict[tuple[str, str], tuple[dict[str, None], dict[str, None]]]:
    """(site, device) → (message ids, snapshot ids) of `committed`, in order, each once
    (dicts as ordered sets)."""
    by_device: dict[tuple[str, str], tuple[dict[str, None], dict[str, None]]] = {}
    for item in committed:
        msg_ids, snapshot_ids = by_device.setdefault((item.site_id, item.device_id), ({}, {}))
        if item.msg_id is not None:
            msg_ids[item.msg_id] = None
        if item.snapshot_id is not None:
            snapshot_ids[item.snapshot_id] = None
    return by_device


def build_acks(committed: Iterable[Committed], now: float) -> list[Ack]:
    """One Ack per device (more when a device has over MAX_ACK_IDS ids), ids in order,
    each id once."""
    by_device = ids_by_device(committed)
    acks: list[Ack] = []
    for (site_id, device_id), (msg_ids, snapshot_ids) in by_device.items():
        mids, sids = list(msg_ids), list(snapshot_ids)
        for start in range(0, max(len(mids), len(sids)), MAX_ACK_IDS):
            # Built without validation: every id comes from a message the contract already
            # validated (or, for a dead letter, `ingest_decoded.msg_id_in`'s identifier check), and
            # validating up to MAX_ACK_IDS ids again was a sixth of an ingest worker's time.
            acks.append(
                Ack.model_construct(
                    msg_id=new_msg_id(),
                    ts=now,
                    site_id=site_id,
                    device_id=device_id,
                    msg_ids=mids[start : start + MAX_ACK_IDS],
                    snapshot_ids=sids[start : start + MAX_ACK_IDS],
                )
            )
    return acks
