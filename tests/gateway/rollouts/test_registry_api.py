"""The registry and rollout routes on the real app: verification on upload, signed download
links with Range, site scope, pause/resume/cancel answers."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from gateway.auth import issue_token
from gateway.main import create_app
from gateway.rollouts.links import signed_url
from gateway.rollouts.settings import ModelRegistrySettings
from gateway.store import Store
from guanjia.artifacts import SigningKey, generate_key
from tests.gateway.apphelpers import OTHER_SITE, SITE, seed_users, settings_for
from tests.gateway.factories import seed_site
from tests.support.artifacts import repack
from tests.support.tiny_artifact import tiny_artifact

SECRET = "test-secret-" + "x" * 32
OCTETS = {"Content-Type": "application/octet-stream"}


@dataclass
class Api:
    client: TestClient
    admin: dict[str, str]
    key: SigningKey
    tmp: Path

    def upload(self, data: bytes, who: dict[str, str] | None = None):
        return self.client.post(
            "/api/models", headers={**(who or self.admin), **OCTETS}, content=data
        )


def token(_client: TestClient, username: str) -> dict[str, str]:
    """A real API token for a seeded user, issued as /api/login issues it (login itself, an
    argon2 verification of ~0.7 s, is tested in tests/gateway/test_login.py)."""
    return {"Authorization": f"Bearer {issue_token(username, SECRET, time.time(), 3600)}"}


@pytest.fixture(scope="module")
def seeded_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Migrated, with the users of every role and both sites, once per module (~2 s);
    each test works on its own copy."""
    path = tmp_path_factory.mktemp("registry") / "seed.db"
    url = f"sqlite:///{path}"
    seed_users(url)
    store = Store(url)
    seed_site(store, SITE, ("cam-a", "cam-b", "cam-c"))
    seed_site(store, OTHER_SITE, ("cam-x",))
    store.close()
    return path


@pytest.fixture
def api(seeded_db: Path, tmp_path: Path) -> Iterator[Api]:
    db = tmp_path / "guanjia.db"
    shutil.copyfile(seeded_db, db)
    sqlite_url = f"sqlite:///{db}"
    key = generate_key()
    models = ModelRegistrySettings(
        store_dir=tmp_path / "models",
        trusted_keys=[key.public.text()],
        public_url="http://127.0.0.1:9",
        max_artifact_bytes=200_000,
    )
    with TestClient(create_app(settings_for(sqlite_url, models=models))) as client:
        yield Api(client, token(client, "admin"), key, tmp_path)


def test_upload_verifies_stores_by_sha256_and_is_idempotent(api: Api) -> None:
    sha = tiny_artifact(api.tmp / "a.gjm", api.key)
    data = (api.tmp / "a.gjm").read_bytes()
    first = api.upload(data)
    assert first.status_code == 201, first.text
    assert first.json()["sha256"] == sha
    assert first.json()["key_id"] == api.key.public.key_id
    assert (api.tmp / "models" / f"{sha}.gjm").read_bytes() == data
    assert api.upload(data).json() == first.json()
    listed = api.client.get("/api/models", headers=api.admin).json()
    assert [a["sha256"] for a in listed] == [sha]


def test_same_name_and_version_with_other_bytes_is_409(api: Api) -> None:
    tiny_artifact(api.tmp / "a.gjm", api.key)
    assert api.upload((api.tmp / "a.gjm").read_bytes()).status_code == 201
    tiny_artifact(api.tmp / "b.gjm", api.key)  # same version, new `created`: other bytes
    r = api.upload((api.tmp / "b.gjm").read_bytes())
    assert r.status_code == 409
    assert "already published" in r.json()["detail"]
    assert len(list((api.tmp / "models").glob("*.gjm"))) == 1  # the refused bytes are not kept


@pytest.mark.parametrize(
    ("damage", "words"),
    [
        ("unsigned", "unsigned artifact"),
        ("wrong key", "signature does not verify"),
        ("flipped byte", "model.onnx has sha256"),
        ("code inside", "'setup.py' is not allowed"),
        ("not a tar", "not an artifact"),
    ],
)
def test_uploads_that_do_not_verify_are_422_with_the_reason(
    api: Api, damage: str, words: str
) -> None:
    good = api.tmp / "a.gjm"
    key = generate_key() if damage == "wrong key" else api.key
    tiny_artifact(good, key)
    bad = api.tmp / "bad.gjm"
    if damage == "unsigned":
        repack(good, bad, lambda n, d: None if n == "artifact.sig" else d)
    elif damage == "flipped byte":
        repack(good, bad, lambda n, d: d[:-1] + b"!" if n == "model.onnx" else d)
    elif damage == "code inside":
        repack(good, bad, lambda n, d: d, extra=[("setup.py", b"import os")])
    elif damage == "not a tar":
        bad.write_bytes(b"PK\x03\x04" + bytes(600))
    else:
        bad = good
    r = api.upload(bad.read_bytes())
    assert r.status_code == 422, r.text
    assert words in r.json()["detail"]
    assert list((api.tmp / "models").glob("*.gjm")) == []
    assert list((api.tmp / "models").glob(".incoming-*")) == []


