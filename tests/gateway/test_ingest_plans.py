"""Ingest's read of a ticket's unended events goes through the partial index on unended
links (migration 0016), so its cost is the events still open, not the ticket's history:
on SQLite and PostgreSQL, before and after the tables have statistics, and on PostgreSQL
in both the plan for the bound values and the generic plan a prepared statement keeps."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from typing import Any

import psycopg

from gateway.store import ingest_sql as sql
from gateway.store.plain_sql import IN_LIST

INDEX = "ix_ticket_events_unended"
TICKETS = 20
ENDED = 100  # ended events per ticket: its history
OPEN = 2  # unended events per ticket


def fill(run: Callable[[str, Sequence[Any]], object], mark: str) -> None:
    """Tickets whose events have mostly ended, as on a site that has run for a while."""
    for ticket_id in range(1, TICKETS + 1):
        run(
            "INSERT INTO tickets (id, site_id, device_id, category, severity, state, tier,"
            " dedup_key, event_count, created_at, updated_at, ack_due_at, resolve_due_at)"
            f" VALUES ({mark}, 's', 'd', 'litter', 'normal', 'new', 1, 'k', 1, 0, 0, 1, 2)",
            (ticket_id,),
        )
        for n in range(ENDED + OPEN):
            run(
                "INSERT INTO ticket_events (event_id, site_id, device_id, ticket_id, ended,"
                f" last_seq) VALUES ({mark}, 's', 'd', {mark}, {mark}, 0)",
                (f"ev-{ticket_id}-{n}", ticket_id, n < ENDED),
            )


def test_unended_events_are_read_through_the_partial_index(db_url: str) -> None:
    if db_url.startswith("sqlite:///"):
        sqlite_plans(db_url)
    else:
        postgres_plans(db_url)


def sqlite_plans(db_url: str) -> None:
    conn = sqlite3.connect(db_url.removeprefix("sqlite:///"))
    try:

        def run(text: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
            return list(conn.execute(text, params))

        fill(run, "?")
        conn.commit()
        in_list = sql.UNENDED_IN.sqlite.replace(IN_LIST, "IN (?, ?, ?)")
        for analysed in (False, True):
            if analysed:
                conn.execute("ANALYZE")
            for text, params in ((in_list, (1, 2, 3)), (sql.UNENDED.sqlite, (3,))):
                plan = " ".join(str(row[3]) for row in run(f"EXPLAIN QUERY PLAN {text}", params))
                assert f"USING INDEX {INDEX} " in plan, (analysed, text, plan)
        assert len(run(in_list, (1, 2, 3))) == 3 * OPEN
    finally:
        conn.close()


def postgres_plans(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:

        def run(text: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
            return conn.execute(text, params).fetchall()

        fill(conn.execute, "%s")
        conn.commit()
        # As the driver sends them (`plain_sql.Driver.rows_in`, `Driver.rows`): prepared.
        assert sql.UNENDED_IN.postgres_in is not None
        conn.execute("PREPARE unended_in AS " + sql.UNENDED_IN.postgres_in.replace("%s", "$1"))
        conn.execute("PREPARE unended AS " + sql.UNENDED.postgres.replace("%s", "$1"))
        for analysed in (False, True):
            if analysed:
                conn.execute("ANALYZE ticket_events")
            for mode in ("force_custom_plan", "force_generic_plan"):
                conn.execute(f"SET plan_cache_mode = {mode}")
                for call in ("unended_in(ARRAY[1, 2, 3])", "unended(3)"):
                    plan = " ".join(row[0] for row in run(f"EXPLAIN EXECUTE {call}", ()))
                    assert f" on {INDEX} " in plan or f" using {INDEX} " in plan, (
                        analysed,
                        mode,
                        call,
                        plan,
                    )
        assert len(run("EXECUTE unended_in(ARRAY[1, 2, 3])", ())) == 3 * OPEN
