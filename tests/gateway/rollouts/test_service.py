"""The rollout step on a real store and the real ingest path, with a fake clock: commands
recorded and published, device reports moving rows, waves advancing, the halt."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

import contract as c
from gateway.ingest import IngestHandler
from gateway.rollouts.links import check_link
from gateway.rollouts.plan import RolloutPolicy, plan_waves
from gateway.rollouts.records import ArtifactPublic
from gateway.rollouts.service import RolloutService, rollout_step, send_all
from gateway.rollouts.settings import ModelRegistrySettings
from gateway.sla import DEFAULT_POLICIES
from gateway.store import Store
from tests.gateway.factories import seed_site

SITE = "site-r"
KEY = "service-test-secret-" + "k" * 32
T0 = 1_800_000_000.0
SHA = "ab" * 32


class Sent:
    """What the step published, decoded."""

    def __init__(self) -> None:
        self.commands: list[c.Command] = []

    async def __call__(self, topic: str, payload: bytes) -> None:
        message = c.decode(c.Command, payload)
        assert isinstance(message, c.Command)
        assert topic == str(c.command_topic(message.site_id, message.device_id, message.name))
        self.commands.append(message)

    def take(self) -> list[c.Command]:
        out, self.commands = self.commands, []
        return sorted(out, key=lambda m: m.device_id)


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    """SQLite and PostgreSQL (tests/gateway/conftest.py), migrated."""
    s = Store(db_url)
    seed_site(s, SITE, ("cam-a", "cam-b", "cam-c"))
    s.rollouts.add_artifact(
        ArtifactPublic(
            sha256=SHA,
            name="yolox_nano",
            version="2.0.0",
            size=1234,
            model_sha256="cd" * 32,
            key_id="0" * 16,
            min_edge_version="0.1.0",
            created=T0,
            uploaded_by="admin",
            uploaded_at=T0,
        )
    )
    yield s
    s.close()


def _report(
    handler: IngestHandler, command: c.Command, state: str, ts: float, reason: str | None = None
) -> None:
    failed = state in {"failed", "rolled_back"}
    result = c.CommandResult(
        ts=ts,
        site_id=SITE,
        device_id=command.device_id,
        command_id=f"{command.command_id}.{int(ts)}",
        name="model_update",
        status=c.CommandStatus.ERROR if failed else c.CommandStatus.OK,
        reason=reason,
        detail={
            "command": command.command_id,
            "state": state,
            "seq": int(ts),
            "artifact": SHA,
            "running": None,
        },
    )
    topic = str(c.command_result_topic(SITE, command.device_id))
    assert handler.handle(topic, c.encode(result), ts).outcome.value == "accepted"


def _states(store: Store, rollout_id: str) -> dict[str, str]:
    return {
        d.device_id: d.state.value for d in store.rollouts.get_rollout(rollout_id).devices or []
    }


def test_waves_advance_on_reports_and_a_failure_halts(store: Store, tmp_path: Path) -> None:
    settings = ModelRegistrySettings(store_dir=tmp_path, public_url="http://gw:8000")
    service = RolloutService(store, settings, KEY)
    handler = IngestHandler(store, dict(DEFAULT_POLICIES))
    policy = RolloutPolicy(canary=1, waves=(0.5, 1.0), probation_s=10, device_timeout_s=100)
    store.rollouts.create_rollout(
        "r1", SITE, SHA, policy, plan_waves(["cam-a", "cam-b", "cam-c"], policy), "admin", T0
    )
    sent = Sent()

    asyncio.run(rollout_step(service, sent, T0))
    [install] = sent.take()
    assert install.device_id == "cam-a"
    assert install.issued_by == "gateway"
    assert install.expires_at == T0 + 100
    args = install.args
    assert (args["action"], args["sha256"], args["size"], args["probation_s"]) == (
        "install",
        SHA,
        1234,
        10.0,
    )
    link = urlparse(str(args["url"]))
    assert link.netloc == "gw:8000"
    q = {k: v[0] for k, v in parse_qs(link.query).items()}
    assert (
        check_link(
            KEY, SHA, site_id=SITE, device_id="cam-a", expires=int(q["exp"]), sig=q["sig"], now=T0
        )
        is None
    )
    audit = store.commands.list_commands(SITE, "cam-a")
    assert [(a.name, a.state) for a in audit] == [("model_update", "sent")]
    # The audit (readable with read_devices) keeps the link without its credential.
    kept = urlparse(str(audit[0].args["url"]))
    assert (kept.path, parse_qs(kept.query)["sig"]) == (link.path, ["[redacted]"])
    assert q["sig"] not in str(audit[0].args)

    asyncio.run(rollout_step(service, sent, T0 + 1))
    assert sent.take() == []  # waiting for the canary: nothing sent twice
    _report(handler, install, "downloading", T0 + 2)
    _report(handler, install, "probation", T0 + 5)
    _report(handler, install, "downloading", T0 + 3)  # late and older: ignored
    assert _states(store, "r1")["cam-a"] == "probation"
    _report(handler, install, "active", T0 + 15)
    asyncio.run(rollout_step(service, sent, T0 + 16))
    [second] = sent.take()
    assert second.device_id == "cam-b"
    assert store.rollouts.get_rollout("r1").wave == 1

    _report(handler, second, "failed", T0 + 20, "verify: signature does not verify")
    asyncio.run(rollout_step(service, sent, T0 + 21))
    reverts = sent.take()
    assert [(m.device_id, m.args["action"]) for m in reverts] == [
        ("cam-a", "revert"),
        ("cam-b", "revert"),
    ]
    rollout = store.rollouts.get_rollout("r1")
    assert rollout.state.value == "halted"
    assert rollout.reason == "wave 2: 1 of 1 devices failed or rolled back (threshold 20%)"
    assert _states(store, "r1") == {"cam-a": "active", "cam-b": "failed", "cam-c": "cancelled"}
    # The revert's answer moves cam-a (matched by the last command sent to it).
    _report(handler, reverts[0], "rolled_back", T0 + 22, "reverted by the gateway")
    assert _states(store, "r1")["cam-a"] == "rolled_back"
    asyncio.run(rollout_step(service, sent, T0 + 500))
    assert sent.take() == []  # halted is final


def test_a_silent_device_times_out_and_an_unreachable_broker_resends(
    store: Store, tmp_path: Path
) -> None:
    settings = ModelRegistrySettings(store_dir=tmp_path, public_url="http://gw:8000")
    service = RolloutService(store, settings, KEY)
    policy = RolloutPolicy(canary=1, probation_s=10, device_timeout_s=100)
    store.rollouts.create_rollout(
        "r2", SITE, SHA, policy, plan_waves(["cam-a"], policy), "admin", T0
    )
    asyncio.run(rollout_step(service, None, T0))  # no broker: recorded, not sent
    assert _states(store, "r2") == {"cam-a": "pending"}
    assert [a.state for a in store.commands.list_commands(SITE, "cam-a")] == ["unavailable"]
    sent = Sent()
    asyncio.run(rollout_step(service, sent, T0 + 1))
    assert [m.device_id for m in sent.take()] == ["cam-a"]  # sent again
    asyncio.run(rollout_step(service, sent, T0 + 50))
    assert _states(store, "r2") == {"cam-a": "pending"}
    asyncio.run(rollout_step(service, sent, T0 + 102))
    rollout = store.rollouts.get_rollout("r2")
    assert rollout.state.value == "halted"
    [row] = rollout.devices or []
    assert row.state.value == "failed"
    assert row.reason == "timed out: no final answer 100 s after the command"


def test_a_device_that_never_answers_a_cancel_still_times_out(store: Store, tmp_path: Path) -> None:
    settings = ModelRegistrySettings(store_dir=tmp_path, public_url="http://gw:8000")
    service = RolloutService(store, settings, KEY)
    handler = IngestHandler(store, dict(DEFAULT_POLICIES))
    policy = RolloutPolicy(canary=1, probation_s=10, device_timeout_s=100)
    waves = plan_waves(["cam-a", "cam-b"], policy)
    store.rollouts.create_rollout("r3", SITE, SHA, policy, waves, "admin", T0)
    sent = Sent()
    asyncio.run(rollout_step(service, sent, T0))
    [install] = sent.take()
    _report(handler, install, "downloading", T0 + 1)
    asyncio.run(send_all(store, service.cancel("r3", T0 + 2), sent))
    assert [m.args["action"] for m in sent.take()] == ["cancel"]
    assert _states(store, "r3") == {"cam-a": "downloading", "cam-b": "cancelled"}
    asyncio.run(rollout_step(service, sent, T0 + 50))
    assert _states(store, "r3")["cam-a"] == "downloading"  # within its time: no verdict
    asyncio.run(rollout_step(service, sent, T0 + 102))  # the node never answered
    rollout = store.rollouts.get_rollout("r3")
    assert rollout.state.value == "cancelled"
    assert _states(store, "r3") == {"cam-a": "failed", "cam-b": "cancelled"}
    assert sent.take() == []  # an ended rollout sends nothing more
    assert "r3" not in store.rollouts.active_rollout_ids()  # settled: no longer looked at


def test_a_revert_the_broker_did_not_take_is_sent_again(store: Store, tmp_path: Path) -> None:
    settings = ModelRegistrySettings(store_dir=tmp_path, public_url="http://gw:8000")
    service = RolloutService(store, settings, KEY)
    handler = IngestHandler(store, dict(DEFAULT_POLICIES))
    policy = RolloutPolicy(canary=2, probation_s=10, device_timeout_s=100)
    waves = plan_waves(["cam-a", "cam-b", "cam-c"], policy)
    store.rollouts.create_rollout("r4", SITE, SHA, policy, waves, "admin", T0)
    sent = Sent()
    asyncio.run(rollout_step(service, sent, T0))
    first, second = sent.take()
    _report(handler, first, "probation", T0 + 2)
    _report(handler, second, "failed", T0 + 3, "self-test: detections differ")
    asyncio.run(rollout_step(service, None, T0 + 4))  # halts while the broker is away
    assert store.rollouts.get_rollout("r4").state.value == "halted"
    audit = store.commands.list_commands(SITE, "cam-a")
    assert [(a.args["action"], a.state) for a in audit] == [
        ("revert", "unavailable"),
        ("install", "sent"),
    ]
    asyncio.run(rollout_step(service, sent, T0 + 6))  # the broker is back
    again = sent.take()
    assert [(m.device_id, m.args["action"]) for m in again] == [
        ("cam-a", "revert"),
        ("cam-b", "revert"),
    ]
    _report(handler, again[0], "rolled_back", T0 + 7, "reverted by the gateway")
    assert _states(store, "r4")["cam-a"] == "rolled_back"
    asyncio.run(rollout_step(service, sent, T0 + 8))
    assert sent.take() == []  # delivered: not sent a third time
