"""Nothing in a payload stops ingest (finding 3), and one bad message does not push a batch
out of its single transaction (finding 4)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from sqlalchemy import create_engine, text

import contract as c
from gateway.ingest import IngestHandler, Outcome
from gateway.sla import DEFAULT_POLICIES
from gateway.store import Store, StoreUnavailableError, database_url
from tests.gateway.factories import T0, event, pair, seed_site
from tests.gateway.test_ingest_batch import _install_poison

SITE = "site-p"
TOPIC = f"guanjia/v1/{SITE}/cam-a/event"

NASTY = [
    b"\x00",
    b'{"schema": "guanjia.detection_event/1", "msg_id": "\x00\x00"}',
    b"\xff\xfe\x00garbage\x00",
    b"\xed\xa0\x80 lone surrogate in CESU-8",
    b"[" * 200_000,
    json.dumps({"schema": "guanjia.heartbeat/1", "x": "\u0000\ud800"}).encode(),
]


@pytest.fixture
def handler(store: Store) -> IngestHandler:
    seed_site(store, SITE, ("cam-a", "cam-b"))
    return IngestHandler(store, dict(DEFAULT_POLICIES), cooldown_s=600)


def count_transactions(store: Store, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Patch `store.ingest` to record how many messages' worth of work each call carried
    (1 for `handle`, n for a batch transaction); returns the list it appends to."""
    calls: list[int] = []
    original = store.ingest

    def counting(work: Callable[[Any], Any], now: float, attempts: int = 4) -> Any:
        calls.append(1)
        return original(work, now, attempts)

    monkeypatch.setattr(store, "ingest", counting)
    return calls


@pytest.mark.parametrize("payload", NASTY, ids=range(len(NASTY)))
def test_nasty_payload_is_dead_lettered_on_every_database(
    handler: IngestHandler, store: Store, payload: bytes
) -> None:
    topics = [TOPIC, f"guanjia/v1/{SITE}/cam-a/snapshot/s1", "guanjia/v1/\x00/x\x00/event"]
    for topic in topics:
        result = handler.handle(topic, payload, T0)
        assert result.outcome is Outcome.DEAD_LETTER
        assert not (result.reason or "").startswith("ProcessingError"), result.reason
    letters = store.inbox.list_dead_letters(None)
    assert len(letters) == len(topics)
    for letter in letters:
        assert "\x00" not in letter.payload_excerpt + letter.reason + letter.topic
        assert len(letter.payload_excerpt) <= 2100


def test_nul_in_a_batch_keeps_the_batch_transaction(
    handler: IngestHandler, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch of 100 with one NUL payload: 99 tickets, one dead letter, one transaction."""
    calls = count_transactions(store, monkeypatch)
    batch = [pair(event(SITE, "cam-a", f"ev-nul-{i:04d}", zone_id=f"z{i}")) for i in range(99)]
    batch.insert(50, (TOPIC, b'{"msg_id": "\x00"}\x00'))
    results = handler.handle_batch(batch, T0)
    assert [r.outcome for r in results].count(Outcome.ACCEPTED) == 99
    assert results[50].outcome is Outcome.DEAD_LETTER
    assert calls == [1]
    assert store.tickets.list_tickets().total == 99


def test_out_of_range_integer_in_a_batch_keeps_the_batch_transaction(
    handler: IngestHandler, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = count_transactions(store, monkeypatch)
    batch = [pair(event(SITE, "cam-a", f"ev-big-{i:04d}", zone_id=f"z{i}")) for i in range(99)]
    big = json.loads(c.encode(event(SITE, "cam-b", "ev-big-poison")))
    for field in ("seq", "track_id"):
        batch.insert(
            10, (TOPIC.replace("cam-a", "cam-b"), json.dumps(big | {field: 2**70}).encode())
        )
    results = handler.handle_batch(batch, T0)
    assert [r.outcome for r in results].count(Outcome.ACCEPTED) == 99
    assert [r.outcome for r in results].count(Outcome.DEAD_LETTER) == 2
    assert calls == [1]


def test_a_batch_that_fails_in_the_database_is_bisected(
    db_url: str, handler: IngestHandler, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A message that passes validation but breaks the write: the batch is split in halves
    until the poison is alone, not replayed one message per transaction."""
    _install_poison(db_url, "ev-poison-01")
    calls = count_transactions(store, monkeypatch)
    batch = [pair(event(SITE, "cam-a", f"ev-good-{i:03d}", zone_id=f"z{i}")) for i in range(99)]
    batch.insert(37, pair(event(SITE, "cam-b", "ev-poison-01")))
    results = handler.handle_batch(batch, T0)
    outcomes = [r.outcome for r in results]
    assert outcomes.count(Outcome.ACCEPTED) == 99
    assert outcomes[37] is Outcome.DEAD_LETTER
    assert store.tickets.list_tickets().total == 99
    # log2(100) rounds of two halves, plus the poison's own dead letter: far below 100.
    assert len(calls) <= 2 * 7 + 2, len(calls)


def _refuse_dead_letters(db_url: str) -> None:
    """A trigger that refuses every dead letter: the database breaks even the fallback."""
    if db_url.startswith("sqlite"):
        engine = create_engine(database_url(db_url))
        with engine.begin() as conn:
            conn.execute(
                text(
                    "CREATE TRIGGER no_dead BEFORE INSERT ON dead_letters "
                    "BEGIN SELECT RAISE(ABORT, 'no dead letters'); END"
                )
            )
        engine.dispose()
        return
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(
            "CREATE FUNCTION no_dead() RETURNS trigger AS $$ BEGIN "
            "RAISE EXCEPTION 'no dead letters'; END $$ LANGUAGE plpgsql"
        )
        conn.execute(
            "CREATE TRIGGER no_dead BEFORE INSERT ON dead_letters "
            "FOR EACH ROW EXECUTE FUNCTION no_dead()"
        )


def test_when_even_the_dead_letter_fails_the_batch_is_held_as_a_store_outage(
    db_url: str, handler: IngestHandler, store: Store
) -> None:
    _install_poison(db_url, "ev-poison-02")
    _refuse_dead_letters(db_url)
    poison = event(SITE, "cam-b", "ev-poison-02")
    good = event(SITE, "cam-a", "ev-good-0002")
    # Nothing recorded the poison message: the MQTT edge must not let the broker forget it.
    with pytest.raises(StoreUnavailableError, match="cannot write even a dead letter"):
        handler.handle_batch([pair(poison), pair(good)], T0)
    assert store.inbox.dead_letter_count() == 0
