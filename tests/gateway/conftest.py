"""Gateway fixtures: a migrated database on SQLite and (when configured) PostgreSQL.

Each PostgreSQL test gets its own schema (``search_path`` set in the URL), dropped afterwards,
so tests never see each other's rows and the shared database is left as it was.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from urllib.parse import quote

import psycopg
import pytest

from gateway.store import Store, migrate
from tests.support.migrated import migrate_fast


def _isolated_postgres(base_url: str) -> Iterator[str]:
    schema = "gw_" + uuid.uuid4().hex[:12]
    plain = base_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in plain else "?"
    try:
        yield f"{plain}{sep}options={quote(f'-csearch_path={schema}')}"
    finally:
        with psycopg.connect(plain, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, sqlite_url: str) -> Iterator[str]:
    """A fresh, migrated database URL: SQLite in tmp_path, or a private PostgreSQL schema."""
    if request.param == "sqlite":
        migrate_fast(sqlite_url)
        yield sqlite_url
        return
    base = request.getfixturevalue("postgres_url")
    for url in _isolated_postgres(base):
        migrate(url)
        yield url


@pytest.fixture
def isolated_postgres_url(postgres_url: str) -> Iterator[str]:
    """A private, empty (unmigrated) PostgreSQL schema for this test."""
    yield from _isolated_postgres(postgres_url)


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    """A Store on `db_url`."""
    s = Store(db_url)
    yield s
    s.close()
