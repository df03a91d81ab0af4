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

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from sqlalchemy import Connection, event
from sqlalchemy.exc import IntegrityError

IN_LIST = "{in_list}"
"""Where a statement's ``IN`` list goes: `Driver.rows_in` fills it per database."""

_IN_LISTS: dict[tuple[str, int], str] = {}
"""SQLite texts with their ``IN (?, …)`` lists, per statement and list length (a batch has at
most `mqtt.batch_max` ids, so at most that many lengths per statement)."""


class StaleRowError(RuntimeError):
    """A deferred write did not change the row it was certain to change: the transaction
    read a row and meant to update it, and the row was no longer as read."""


@contextmanager
def _clashes(driver_clash: type[Exception]) -> Iterator[None]:
    """Unique-key clashes (the driver's `driver_clash`) and stale rows as SQLAlchemy's
    IntegrityError, which `Store.ingest` answers by running the transaction again (it then
    sees the other writer's rows)."""
    try:
        yield
    except (driver_clash, StaleRowError) as exc:
        raise IntegrityError(None, None, exc) from exc


@dataclass(frozen=True)
class Plain:
    """One statement: SQLite text (``?``) and its PostgreSQL form (``%s``; with `lock`, the
    rows a query returns stay locked until the transaction ends: ``FOR UPDATE``).

    Optional PostgreSQL texts: `pg`, written out where the translation would not do;
    `postgres_in`, for `Driver.rows_in`, whose first parameter is the whole list as one
    array (`probe` writes these); `postgres_many`, for `Driver.many`, taking one array per
    parameter (the rows' columns), so a batch's rows are one statement, not one each."""

    sqlite: str
    lock: bool = False
    pg: str | None = None
    postgres_in: str | None = None
    postgres_many: str | None = None
    postgres: str = field(init=False)

    def __post_init__(self) -> None:
        text = self.pg or self.sqlite.replace("?", "%s") + (" FOR UPDATE" if self.lock else "")
        object.__setattr__(self, "postgres", text)


def probe(
    columns: str, table: str, key: str, array_type: str, where: str = "", *, lock: bool = False
) -> Plain:
    """``SELECT columns FROM table WHERE key IN (…) [AND where]``, on PostgreSQL as one index
    probe per listed value.

    The plain ``key = ANY(%s)`` leaves the plan to the planner, and a table that grew since
    it was last analysed (a fresh database draining a backlog: autovacuum analyses after a
    minute) has no statistics saying `key` is selective. Prepared after five runs, the
    generic plan then scanned the whole table and compared every row with every value
    (no hashing of a parameter array): 10 ms per batch at 10,000 processed ids, 170 ms at
    100,000, growing with the table. Joining the array to a subquery the planner may not
    flatten (``OFFSET 0``) makes each value an equality on `key`, which its index answers
    whatever the statistics say."""
    and_where = f" AND {where}" if where else ""
    sqlite = f"SELECT {columns} FROM {table} WHERE {key} {IN_LIST}{and_where}"  # noqa: S608
    pg_where = and_where.replace("?", "%s")
    inner = f"SELECT {columns} FROM {table} WHERE {key} = k.v{pg_where} OFFSET 0"  # noqa: S608
    postgres = (
        f"SELECT r.* FROM unnest(%s::{array_type}[]) AS k(v) CROSS JOIN LATERAL "  # noqa: S608
        f"({inner}{' FOR UPDATE' if lock else ''}) AS r"
    )
    return Plain(sqlite, lock=lock, postgres_in=postgres)


