"""The Alembic migrations build exactly the schema `gateway.store.schema` declares, on both
databases: a hand-written revision that drifts from the tables fails here, not in production."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from gateway.store import database_url
from gateway.store.schema import metadata


def test_migrated_database_matches_the_declared_schema(db_url: str) -> None:
    engine = create_engine(database_url(db_url))
    try:
        with engine.connect() as conn:
            tables = set(conn.dialect.get_table_names(conn))
            diff = compare_metadata(MigrationContext.configure(conn), metadata)
    finally:
        engine.dispose()
    assert set(metadata.tables) <= tables
    assert diff == []
