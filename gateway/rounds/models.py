"""What the rounds routes serve and take (pydantic, extra="forbid")."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from gateway.rounds.config import Checkpoint


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CheckpointProgress(_Record):
    """A checkpoint of a round: what to check, and whether it is scanned."""

    checkpoint_id: str
    name: str
    kind: str
    tag_id: str = Field(description="What a tap sends when the tag cannot be scanned.")
    scanned: bool


class RoundPublic(_Record):
    """One round of today's plan."""

    schedule_id: str
    route_id: str
    route_name: str
    shift: str
    grid_id: str
    assignee: str | None
    starts_at: float
    late_at: float
    ends_at: float
    missed_at: float
    state: str
    checkpoints: list[CheckpointProgress]


class RoundsToday(_Record):
    """A site's rounds on the local day around `now` (the butler's phone view)."""

    site_id: str
    date: str
    now: float
    rounds: list[RoundPublic]


class CheckpointPublic(_Record):
    """A scanned tag's checkpoint with its checklist (the tick form)."""

    route_id: str
    checkpoint: Checkpoint


class ScanResult(_Record):
    """A stored scan and the tickets its failed items opened or merged into."""

    scan_id: int
    failed: list[str]
    ticket_ids: list[int]


class CompletionPublic(_Record):
    """Patrol completion over closed rounds of a period."""

    checkpoints_done: int
    checkpoints_planned: int
    rounds_done: int
    rounds_planned: int
    rate: float | None = Field(description="checkpoints_done / checkpoints_planned")
