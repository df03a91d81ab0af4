"""A site file for tests: two places (one routed by zone, one by grid) and a small rounds
setup, written into a directory the gateway reads as GUANJIA_GATEWAY_SITES_DIR."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tests.gateway.apphelpers import SITE

GRID = f"g-{SITE}"
SITE_DOC: dict[str, Any] = {
    "site_id": SITE,
    "name": "龙海家园",
    "timezone": "Asia/Shanghai",
    "households": 1200,
    "places": [
        {"place_id": "b3-lobby", "name": "3号楼大堂", "zone_id": "zone-a"},
        {"place_id": "lane-east", "name": "东侧通道", "grid_id": GRID},
    ],
    "residents": {"low_rating_at_or_below": 2, "low_rating_action": "flag"},
    "rounds": {
        "routes": [
            {
                "route_id": "fire",
                "name": "消防巡检",
                "checkpoints": [
                    {
                        "checkpoint_id": "ext1",
                        "name": "3号楼灭火器",
                        "kind": "fire_extinguisher",
                        "tag_id": "tag-ext1",
                        "zone_id": "zone-a",
                        "checklist": [
                            {"item_id": "pressure", "text": "压力表", "pass_criteria": "绿区"},
                            {"item_id": "seal", "text": "铅封", "pass_criteria": "完好"},
                        ],
                    },
                    {
                        "checkpoint_id": "door1",
                        "name": "3号楼防火门",
                        "kind": "fire_door",
                        "tag_id": "tag-door1",
                        "grid_id": GRID,
                        "checklist": [
                            {
                                "item_id": "closes",
                                "text": "自动关闭",
                                "pass_criteria": "闭合",
                                "photo_required": True,
                            }
                        ],
                    },
                ],
            }
        ],
        "schedules": [
            {
                "schedule_id": "fire-day",
                "route_id": "fire",
                "grid_id": GRID,
                "every_min": 120,
                "shifts": [{"name": "day", "start": "08:00", "end": "20:00"}],
                "effective_from": "2026-01-01",
            }
        ],
    },
}


def write_sites(directory: Path, **changes: Any) -> Path:
    """`directory` holding the site file (with top-level `changes`); returns it."""
    directory.mkdir(parents=True, exist_ok=True)
    doc = {**SITE_DOC, **changes}
    (directory / f"{SITE}.yaml").write_text(
        yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8"
    )
    return directory
