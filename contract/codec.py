"""Bytes ↔ messages: size limits, JSON, schema check, field errors mapped to typed errors."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from pydantic import ValidationError

from contract.errors import (
    InvalidFieldError,
    MalformedJSONError,
    MessageFieldError,
    MissingFieldError,
    PayloadTooLargeError,
    SchemaVersionError,
    UnknownFieldError,
)
from contract.messages import (
    Ack,
    Command,
    CommandResult,
    DetectionEvent,
    Heartbeat,
    Manifest,
    Message,
    Status,
    TelemetryBatch,
)
from contract.topics import Channel, Topic, parse_topic

MAX_MESSAGE_BYTES = 256 * 1024
"""Largest JSON message on any channel (a full TelemetryBatch of 1,000 points fits)."""

MAX_SNAPSHOT_BYTES = 1024 * 1024
"""Largest JPEG snapshot; the edge re-encodes at lower quality until it fits."""

CHANNEL_MESSAGES: dict[Channel, type[Message]] = {
    Channel.STATUS: Status,
    Channel.HEARTBEAT: Heartbeat,
    Channel.EVENT: DetectionEvent,
    Channel.TELEMETRY: TelemetryBatch,
    Channel.CMD: Command,
    Channel.CMD_RESULT: CommandResult,
    Channel.ACK: Ack,
}

M = TypeVar("M", Message, Manifest)


def encode(message: Message | Manifest) -> bytes:
    """Compact UTF-8 JSON of a message, `schema` included."""
    return message.model_dump_json(by_alias=True).encode()


def _reject_constant(name: str) -> float:
    raise MalformedJSONError(f"JSON constant {name} is not allowed")


def _load_object(payload: bytes | str, limit: int) -> dict[str, Any]:
    size = len(payload.encode() if isinstance(payload, str) else payload)
    if size > limit:
        raise PayloadTooLargeError(size, limit)
    try:
        data = json.loads(payload, parse_constant=_reject_constant)
    except UnicodeDecodeError as exc:
        raise MalformedJSONError(
            f"payload is not UTF-8: {exc.reason} at byte {exc.start}"
        ) from None
    except json.JSONDecodeError as exc:
        raise MalformedJSONError(f"payload is not JSON: {exc.msg} at char {exc.pos}") from None
    except RecursionError:
        # Python's parser recurses per nesting level; within the size limit a payload can
        # still nest deeper than the interpreter's stack allows. That is bad input too.
        raise MalformedJSONError("payload is not JSON: nested too deeply") from None
    if not isinstance(data, dict):
        raise MalformedJSONError(f"payload is a JSON {type(data).__name__}, not an object")
    return data


def _field_error(exc: ValidationError) -> MessageFieldError:
    errors = exc.errors(include_url=False)
    first = errors[0]
    field = ".".join(str(part) for part in first["loc"]) or "(message)"
    detail = first["msg"]
    if len(errors) > 1:
        detail += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
    kind = first["type"]
    if kind == "extra_forbidden":
        return UnknownFieldError(field, "not defined by the schema")
    if kind == "missing":
        return MissingFieldError(field, "required")
    return InvalidFieldError(field, detail)


_CAREFUL_PATH_TEXTS = (b"NaN", b"Infinity", b"schema_", b"\\u")
"""Texts that send a payload down the careful path even when they sit inside a string:
pydantic's JSON parser accepts the constants NaN and Infinity, which the contract refuses,
and validation by field name would accept ``schema_`` (written plainly or through a
``\\u`` escape) where the contract requires the key ``schema``."""


def _decode_fast(model: type[M], payload: bytes) -> M | None:
    """The common case in one pass: pydantic validates straight from the bytes, building no
    intermediate dict. None whenever the careful path must decide (any validation error, a
    missing `schema` or `msg_id`, a possible NaN/Infinity), so both paths accept exactly
    the same payloads and every refusal carries the careful path's typed error."""
    if any(text in payload for text in _CAREFUL_PATH_TEXTS):
        return None
    try:
        message = model.model_validate_json(payload)
    except ValidationError:
        return None
    fields = message.model_fields_set
    if "schema_" not in fields or (issubclass(model, Message) and "msg_id" not in fields):
        return None
    return message


def decode(model: type[M], payload: bytes | str, *, limit: int = MAX_MESSAGE_BYTES) -> M:
    """Parse `payload` as `model` or raise the ContractError subclass that names the problem."""
    if isinstance(payload, bytes) and len(payload) <= limit:
        fast = _decode_fast(model, payload)
        if fast is not None:
            return fast
    return decode_careful(model, payload, limit=limit)


def decode_careful(model: type[M], payload: bytes | str, *, limit: int = MAX_MESSAGE_BYTES) -> M:
    """`decode` without the fast path: JSON to a dict, then each check in turn, so a refusal
    names its problem. `decode` falls back to it; tests compare the two."""
    data = _load_object(payload, limit)
    schema = data.get("schema")
    if schema != model.SCHEMA:
        raise SchemaVersionError(model.SCHEMA, schema)
    if issubclass(model, Message) and "msg_id" not in data:
        # Builders get a fresh msg_id by default; a message off the wire without one could not
        # be de-duplicated, so it is missing rather than defaulted.
        raise MissingFieldError("msg_id", "required: receivers drop redeliveries by it")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise _field_error(exc) from None


def decode_for_topic(topic: str, payload: bytes) -> tuple[Topic, Message | bytes]:
    """Parse a message received on `topic`: a model for JSON channels, bytes for snapshots.

    The body's `site_id`/`device_id` must match the topic (a device cannot speak for another in
    the body while its ACL lets it publish only under its own prefix).
    """
    parsed = parse_topic(topic)
    if parsed.channel is Channel.SNAPSHOT:
        if len(payload) > MAX_SNAPSHOT_BYTES:
            raise PayloadTooLargeError(len(payload), MAX_SNAPSHOT_BYTES)
        if not payload.startswith(b"\xff\xd8"):
            raise MalformedJSONError("snapshot payload is not a JPEG (no SOI marker)")
        return parsed, payload
    message = decode(CHANNEL_MESSAGES[parsed.channel], payload)
    for field, expected in (("site_id", parsed.site_id), ("device_id", parsed.device_id)):
        got = getattr(message, field)
        if got != expected:
            raise InvalidFieldError(field, f"{got!r} does not match the topic's {expected!r}")
    if isinstance(message, Command) and message.name != parsed.name:
        raise InvalidFieldError(
            "name", f"{message.name!r} does not match the topic's {parsed.name!r}"
        )
    return parsed, message
