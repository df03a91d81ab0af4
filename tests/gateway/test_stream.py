"""The console stream (SSE): every replica's changes, in commit order, resumable.

- in process: a reconnecting client gets exactly what it missed after its Last-Event-ID, in
  its own sites only, and a `reset` when that part of the feed was pruned;
- with real processes: a client on replica B sees a ticket that replica A opened from an
  MQTT event and A's later transition, then resumes on B with Last-Event-ID.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

import contract as c
from gateway.api import session
from gateway.ingest import IngestHandler
from gateway.sla import DEFAULT_POLICIES
from gateway.store import Store
from tests.gateway.apphelpers import (
    OTHER_SITE,
    PASSWORD,
    SITE,
    running_app,
    seed_users,
    settings_for,
    token,
)
from tests.gateway.factories import event, seed_site, topic_of
from tests.gateway.proc import GatewayProcess, Publisher, start_gateway, wait_for
from tests.support.broker import MosquittoBroker


@dataclass(frozen=True)
class Sse:
    """One server-sent event."""

    name: str
    data: dict[str, object]
    id: int | None


def parse(text: str) -> list[Sse]:
    events = []
    for block in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            if line.startswith(":") or ": " not in line:
                continue
            key, value = line.split(": ", 1)
            fields[key] = value
        if "event" in fields:
            ident = int(fields["id"]) if "id" in fields else None
            events.append(Sse(fields["event"], json.loads(fields["data"]), ident))
    return events


def test_last_event_id_replays_what_was_missed_in_own_sites(db_url: str) -> None:
    seed_users(db_url)
    store = Store(db_url)
    seed_site(store, SITE, ("cam-a",))
    seed_site(store, OTHER_SITE, ("cam-z",))
    handler = IngestHandler(store, dict(DEFAULT_POLICIES))
    now = time.time()
    for i, (site, device) in enumerate([(SITE, "cam-a"), (OTHER_SITE, "cam-z")] * 3):
        message = event(site, device, f"ev-stream-{i:04d}", zone_id=f"z{i}", ts=now)
        handler.handle(topic_of(message), c.encode(message), now)
    with running_app(settings_for(db_url)) as client:
        op = token(client, "op")  # site-1 only
        replay = parse(
            client.get(
                "/api/stream",
                params={"max_events": 4},
                headers={**op, "Last-Event-ID": "0"},
            ).text
        )
        assert [e.name for e in replay] == ["hello", "ticket", "ticket", "ticket"]
        assert all(e.data["site_id"] == SITE for e in replay[1:])
        assert all(e.data["action"] == "opened" for e in replay[1:])
        ids = [e.id or 0 for e in replay[1:]]
        assert all(ids)
        assert ids == sorted(ids)
        assert len(set(ids)) == 3

        # Resuming after the first one gets the other two, and the other site's operator
        # sees only theirs.
        first = ids[0]
        rest = parse(
            client.get(
                "/api/stream",
                params={"max_events": 3, "last_event_id": first},
                headers=op,
            ).text
        )
        assert [e.id for e in rest[1:]] == ids[1:]
        other = parse(
            client.get(
                "/api/stream",
                params={"max_events": 4},
                headers={**token(client, "op2"), "Last-Event-ID": "0"},
            ).text
        )
        assert {e.data["site_id"] for e in other[1:]} == {OTHER_SITE}
        assert not set(ids) & {e.id for e in other}

        bad = client.get("/api/stream", headers={**op, "Last-Event-ID": "yesterday"})
        assert bad.status_code == 400

        # A client away longer than the feed is kept is told to reload.
        store.feed.prune_changes(now + 3600)
        pruned = parse(
            client.get(
                "/api/stream", params={"max_events": 2}, headers={**op, "Last-Event-ID": "0"}
            ).text
        )
        assert [e.name for e in pruned] == ["hello", "reset"]
    store.close()


def test_a_stream_closes_right_after_max_events(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`max_events` ends the stream with its last event: a polling client is not held until
    the next change or keepalive (made an hour here, so a stream left open hangs the read)."""
    monkeypatch.setattr(session, "KEEPALIVE_S", 3600.0)
    seed_users(sqlite_url)
    with running_app(settings_for(sqlite_url)) as client:
        op = token(client, "op")
        answers: list[str] = []
        reader = threading.Thread(
            target=lambda: answers.append(
                client.get("/api/stream", params={"max_events": 1}, headers=op).text
            ),
            daemon=True,
        )
        reader.start()
        reader.join(30)
        assert answers, "GET /api/stream?max_events=1 stayed open after its hello"
        assert [e.name for e in parse(answers[0])] == ["hello"]


