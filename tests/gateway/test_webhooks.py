"""Webhooks: queued with the ticket, POSTed in the group-bot shape, retried after a failure."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

import contract as c
from gateway.ingest import IngestHandler
from gateway.metrics import GatewayMetrics
from gateway.notify import WebhookSender
from gateway.sla import DEFAULT_POLICIES
from gateway.store import Store
from tests.gateway.factories import T0, event, seed_site, topic_of


class Bot:
    """A chat-bot endpoint that fails the first request with HTTP 500, then accepts."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, object]] = []
        bot = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                bot.bodies.append(json.loads(self.rfile.read(length)))
                status = 500 if len(bot.bodies) == 1 else 200
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"errcode": 0, "errmsg": "ok"}')

            def log_message(self, *_args: object) -> None:
                return

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def bot() -> Iterator[Bot]:
    b = Bot()
    yield b
    b.server.shutdown()
    b.server.server_close()


async def test_webhook_retried_until_delivered(store: Store, bot: Bot) -> None:
    seed_site(store, "site-1", ("cam-a",))
    store.webhooks.add_webhook(bot.url, "wecom", grid_id="g-site-1", category="illegal_parking")
    store.webhooks.add_webhook(bot.url, "feishu", grid_id="other-grid")  # must not fire
    message = event("site-1", "cam-a", "ev-hook-0001")
    IngestHandler(store, dict(DEFAULT_POLICIES)).handle(topic_of(message), c.encode(message), T0)
    sender = WebhookSender(store, GatewayMetrics(), timeout_s=5, max_attempts=3)
    try:
        assert await sender.tick() == 1  # HTTP 500
        state = store.webhooks.notification_states()[0]
        assert state["attempts"] == 1
        assert state["delivered_at"] is None
        assert state["last_error"] == "HTTP 500"
        assert await sender.tick() == 0  # backing off
        store.webhooks.finish_delivery(state["id"], 0, error="HTTP 500", retry_at=0.0)  # due now
        assert await sender.tick() == 1
    finally:
        await sender.aclose()
    final = store.webhooks.notification_states()
    assert len(final) == 1
    assert final[0]["delivered_at"] is not None
    assert len(bot.bodies) == 2
    body = bot.bodies[1]
    assert body["msgtype"] == "text"
    assert "illegal_parking" in body["text"]["content"]  # type: ignore[index]
