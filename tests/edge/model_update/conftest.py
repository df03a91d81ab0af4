"""Fixtures of the updater tests: a key, a real signed artifact, a local file server."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.artifact_fixtures import good_detector, real_artifact, signing_key
from tests.support.http_files import FileServer

__all__ = ["files", "good_detector", "real_artifact", "signing_key"]


@pytest.fixture
def files(tmp_path: Path) -> Iterator[FileServer]:
    """A file server over tmp_path/served."""
    root = tmp_path / "served"
    root.mkdir()
    server = FileServer(root)
    yield server
    server.close()
