"""A real `guanjia gateway run` without MQTT, and raw HTTP/1.1 over a socket, for the
front-door tests: body limits, access logs and proxies must be tried against uvicorn itself,
not the in-process TestClient (which never logs, never trusts headers and buffers bodies)."""

from __future__ import annotations

import os
import select
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.gateway.proc import GatewayProcess, spawn_gateway, wait_for
from tests.support.broker import free_port

JWT_SECRET = "front-door-test-secret-0123456789abcdef"


def start_http_gateway(
    workdir: Path, db_url: str, *, log_level: str = "info", **settings: Any
) -> GatewayProcess:
    """Start `guanjia gateway run` (no ingest) and wait until its database answers."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GUANJIA_GATEWAY_")}
    values: dict[str, Any] = {
        "DATABASE_URL": db_url,
        "JWT_SECRET": JWT_SECRET,
        "INGEST_ENABLED": "false",
        "SLA_TICK_S": 3600,
        "WEBHOOK_TICK_S": 3600,
    }
    values.update({k.upper(): v for k, v in settings.items()})
    log = workdir / f"gateway-http-{port}.log"
    gateway = spawn_gateway(env, values, log, port, log_level)
    process = gateway.process

    def up() -> bool | str:
        if process.poll() is not None:
            raise RuntimeError(f"gateway exited:\n{log.read_text()[-3000:]}")
        return (gateway.health() or {}).get("database") is True

    wait_for(up, 30, "the gateway's HTTP API")
    return gateway


def rss_bytes(pid: int) -> int:
    """Resident set size of a process, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for pid {pid}")


@dataclass
class RawAnswer:
    """What the server answered, and how much of the body we had sent by then."""

    status: int
    head: str
    body_sent: int


def _read_answer(sock: socket.socket) -> tuple[int, str]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    return int(head.split(" ", 2)[1]), head


def send_streaming(
    port: int,
    path: str,
    headers: dict[str, str],
    body: Iterator[bytes],
    *,
    answer_timeout: float = 60.0,
) -> RawAnswer:
    """Send a request head, then body pieces only while the server has not answered yet.

    The server may answer (413, 401) before the body is complete; then we stop sending, as a
    well-behaved client would, and report how much of the body went out. `answer_timeout`
    bounds the wait for an answer after the last piece (or when the socket will not take more).
    """
    lines = [f"POST {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode()
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=answer_timeout) as sock:
        sock.sendall(head)
        pending = b""
        exhausted = False
        while True:
            want_write = [sock] if not exhausted or pending else []
            readable, writable, _ = select.select([sock], want_write, [], answer_timeout)
            if readable:
                status, answer = _read_answer(sock)
                return RawAnswer(status, answer, sent)
            if not writable:
                raise TimeoutError(f"no answer within {answer_timeout} s ({sent} B sent)")
            if not pending:
                piece = next(body, None)
                if piece is None:
                    exhausted = True
                    continue
                pending = piece
            try:
                n = sock.send(pending)
            except (BrokenPipeError, ConnectionResetError):
                status, answer = _read_answer(sock)
                return RawAnswer(status, answer, sent)
            sent += n
            pending = pending[n:]


def pieces(total: int, size: int = 1 << 20, *, chunked: bool = False) -> Iterator[bytes]:
    """`total` bytes of a JSON string body in `size` pieces (HTTP chunks when `chunked`)."""
    first = True
    left = total
    while left > 0:
        n = min(size, left)
        data = bytearray(b"a" * n)
        if first:
            data[0:1] = b'"'
            first = False
        if left == n:
            data[-1:] = b'"'
        left -= n
        yield (f"{n:x}\r\n".encode() + bytes(data) + b"\r\n") if chunked else bytes(data)
    if chunked:
        yield b"0\r\n\r\n"
