"""The fast TelemetryBatch decoder accepts only what the contract's decoder accepts, with the
same values (property-based, on valid batches and on mutations of them); what it refuses
the contract still decides."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

import contract as c
from contract import ContractError, decode_for_topic
from gateway.telemetry.wire import decode_fast, from_contract

SITE, DEVICE = "w-site", "node-1"
TOPIC = str(c.telemetry_topic(SITE, DEVICE))

finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
names = st.from_regex(r"\A[a-z][a-z0-9_]{0,10}\Z")
point = st.fixed_dictionaries(
    {"metric": names, "value": finite, "ts": st.floats(min_value=0, max_value=2e9)},
    optional={
        "unit": st.text(max_size=16),
        "tags": st.dictionaries(names, st.text(max_size=64), max_size=3),
    },
)
batch = st.fixed_dictionaries(
    {
        "schema": st.just(c.TelemetryBatch.SCHEMA),
        "msg_id": st.from_regex(r"\A[A-Za-z0-9_.:-]{8,20}\Z"),
        "ts": st.floats(min_value=0, max_value=2e9),
        "site_id": st.just(SITE),
        "device_id": st.just(DEVICE),
        "sensor_kind": st.just("charging_monitor"),
        "points": st.lists(point, min_size=1, max_size=4),
    }
)
# What a device might get wrong: each replaces one field (or adds one) with a bad value.
MUTATIONS: list[tuple[tuple[str, ...], Any]] = [
    (("msg_id",), "short"),
    (("msg_id",), "id-with-newline\n"),
    (("ts",), -1.0),
    (("ts",), "12.5"),
    (("ts",), True),
    (("site_id",), "other-site"),
    (("device_id",), "bad/segment"),
    (("sensor_kind",), ""),
    (("schema",), "guanjia.telemetry_batch/2"),
    (("points",), []),
    (("points", "0", "metric"), "Temp"),
    (("points", "0", "metric"), "temp\n"),
    (("points", "0", "value"), "1.5"),
    (("points", "0", "value"), None),
    (("points", "0", "tags"), {"Port": "1"}),
    (("points", "0", "tags"), {"port": "x" * 65}),
    (("points", "0", "unit"), "u" * 17),
    (("points", "0", "extra"), 1),
    (("extra",), 1),
]


def _mutate(body: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    target: Any = body
    for key in path[:-1]:
        target = target[int(key)] if isinstance(target, list) else target[key]
    target[path[-1]] = value
    return body


def _contract(payload: bytes) -> c.TelemetryBatch | None:
    try:
        _, message = decode_for_topic(TOPIC, payload)
    except ContractError:
        return None
    assert isinstance(message, c.TelemetryBatch)
    return message


@settings(max_examples=300, deadline=None)
@given(body=batch, mutation=st.sampled_from([None, *MUTATIONS]), huge=st.booleans())
def test_fast_decoder_accepts_a_subset_of_the_contract_with_equal_values(
    body: dict[str, Any], mutation: tuple[tuple[str, ...], Any] | None, huge: bool
) -> None:
    if mutation is not None:
        body = _mutate(body, *mutation)
    payload = json.dumps(body).encode()
    if huge:
        payload = payload.replace(b'"ts": ', b'"ts": 1e400, "x": ', 1)  # also unknown field
    fast = decode_fast(SITE, DEVICE, payload)
    slow = _contract(payload)
    if fast is not None:
        assert slow is not None, payload  # never accepts what the contract refuses
        assert fast == from_contract(slow)  # and reads the same values
    if mutation is None and not huge and slow is not None:
        # a valid batch takes the fast path (a generated text may hold a NUL, which the
        # contract refuses in any field: both refuse it then)
        assert fast is not None


def test_a_nul_in_any_text_is_left_to_the_contract_which_refuses_it() -> None:
    for tags in ({"room": "a\x00b"}, {"room": "ok"}):
        body = {
            "schema": "guanjia.telemetry_batch/1",
            "msg_id": "nul-00000001",
            "ts": 1.0,
            "site_id": SITE,
            "device_id": DEVICE,
            "sensor_kind": "smoke_detector",
            "points": [{"metric": "temperature", "value": 21.0, "ts": 1.0, "tags": tags}],
        }
        payload = json.dumps(body).encode()
        nul = "\x00" in tags["room"]
        assert (decode_fast(SITE, DEVICE, payload) is None) is nul
        assert (_contract(payload) is None) is nul