class StreamReader(threading.Thread):
    """Reads one replica's stream in the background, recording every event."""

    def __init__(self, url: str, bearer: str, max_events: int) -> None:
        super().__init__(daemon=True)
        self.url, self.bearer, self.max_events = url, bearer, max_events
        self.events: list[Sse] = []
        self.ready = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with httpx.stream(
                "GET",
                f"{self.url}/api/stream",
                params={"max_events": self.max_events},
                headers={"Authorization": f"Bearer {self.bearer}"},
                timeout=httpx.Timeout(10, read=60),
            ) as response:
                buffer = ""
                for chunk in response.iter_text():
                    buffer += chunk
                    *blocks, buffer = buffer.split("\n\n")
                    for block in blocks:
                        self.events += parse(block + "\n\n")
                        if self.events and self.events[0].name == "hello":
                            self.ready.set()
        except BaseException as exc:  # surfaced by the test, not swallowed
            self.error = exc
            self.ready.set()

    def find(self, action: str) -> Sse | None:
        return next((e for e in self.events if e.data.get("action") == action), None)


def login(gateway: GatewayProcess, username: str) -> str:
    response = httpx.post(
        f"{gateway.url}/api/login", json={"username": username, "password": PASSWORD}
    )
    response.raise_for_status()
    return str(response.json()["access_token"])


@pytest.mark.mqtt
def test_client_of_replica_b_sees_ingest_and_transitions_committed_by_a(
    broker_factory: Callable[..., MosquittoBroker], tmp_path: Path, db_url: str
) -> None:
    broker = broker_factory()
    seed_users(db_url)
    store = Store(db_url)
    seed_site(store, SITE, ("cam-a",))
    store.close()
    a = start_gateway(tmp_path, db_url, broker, "gw-stream-a")
    # B runs no ingest at all: whatever its clients see was committed by A.
    b = start_gateway(tmp_path, db_url, broker, "gw-stream-b", ingest_enabled=False)
    try:
        a.wait_ready()
        wait_for(lambda: (b.health() or {}).get("database") is True, 30, "replica B up")
        reader = StreamReader(b.url, login(b, "op"), max_events=3)
        reader.start()
        assert reader.ready.wait(15), "no hello from B"
        assert reader.error is None

        publisher = Publisher(broker, "edge-stream")
        message = event(SITE, "cam-a", "ev-stream-b-0001")
        publisher.send(message, str(c.event_topic(SITE, "cam-a")))
        publisher.close()
        wait_for(lambda: reader.find("opened") is not None, 20, "B's client sees A's ticket")
        opened = reader.find("opened")
        assert opened is not None
        assert opened.id is not None
        ticket_id = opened.data["ticket_id"]

        acked = httpx.post(
            f"{a.url}/api/tickets/{ticket_id}/acknowledge",
            headers={"Authorization": f"Bearer {login(a, 'op')}"},
            json={},
        )
        assert acked.status_code == 200, acked.text
        reader.join(20)
        assert reader.error is None
        assert [e.name for e in reader.events] == ["hello", "ticket", "ticket"]
        acknowledged = reader.find("acknowledge")
        assert acknowledged is not None
        assert acknowledged.id is not None
        assert acknowledged.id > opened.id
        assert acknowledged.data["ticket_id"] == ticket_id

        # Reconnect to B as if the connection dropped right after `opened`.
        resumed = parse(
            httpx.get(
                f"{b.url}/api/stream",
                params={"max_events": 2},
                headers={
                    "Authorization": f"Bearer {login(b, 'op')}",
                    "Last-Event-ID": str(opened.id),
                },
                timeout=20,
            ).text
        )
        assert [(e.name, e.id) for e in resumed] == [
            ("hello", None),
            ("ticket", acknowledged.id),
        ]
    finally:
        a.stop()
        b.stop()
