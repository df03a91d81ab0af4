"""Engines and migrations: URL normalisation, SQLite tuning, Alembic upgrade."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


READ_ONLY = "guanjia_read_only"
"""Execution option marking a transaction that only reads (SQLite then skips the write lock)."""


class StoreUnavailableError(RuntimeError):
    """The database could not be reached: the caller retries later, the input is not at fault."""


def database_url(url: str) -> str:
    """Normalise a URL: plain ``postgresql://`` (and ``postgres://``) use psycopg 3."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def url_problem(url: str) -> str | None:
    """Why `url` is not a database URL the gateway can open (None if it looks right):
    unparseable, or a dialect or driver that is not installed."""
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        parsed = make_url(database_url(url))
        parsed.get_dialect()
    except NoSuchModuleError:  # a subclass of ArgumentError: first
        return "unknown database kind; use sqlite:///PATH or postgresql://USER@HOST:PORT/DB"
    except ArgumentError:
        return "not a database URL; use sqlite:///PATH or postgresql://USER@HOST:PORT/DB"
    except ImportError as exc:
        return f"its driver is not installed ({exc.name})"
    return None


def _tune_sqlite(engine: Engine) -> None:
    # pysqlite's own transaction handling defers BEGIN and breaks SAVEPOINT; take control of
    # it, and take the write lock up front (BEGIN IMMEDIATE) so two processes never deadlock
    # upgrading a read lock. WAL lets the API read while ingest writes.
    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: object) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        # Read-only work (marked with the READ_ONLY execution option) takes no write lock.
        if connection.get_execution_options().get(READ_ONLY):
            connection.exec_driver_sql("BEGIN")
        else:
            connection.exec_driver_sql("BEGIN IMMEDIATE")


PRIVATE_FILE_MODE = 0o600
"""The SQLite database holds password hashes (users', the broker's): owner only."""


def _private_sqlite_file(database: str | None) -> None:
    """Create the database file owner-only before SQLite opens it (SQLite gives its -wal and
    -shm files the database file's mode), and tighten one an older gateway left readable."""
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    path = Path(database)
    if not path.parent.is_dir():
        return  # SQLite reports the missing directory itself
    os.close(os.open(path, os.O_CREAT | os.O_RDWR, PRIVATE_FILE_MODE))
    for file in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        if file.exists():
            file.chmod(PRIVATE_FILE_MODE)


def make_engine(url: str) -> Engine:
    """An engine for `url` (SQLite file or PostgreSQL), tuned for the gateway's workload."""
    normalised = database_url(url)
    parsed = make_url(normalised)
    if parsed.get_backend_name() == "sqlite":
        _private_sqlite_file(parsed.database)
        engine = create_engine(normalised, connect_args={"timeout": 30})
        _tune_sqlite(engine)
        return engine
    return create_engine(normalised, pool_pre_ping=True, pool_size=5, max_overflow=5)


def migrate(url: str) -> None:
    """Bring the database at `url` to the newest schema (Alembic ``upgrade head``)."""
    from alembic import command
    from alembic.config import Config

    engine = make_engine(url)
    try:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS_DIR))
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    finally:
        engine.dispose()
