"""A message after contract validation and the registry check, before any write
(`Decoded`), and what a refused one lets its device forget (`dead`): the ingest handler's
(`gateway.ingest`) input side."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from contract import MAX_MESSAGE_BYTES, Message
from contract.errors import TopicError
from contract.topics import Channel, Topic, parse_topic
from gateway.acks import Committed
from gateway.alerts import Alert

RESENT_CHANNELS = frozenset(
    {Channel.EVENT, Channel.TELEMETRY, Channel.CMD_RESULT, Channel.SNAPSHOT}
)
"""Device channels whose messages wait in the device's outbox for an Ack."""

_IDENTIFIER = re.compile(r"^[A-Za-z0-9_.:-]{8,128}$")  # the contract's msg_id pattern


@dataclass(frozen=True)
class Decoded:
    """A message after contract validation and the registry check, before any write."""

    topic: str
    payload: bytes
    channel: str
    parsed: Topic | None = None
    message: Message | bytes | None = None
    alerts: tuple[Alert, ...] = ()
    dead: tuple[str, str] | None = None  # (error kind, reason)
    committed: Committed | None = None  # what an Ack may name once this is committed


def dead(topic: str, payload: bytes, kind: str, reason: str, *, acked: bool) -> Decoded:
    """A refused message; `acked` only when the input itself caused the refusal."""
    committed = resent(topic, payload) if acked else None
    return Decoded(topic, payload, channel_of(topic), dead=(kind, reason), committed=committed)


def resent(topic: str, payload: bytes) -> Committed | None:
    """For a refused message: what to ack so the device stops re-sending it — when its topic
    is a device channel that waits for acks and its id can be read (best effort: the
    payload is what was refused)."""
    try:
        parsed = parse_topic(topic)
    except TopicError:
        return None
    if parsed.channel not in RESENT_CHANNELS:
        return None
    if parsed.channel is Channel.SNAPSHOT:
        return Committed(parsed.site_id, parsed.device_id, snapshot_id=parsed.name)
    msg_id = msg_id_in(payload)
    return None if msg_id is None else Committed(parsed.site_id, parsed.device_id, msg_id=msg_id)


def msg_id_in(payload: bytes) -> str | None:
    """The msg_id of a refused JSON payload, if it has a well-formed one."""
    if len(payload) > MAX_MESSAGE_BYTES:
        return None
    try:
        body = json.loads(payload)
    except (ValueError, RecursionError):  # UnicodeDecodeError and JSONDecodeError included
        return None
    msg_id = body.get("msg_id") if isinstance(body, dict) else None
    return msg_id if isinstance(msg_id, str) and _IDENTIFIER.match(msg_id) else None


def channel_of(topic: str) -> str:
    parts = topic.split("/")
    if len(parts) >= 5 and parts[4] in Channel.__members__.values():
        return parts[4]
    return "unknown"
