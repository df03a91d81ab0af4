"""The gateway's SQLite database holds password hashes: it and its WAL/SHM files are
readable by the gateway's user only (finding 17)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from gateway.store import Store, migrate
from tests.gateway.factories import seed_site


@pytest.mark.parametrize("existing", [False, True])
def test_sqlite_database_files_are_private(tmp_path: Path, existing: bool) -> None:
    path = tmp_path / "gw.db"
    if existing:  # a database created by an older gateway, world-readable
        path.touch()
        path.chmod(0o644)
    old = os.umask(0o022)
    try:
        url = f"sqlite:///{path}"
        migrate(url)
        after_migrate = stat.S_IMODE(path.stat().st_mode)
        store = Store(url)
        try:
            seed_site(store, "s1")
            files = [path, Path(f"{path}-wal"), Path(f"{path}-shm")]
            assert all(f.exists() for f in files)
            modes = {f.name: stat.S_IMODE(f.stat().st_mode) for f in files}
        finally:
            store.close()
    finally:
        os.umask(old)
    assert after_migrate == 0o600  # never readable, not even before the gateway starts
    assert modes == dict.fromkeys(modes, 0o600)
