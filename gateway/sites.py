"""Site files: one YAML file per site (``<sites_dir>/<site_id>.yaml``) holding what people set
up once and rarely change — the site's time zone and household count, the **places** QR codes
are posted at, the resident-report policy, and the patrol rounds (`gateway.rounds.config`).

Validated with pydantic (``extra="forbid"``); a bad file is one line::

    error: sites/site-1.yaml: places[2].zone_id: String should match pattern …
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from gateway.rounds.config import Id, RoundsConfig


class SiteConfigError(ValueError):
    """A site file that cannot be used; the message is one line naming file and field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Place(_Strict):
    """Where a QR code is posted (a building's lobby, a lane): the report is routed by its
    zone's grid, else by `grid_id`."""

    place_id: Id
    name: str = Field(min_length=1, max_length=100, description="Shown to the resident.")
    zone_id: Id | None = None
    grid_id: Id | None = None

    @model_validator(mode="after")
    def _routed(self) -> Place:
        if self.zone_id is None and self.grid_id is None:
            raise ValueError("give zone_id or grid_id (where reports from here are routed)")
        return self


class ResidentPolicy(_Strict):
    """How a site handles resident reports and ratings."""

    low_rating_at_or_below: int = Field(
        default=2, ge=1, le=5, description="A rating this low is a complaint about the work."
    )
    low_rating_action: Literal["reopen", "flag"] = Field(
        default="flag",
        description="reopen: the ticket is reopened (a new SLA cycle); flag: it stays "
        "resolved and the grid's supervisor is told.",
    )
    reports_per_place_per_hour: int = Field(
        default=20, ge=1, le=1000, description="Reports from one QR code per hour, all senders."
    )


class SiteConfig(_Strict):
    """One site's file."""

    site_id: Id
    name: str = Field(min_length=1, max_length=100)
    timezone: str = Field(default="Asia/Shanghai", description="IANA zone of shift times.")
    households: int | None = Field(
        default=None, ge=1, description="For reports / complaints per 1,000 households."
    )
    places: list[Place] = Field(default_factory=list, max_length=5000)
    residents: ResidentPolicy = Field(default_factory=ResidentPolicy)
    rounds: RoundsConfig = Field(default_factory=RoundsConfig)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not an IANA time zone (e.g. Asia/Shanghai)") from None
        return value

    @model_validator(mode="after")
    def _unique_places(self) -> SiteConfig:
        seen: set[str] = set()
        for n, place in enumerate(self.places):
            if place.place_id in seen:
                raise ValueError(f"places[{n}].place_id: {place.place_id!r} appears twice")
            seen.add(place.place_id)
        return self

    @property
    def tz(self) -> ZoneInfo:
        """The site's time zone."""
        return ZoneInfo(self.timezone)

    def place(self, place_id: str) -> Place | None:
        """The place of that id."""
        return next((p for p in self.places if p.place_id == place_id), None)


_FIELD = re.compile(r"^([a-z_]+(?:\[\d+\])*(?:\.[a-z_]+(?:\[\d+\])*)*): (.*)$")


def _describe(exc: ValidationError) -> str:
    error = exc.errors(include_input=False, include_url=False)[0]
    message = str(error["msg"]).removeprefix("Value error, ")
    loc = ""
    for part in error["loc"]:
        loc += f"[{part}]" if isinstance(part, int) else (f".{part}" if loc else str(part))
    # A cross-field rule names its own field ("schedules[0].route_id: …"), under its model.
    named = _FIELD.match(message)
    if named:
        loc = f"{loc}.{named[1]}" if loc else named[1]
        message = named[2]
    return f"{loc}: {message}" if loc else message


def parse_site(data: object, where: str) -> SiteConfig:
    """Validate a parsed site file; SiteConfigError names `where` and the field."""
    try:
        return SiteConfig.model_validate(data)
    except ValidationError as exc:
        raise SiteConfigError(f"{where}: {_describe(exc)}") from None


def load_site(path: Path) -> SiteConfig:
    """Read one site file; its `site_id` must equal the file name."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise SiteConfigError(f"{path}: (file): {str(exc).splitlines()[0]}") from None
    site = parse_site(data, str(path))
    if site.site_id != path.stem:
        raise SiteConfigError(f"{path}: site_id: must equal the file name {path.stem!r}")
    return site


def load_sites(directory: Path | None) -> dict[str, SiteConfig]:
    """Every ``*.yaml`` site file in `directory` by site id (none when not configured)."""
    if directory is None:
        return {}
    if not directory.is_dir():
        raise SiteConfigError(f"{directory}: (directory): does not exist")
    return {s.site_id: s for s in (load_site(p) for p in sorted(directory.glob("*.yaml")))}
