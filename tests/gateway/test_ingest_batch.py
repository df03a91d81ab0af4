"""Batched ingest on a real database: a batch has exactly the effect of its messages applied
one by one; a poison message in a batch is dead-lettered and the others land."""

from __future__ import annotations

import random
from typing import Any

import psycopg
import pytest
from sqlalchemy import create_engine, text

import contract as c
from gateway.ingest import IngestHandler, Outcome
from gateway.sla import DEFAULT_POLICIES
from gateway.store import Store, database_url, migrate
from tests.gateway.conftest import _isolated_postgres
from tests.gateway.factories import T0, event, heartbeat, seed_site, topic_of

SITE = "site-b"
DEVICES = ("cam-a", "cam-b", "cam-c")

# What the comparison reads: every table ingest writes, in a stable order, ids included
# (the same messages in the same order must open the same ticket ids).
SNAPSHOT_QUERIES = {
    "tickets": "SELECT * FROM tickets ORDER BY id",
    "ticket_events": "SELECT * FROM ticket_events ORDER BY event_id",
    "evidence": "SELECT ticket_id, event_id, msg_id, phase, seq FROM evidence ORDER BY id",
    "audit": "SELECT ticket_id, actor, action, from_state, to_state FROM audit_log ORDER BY id",
    "processed": "SELECT msg_id, device_id FROM processed_messages ORDER BY msg_id",
    "dead": "SELECT topic, error_kind, reason FROM dead_letters ORDER BY id",
    "devices": "SELECT device_id, online, last_seen, last_status_ts FROM devices ORDER BY 1",
    "feed": "SELECT id, kind, site_id, body FROM changes ORDER BY id",
}


def snapshot(db_url: str) -> dict[str, list[tuple[Any, ...]]]:
    engine = create_engine(database_url(db_url))
    with engine.connect() as conn:
        out = {
            name: [tuple(r) for r in conn.execute(text(q))] for name, q in SNAPSHOT_QUERIES.items()
        }
    engine.dispose()
    return out


def traffic(seed: int, n: int) -> list[tuple[str, bytes]]:
    """A reproducible mix: events opening, updating, ending and re-opening tickets across few
    keys (merges, cool-down reopens, end-before-start), redeliveries, heartbeats, statuses,
    unknown devices and garbage."""
    rng = random.Random(seed)
    out: list[tuple[str, bytes]] = []
    sent: list[tuple[str, bytes]] = []
    seqs: dict[str, int] = {}
    for _ in range(n):
        roll = rng.random()
        device = rng.choice(DEVICES)
        if roll < 0.08 and sent:
            out.append(rng.choice(sent))  # a redelivery
            continue
        if roll < 0.14:
            message: c.Message = heartbeat(SITE, device, ts=T0 + rng.random())
        elif roll < 0.18:
            message = c.Status(
                ts=T0 + rng.random() * 100,
                site_id=SITE,
                device_id=device,
                state=rng.choice(["online", "offline"]),
            )
        elif roll < 0.21:
            out.append((f"guanjia/v1/{SITE}/{device}/event", b"{garbage"))
            continue
        elif roll < 0.23:
            message = event(SITE, "cam-unknown", "ev-unknown-01")
        else:
            event_id = f"ev-mix-{rng.randrange(12):04d}"
            seq = seqs.get(event_id, 0)
            seqs[event_id] = seq + 1
            phase = rng.choice(
                [c.EventPhase.START, c.EventPhase.START, c.EventPhase.UPDATE, c.EventPhase.END]
            )
            category = rng.choice([c.EventCategory.ILLEGAL_PARKING, c.EventCategory.LITTER])
            message = event(
                SITE,
                DEVICES[int(event_id[-2:]) % len(DEVICES)],
                event_id,
                phase=phase,
                seq=seq,
                zone_id=rng.choice(["zone-a", "zone-b"]),
                category=category,
            )
        pair = (topic_of(message), c.encode(message))
        sent.append(pair)
        out.append(pair)
    return out


def fresh_db(db_url: str, tmp_name: str, request: pytest.FixtureRequest) -> str:
    """A second empty database of the same kind as `db_url`."""
    if db_url.startswith("sqlite"):
        other = f"{db_url.removesuffix('.db')}-{tmp_name}.db"
        migrate(other)
        return other
    isolated = _isolated_postgres(request.getfixturevalue("postgres_url"))
    other = next(isolated)
    request.addfinalizer(lambda: next(isolated, None))
    migrate(other)
    return other


def handler_for(db_url: str) -> tuple[Store, IngestHandler]:
    store = Store(db_url)
    seed_site(store, SITE, DEVICES)
    return store, IngestHandler(store, dict(DEFAULT_POLICIES), cooldown_s=600)


