"""The zone shorthands of a camera file, expanded before validation.

``polygon_px`` (points in pixels, with the camera's ``resolution``) becomes a relative
``polygon`` once, at load, so the config survives a change of stream resolution; a zone naming
several rules (``rules: {fire_lane_blocked: {...}, illegal_parking: {...}}``) becomes one zone
per rule, sharing id, polygon and inertia. Works on the parsed YAML, before pydantic sees it.
"""

from __future__ import annotations

from edge.zone_config import RuleKind


class ZoneFieldError(ValueError):
    """A zone's shorthand (polygon_px, rules) cannot be expanded; names the field."""

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}")


# Keys a zone's entries under `rules` cannot set: every rule of a zone shares them.
_SHARED_ZONE_KEYS = ("id", "polygon", "polygon_px", "inertia", "rule", "rules")


def expand_zones(data: object) -> object:
    """Zones with ``polygon_px`` converted to relative ``polygon``; ``rules`` expanded.

    Raises `ZoneFieldError` naming the field (``zones[2].polygon_px``). Data that is not a
    mapping with a list of zones is returned unchanged for the validation to reject.
    """
    if not isinstance(data, dict) or not isinstance(data.get("zones"), list):
        return data
    zones: list[object] = []
    for i, entry in enumerate(data["zones"]):
        if not isinstance(entry, dict):
            zones.append(entry)
            continue
        zone = _pixels_to_relative(dict(entry), data.get("resolution"), f"zones[{i}]")
        zones.extend(_one_per_rule(zone, f"zones[{i}]"))
    return {**data, "zones": zones}


def _pixels_to_relative(
    zone: dict[str, object], resolution: object, where: str
) -> dict[str, object]:
    if "polygon_px" not in zone:
        return zone
    if "polygon" in zone:
        raise ZoneFieldError(where, "give either polygon or polygon_px, not both")
    points = zone.pop("polygon_px")
    field = f"{where}.polygon_px"
    if (
        not isinstance(resolution, list | tuple)
        or len(resolution) != 2
        or not all(isinstance(v, int) and v > 0 for v in resolution)
    ):
        raise ZoneFieldError(
            field, "needs the camera's resolution: [width, height] in pixels at the top level"
        )
    w, h = resolution
    if not isinstance(points, list) or not all(
        isinstance(p, list | tuple) and len(p) == 2 and all(isinstance(v, int | float) for v in p)
        for p in points
    ):
        raise ZoneFieldError(field, "expected a list of [x, y] pixel points")
    for x, y in points:
        if not (0 <= x <= w and 0 <= y <= h):
            raise ZoneFieldError(field, f"point [{x}, {y}] is outside the {w}x{h} frame")
    zone["polygon"] = [[x / w, y / h] for x, y in points]
    return zone


def _one_per_rule(zone: dict[str, object], where: str) -> list[dict[str, object]]:
    if "rules" not in zone:
        return [zone]
    if "rule" in zone:
        raise ZoneFieldError(where, "give either rule or rules, not both")
    rules = zone.pop("rules")
    if not isinstance(rules, dict) or not rules:
        raise ZoneFieldError(
            f"{where}.rules", "expected a mapping of rule name to its settings, at least one"
        )
    out: list[dict[str, object]] = []
    for name, given in rules.items():
        field = f"{where}.rules.{name}"
        if name not in {r.value for r in RuleKind}:
            allowed = ", ".join(r.value for r in RuleKind)
            raise ZoneFieldError(field, f"unknown rule (allowed: {allowed})")
        settings = given or {}
        if not isinstance(settings, dict):
            raise ZoneFieldError(field, "expected a mapping of the rule's settings")
        for key in _SHARED_ZONE_KEYS:
            if key in settings:
                raise ZoneFieldError(
                    f"{field}.{key}", "set it on the zone: all rules of a zone share it"
                )
        out.append({**zone, **settings, "rule": name})
    return out
