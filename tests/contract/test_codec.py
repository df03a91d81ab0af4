"""Round trips from the example files, and typed errors for every kind of bad input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import contract as c
from contract.codec import CHANNEL_MESSAGES

EXAMPLES = Path(__file__).parent / "examples"
REPO = Path(__file__).resolve().parents[2]
BY_SCHEMA: dict[str, Any] = {m.SCHEMA: m for m in CHANNEL_MESSAGES.values()} | {
    c.Manifest.SCHEMA: c.Manifest
}
EXAMPLE_FILES = sorted(EXAMPLES.glob("*.json")) + sorted((REPO / "models").glob("*.manifest.json"))


def example(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((EXAMPLES / f"{name}.json").read_text())
    return data


def test_examples_cover_every_schema() -> None:
    schemas = {json.loads(path.read_text())["schema"] for path in EXAMPLE_FILES}
    assert schemas == set(BY_SCHEMA)


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: p.name)
def test_roundtrip_example_file(path: Path) -> None:
    raw = path.read_bytes()
    data = json.loads(raw)
    model = BY_SCHEMA[data["schema"]]
    message = c.decode(model, raw)
    assert json.loads(c.encode(message)) == data
    assert c.decode(model, c.encode(message)) == message


def test_docs_examples_decode() -> None:
    """Every JSON block in docs/contract.md is a valid message, so the doc cannot drift."""
    text = (REPO / "docs" / "contract.md").read_text()
    blocks = [b.split("```", 1)[0] for b in text.split("```json\n")[1:]]
    assert len(blocks) >= len(BY_SCHEMA)
    seen = set()
    for block in blocks:
        data = json.loads(block)
        c.decode(BY_SCHEMA[data["schema"]], block)
        seen.add(data["schema"])
    assert seen == set(BY_SCHEMA)


def test_decode_malformed_json() -> None:
    with pytest.raises(c.MalformedJSONError, match="not JSON"):
        c.decode(c.Status, b'{"schema": ')


def test_decode_not_utf8() -> None:
    with pytest.raises(c.MalformedJSONError, match="not UTF-8"):
        c.decode(c.Status, b'{"a": "\xff"}')


def test_decode_not_an_object() -> None:
    with pytest.raises(c.MalformedJSONError, match="JSON list"):
        c.decode(c.Status, b"[1, 2]")


@pytest.mark.parametrize("opening", [b"[", b'{"a":'])
def test_decode_json_nested_too_deeply_is_malformed(opening: bytes) -> None:
    """Python's parser raises RecursionError on deep nesting; the contract says what it is
    (a MalformedJSONError), so no caller needs to know the parser's limits."""
    payload = b'{"x": ' + opening * 100_000
    assert len(payload) < c.MAX_MESSAGE_BYTES * 4
    with pytest.raises(c.MalformedJSONError, match="nested too deeply"):
        c.decode(c.Status, payload, limit=len(payload))
    topic = str(c.event_topic("site-a", "cam-a"))
    with pytest.raises(c.MalformedJSONError, match="nested too deeply"):
        c.decode_for_topic(topic, payload[: c.MAX_MESSAGE_BYTES])


def test_decode_nan_rejected() -> None:
    data = json.dumps(example("heartbeat")).replace('"cpu_load_1m": 1.2', '"cpu_load_1m": NaN')
    with pytest.raises(c.MalformedJSONError, match="NaN"):
        c.decode(c.Heartbeat, data)


@pytest.mark.parametrize(
    ("schema", "expected_text"),
    [(None, "schema missing"), ("guanjia.status/2", "'guanjia.status/2'"), (7, "7")],
)
def test_decode_wrong_or_missing_schema(schema: object, expected_text: str) -> None:
    data = example("status")
    if schema is None:
        del data["schema"]
    else:
        data["schema"] = schema
    with pytest.raises(c.SchemaVersionError, match=expected_text) as info:
        c.decode(c.Status, json.dumps(data))
    assert info.value.expected == "guanjia.status/1"


def test_decode_other_kind_is_schema_error() -> None:
    with pytest.raises(c.SchemaVersionError):
        c.decode(c.Status, json.dumps(example("heartbeat")))


def test_decode_unknown_field() -> None:
    data = example("detection_event")
    data["licence_plate"] = "粤B12345"
    with pytest.raises(c.UnknownFieldError) as info:
        c.decode(c.DetectionEvent, json.dumps(data))
    assert info.value.field == "licence_plate"


def test_decode_unknown_nested_field() -> None:
    data = example("detection_event")
    data["boxes"][1]["colour"] = "red"
    with pytest.raises(c.UnknownFieldError) as info:
        c.decode(c.DetectionEvent, json.dumps(data))
    assert info.value.field == "boxes.1.colour"


