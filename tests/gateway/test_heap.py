"""A started gateway keeps its start-up objects out of the cyclic garbage collector
(`gateway.heap`), and gives them back when its app stops."""

from __future__ import annotations

import gc

from gateway.heap import settled
from tests.gateway.apphelpers import running_app, settings_for


def test_settled_freezes_what_exists_and_gives_it_back() -> None:
    assert gc.get_freeze_count() == 0
    with settled() as frozen:
        assert frozen > 10_000  # this test process's modules and objects
        assert gc.get_freeze_count() > 10_000
    assert gc.get_freeze_count() == 0


def test_a_running_gateway_has_its_start_up_frozen(sqlite_url: str) -> None:
    assert gc.get_freeze_count() == 0
    with running_app(settings_for(sqlite_url)) as client:
        assert client.get("/healthz").status_code in {200, 503}
        assert gc.get_freeze_count() > 10_000  # the app, its modules and schemas
    assert gc.get_freeze_count() == 0
