"""Rollout planning, pure: waves, success, abort threshold, timeouts, pause/resume/cancel.

Nothing here reads a clock or a database: `step` takes the rollout, its devices and `now`
and returns what must change and which commands to send, so every rule is table-tested.

    running ──(wave ≥ threshold failed)──▶ halted   (no further waves; revert sent)
       │  ▲
     pause│ │resume        every wave done ──▶ completed
       ▼  │
     paused        cancel (from any non-final state) ──▶ cancelled (always ends)

Device states: pending → downloading → verifying → testing → probation → active, or
failed (reason), rolled_back (reason), cancelled. A device commanded longer ago than
`device_timeout_s` that has not reached a final state is failed ("timed out").
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class RolloutState(StrEnum):
    """Where a rollout is."""

    RUNNING = "running"
    PAUSED = "paused"
    HALTED = "halted"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


FINAL = frozenset({RolloutState.COMPLETED, RolloutState.CANCELLED, RolloutState.HALTED})


class DeviceState(StrEnum):
    """Where one device is with the rollout's artifact."""

    PENDING = "pending"
    DOWNLOADING = "downloading"
    VERIFYING = "verifying"
    TESTING = "testing"
    PROBATION = "probation"
    ACTIVE = "active"
    FAILED = "failed"
    ROLLED_BACK = "rolled_back"
    CANCELLED = "cancelled"


IN_FLIGHT = frozenset(
    {DeviceState.DOWNLOADING, DeviceState.VERIFYING, DeviceState.TESTING, DeviceState.PROBATION}
)
UNSUCCESSFUL = frozenset({DeviceState.FAILED, DeviceState.ROLLED_BACK})
DONE = frozenset({DeviceState.ACTIVE, *UNSUCCESSFUL, DeviceState.CANCELLED})

Action = Literal["install", "revert", "cancel"]


