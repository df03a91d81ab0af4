"""The base of every edge config model (camera, zones, node)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class ConfigModel(BaseModel):
    """Base of every config model: unknown keys are errors; frozen once loaded."""

    model_config = ConfigDict(extra="forbid", frozen=True)
