"""Every shipped site file loads (the example in firmware_configs/sites)."""

from __future__ import annotations

from pathlib import Path

from gateway.sites import load_sites

SITES = Path(__file__).resolve().parents[2] / "firmware_configs" / "sites"


def test_every_shipped_site_file_loads() -> None:
    sites = load_sites(SITES)
    assert sites, "no site files shipped"
    for site in sites.values():
        assert site.places
        for schedule in site.rounds.schedules:
            assert site.rounds.route(schedule.route_id) is not None
