"""A local HTTP file server standing in for a download site (no internet here): serves a
folder, honours ``Range: bytes=N-`` (206), counts requests and bytes, and can cut a response
short once to simulate a dropped connection."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


@dataclass
class Stats:
    """What the server sent."""

    requests: list[str] = field(default_factory=list)
    ranges: list[str] = field(default_factory=list)
    bytes_sent: int = 0
    cut_after: int | None = None
    """Send only this many bytes of the next response, then drop the connection."""


class FileServer:
    """`with FileServer(root) as server:` → ``server.url`` serves `root`."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.stats = Stats()
        stats, base = self.stats, self.root

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                stats.requests.append(self.path)
                path = (base / self.path.lstrip("/")).resolve()
                if not path.is_relative_to(base) or not path.is_file():
                    self.send_error(404)
                    return
                data = path.read_bytes()
                start = 0
                wanted = self.headers.get("Range")
                if wanted and wanted.startswith("bytes=") and wanted.endswith("-"):
                    stats.ranges.append(wanted)
                    start = int(wanted[len("bytes=") : -1])
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if stats.cut_after is not None:
                    body, stats.cut_after = body[: stats.cut_after], None
                    self.wfile.write(body)
                    stats.bytes_sent += len(body)
                    self.close_connection = True
                    return
                self.wfile.write(body)
                stats.bytes_sent += len(body)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> FileServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
