"""Migrated databases for tests, made fast: a new SQLite file is a copy of one file migrated
once per process (Alembic's `upgrade head` costs ~0.2 s a database, hundreds of times a run).

The copy is what `migrate` made, byte for byte and with its private file mode;
tests/gateway/test_migrations.py and test_store_file_mode.py run the migrations themselves.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from functools import cache
from pathlib import Path

from gateway.store import migrate

_SQLITE = "sqlite:///"


@cache
def _template() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="guanjia-migrated-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    path = folder / "template.db"
    migrate(f"{_SQLITE}{path}")
    return path


def migrate_fast(url: str) -> None:
    """`migrate(url)`, except that a SQLite file that does not exist yet becomes a copy of
    the migrated template."""
    if url.startswith(_SQLITE) and "?" not in url:
        path = Path(url.removeprefix(_SQLITE))
        if not path.exists():
            shutil.copy(_template(), path)  # copy() keeps the template's 0600
            return
    migrate(url)
