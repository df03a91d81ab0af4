"""Session-wide fixtures: real Mosquitto brokers, databases, the model directory.

A missing `mosquitto` binary or model directory skips the tests that need them on a
developer's machine and fails them under ``CI=true``: CI must never go green by skipping.
"""

from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.broker import GATEWAY_USER, MosquittoBroker, mosquitto_binary
from tests.support.leaks import MARK, kill_leaked
from tests.support.postgres import worker_database

REPO_ROOT = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() == "true"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--run-slow", action="store_true", default=False, help="run soak/load tests marked slow"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--run-slow"):
        return
    skip_slow = pytest.mark.skip(reason="slow soak/load test: run with --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip_slow)


_test_numbers = itertools.count()


@pytest.fixture(autouse=True)
def no_leaked_process() -> Iterator[None]:
    """Fail a test that leaves a process running after its fixtures are torn down (and end
    that process): see tests/support/leaks.py."""
    value = f"{os.getpid()}-{next(_test_numbers)}"
    os.environ[MARK] = value
    yield
    leaked = kill_leaked(value)
    if leaked:
        lines = "\n".join(f"  {pid}: {cmd[:300]}" for pid, cmd in sorted(leaked.items()))
        pytest.fail(f"the test left {len(leaked)} process(es) running (now killed):\n{lines}")


def missing(what: str) -> None:
    """Skip locally, fail in CI."""
    if IN_CI:
        pytest.fail(f"{what} is required under CI=true")
    pytest.skip(f"{what} not available")


@pytest.fixture(scope="session")
def mosquitto_available() -> None:
    if mosquitto_binary() is None:
        missing("the mosquitto binary")


@pytest.fixture(scope="session")
def mqtt_broker(
    mosquitto_available: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MosquittoBroker]:
    """An anonymous Mosquitto shared by the session. Tests must not stop it."""
    broker = MosquittoBroker(tmp_path_factory.mktemp("mosquitto-anon"))
    broker.start()
    yield broker
    broker.stop()


DEVICE_PASSWORDS = {"device-a": "pw-a-" + uuid.uuid4().hex, "device-b": "pw-b-" + uuid.uuid4().hex}
GATEWAY_PASSWORD = "pw-gw-" + uuid.uuid4().hex


@pytest.fixture
def mqtt_auth_broker(
    mosquitto_available: None, tmp_path: Path, site_id: str
) -> Iterator[MosquittoBroker]:
    """A password + ACL Mosquitto on the shipped ACL: gateway account `gateway`, devices
    `device-a`, `device-b` of the test's `site_id` (one per test: the ACL pins the site)."""
    users = {GATEWAY_USER: GATEWAY_PASSWORD, **DEVICE_PASSWORDS}
    broker = MosquittoBroker(tmp_path / "mosquitto-auth", users=users, site_id=site_id)
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
def broker_factory(
    mosquitto_available: None, tmp_path: Path
) -> Iterator[Callable[..., MosquittoBroker]]:
    """Make private brokers that a test may stop, kill and restart; all stopped afterwards."""
    made: list[MosquittoBroker] = []

    def make(users: dict[str, str] | None = None, **options: Any) -> MosquittoBroker:
        """`options`: more MosquittoBroker fields (site_id, gateways, grants, …)."""
        broker = MosquittoBroker(tmp_path / f"mosquitto-{len(made)}", users=users or {}, **options)
        broker.start()
        made.append(broker)
        return broker

    yield make
    for broker in made:
        broker.kill()


@pytest.fixture
def site_id() -> str:
    """A site id unique to the test, so tests sharing a broker never see each other's topics."""
    return "t" + uuid.uuid4().hex[:12]


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """SQLAlchemy URL of a fresh SQLite file in the test's tmp_path."""
    return f"sqlite:///{tmp_path / 'guanjia.db'}"


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """PostgreSQL URL from GUANJIA_TEST_POSTGRES_URL (.ci/run always sets it)."""
    url = os.environ.get("GUANJIA_TEST_POSTGRES_URL")
    if not url:
        missing("GUANJIA_TEST_POSTGRES_URL")
    assert url is not None
    return worker_database(url)


@pytest.fixture(scope="session")
def model_dir() -> Path:
    """Directory holding the ONNX weights, found as the demo finds them (`guanjia.assets`):
    GUANJIA_MODEL_DIR, a mirror (GUANJIA_DATA_DIR, else ../shared), the user cache, else
    downloaded (sha256-verified) when there is a network."""
    from guanjia.assets import AssetError, ensure_model

    try:
        return ensure_model()
    except AssetError as exc:
        missing(f"the detector weights ({exc})")
    raise AssertionError("unreachable")


@pytest.fixture(scope="session")
def testdata_images() -> Path:
    """The real street photos (COCO and darknet's dog.jpg), found or fetched like the model."""
    from guanjia.assets import AssetError, ensure_photos

    try:
        return ensure_photos()
    except AssetError as exc:
        missing(f"the demo photos ({exc})")
    raise AssertionError("unreachable")