@pytest.mark.parametrize("seed", [1, 2])
def test_batches_have_the_effect_of_one_by_one(
    db_url: str, request: pytest.FixtureRequest, seed: int
) -> None:
    messages = traffic(seed, 400)
    one_url = fresh_db(db_url, "one", request)
    single_store, single = handler_for(one_url)
    batch_store, batched = handler_for(db_url)
    rng = random.Random(seed)
    single_outcomes: list[Outcome] = []
    batch_outcomes: list[Outcome] = []
    i, step = 0, 0
    try:
        while i < len(messages):
            size = rng.choice([1, 2, 5, 17, 60])
            chunk = messages[i : i + size]
            now = T0 + step * 7.0  # cool-downs and SLA deadlines depend on `now`
            single_outcomes += [single.handle(t, p, now).outcome for t, p in chunk]
            batch_outcomes += [r.outcome for r in batched.handle_batch(chunk, now)]
            i += size
            step += 1
    finally:
        single_store.close()
        batch_store.close()
    assert batch_outcomes == single_outcomes
    # The mix must exercise every path, or the comparison proves little.
    assert {Outcome.ACCEPTED, Outcome.DUPLICATE, Outcome.DEAD_LETTER} <= set(batch_outcomes)
    expected, got = snapshot(one_url), snapshot(db_url)
    actions = {row[2] for row in got["audit"]}
    assert {"open", "merge", "auto_resolve", "condition_cleared"} <= actions, actions
    for table in SNAPSHOT_QUERIES:
        assert got[table] == expected[table], table


def test_same_message_twice_in_one_batch_is_one_ticket(db_url: str) -> None:
    store, handler = handler_for(db_url)
    try:
        message = event(SITE, "cam-a", "ev-twice-01")
        pair = (topic_of(message), c.encode(message))
        results = handler.handle_batch([pair, pair], T0)
        assert [r.outcome for r in results] == [Outcome.ACCEPTED, Outcome.DUPLICATE]
        # and once more, now against what the first batch committed
        again = handler.handle_batch([pair, (topic_of(message), b"{bad")], T0 + 1)
        assert [r.outcome for r in again] == [Outcome.DUPLICATE, Outcome.DEAD_LETTER]
        page = store.tickets.list_tickets()
        assert page.total == 1
        assert len(store.tickets.get_ticket(page.items[0].id).evidence) == 1
    finally:
        store.close()


def _install_poison(db_url: str, event_id: str) -> None:
    """A real database trigger that refuses evidence for one event id: a message that passes
    validation but cannot be written, as a bug or a broken row would."""
    if db_url.startswith("sqlite"):
        engine = create_engine(database_url(db_url))
        with engine.begin() as conn:
            conn.execute(
                text(
                    "CREATE TRIGGER poison BEFORE INSERT ON evidence "
                    f"WHEN NEW.event_id = '{event_id}' "
                    "BEGIN SELECT RAISE(ABORT, 'poison evidence'); END"
                )
            )
        engine.dispose()
        return
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(
            "CREATE FUNCTION poison() RETURNS trigger AS $$ BEGIN "
            f"IF NEW.event_id = '{event_id}' THEN RAISE EXCEPTION 'poison evidence'; END IF; "
            "RETURN NEW; END $$ LANGUAGE plpgsql"
        )
        conn.execute(
            "CREATE TRIGGER poison BEFORE INSERT ON evidence FOR EACH ROW EXECUTE FUNCTION poison()"
        )


def test_poison_message_in_a_batch_is_dead_lettered_and_the_rest_land(db_url: str) -> None:
    store, handler = handler_for(db_url)
    _install_poison(db_url, "ev-poison-01")
    try:
        good = [event(SITE, "cam-a", f"ev-good-{i:02d}", zone_id=f"z{i}") for i in range(9)]
        batch = [(topic_of(m), c.encode(m)) for m in good]
        poison = event(SITE, "cam-b", "ev-poison-01")
        batch.insert(4, (topic_of(poison), c.encode(poison)))
        results = handler.handle_batch(batch, T0)
        outcomes = [r.outcome for r in results]
        assert outcomes == [Outcome.ACCEPTED] * 4 + [Outcome.DEAD_LETTER] + [Outcome.ACCEPTED] * 5
        assert "poison evidence" in (results[4].reason or "")
        # The gateway's fault, not the input's: not acked, the device keeps re-sending it.
        assert results[4].committed is None
        assert all(r.committed is not None for r in results[:4] + results[5:])
        assert store.tickets.list_tickets().total == 9
        letters = store.inbox.list_dead_letters(None)
        assert [d.error_kind for d in letters] == ["ProcessingError"]
        assert "poison evidence" in letters[0].reason
        # The poison message was not marked processed: a fix and a redelivery would apply it.
        processed = snapshot(db_url)["processed"]
        assert poison.msg_id not in {row[0] for row in processed}
        assert len(processed) == 9
        opened = [r for r in snapshot(db_url)["feed"] if '"opened"' in r[3]]
        assert len(opened) == 9
    finally:
        store.close()