class RolloutPolicy(BaseModel):
    """How a rollout proceeds (the API's request body carries it)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    canary: Annotated[int, Field(ge=1, le=100)] = Field(
        default=1, description="Devices in the first wave."
    )
    waves: tuple[Annotated[float, Field(gt=0, le=1)], ...] = Field(
        default=(0.1, 0.5, 1.0),
        min_length=1,
        max_length=10,
        description="After the canary: the share of all devices reached by the end of each "
        "wave; rising, the last is 1.0.",
    )
    failure_threshold: Annotated[float, Field(gt=0, le=1)] = Field(
        default=0.2, description="Halt when this share of a wave failed or rolled back."
    )
    probation_s: Annotated[float, Field(ge=0, le=7 * 86400)] = Field(
        default=600.0, description="How long a device watches the new model before 'active'."
    )
    device_timeout_s: Annotated[float, Field(gt=0, le=30 * 86400)] = Field(
        default=3600.0, description="A device without a final answer this long is 'failed'."
    )

    @model_validator(mode="after")
    def _rising(self) -> RolloutPolicy:
        if list(self.waves) != sorted(self.waves) or self.waves[-1] != 1.0:
            raise ValueError("waves must rise and end at 1.0")
        if self.device_timeout_s <= self.probation_s:
            raise ValueError("device_timeout_s must be longer than probation_s")
        return self


def plan_waves(device_ids: Sequence[str], policy: RolloutPolicy) -> list[list[str]]:
    """The devices of each wave: canary first, then cumulative shares (empty waves dropped)."""
    ids = sorted(set(device_ids))
    n = len(ids)
    bounds = [min(policy.canary, n)]
    for share in policy.waves:
        bounds.append(max(bounds[-1], math.ceil(share * n)))
    waves, start = [], 0
    for end in bounds:
        if end > start:
            waves.append(ids[start:end])
            start = end
    return waves


@dataclass(frozen=True)
class DeviceView:
    """What planning needs of one device of a rollout."""

    device_id: str
    wave: int
    state: DeviceState
    commanded_at: float | None = None


@dataclass(frozen=True)
class Send:
    """A command to send (and record) now."""

    device_id: str
    action: Action


@dataclass(frozen=True)
class Step:
    """What one planning step decided."""

    state: RolloutState
    wave: int
    devices: dict[str, tuple[DeviceState, str | None]] = field(default_factory=dict)
    send: list[Send] = field(default_factory=list)
    reason: str | None = None


def _timeouts(
    devices: Sequence[DeviceView], policy: RolloutPolicy, now: float
) -> dict[str, tuple[DeviceState, str | None]]:
    out: dict[str, tuple[DeviceState, str | None]] = {}
    for d in devices:
        waiting = d.state is DeviceState.PENDING or d.state in IN_FLIGHT
        if (
            waiting
            and d.commanded_at is not None
            and now - d.commanded_at > policy.device_timeout_s
        ):
            out[d.device_id] = (
                DeviceState.FAILED,
                f"timed out: no final answer {policy.device_timeout_s:g} s after the command",
            )
    return out


def step(  # noqa: PLR0911 - one return per outcome of the table in the docstring
    state: RolloutState,
    wave: int,
    devices: Sequence[DeviceView],
    policy: RolloutPolicy,
    now: float,
) -> Step:
    """One pass over a rollout: timeouts, then (when running) halt, advance or complete."""
    if state in FINAL:
        return Step(state, wave)
    updates = _timeouts(devices, policy, now)
    current = {d.device_id: updates.get(d.device_id, (d.state, None))[0] for d in devices}
    if state is RolloutState.PAUSED:
        return Step(state, wave, updates)
    waves = sorted({d.wave for d in devices})
    if not waves:
        return Step(RolloutState.COMPLETED, wave, updates)
    members = [d for d in devices if d.wave == wave]
    failed = sum(1 for d in members if current[d.device_id] in UNSUCCESSFUL)
    if members and failed / len(members) >= policy.failure_threshold:
        return _halt(devices, current, updates, wave, len(members), failed, policy)
    send = [
        Send(d.device_id, "install")
        for d in members
        if current[d.device_id] is DeviceState.PENDING and d.commanded_at is None
    ]
    if send or not all(current[d.device_id] in DONE for d in members):
        return Step(state, wave, updates, send)
    later = [w for w in waves if w > wave]
    if not later:
        return Step(RolloutState.COMPLETED, wave, updates)
    following = later[0]
    send = [
        Send(d.device_id, "install")
        for d in devices
        if d.wave == following and d.commanded_at is None
    ]
    return Step(state, following, updates, send)


def _halt(  # noqa: PLR0917 - private helper of `step`
    devices: Sequence[DeviceView],
    current: dict[str, DeviceState],
    updates: dict[str, tuple[DeviceState, str | None]],
    wave: int,
    size: int,
    failed: int,
    policy: RolloutPolicy,
) -> Step:
    reason = (
        f"wave {wave + 1}: {failed} of {size} devices failed or rolled back "
        f"(threshold {policy.failure_threshold:.0%})"
    )
    send: list[Send] = []
    for d in devices:
        now_state = current[d.device_id]
        if d.commanded_at is None:
            updates[d.device_id] = (DeviceState.CANCELLED, "not sent: the rollout halted")
        elif now_state not in {DeviceState.ROLLED_BACK, DeviceState.CANCELLED}:
            send.append(Send(d.device_id, "revert"))
    return Step(RolloutState.HALTED, wave, updates, send, reason)


def cancel(devices: Sequence[DeviceView]) -> Step:
    """A cancel ends the rollout whatever its devices are doing: the unsent are cancelled,
    the ones on their way are told to stop (their answers still update their rows)."""
    updates: dict[str, tuple[DeviceState, str | None]] = {}
    send: list[Send] = []
    wave = max((d.wave for d in devices), default=0)
    for d in devices:
        if d.commanded_at is None:
            updates[d.device_id] = (DeviceState.CANCELLED, "not sent: the rollout was cancelled")
        elif d.state is DeviceState.PENDING or d.state in IN_FLIGHT:
            send.append(Send(d.device_id, "cancel"))
    return Step(RolloutState.CANCELLED, wave, updates, send, "cancelled")