class Driver:
    """Executes `Plain` statements on the driver connection of `conn`'s transaction.

    `defer` queues a write whose outcome is certain (its rows were read with a lock in this
    transaction, or SQLite's write lock is held): on PostgreSQL the queue is sent in one
    pipeline with the next statement that needs an answer (or at `sync`), so a batch's
    per-ticket updates cost one round trip instead of one each. Any SQLAlchemy statement
    on the same connection syncs first (a ``before_cursor_execute`` listener), so every
    statement still runs in the order the transaction issued it."""

    def __init__(self, conn: Connection, *, postgres: bool) -> None:
        raw = conn.connection.driver_connection
        assert raw is not None
        self.raw: Any = raw
        self.cursor: Any = raw.cursor()
        self.postgres = postgres
        # The DB-API module's own IntegrityError (sqlite3's or psycopg's), named by SQLAlchemy.
        dbapi = conn.dialect.dbapi
        assert dbapi is not None
        self._clashes = partial(_clashes, dbapi.IntegrityError)
        self._queue: list[tuple[str, Sequence[Any], int | None]] = []
        if postgres:
            event.listen(conn, "before_cursor_execute", self._before_sqlalchemy)

    def _before_sqlalchemy(self, *_args: Any) -> None:
        self.sync()

    def _text(self, stmt: Plain) -> str:
        return stmt.postgres if self.postgres else stmt.sqlite

    def defer(self, stmt: Plain, params: Sequence[Any], expect: int | None = 1) -> None:
        """Execute a write whose answer is not needed now; it must change `expect` rows
        (None: any number), or the transaction fails with `StaleRowError` (at the latest
        when the queue is sent)."""
        if self.postgres:
            self._queue.append((stmt.postgres, params, expect))
            return
        cursor = self.cursor
        with self._clashes():
            cursor.execute(stmt.sqlite, params)
            _check(expect, cursor.rowcount)

    def sync(self) -> None:
        """Send the deferred writes now (before COMMIT, before any other statement)."""
        if self._queue:
            self._send(lambda _cursor: None)

    def _send(self, last: Callable[[Any], None]) -> None:
        """Run `last` on the cursor, after the deferred writes and in one pipeline with them."""
        queue, self._queue = self._queue, []
        if not queue:
            with self._clashes():
                last(self.cursor)
            return
        raw = self.raw
        sent = []
        with self._clashes():
            with raw.pipeline():
                for text, params, expect in queue:
                    cursor = raw.cursor()
                    cursor.execute(text, params)
                    sent.append((cursor, expect))
                last(self.cursor)
            for cursor, expect in sent:
                _check(expect, cursor.rowcount)

    def run(self, stmt: Plain, params: Sequence[Any]) -> int:
        """Execute once; the number of rows it changed."""
        self._send(lambda cursor: cursor.execute(self._text(stmt), params))
        return int(self.cursor.rowcount)

    def many(self, stmt: Plain, params: Sequence[Sequence[Any]]) -> None:
        """Execute once per parameter row; on PostgreSQL one statement over the rows'
        columns as arrays when the statement has one (`Plain.postgres_many`), deferred like
        `defer` (any number of rows may change), else pipelined by psycopg (one round trip,
        one statement per row)."""
        if not params:
            return
        if self.postgres and stmt.postgres_many is not None:
            # Nothing waits for its answer: sent with the next statement that needs one.
            columns = [list(column) for column in zip(*params, strict=True)]
            self._queue.append((stmt.postgres_many, columns, None))
            return
        self._send(lambda cursor: cursor.executemany(self._text(stmt), params))

    def rows(self, stmt: Plain, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        """Every row of a query."""
        self._send(lambda cursor: cursor.execute(self._text(stmt), params))
        return list(self.cursor.fetchall())

    def insert_id(self, stmt: Plain, params: Sequence[Any]) -> int:
        """Execute an INSERT (ending in ``RETURNING id`` on PostgreSQL); the new row's id."""
        if self.postgres:
            self._send(lambda cursor: cursor.execute(stmt.postgres + " RETURNING id", params))
            return int(self.cursor.fetchone()[0])
        with self._clashes():
            self.cursor.execute(stmt.sqlite, params)
        return int(self.cursor.lastrowid)

    def rows_in(
        self, stmt: Plain, values: Sequence[Any], after: Sequence[Any] = ()
    ) -> list[tuple[Any, ...]]:
        """Rows of a query whose `IN_LIST` is `values`; `after` binds the placeholders that
        follow it."""
        if not values:
            return []
        if self.postgres:
            text = stmt.postgres_in or stmt.postgres.replace(IN_LIST, "= ANY(%s)")
            params: list[Any] = [list(values), *after]
        else:
            key = (stmt.sqlite, len(values))
            text = _IN_LISTS.get(key, "")
            if not text:
                marks = ", ".join("?" * len(values))
                text = _IN_LISTS[key] = stmt.sqlite.replace(IN_LIST, f"IN ({marks})")
            params = [*values, *after]
        self._send(lambda cursor: cursor.execute(text, params))
        return list(self.cursor.fetchall())


def _check(expect: int | None, rowcount: int) -> None:
    if expect is not None and rowcount != expect:
        raise StaleRowError(f"a deferred write changed {rowcount} rows, not {expect}")
