"""Property test: generated messages on valid topics, most of them valid but for one mutated
field, against the real ingest handler on SQLite and PostgreSQL.

What must hold for every input: `handle` and `handle_batch` return (nothing but the database
being away may raise), no input ends as a ``ProcessingError`` dead letter (that kind means
the gateway itself broke on the input), an unmutated message is accepted, and every dead
letter the database holds can be read back (excerpt and reason storable on every database).

The default profile runs 200 examples per database (a few seconds each);
``GUANJIA_FUZZ_EXAMPLES`` raises it, and the slow-marked variant runs 10,000.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import contract as c
from gateway.ingest import IngestHandler, IngestResult, Outcome
from gateway.sla import DEFAULT_POLICIES
from gateway.store import Store
from tests.gateway.factories import event, heartbeat, seed_site

SITE = "fz-site"
DEVICES = ("cam-a", "cam-b")
EXAMPLES = Path(__file__).resolve().parent.parent / "contract" / "examples"
NOW = 1_795_300_100.0
DEFAULT_EXAMPLES = int(os.environ.get("GUANJIA_FUZZ_EXAMPLES", "200"))
FIELD_ERRORS = {"InvalidFieldError", "MissingFieldError", "UnknownFieldError"}


def _valid_bodies() -> list[dict[str, Any]]:
    snap = c.SnapshotRef(snapshot_id="snap-1", sha256="a" * 64, size_bytes=10, width=4, height=4)
    bodies = [
        json.loads(c.encode(event(SITE, "cam-a", "ev-fuzz-0001", snapshot=snap))),
        json.loads(c.encode(heartbeat(SITE, "cam-b"))),
    ]
    for name in ("status", "telemetry_batch", "command_result", "heartbeat", "detection_event"):
        body = json.loads((EXAMPLES / f"{name}.json").read_text())
        body.update(site_id=SITE, device_id="cam-a")
        bodies.append(body)
    return bodies


VALID = _valid_bodies()
CHANNEL_OF_SCHEMA = {model.SCHEMA: channel for channel, model in c.CHANNEL_MESSAGES.items()}

nasty_text = st.one_of(
    st.text(max_size=40),  # any code point, lone surrogates included
    st.builds(lambda a, b: f"{a}\x00{b}", st.text(max_size=8), st.text(max_size=8)),
    st.sampled_from(
        ["\x00", "\ud800", "\udfff", "a\u0000b", "设备\u202e", "\U0001f525", "x" * 300]
    ),
)
huge_int = st.one_of(
    st.sampled_from([2**31, 2**53, 2**63 - 1, 2**63, 2**64, 2**70, -(2**63) - 1, -1]),
    st.integers(),
)
odd_float = st.sampled_from([1e308, -1e308, 5e-324, -0.0, 1e16, 32_503_680_000.0])


@st.composite
def deep(draw: st.DrawFn) -> Any:
    depth = draw(st.sampled_from([2, 30, 200, 990, 5000]))
    leaf: Any = draw(st.one_of(st.none(), st.integers(), st.text(max_size=3)))
    for _ in range(depth):
        leaf = [leaf] if draw(st.booleans()) else {"k": leaf}
    return leaf


json_leaf = st.one_of(st.none(), st.booleans(), huge_int, odd_float, nasty_text)
json_values = st.one_of(
    json_leaf,
    deep(),
    st.recursive(
        json_leaf,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4), st.dictionaries(nasty_text, inner, max_size=4)
        ),
        max_leaves=8,
    ),
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a value inside a JSON body (so nested fields get mutated too)."""
    out = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, inner in value.items():
            out += _paths(inner, (*prefix, key))
    elif isinstance(value, list):
        for i, inner in enumerate(value):
            out += _paths(inner, (*prefix, i))
    return out


def _set(body: Any, path: tuple[Any, ...], value: Any, *, drop: bool = False) -> None:
    for part in path[:-1]:
        body = body[part]
    if drop:
        del body[path[-1]]
    else:
        body[path[-1]] = value


