"""The updater's state on disk: which model runs, which is known good, the job in flight.

Layout under ``<data_dir>/models``::

    state.json            UpdaterState, replaced atomically (tmp, fsync, rename, fsync dir)
    downloads/<sha>.part  a download in progress (resumed with Range after a restart)
    store/<sha>/          verified, unpacked artifacts (model.onnx, artifact.json, frames/)

Every step writes its state before it acts, so a node killed at any point knows where it was.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

JobState = Literal["downloading", "verifying", "testing", "switching", "probation"]
ReportState = Literal[
    "downloading",
    "verifying",
    "testing",
    "probation",
    "active",
    "failed",
    "rolled_back",
    "cancelled",
]
Sha = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelSlot(_Model):
    """One installed artifact."""

    sha256: Sha
    name: str
    version: str


class Baseline(_Model):
    """Health before the switch, for the probation comparison."""

    fps: float | None = None
    inference_ms: float | None = None


class Job(_Model):
    """The update in flight (one at a time)."""

    command_id: str
    sha256: Sha
    url: str
    size: Annotated[int, Field(gt=0)]
    name: str
    version: str
    state: JobState
    seq: int = 1
    probation_s: float = 600.0
    probation_until: float | None = None
    baseline: Baseline | None = None


class Outcome(_Model):
    """How the last job ended (answers a repeated command for the same artifact)."""

    command_id: str
    sha256: Sha
    state: ReportState
    reason: str | None = None
    seq: int


class UpdaterState(_Model):
    """Everything the updater must remember across a kill -9."""

    active: ModelSlot | None = Field(
        default=None, description="What runs now; None: the model in NODE.yaml."
    )
    known_good: ModelSlot | None = Field(
        default=None, description="Last model that passed probation; None: NODE.yaml's."
    )
    previous: ModelSlot | None = Field(default=None, description="Known good before that.")
    job: Job | None = None
    last: Outcome | None = None


class StateFile:
    """Reads and atomically replaces state.json."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.path = root / "state.json"
        root.mkdir(parents=True, exist_ok=True)

    def load(self) -> UpdaterState:
        """The stored state; a fresh one when absent. An unreadable file is set aside."""
        try:
            return UpdaterState.model_validate(json.loads(self.path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            return UpdaterState()
        except (OSError, ValueError, ValidationError):
            self.path.replace(self.path.with_name("state.json.corrupt"))
            return UpdaterState()

    def save(self, state: UpdaterState) -> None:
        """tmp + fsync + rename + fsync(dir): the old or the new state, never half."""
        tmp = self.path.with_name("state.json.tmp")
        with tmp.open("wb") as handle:
            handle.write(state.model_dump_json(indent=1).encode())
            handle.flush()
            os.fsync(handle.fileno())
        tmp.replace(self.path)
        fd = os.open(self.root, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def store_dir(self, sha256: str) -> Path:
        """Where a verified artifact is unpacked."""
        return self.root / "store" / sha256

    def part_path(self, sha256: str) -> Path:
        """Where its download goes."""
        return self.root / "downloads" / f"{sha256}.part"
