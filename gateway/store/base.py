"""`Database`: the engine and the three kinds of transaction every part of `Store` uses.

- `read()`: a read-only transaction (on SQLite it takes no write lock);
- `write()`: a short write transaction;
- `ingest(work, now)`: a write transaction around an `IngestTx` (buffered rows flushed just
  before COMMIT), rerun from scratch when a unique key says another writer got there first.

One `Database` per process; every part of `Store` (`Part`) holds the same one, so they all
share one engine and one connection pool.

A lost connection surfaces as `StoreUnavailableError` from all three, so callers can tell
"retry later" from "this input is wrong". The errors the API maps to 404 and 409 live here
too, and `from_row`, which turns a table row into the record the API serves.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any, TypeVar

from pydantic import BaseModel
from sqlalchemy import Connection, Engine, Row
from sqlalchemy.exc import IntegrityError, OperationalError

from gateway.store.engine import (
    PRIVATE_FILE_MODE,
    READ_ONLY,
    StoreUnavailableError,
    make_engine,
)
from gateway.store.ingest_tx import IngestTx

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)


class NotFoundError(LookupError):
    """A ticket, device, grid or user that does not exist."""


class ConflictError(ValueError):
    """A write that clashes with existing data (duplicate id, concurrent transition)."""


def from_row(model: type[M], row: Row[*tuple[Any, ...]], **computed: Any) -> M:
    """`model` filled from the row's columns of the same names, plus `computed` fields the
    table does not hold (extra columns, such as ids the API does not show, are left out)."""
    m = row._mapping
    return model(**{n: m[n] for n in model.model_fields if n not in computed}, **computed)


@contextmanager
def _begin(engine: Engine) -> Iterator[Connection]:
    """A transaction on `engine`; a lost or refused connection is StoreUnavailableError."""
    try:
        with engine.begin() as conn:
            yield conn
    except OperationalError as exc:
        raise StoreUnavailableError(str(exc.orig)) from exc


class Database:
    """The engine of one process, shared by every part of `Store`."""

    def __init__(self, url: str) -> None:
        self.engine: Engine = make_engine(url)
        self.is_sqlite = self.engine.dialect.name == "sqlite"
        self._reader = self.engine.execution_options(**{READ_ONLY: True})
        self._ingest_lock: int | None = None
        database = self.engine.url.database if self.is_sqlite else None
        if database and database != ":memory:" and not database.startswith("file:"):
            path = f"{database}.ingest-lock"
            self._ingest_lock = os.open(path, os.O_CREAT | os.O_RDWR, PRIVATE_FILE_MODE)

    def close(self, timeout_s: float = 5.0) -> None:
        """Release pooled connections, once no worker thread holds one (up to `timeout_s`).

        Cancelling an `asyncio.to_thread` call does not stop its thread: at shutdown a
        background step may still be using a connection. Disposing the engine under it
        would orphan that connection (never closed: a leak on PostgreSQL), so wait for it.
        """
        deadline = time.monotonic() + timeout_s
        checked_out = getattr(self.engine.pool, "checkedout", lambda: 0)
        while checked_out() and time.monotonic() < deadline:
            time.sleep(0.005)
        self.engine.dispose()
        if self._ingest_lock is not None:
            os.close(self._ingest_lock)
            self._ingest_lock = None

    def write(self) -> AbstractContextManager[Connection]:
        """A short write transaction."""
        return _begin(self.engine)

    def read(self) -> AbstractContextManager[Connection]:
        """A read-only transaction (on SQLite it takes no write lock)."""
        return _begin(self._reader)

    @contextmanager
    def ingest_tx(self, now: float) -> Iterator[IngestTx]:
        """One ingest transaction: buffered rows are flushed just before COMMIT."""
        with self._writer_turn(), self.write() as conn:
            tx = IngestTx(conn, now, postgres=not self.is_sqlite)
            yield tx
            tx.flush()

    @contextmanager
    def _writer_turn(self) -> Iterator[None]:
        """On a SQLite file, ingest transactions of every process (ingest workers) take
        turns on an advisory file lock beside the database before BEGIN IMMEDIATE. SQLite's
        own busy handler polls with growing sleeps (up to 100 ms), which put a 0.6 s tail
        on alert latency with two workers; `flock` wakes the next writer at once."""
        if self._ingest_lock is None:
            yield
            return
        fcntl.flock(self._ingest_lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._ingest_lock, fcntl.LOCK_UN)

    def ingest(self, work: Callable[[IngestTx], T], now: float, attempts: int = 4) -> T:
        """Run `work` in one ingest transaction and commit it.

        A unique-key clash (another writer got there first) rolls everything back and runs
        `work` again on a fresh transaction that now sees the winner's rows; after `attempts`
        the IntegrityError is raised. `work` must therefore only touch the database.
        """
        for attempt in range(attempts):
            try:
                with self.ingest_tx(now) as tx:
                    return work(tx)
            except IntegrityError:
                if attempt == attempts - 1:
                    raise
        raise AssertionError("unreachable")


class Part:
    """One aggregate's reads and writes (a part of `Store`) over the shared `Database`."""

    def __init__(self, db: Database) -> None:
        self._db = db

    @property
    def is_sqlite(self) -> bool:
        return self._db.is_sqlite

    def _tx(self) -> AbstractContextManager[Connection]:
        return self._db.write()

    def _read(self) -> AbstractContextManager[Connection]:
        return self._db.read()
