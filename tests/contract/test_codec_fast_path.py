"""`decode`'s fast path (pydantic straight from bytes) decides exactly as the careful path.

Every example file, and thousands of seeded mutations of each (values swapped for other
JSON values, keys dropped, renamed or duplicated, bytes flipped, texts the fast path must
not accept), is decoded both ways: the same message, or the same typed error with the same
text.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

import contract as c
from contract.codec import decode_careful
from tests.contract.test_codec import BY_SCHEMA, EXAMPLE_FILES

ODD_VALUES: list[Any] = [
    None,
    True,
    0,
    -1,
    1.5,
    2**31,
    2**64,
    1e400,
    "",
    "x" * 200,
    "NaN",
    "é",
    [],
    [1, 2],
    {},
    {"a": 1},
    "guanjia.status/1",
]
RAW_SPLICES = [b"NaN", b"Infinity", b"-Infinity", b"\\u0041", b"\xff", b"\x00", b" ", b"}", b","]


def outcome(model: Any, payload: bytes, careful: bool) -> tuple[str, object]:
    try:
        message = decode_careful(model, payload) if careful else c.decode(model, payload)
    except c.ContractError as exc:
        return type(exc).__name__, str(exc)
    return "ok", message


def mutations(data: dict[str, Any], rng: random.Random, n: int) -> list[bytes]:
    out: list[bytes] = []
    keys = list(data)
    for _ in range(n):
        body = json.loads(json.dumps(data))
        kind = rng.randrange(7)
        key = rng.choice(keys)
        if kind == 0:
            body[key] = rng.choice(ODD_VALUES)
        elif kind == 1:
            del body[key]
        elif kind == 2:
            body["schema_" if rng.random() < 0.5 else key + "x"] = body.pop(key)
        elif kind == 3 and isinstance(body[key], dict | list) and body[key]:
            inner = body[key]
            if isinstance(inner, list):
                inner[rng.randrange(len(inner))] = rng.choice(ODD_VALUES)
            else:
                inner[rng.choice(list(inner))] = rng.choice(ODD_VALUES)
        raw = json.dumps(body, separators=(",", ":")).encode()
        if kind == 4:
            at = rng.randrange(len(raw))
            raw = raw[:at] + rng.choice(RAW_SPLICES) + raw[at:]
        elif kind == 5:
            # A duplicate key: the last one wins on both paths.
            raw = raw[:-1] + b"," + json.dumps({key: rng.choice(ODD_VALUES)})[1:-1].encode() + b"}"
        elif kind == 6:
            at = rng.randrange(len(raw))
            raw = raw[:at] + bytes([rng.randrange(256)]) + raw[at + 1 :]
        out.append(raw)
    return out


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: p.name)
def test_fast_and_careful_paths_decide_alike(path: Path) -> None:
    raw = path.read_bytes()
    data = json.loads(raw)
    model = BY_SCHEMA[data["schema"]]
    rng = random.Random(path.name)
    payloads = [raw, json.dumps(data).encode(), *mutations(data, rng, 1500)]
    accepted = 0
    for payload in payloads:
        fast, careful = outcome(model, payload, False), outcome(model, payload, True)
        assert fast == careful, payload
        accepted += fast[0] == "ok"
    # Both kinds of outcome are exercised, not only refusals.
    assert 1 <= accepted < len(payloads)


def test_schema_under_its_field_name_is_refused_on_both_paths() -> None:
    body = json.loads((Path(__file__).parent / "examples" / "status.json").read_text())
    body["schema_"] = body.pop("schema")
    raw = json.dumps(body).encode()
    with pytest.raises(c.SchemaVersionError):
        c.decode(c.Status, raw)
    escaped = raw.replace(b'"schema_"', b'"\\u0073chema_"')
    with pytest.raises(c.SchemaVersionError):
        c.decode(c.Status, escaped)
