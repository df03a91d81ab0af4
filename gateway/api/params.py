"""Bounded integer path and query parameters: out of range is 422, never a database error.

Row ids live in 32-bit Integer columns (PostgreSQL refuses 2^31, SQLite 2^63 as a
parameter), and no table holds more rows than that, so offsets share the bound.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query

from contract import INT32_MAX

RowId = Annotated[int, Path(ge=1, le=INT32_MAX, description="A row id (1 to 2^31-1).")]
"""A ticket's, attachment's or other row's id in the URL."""

Offset = Annotated[int, Query(ge=0, le=INT32_MAX, description="Rows to skip (at most 2^31-1).")]
"""How many rows a list skips."""


Limit = Annotated[int, Query(ge=1, le=1000, description="At most this many rows (1 to 1000).")]
"""How many rows a registry list returns (tickets cap theirs at 500)."""


SITE_ID = r"^[A-Za-z0-9_-]{1,64}$"
"""What a site id is (as in the site files and device registrations)."""

SiteIdPath = Annotated[str, Path(pattern=SITE_ID, description="A site id.")]
"""A site id in the URL (it may end up in a download's file name: nothing else passes)."""

SiteIdQuery = Annotated[str | None, Query(pattern=SITE_ID, description="A site id.")]
"""An optional site id in the query."""