@st.composite
def messages(draw: st.DrawFn) -> tuple[str, bytes, bool]:
    """(topic, payload, valid): a template on its own channel's topic, with a fresh msg_id,
    and (mostly) one field dropped, replaced or added anywhere in it."""
    body = json.loads(json.dumps(draw(st.sampled_from(VALID))))
    body["msg_id"] = f"gen-{draw(st.integers(0, 10**12)):012d}"
    channel = CHANNEL_OF_SCHEMA[body["schema"]]
    topic = f"guanjia/v1/{SITE}/{body['device_id']}/{channel.value}"
    kind = draw(st.sampled_from(["valid", "replace", "replace", "replace", "drop", "add", "raw"]))
    if kind == "raw":  # bytes that are not quite JSON: NULs, bad UTF-8, truncation
        raw = json.dumps(body).encode()
        cut = draw(st.integers(0, len(raw)))
        junk = draw(st.sampled_from([b"\x00", b"\xff", b"\xed\xa0\x80", b"\\u0000", b""]))
        return topic, raw[:cut] + junk + raw[cut:], False
    if kind != "valid":
        paths = _paths(body)
        path = draw(st.sampled_from(paths))
        if kind == "drop":
            _set(body, path, None, drop=True)
        elif kind == "replace":
            _set(body, path, draw(json_values))
        else:
            target = path[:-1]
            parent = body
            for part in target:
                parent = parent[part]
            if isinstance(parent, dict):
                parent[draw(nasty_text)] = draw(json_values)
            else:
                body[draw(nasty_text)] = draw(json_values)
    try:
        payload = json.dumps(body).encode()
    except RecursionError:
        payload = b"[" * 100_000
    return topic, payload, kind == "valid"


def _check(result: IngestResult, valid: bool) -> None:
    assert not (result.reason or "").startswith("ProcessingError"), result.reason
    if valid:
        assert result.outcome in {Outcome.ACCEPTED, Outcome.DUPLICATE, Outcome.IGNORED}, result


def _run(db_url: str, examples: int) -> None:
    store = Store(db_url)
    seed_site(store, SITE, DEVICES)
    handler = IngestHandler(store, dict(DEFAULT_POLICIES), cooldown_s=60)
    kinds: dict[str, int] = {}

    @settings(
        max_examples=examples,
        derandomize=True,
        database=None,
        deadline=None,
        # No shrinking: each step replays batches against the database, and the failing
        # batch as generated already names the message.
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(batch=st.lists(messages(), min_size=1, max_size=12))
    def run(batch: list[tuple[str, bytes, bool]]) -> None:
        pairs = [(t, p) for t, p, _ in batch]
        results = handler.handle_batch(pairs, NOW)
        assert len(results) == len(batch)
        for result, (_, _, valid) in zip(results, batch, strict=True):
            _check(result, valid)
            if result.outcome is Outcome.DEAD_LETTER and result.reason:
                kind = result.reason.split(":")[0]
                kinds[kind] = kinds.get(kind, 0) + 1
        # and each message alone, as a redelivery would come
        topic, payload, valid = batch[0]
        _check(handler.handle(topic, payload, NOW), valid)

    try:
        run()
        letters = store.inbox.list_dead_letters(None, limit=100_000)
        assert letters
        assert all(d.reason and d.error_kind != "ProcessingError" for d in letters)
        # The generator must reach field validation, not stop at the topic or the JSON.
        assert sum(kinds.get(k, 0) for k in FIELD_ERRORS) > len(letters) // 3, kinds
        assert "TopicError" not in kinds, kinds
    finally:
        store.close()


def test_ingest_survives_generated_messages(db_url: str) -> None:
    _run(db_url, DEFAULT_EXAMPLES)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_ingest_survives_generated_messages_long(db_url: str) -> None:
    _run(db_url, 10_000)
