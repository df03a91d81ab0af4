"""A facade camera's calibration: floor lines and window columns drawn on its picture.

The thrown-object zone (`edge.zone_config.ThrownObjectZone`) carries one; `edge.falls` turns
it into metres for the gravity check and into the floor and column a fall came from.
"""

from __future__ import annotations

import itertools
from typing import Annotated

from pydantic import Field, model_validator

from contract.messages import Segment
from edge.config_model import ConfigModel


class FacadeFloor(ConfigModel):
    """One floor line drawn on the facade: the floor slab at the bottom of `floor`."""

    floor: Annotated[int, Field(ge=-5, le=300)] = Field(description="Floor number (1 = ground).")
    y: Annotated[float, Field(ge=0.0, le=1.0)] = Field(
        description="Height in the image (relative, 0 = top) of that floor's bottom line."
    )


class FacadeColumn(ConfigModel):
    """One column of windows on the facade (e.g. a flat's stack of windows)."""

    name: Segment = Field(description="Column name, e.g. 'A' or '02'.")
    x1: Annotated[float, Field(ge=0.0, le=1.0)] = Field(description="Left edge (relative).")
    x2: Annotated[float, Field(ge=0.0, le=1.0)] = Field(description="Right edge (relative).")


class FacadeCalibration(ConfigModel):
    """Floor lines and window columns drawn on the facade camera's picture.

    Gives pixels per metre at each height (perspective: upper floors look shorter when the
    camera looks up) and maps a point of the facade to its floor and column.
    """

    floors: list[FacadeFloor] = Field(
        min_length=1,
        description="Bottom line of each watched floor, lowest floor first (y decreasing).",
    )
    roof_y: Annotated[float, Field(ge=0.0, le=1.0)] = Field(
        description="Top line of the highest floor listed (relative y)."
    )
    floor_height_m: Annotated[float, Field(gt=1.5, le=10.0)] = Field(
        default=3.0, description="Storey height in metres (sets the scale for gravity)."
    )
    columns: list[FacadeColumn] = Field(
        default_factory=list, description="Window columns, left to right (may be empty)."
    )

    @model_validator(mode="after")
    def _ordered(self) -> FacadeCalibration:
        numbers = [f.floor for f in self.floors]
        if numbers != list(range(numbers[0], numbers[0] + len(numbers))):
            raise ValueError("floors must be consecutive, lowest first")
        ys = [f.y for f in self.floors] + [self.roof_y]
        if any(b >= a for a, b in itertools.pairwise(ys)):
            raise ValueError("floor lines must rise in the picture (y decreasing) up to roof_y")
        for col in self.columns:
            if col.x2 <= col.x1:
                raise ValueError(f"column {col.name}: x2 must be right of x1")
        return self

    def lines(self) -> list[tuple[float, float]]:
        """(y, height above the lowest floor line in metres) of every line, bottom first."""
        ys = [f.y for f in self.floors] + [self.roof_y]
        return [(y, i * self.floor_height_m) for i, y in enumerate(ys)]

    def floor_at(self, y: float) -> int:
        """The floor whose band holds image height `y` (clamped to the floors listed)."""
        for f, top in zip(self.floors, [*(f.y for f in self.floors[1:]), self.roof_y], strict=True):
            if y > top:
                return f.floor
        return self.floors[-1].floor

    def column_at(self, x: float) -> str | None:
        """The column that holds `x`, or None."""
        for col in self.columns:
            if col.x1 <= x <= col.x2:
                return col.name
        return None
