"""Issue 8, finding 3 (the MQTT part): ingest is supervised and /healthz says when it is down.

A real fault, not an injected one: the PostgreSQL tables ingest writes (processed ids and
dead letters) are renamed away under a running `guanjia gateway run`. Every write of the
batch fails, and so does the dead letter for it, so the failure leaves the ingest callback.
Before the fix the ingest task died unsupervised and /healthz kept answering 200 "ok". Now
health answers 503 with the ingest's state while it is down, and once the tables are back
the held message is redelivered and becomes a ticket.

That fault now goes through the STALLED path (the database refuses every write), so a second
test makes the ingest really raise: the broker refuses the gateway's login (a wrong password
in its settings). Retrying the same credentials cannot help, so `run` raises it to the
supervisor instead of reconnecting quietly as if the broker were away: /healthz says
`ingest: failed` (503) with the reason, and once the broker accepts the account the
supervisor's restart brings ingest back.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

import contract as c
from tests.gateway.factories import event
from tests.gateway.proc import Publisher, start_gateway, wait_for
from tests.gateway.test_multiprocess import counts, prepare
from tests.support.broker import GATEWAY_USER, MosquittoBroker

pytestmark = pytest.mark.mqtt

TABLES = ("processed_messages", "dead_letters")


def rename(db_url: str, away: bool) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        for table in TABLES:
            old, new = (table, f"{table}_away") if away else (f"{table}_away", table)
            conn.execute(f"ALTER TABLE {old} RENAME TO {new}")


@pytest.mark.postgres
def test_ingest_failure_is_reported_by_healthz_and_ingest_resumes(
    broker_factory: Callable[..., MosquittoBroker],
    tmp_path: Path,
    isolated_postgres_url: str,
    site_id: str,
) -> None:
    db_url = isolated_postgres_url
    broker = broker_factory()
    prepare(db_url, site_id, ("cam-a",))
    gateway = start_gateway(tmp_path, db_url, broker, "gw-supervised")
    try:
        gateway.wait_ready()
        assert (gateway.health() or {}).get("http_status") == 200
        rename(db_url, away=True)
        publisher = Publisher(broker, "pub-supervised")
        publisher.send(event(site_id, "cam-a", "ev-sup-0001"), str(c.event_topic(site_id, "cam-a")))
        publisher.close()

        def down() -> bool | object:
            health = gateway.health() or {}
            return (
                health.get("http_status") == 503 and health.get("ingest") != "running"
            ) or health

        wait_for(down, 30, "/healthz reporting ingest down")
        assert gateway.process.poll() is None  # the process lives on; only ingest is down

        rename(db_url, away=False)
        wait_for(lambda: counts(db_url)["tickets"] == 1, 60, "the held event as a ticket")

        def up() -> bool | object:
            health = gateway.health() or {}
            return (
                health.get("http_status") == 200 and health.get("ingest") == "running"
            ) or health

        wait_for(up, 30, "/healthz back to ok")
    finally:
        gateway.stop()


def test_broker_refusing_the_gateway_login_is_a_supervised_failure(
    broker_factory: Callable[..., MosquittoBroker],
    tmp_path: Path,
    sqlite_url: str,
    site_id: str,
) -> None:
    broker = broker_factory(
        {GATEWAY_USER: "the-brokers-password", "cam-a": "pw-cam-a"}, site_id=site_id
    )
    prepare(sqlite_url, site_id, ("cam-a",))
    gateway = start_gateway(
        tmp_path, sqlite_url, broker, GATEWAY_USER, password="the-gateways-password"
    )
    try:

        def failed() -> bool | object:
            health = gateway.health() or {}
            return (
                health.get("http_status") == 503
                and health.get("ingest") == "failed"
                and "refused" in (health.get("ingest_failure") or "")
            ) or health

        wait_for(failed, 30, "/healthz reporting the ingest failed")
        assert gateway.process.poll() is None  # only ingest is down

        # The operator fixes the account: the broker now takes the gateway's password.
        for name in ("passwd", "acl"):
            (broker.workdir / name).unlink()
        broker.users[GATEWAY_USER] = "the-gateways-password"
        broker.restart()
        # The supervisor's next restart logs in and subscribes (the first session it has).
        wait_for(lambda: (gateway.health() or {}).get("mqtt_connected") is True, 60, "a connection")
        publisher = Publisher(broker, "cam-a", "pw-cam-a")
        publisher.send(event(site_id, "cam-a", "ev-sup-0002"), str(c.event_topic(site_id, "cam-a")))
        publisher.close()
        wait_for(lambda: counts(sqlite_url)["tickets"] == 1, 60, "the event as a ticket")

        def up() -> bool | object:
            health = gateway.health() or {}
            return (
                health.get("http_status") == 200 and health.get("ingest") == "running"
            ) or health

        wait_for(up, 30, "/healthz back to ok")
    finally:
        gateway.stop()
