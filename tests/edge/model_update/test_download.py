"""Artifact downloads against a local HTTP server: resume with Range, refuse what is wrong."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from edge.model_update.download import DownloadError, download
from tests.support.http_files import Behaviour, FileServer


def _blob(tmp_path: Path, size: int = 3_000_000) -> tuple[Path, str]:
    data = bytes(range(256)) * (size // 256)
    path = tmp_path / "served" / "a.gjm"
    path.write_bytes(data)
    return path, hashlib.sha256(data).hexdigest()


def test_cut_connections_resume_with_range(tmp_path: Path, files: FileServer) -> None:
    path, sha = _blob(tmp_path)
    files.behaviour = Behaviour(cut_after=1_000_000, cut_first=2)
    part = tmp_path / "dl" / "a.part"
    download(files.url("a.gjm"), part, size=path.stat().st_size, sha256=sha)
    assert part.read_bytes() == path.read_bytes()
    # First request from 0, then two resumes from where each cut left off.
    assert files.behaviour.requests == [None, "bytes=1000000-", "bytes=2000000-"]


def test_a_partial_file_left_by_a_killed_node_is_resumed(tmp_path: Path, files: FileServer) -> None:
    path, sha = _blob(tmp_path)
    part = tmp_path / "a.part"
    part.write_bytes(path.read_bytes()[:1_234_567])
    download(files.url("a.gjm"), part, size=path.stat().st_size, sha256=sha)
    assert files.behaviour.requests == ["bytes=1234567-"]
    assert hashlib.sha256(part.read_bytes()).hexdigest() == sha


def test_truncated_for_good_gives_up_with_one_line(tmp_path: Path, files: FileServer) -> None:
    path, sha = _blob(tmp_path)
    files.behaviour = Behaviour(cut_after=0, cut_first=100)
    with pytest.raises(DownloadError, match=r"gave up after 3 attempts: truncated at 0 of"):
        download(
            files.url("a.gjm"), tmp_path / "p", size=path.stat().st_size, sha256=sha, attempts=3
        )


def test_wrong_sha256_is_refused_and_the_file_removed(tmp_path: Path, files: FileServer) -> None:
    path, _ = _blob(tmp_path)
    part = tmp_path / "p"
    with pytest.raises(DownloadError, match=r"sha256 .* is not the"):
        download(files.url("a.gjm"), part, size=path.stat().st_size, sha256="0" * 64)
    assert not part.exists()


def test_expired_link_is_not_retried(tmp_path: Path, files: FileServer) -> None:
    with pytest.raises(DownloadError, match="answered 404"):
        download(files.url("gone.gjm"), tmp_path / "p", size=10, sha256="0" * 64)
    assert len(files.behaviour.requests) == 0  # 404 before the Range bookkeeping
