"""Prebuilt SQL run straight on the transaction's own driver connection (sqlite3 or psycopg).

The ingest transaction runs a handful of fixed statements per ticket and per batch. Through
SQLAlchemy each execution paid for parameter processing, result-row objects and expanding
``IN`` lists — more than the database's own work (the handler's profile). Here each statement
is text written once, in SQLite's ``?`` style and translated to psycopg's ``%s``; an ``IN``
list is ``IN (?, …)`` on SQLite and ``= ANY(%s)`` with one array parameter on PostgreSQL (one
server-side prepared statement whatever the batch size: psycopg prepares a statement after a
few executions). Rows come back as plain tuples in the order of the SELECT list.

Only values are bound; no text here is built from input. The driver connection is
SQLAlchemy's public handle on the DBAPI connection of the transaction (`Connection.connection`),
so every statement is part of the same transaction as the rest of the ingest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection

IN_LIST = "{in_list}"
"""Where a statement's ``IN`` list goes: `Driver.rows_in` fills it per database."""

_IN_LISTS: dict[tuple[str, int], str] = {}
"""SQLite texts with their ``IN (?, …)`` lists, per statement and list length (a batch has at
most `mqtt.batch_max` ids, so at most that many lengths per statement)."""


@dataclass(frozen=True)
class Plain:
    """One statement: SQLite text (``?``) and its PostgreSQL form (``%s``)."""

    sqlite: str
    postgres: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "postgres", self.sqlite.replace("?", "%s"))


class Driver:
    """Executes `Plain` statements on the driver connection of `conn`'s transaction."""

    def __init__(self, conn: Connection, *, postgres: bool) -> None:
        raw = conn.connection.driver_connection
        assert raw is not None
        self.cursor: Any = raw.cursor()
        self.postgres = postgres

    def _text(self, stmt: Plain) -> str:
        return stmt.postgres if self.postgres else stmt.sqlite

    def run(self, stmt: Plain, params: Sequence[Any]) -> int:
        """Execute once; the number of rows it changed."""
        cursor = self.cursor
        cursor.execute(self._text(stmt), params)
        return int(cursor.rowcount)

    def many(self, stmt: Plain, params: Sequence[Sequence[Any]]) -> None:
        """Execute once per parameter row (psycopg pipelines them: one round trip)."""
        if params:
            self.cursor.executemany(self._text(stmt), params)

    def rows(self, stmt: Plain, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        """Every row of a query."""
        cursor = self.cursor
        cursor.execute(self._text(stmt), params)
        return list(cursor.fetchall())

    def insert_id(self, stmt: Plain, params: Sequence[Any]) -> int:
        """Execute an INSERT (ending in ``RETURNING id`` on PostgreSQL); the new row's id."""
        cursor = self.cursor
        if self.postgres:
            cursor.execute(stmt.postgres + " RETURNING id", params)
            return int(cursor.fetchone()[0])
        cursor.execute(stmt.sqlite, params)
        return int(cursor.lastrowid)

    def rows_in(
        self, stmt: Plain, values: Sequence[Any], after: Sequence[Any] = ()
    ) -> list[tuple[Any, ...]]:
        """Rows of a query whose `IN_LIST` is `values`; `after` binds the placeholders that
        follow it."""
        if not values:
            return []
        if self.postgres:
            text = stmt.postgres.replace(IN_LIST, "= ANY(%s)")
            params: list[Any] = [list(values), *after]
        else:
            key = (stmt.sqlite, len(values))
            text = _IN_LISTS.get(key, "")
            if not text:
                marks = ", ".join("?" * len(values))
                text = _IN_LISTS[key] = stmt.sqlite.replace(IN_LIST, f"IN ({marks})")
            params = [*values, *after]
        cursor = self.cursor
        cursor.execute(text, params)
        return list(cursor.fetchall())
