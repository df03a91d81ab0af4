"""Photo uploads: only real JPEG, PNG or WebP bytes are stored, under the type their bytes
show (not the one the client claimed), and user content is served so that no browser runs it:
`nosniff` on every response and a sandboxing Content-Security-Policy on photos."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

import contract as c
from gateway.ingest import IngestHandler
from gateway.sla import DEFAULT_POLICIES
from gateway.store import Store
from tests.gateway.apphelpers import SITE, running_app, seed_users, settings_for, token
from tests.gateway.factories import event, seed_site, topic_of
from tests.gateway.imagedata import encoded

HTML = b"<html><body><script>alert(document.cookie)</script></body></html>"


@pytest.fixture
def client(sqlite_url: str) -> Iterator[TestClient]:
    seed_users(sqlite_url)
    store = Store(sqlite_url)
    seed_site(store, SITE, ("cam-a",))
    now = time.time()
    message = event(SITE, "cam-a", "ev-upload-0001", ts=now)
    IngestHandler(store, dict(DEFAULT_POLICIES)).handle(topic_of(message), c.encode(message), now)
    store.close()
    with running_app(settings_for(sqlite_url)) as test_client:
        yield test_client


@pytest.mark.parametrize(
    ("name", "data", "declared"),
    [
        ("page.png", HTML, "image/png"),
        ("page.jpg", b"\xff\xd8\xff\xe0" + HTML, "image/jpeg"),
        ("page.jpg", b"\xff\xd8\xff\xe0" + b"\x00" * 64, "image/jpeg"),
        ("page.webp", b"RIFF\x10\x00\x00\x00WEBP" + HTML, "image/webp"),
        ("cut.png", encoded(".png")[:40], "image/png"),
        ("cut.jpg", encoded(".jpg")[:-200], "image/jpeg"),
    ],
)
def test_upload_that_is_not_a_whole_image_is_refused(
    client: TestClient, name: str, data: bytes, declared: str
) -> None:
    sup = token(client, "sup")
    answer = client.post(
        "/api/tickets/1/photos", headers=sup, files={"file": (name, data, declared)}
    )
    assert answer.status_code == 415, answer.text
    detail = client.get("/api/tickets/1", headers=sup).json()
    assert detail["attachments"] == []


@pytest.mark.parametrize(
    ("ext", "declared", "detected"),
    [
        (".jpg", "image/jpeg", "image/jpeg"),
        (".png", "image/png", "image/png"),
        (".webp", "image/webp", "image/webp"),
        (".png", "image/jpeg", "image/png"),  # the bytes decide, not the client
    ],
)
def test_real_image_is_stored_and_served_as_what_it_is(
    client: TestClient, ext: str, declared: str, detected: str
) -> None:
    sup = token(client, "sup")
    data = encoded(ext)
    answer = client.post(
        "/api/tickets/1/photos", headers=sup, files={"file": (f"p{ext}", data, declared)}
    )
    assert answer.status_code == 201, answer.text
    assert answer.json()["content_type"] == detected
    served = client.get(answer.json()["url"], headers=sup)
    assert served.content == data
    assert served.headers["content-type"] == detected
    assert served.headers["x-content-type-options"] == "nosniff"
    policy = served.headers["content-security-policy"]
    assert "default-src 'none'" in policy
    assert "sandbox" in policy


def test_photo_larger_than_the_setting_is_refused(sqlite_url: str) -> None:
    seed_users(sqlite_url)
    store = Store(sqlite_url)
    seed_site(store, SITE, ("cam-a",))
    now = time.time()
    message = event(SITE, "cam-a", "ev-upload-0002", ts=now)
    IngestHandler(store, dict(DEFAULT_POLICIES)).handle(topic_of(message), c.encode(message), now)
    store.close()
    data = encoded(".png")
    with running_app(settings_for(sqlite_url, max_photo_bytes=len(data) - 1)) as client:
        sup = token(client, "sup")
        files = {"file": ("p.png", data, "image/png")}
        answer = client.post("/api/tickets/1/photos", headers=sup, files=files)
        assert answer.status_code == 413


def test_every_response_says_nosniff(client: TestClient) -> None:
    for answer in (
        client.get("/healthz"),
        client.get("/api/tickets"),
        client.get("/no/such/route"),
        client.post("/api/login", json={"username": "x", "password": "y"}),
    ):
        assert answer.headers["x-content-type-options"] == "nosniff", answer.request.url