def test_oversized_upload_is_413_and_only_admins_publish(api: Api) -> None:
    assert api.upload(bytes(300_000)).status_code == 413
    tiny_artifact(api.tmp / "a.gjm", api.key)
    assert api.upload((api.tmp / "a.gjm").read_bytes(), token(api.client, "sup")).status_code == 403


def test_download_link_range_expiry_and_other_devices(api: Api) -> None:
    sha = tiny_artifact(api.tmp / "a.gjm", api.key)
    data = (api.tmp / "a.gjm").read_bytes()
    assert api.upload(data).status_code == 201

    def link(device: str = "cam-a", expires: float | None = None, key: str = SECRET) -> str:
        exp = int(expires if expires is not None else time.time() + 60)
        url = signed_url("http://t", key, sha, site_id=SITE, device_id=device, expires=exp)
        return url.removeprefix("http://t")

    whole = api.client.get(link())
    assert whole.status_code == 200
    assert whole.content == data
    part = api.client.get(link(), headers={"Range": "bytes=1000-"})
    assert part.status_code == 206
    assert part.content == data[1000:]
    assert api.client.get(link(expires=time.time() - 1)).status_code == 403
    assert api.client.get(link(key="another-secret-" + "y" * 32)).status_code == 403
    # A link made for cam-a, presented as cam-b's.
    forged = link().replace("device=cam-a", "device=cam-b")
    assert api.client.get(forged).status_code == 403
    # cam-a's link for this artifact does not open another one, nor a path outside the store.
    other_sha = ("0" if sha[0] != "0" else "1") + sha[1:]
    assert api.client.get(link().replace(sha, other_sha)).status_code == 403
    assert api.client.get(link().replace(sha, "..guanjia.db")).status_code == 422


def test_rollout_scope_and_state_moves(api: Api) -> None:
    sha = tiny_artifact(api.tmp / "a.gjm", api.key)
    assert api.upload((api.tmp / "a.gjm").read_bytes()).status_code == 201
    sup = token(api.client, "sup")
    body: dict[str, object] = {"artifact_sha256": sha, "site_id": OTHER_SITE}
    assert api.client.post("/api/rollouts", headers=sup, json=body).status_code == 404
    body = {"artifact_sha256": sha, "site_id": SITE, "device_ids": ["cam-a", "cam-x"]}
    r = api.client.post("/api/rollouts", headers=sup, json=body)
    assert r.status_code == 422
    assert "cam-x" in r.json()["detail"]
    body = {"artifact_sha256": "0" * 64, "site_id": SITE}
    assert api.client.post("/api/rollouts", headers=sup, json=body).status_code == 422
    body = {"artifact_sha256": sha, "site_id": SITE, "policy": {"canary": 2}}
    r = api.client.post("/api/rollouts", headers=sup, json=body)
    assert r.status_code == 201, r.text
    rollout = r.json()
    assert rollout["waves"] == 2  # 3 devices: canary of 2, then the last one
    # No broker here: the canary's installs are recorded, not sent, and tried again later.
    assert rollout["counts"] == {"pending": 3}
    rid = rollout["rollout_id"]
    other = token(api.client, "op2")
    assert api.client.get(f"/api/rollouts/{rid}", headers=other).status_code == 404
    assert api.client.post(f"/api/rollouts/{rid}/resume", headers=sup).status_code == 409
    assert api.client.post(f"/api/rollouts/{rid}/pause", headers=sup).json()["state"] == "paused"
    cancelled = api.client.post(f"/api/rollouts/{rid}/cancel", headers=sup)
    assert cancelled.json()["state"] == "cancelled"
    assert {d["state"] for d in cancelled.json()["devices"]} == {"cancelled"}
    assert api.client.post(f"/api/rollouts/{rid}/cancel", headers=sup).status_code == 409
    assert [x["rollout_id"] for x in api.client.get("/api/rollouts", headers=sup).json()] == [rid]
    assert api.client.get("/api/rollouts", headers=other).json() == []
