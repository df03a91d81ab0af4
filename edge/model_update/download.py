"""Download an artifact over HTTP into a partial file, resuming with Range after a cut.

Standard library only (urllib): the node needs no HTTP client extra for this one GET.
"""

from __future__ import annotations

import hashlib
import http.client
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

_CHUNK = 1 << 16


class DownloadError(RuntimeError):
    """The artifact could not be fetched whole; the message says why in one line."""


def _digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download(
    url: str,
    part: Path,
    *,
    size: int,
    sha256: str,
    timeout_s: float = 30.0,
    attempts: int = 5,
    should_stop: Callable[[], bool] = lambda: False,
) -> Path:
    """Fetch `url` into `part` (appending to what is already there) until it is `size` bytes
    with the given sha256; return `part`. Each attempt resumes where the last one stopped."""
    if not url.startswith(("http://", "https://")):
        raise DownloadError("download: the artifact URL must be http(s)")
    part.parent.mkdir(parents=True, exist_ok=True)
    last = "no attempt"
    for _ in range(attempts):
        have = part.stat().st_size if part.exists() else 0
        if have > size:
            part.unlink()
            have = 0
        if have < size:
            try:
                _fetch(url, part, have, size, timeout_s=timeout_s, should_stop=should_stop)
            except DownloadError:
                raise
            except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
                last = str(getattr(exc, "reason", exc))
                continue
        if part.stat().st_size == size:
            got = _digest(part)
            if got == sha256:
                return part
            part.unlink()
            raise DownloadError(
                f"download: sha256 {got[:16]}… is not the {sha256[:16]}… the command names"
            )
        last = f"truncated at {part.stat().st_size} of {size} bytes"
    raise DownloadError(f"download: gave up after {attempts} attempts: {last}")


def _fetch(
    url: str,
    part: Path,
    have: int,
    size: int,
    *,
    timeout_s: float,
    should_stop: Callable[[], bool],
) -> None:
    request = urllib.request.Request(url)  # noqa: S310 - scheme checked by the caller
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout_s)  # noqa: S310
    except urllib.error.HTTPError as exc:
        if exc.code in {401, 403, 404, 410}:
            raise DownloadError(
                f"download: the gateway answered {exc.code} (link expired or revoked)"
            ) from exc
        raise
    with response:
        if have and response.status != 206:
            have = 0  # the server ignored Range: start over
        with part.open("ab" if have else "wb") as handle:
            written = have
            while written < size:
                if should_stop():
                    raise DownloadError("download: stopped")
                chunk = response.read(min(_CHUNK, size - written))
                if not chunk:
                    break
                handle.write(chunk)
                written += len(chunk)
            handle.flush()
