"""Console settings (`GUANJIA_GATEWAY_CONSOLE__*`)."""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator

LANGUAGES = ("zh-CN", "en")
"""Languages the message catalogue carries; the first is the default."""


def _zone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{name!r} is not an IANA time zone (e.g. Asia/Shanghai)") from None
    return name


class ConsoleSettings(BaseModel):
    """How the console presents itself and keeps its session."""

    model_config = ConfigDict(extra="forbid")

    time_zone: str = Field(
        default="Asia/Shanghai",
        description="Time zone of sites without a site file (a site file's `timezone` wins).",
    )
    session_ttl_s: int = Field(
        default=12 * 3600,
        ge=300,
        description="Console session lifetime; renewed on use after half of it has passed.",
    )
    cookie_secure: bool = Field(
        default=False,
        description="Mark the session cookie Secure (set true behind HTTPS; browsers then "
        "send it over HTTPS only).",
    )
    wall_cards: int = Field(
        default=60, ge=10, le=500, description="Most alerts the live wall keeps on screen."
    )
    queue_page: int = Field(default=50, ge=10, le=200, description="Tickets per queue page.")

    @field_validator("time_zone")
    @classmethod
    def _check_zone(cls, value: str) -> str:
        return _zone(value)

    def zone(self) -> ZoneInfo:
        """The time zone of sites without a site file."""
        return ZoneInfo(self.time_zone)