@pytest.mark.parametrize("field", ["msg_id", "event_id", "zone_id", "model"])
def test_decode_missing_field(field: str) -> None:
    data = example("detection_event")
    del data[field]
    with pytest.raises(c.MissingFieldError) as info:
        c.decode(c.DetectionEvent, json.dumps(data))
    assert info.value.field == field


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        (("score",), 1.5, "score"),
        (("boxes", 0, "box"), [0.5, 0.5, 0.1, 0.1], "boxes.0"),
        (("site_id",), "a/b", "site_id"),
        (("phase",), "finished", "phase"),
        (("ended_at",), 1795300400.0, "(message)"),
    ],
)
def test_decode_invalid_value(path: tuple[Any, ...], value: object, field: str) -> None:
    data = example("detection_event")
    target = data
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(c.InvalidFieldError) as info:
        c.decode(c.DetectionEvent, json.dumps(data))
    assert info.value.field == field


def test_decode_oversized_payload() -> None:
    payload = b'{"schema": "guanjia.status/1", "pad": "' + b"x" * c.MAX_MESSAGE_BYTES + b'"}'
    with pytest.raises(c.PayloadTooLargeError) as info:
        c.decode(c.Status, payload)
    assert info.value.limit == c.MAX_MESSAGE_BYTES
    assert str(c.MAX_MESSAGE_BYTES) in str(info.value)


def test_command_result_needs_reason_unless_ok() -> None:
    data = example("command_result")
    data["status"] = "rejected"
    with pytest.raises(c.InvalidFieldError, match="reason is required"):
        c.decode(c.CommandResult, json.dumps(data))


@pytest.mark.parametrize(
    ("field", "value"),
    [("command_id", "cmd\x00-1"), ("reason", "bad\x00"), ("name", "\x00")],
)
@pytest.mark.parametrize("as_bytes", [True, False])
def test_decode_refuses_nul_in_text(field: str, value: str, as_bytes: bool) -> None:
    # PostgreSQL cannot store NUL in text: a poison message, refused as an invalid field
    # (found by the ingest fuzz test, where it failed the whole batch on PostgreSQL).
    data = example("command_result")
    data["status"] = "rejected"
    data["reason"] = "busy"
    data[field] = value
    payload = json.dumps(data)
    with pytest.raises(c.InvalidFieldError, match="NUL characters") as info:
        c.decode(c.CommandResult, payload.encode() if as_bytes else payload)
    assert info.value.field == field


def test_decode_keeps_an_escaped_backslash_u0000_text() -> None:
    data = example("command_result")
    data["command_id"] = "cmd\\u0000-1"  # the six characters \u0000, not a NUL
    result = c.decode(c.CommandResult, json.dumps(data).encode())
    assert isinstance(result, c.CommandResult)
    assert result.command_id == "cmd\\u0000-1"


def test_manifest_class_map_must_name_model_classes() -> None:
    data = json.loads((REPO / "models" / "yolox_nano.manifest.json").read_text())
    data["class_map"]["e-bike"] = "two_wheeler"
    with pytest.raises(c.InvalidFieldError, match="e-bike"):
        c.decode(c.Manifest, json.dumps(data))


def test_decode_for_topic_dispatches_by_channel() -> None:
    raw = (EXAMPLES / "detection_event.json").read_bytes()
    topic, message = c.decode_for_topic("guanjia/v1/xinan-village/edge-lane-07/event", raw)
    assert topic.channel is c.Channel.EVENT
    assert isinstance(message, c.DetectionEvent)


def test_decode_for_topic_body_must_match_topic() -> None:
    raw = (EXAMPLES / "detection_event.json").read_bytes()
    with pytest.raises(c.InvalidFieldError, match="device_id"):
        c.decode_for_topic("guanjia/v1/xinan-village/edge-lane-99/event", raw)


def test_decode_for_topic_command_name_must_match() -> None:
    raw = (EXAMPLES / "command.json").read_bytes()
    with pytest.raises(c.InvalidFieldError, match="name"):
        c.decode_for_topic("guanjia/v1/xinan-village/edge-lift-02/cmd/ping", raw)


def test_decode_for_topic_snapshot_is_bytes() -> None:
    jpeg = b"\xff\xd8\xff\xe0" + b"\x00" * 100
    topic, payload = c.decode_for_topic("guanjia/v1/s/d/snapshot/snap-1", jpeg)
    assert payload == jpeg
    assert topic.name == "snap-1"


def test_decode_for_topic_snapshot_not_jpeg() -> None:
    with pytest.raises(c.MalformedJSONError, match="JPEG"):
        c.decode_for_topic("guanjia/v1/s/d/snapshot/snap-1", b"GIF89a")


def test_decode_for_topic_snapshot_oversized() -> None:
    with pytest.raises(c.PayloadTooLargeError):
        c.decode_for_topic("guanjia/v1/s/d/snapshot/x", b"\xff\xd8" + bytes(c.MAX_SNAPSHOT_BYTES))


def test_decode_for_topic_bad_topic() -> None:
    with pytest.raises(c.TopicError):
        c.decode_for_topic("guanjia/v1/s/d/weather", b"{}")


def test_encode_is_compact_and_carries_schema() -> None:
    message = c.decode(c.Status, json.dumps(example("status")))
    raw = c.encode(message)
    assert b"\n" not in raw
    assert json.loads(raw)["schema"] == "guanjia.status/1"
