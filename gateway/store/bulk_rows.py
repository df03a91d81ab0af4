"""Append-only rows of one ingest transaction, written through the driver just before COMMIT.

Processed message ids, evidence, audit lines, new event links and the change feed are only
ever inserted by ingest, and nothing in the transaction reads them back, so they are kept as
plain tuples and written with one statement per table: ``executemany`` of a prebuilt INSERT
on SQLite, ``COPY … FROM STDIN`` on PostgreSQL (where executemany would still be one
round trip per row). SQLAlchemy's per-row parameter processing (a fifth of the ingest's
cost in the profile) is skipped, so JSON columns are serialised here (`to_json`: compact
JSON text, which SQLAlchemy's JSON type reads back like its own).

The feed goes last, after the PostgreSQL feed lock (`feed.lock`): see `gateway.store.feed`
for why its ids must become visible in id order.
"""

from __future__ import annotations

from typing import Any

import pydantic_core
from sqlalchemy import Connection

from gateway.store import feed

Row = tuple[Any, ...]


def to_json(value: object) -> str:
    """`value` as JSON text for a JSON column (pydantic-core's encoder: a third of the cost of
    `json.dumps`)."""
    return pydantic_core.to_json(value).decode()


COLUMNS: dict[str, tuple[str, ...]] = {
    "processed_messages": ("msg_id", "site_id", "device_id", "received_at"),
    "ticket_events": ("event_id", "site_id", "device_id", "ticket_id", "ended", "last_seq"),
    "evidence": (
        "ticket_id",
        "event_id",
        "msg_id",
        "phase",
        "seq",
        "ts",
        "snapshot_id",
        "detail",
    ),
    "audit_log": ("ticket_id", "at", "actor", "action", "from_state", "to_state", "detail"),
    "changes": ("at", "kind", "site_id", "body"),
}
"""Each append-only table and the column order of its rows here (must match `schema`)."""

ORDER = ("processed_messages", "ticket_events", "evidence", "audit_log")
"""Write order before the feed: links before the evidence and audit lines that refer to
their tickets only by id (every referenced ticket already exists: inserted or read)."""

# Built from the constant names above, never from input.
_INSERT = {
    table: f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"  # noqa: S608
    for table, cols in COLUMNS.items()
}
_COPY = {table: f"COPY {table} ({', '.join(cols)}) FROM STDIN" for table, cols in COLUMNS.items()}


class BulkRows:
    """Buffered append-only rows of one transaction on `conn`."""

    def __init__(self, conn: Connection, *, postgres: bool) -> None:
        self.conn = conn
        self.postgres = postgres
        self.rows: dict[str, list[Row]] = {table: [] for table in COLUMNS}

    def add(self, table: str, row: Row) -> None:
        """Queue one row of `table`, its values in `COLUMNS[table]` order."""
        self.rows[table].append(row)

    def flush(self) -> None:
        """Write every queued row (the feed last) and forget them."""
        for table in ORDER:
            self._write(table)
        if self.rows["changes"]:
            if self.postgres:
                feed.lock(self.conn)
            self._write("changes")

    def _write(self, table: str) -> None:
        rows = self.rows[table]
        if not rows:
            return
        self.rows[table] = []
        if not self.postgres:
            self.conn.exec_driver_sql(_INSERT[table], rows)
            return
        # The transaction's own psycopg connection (SQLAlchemy's public handle on it).
        driver = self.conn.connection.driver_connection
        assert driver is not None
        with driver.cursor() as cursor, cursor.copy(_COPY[table]) as copy:
            for row in rows:
                copy.write_row(row)
