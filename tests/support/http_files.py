"""A local HTTP file server: stands in for a download site or the gateway's download route.

There is no internet here: the first-run downloads (`guanjia.assets`) fetch from it, and the
model updater fetches artifacts where only the updater is under test (the gateway's own route
is tested against the real app). Serves one directory on 127.0.0.1 and never a file outside
it; honours ``Range: bytes=N-`` (206); records what it was asked and sent; can cut responses
short to simulate a dropped connection, and throttle.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


@dataclass
class Behaviour:
    """How the server misbehaves (cut the first `cut_first` responses after `cut_after` bytes;
    send at most `bytes_per_s`, 0: as fast as possible) and what it saw."""

    cut_after: int | None = None
    cut_first: int = 0
    bytes_per_s: int = 0
    requests: list[str | None] = field(default_factory=list)
    """The Range header (None: the whole file) of every request for a file that exists."""
    paths: list[str] = field(default_factory=list)
    """The path of every GET, found or not."""
    bytes_sent: int = 0


class FileServer:
    """Serves `root` at ``base_url`` until `close` (or the end of a ``with`` block)."""

    def __init__(self, root: Path, behaviour: Behaviour | None = None) -> None:
        self.root = root.resolve()
        self.behaviour = behaviour or Behaviour()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                return

            def do_GET(self) -> None:
                server.serve(self)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}"
        # shutdown() waits for the next poll: 0.5 s by default, per test that closes one.
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def __enter__(self) -> FileServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def url(self, name: str) -> str:
        """URL of a file in root."""
        return f"{self.base_url}/{name}"

    def serve(self, request: BaseHTTPRequestHandler) -> None:
        """GET with an optional ``Range: bytes=N-``."""
        b = self.behaviour
        b.paths.append(request.path)
        path = (self.root / request.path.lstrip("/")).resolve()
        if not path.is_relative_to(self.root) or not path.is_file():
            request.send_error(404)
            return
        data = path.read_bytes()
        header = request.headers.get("Range")
        b.requests.append(header)
        start = 0
        match = re.fullmatch(r"bytes=(\d+)-", header or "")
        if match:
            start = int(match.group(1))
            request.send_response(206)
            request.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            request.send_response(200)
        body = data[start:]
        request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        limit = len(body)
        if b.cut_after is not None and len(b.requests) <= b.cut_first:
            limit = min(limit, b.cut_after)
        sent = 0
        chunk = 64 * 1024 if not b.bytes_per_s else max(1024, b.bytes_per_s // 20)
        try:
            while sent < limit:
                piece = body[sent : min(limit, sent + chunk)]
                request.wfile.write(piece)
                sent += len(piece)
                b.bytes_sent += len(piece)
                if b.bytes_per_s:
                    time.sleep(len(piece) / b.bytes_per_s)
        except (BrokenPipeError, ConnectionResetError):
            return
        if sent < len(body):
            request.close_connection = True

    def close(self) -> None:
        """Stop serving."""
        self._httpd.shutdown()
        self._httpd.server_close()
