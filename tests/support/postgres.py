"""A private PostgreSQL schema per test (``search_path`` in the URL), dropped afterwards; a
database per pytest-xdist worker."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg


def isolated_schema(base_url: str) -> Iterator[str]:
    """Yield a URL whose connections use a fresh, empty schema; drop it afterwards."""
    schema = "t_" + uuid.uuid4().hex[:12]
    plain = base_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in plain else "?"
    try:
        yield f"{plain}{sep}options={quote(f'-csearch_path={schema}')}"
    finally:
        with psycopg.connect(plain, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


def worker_database(base_url: str) -> str:
    """`base_url` itself in a plain run; under pytest-xdist a database of the worker's own
    beside it (created once, kept for later runs). Schemas already keep tests apart, but
    advisory locks (the feed and ingest locks) are per database: two workers sharing one
    would wait on each other's transactions."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if not worker:
        return base_url
    parts = urlsplit(base_url)
    name = f"{parts.path.lstrip('/') or 'postgres'}_{worker}"
    if not name.replace("_", "").isalnum():
        raise ValueError(f"unexpected database name {name!r}")
    plain = base_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        for attempt in range(20):
            if exists is not None:
                break
            try:
                conn.execute(f'CREATE DATABASE "{name}"')
                break
            except psycopg.errors.DuplicateDatabase:
                break  # another run of the same worker made it meanwhile
            except psycopg.errors.ObjectInUse:
                # Someone is connected to template1 for a moment; CREATE DATABASE waits for none.
                if attempt == 19:
                    raise
                time.sleep(0.5)
    return urlunsplit(parts._replace(path=f"/{name}"))
