"""A device's download link lives as long as its install command: a node that starts late
(offline when the rollout sent it, the QoS 1 command delivered on reconnect) or resumes a cut
download near the end of its time still downloads, instead of a 403 that fails it while the
rollout waits. Through the real app: a real Mosquitto, the rollout route, a subscriber
standing in for the node, the signed download route."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient

import contract as c
from gateway.main import create_app
from gateway.mqtt_settings import MqttSettings
from gateway.rollouts.links import check_link
from gateway.rollouts.settings import ModelRegistrySettings
from gateway.store import Store
from guanjia.artifacts import generate_key
from tests.gateway.apphelpers import SITE, seed_users, settings_for, token
from tests.gateway.factories import seed_site
from tests.gateway.proc import wait_for
from tests.gateway.test_api_commands import DeviceSubscriber
from tests.support.broker import MosquittoBroker
from tests.support.tiny_artifact import tiny_artifact

LINK_TTL_S = 60  # the shortest the setting allows
DEVICE_TIMEOUT_S = 6 * 3600  # a flaky 4G site gives its nodes hours


@pytest.fixture
def broker(broker_factory: Callable[..., MosquittoBroker]) -> MosquittoBroker:
    return broker_factory()


@pytest.fixture
def client(db_url: str, broker: MosquittoBroker, tmp_path: Path) -> Iterator[TestClient]:
    seed_users(db_url)
    store = Store(db_url)
    seed_site(store, SITE, ("cam-a",))
    store.close()
    key = generate_key()
    sha = tiny_artifact(tmp_path / "a.gjm", key)
    models = ModelRegistrySettings(
        store_dir=tmp_path / "models",
        trusted_keys=[key.public.text()],
        public_url="http://testserver",
        link_ttl_s=LINK_TTL_S,
    )
    mqtt = MqttSettings(host=broker.host, port=broker.port, client_id="gw-" + uuid.uuid4().hex[:8])
    settings = settings_for(db_url, ingest_enabled=True, mqtt=mqtt, models=models)
    with TestClient(create_app(settings)) as app_client:
        ingest = app_client.app.state.ingest  # type: ignore[attr-defined]
        wait_for(ingest.connected.is_set, 15, "the gateway's MQTT connection")
        admin = token(app_client, "admin")
        uploaded = app_client.post(
            "/api/models",
            headers={**admin, "Content-Type": "application/octet-stream"},
            content=(tmp_path / "a.gjm").read_bytes(),
        )
        assert uploaded.status_code == 201, uploaded.text
        assert uploaded.json()["sha256"] == sha
        yield app_client


def test_the_download_link_is_valid_until_the_install_command_expires(
    client: TestClient, broker: MosquittoBroker
) -> None:
    node = DeviceSubscriber(broker)
    try:
        admin = token(client, "admin")
        sha = client.get("/api/models", headers=admin).json()[0]["sha256"]
        policy = {"probation_s": 60, "device_timeout_s": DEVICE_TIMEOUT_S}
        body = {"artifact_sha256": sha, "site_id": SITE, "policy": policy}
        started = client.post("/api/rollouts", headers=admin, json=body)
        assert started.status_code == 201, started.text
        wait_for(lambda: len(node.received) == 1, 10, "the install command at the node")
        topic, payload = node.received[0]
        _topic, command = c.decode_for_topic(topic, payload)
        assert isinstance(command, c.Command)
        assert command.args["action"] == "install"
        assert command.expires_at is not None
        url = str(command.args["url"])
        query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
        key = client.app.state.runtime.settings.signing_key()  # type: ignore[attr-defined]

        def refused_at(now: float) -> str | None:
            return check_link(
                key,
                sha,
                site_id=query["site"],
                device_id=query["device"],
                expires=int(query["exp"]),
                sig=query["sig"],
                now=now,
            )

        # The node starts (or resumes) its download a second before the rollout would time
        # it out: long after `link_ttl_s`, and the link still opens.
        assert refused_at(command.ts + LINK_TTL_S + 1) is None
        assert refused_at(command.expires_at - 1) is None
        assert refused_at(command.expires_at + 1) == "expired"  # not forever, though
        # The link as sent works against the real route (Range too).
        path = url.removeprefix("http://testserver")
        part = client.get(path, headers={"Range": "bytes=10-"})
        assert part.status_code == 206
        whole = client.get(path)
        assert (whole.status_code, whole.content[10:]) == (200, part.content)
    finally:
        node.close()
