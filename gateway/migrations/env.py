"""Alembic environment: runs on the connection `gateway.store.migrate` hands over, or on
``sqlalchemy.url`` when Alembic is driven from its own command line."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from gateway.store.engine import make_engine
from gateway.store.schema import metadata


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Migrate on a given connection, or open one from the configured URL."""
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = context.config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("set sqlalchemy.url or pass a connection")
    engine = make_engine(url)
    with engine.begin() as conn:
        _run(conn)
    engine.dispose()


run_migrations_online()
