"""The model registry's index and rollouts: artifacts, rollouts, each device's state.

Planning is pure (`gateway.rollouts.plan`); this module stores its inputs and applies its
`Step`s. A step is applied with ``UPDATE rollouts … WHERE version = :read`` so two replicas
never both send a wave; the commands it sends are written to the command audit in the same
transaction. A device's reports reach its row through `rollout_reports.record_report`, in
the ingest transaction.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from gateway.rollouts.plan import (
    WAITING,
    Action,
    DeviceState,
    DeviceView,
    RolloutPolicy,
    RolloutState,
    Step,
)
from gateway.rollouts.records import (
    ArtifactPublic,
    RolloutDevicePublic,
    RolloutPublic,
)
from gateway.store.base import ConflictError, NotFoundError, Part, from_row
from gateway.store.schema import commands, devices, model_artifacts, rollout_devices, rollouts

ACTIVE_STATES = (RolloutState.RUNNING.value, RolloutState.PAUSED.value)


@dataclass(frozen=True)
class RolloutFacts:
    """What a planning step reads of one rollout."""

    rollout_id: str
    site_id: str
    artifact: ArtifactPublic
    state: RolloutState
    wave: int
    version: int
    policy: RolloutPolicy
    devices: list[DeviceView]


@dataclass(frozen=True)
class SentCommand:
    """A command a step sends, as recorded in the audit."""

    device_id: str
    command_id: str
    action: str
    args: dict[str, Any]
    issued_at: float
    expires_at: float


UNAVAILABLE = "unavailable"
"""The audit state of a command the broker did not take (`service.send_all`)."""


def _undelivered(last_state: str | None, args: Any) -> Action | None:
    if last_state != UNAVAILABLE or not isinstance(args, dict):
        return None
    action = args.get("action")
    return action if action in ("install", "revert", "cancel") else None


class RolloutStore(Part):
    """Artifacts, rollouts and rollout devices."""

    # -- registry -------------------------------------------------------------------------

    def add_artifact(self, record: ArtifactPublic) -> ArtifactPublic:
        """Index an uploaded artifact; the same bytes again return the first record, another
        artifact under a taken name and version is ConflictError."""
        try:
            with self._tx() as conn:
                conn.execute(insert(model_artifacts).values(record.model_dump()))
            return record
        except IntegrityError:
            try:
                return self.get_artifact(record.sha256)
            except NotFoundError:
                raise ConflictError(
                    f"{record.name} {record.version} is already published with other bytes"
                ) from None

    def get_artifact(self, sha256: str) -> ArtifactPublic:
        """One artifact, or NotFoundError."""
        with self._read() as conn:
            row = conn.execute(
                select(model_artifacts).where(model_artifacts.c.sha256 == sha256)
            ).first()
        if row is None:
            raise NotFoundError(sha256)
        return from_row(ArtifactPublic, row)

    def list_artifacts(self, *, offset: int = 0, limit: int = 100) -> list[ArtifactPublic]:
        """Artifacts, newest upload first."""
        with self._read() as conn:
            rows = conn.execute(
                select(model_artifacts)
                .order_by(model_artifacts.c.uploaded_at.desc(), model_artifacts.c.sha256)
                .offset(offset)
                .limit(limit)
            ).all()
        return [from_row(ArtifactPublic, r) for r in rows]

    # -- targets --------------------------------------------------------------------------

    def devices_of_site(self, site_id: str, kind: str) -> list[str]:
        """Ids of a site's devices of one kind."""
        with self._read() as conn:
            return list(
                conn.scalars(
                    select(devices.c.device_id).where(
                        devices.c.site_id == site_id, devices.c.kind == kind
                    )
                )
            )

    def devices_at_site(self, site_id: str, device_ids: Sequence[str]) -> set[str]:
        """Which of `device_ids` are registered at `site_id`."""
        with self._read() as conn:
            return set(
                conn.scalars(
                    select(devices.c.device_id).where(
                        devices.c.site_id == site_id, devices.c.device_id.in_(list(device_ids))
                    )
                )
            )

    # -- rollouts -------------------------------------------------------------------------

    def create_rollout(  # noqa: PLR0917 - one row's columns
        self,
        rollout_id: str,
        site_id: str,
        sha256: str,
        policy: RolloutPolicy,
        waves: list[list[str]],
        created_by: str,
        now: float,
    ) -> None:
        """Write a running rollout and its devices, all pending."""
        with self._tx() as conn:
            conn.execute(
                insert(rollouts).values(
                    rollout_id=rollout_id,
                    site_id=site_id,
                    artifact_sha256=sha256,
                    state=RolloutState.RUNNING.value,
                    wave=0,
                    waves=len(waves),
                    policy=policy.model_dump(mode="json"),
                    reason=None,
                    created_by=created_by,
                    created_at=now,
                    updated_at=now,
                    version=0,
                )
            )
            rows = [
                {
                    "rollout_id": rollout_id,
                    "device_id": device_id,
                    "site_id": site_id,
                    "wave": index,
                    "state": DeviceState.PENDING.value,
                    "updated_at": now,
                }
                for index, wave in enumerate(waves)
                for device_id in wave
            ]
            if rows:
                conn.execute(insert(rollout_devices), rows)

    def list_rollouts(
        self, sites: list[str] | None, *, offset: int = 0, limit: int = 100
    ) -> list[RolloutPublic]:
        """Rollouts of the given sites (None: all), newest first, with device counts."""
        query = select(rollouts).order_by(rollouts.c.created_at.desc(), rollouts.c.rollout_id)
        if sites is not None:
            query = query.where(rollouts.c.site_id.in_(sites))
        with self._read() as conn:
            rows = conn.execute(query.offset(offset).limit(limit)).all()
            return [self._public(conn, row, with_devices=False) for row in rows]

    def get_rollout(self, rollout_id: str) -> RolloutPublic:
        """One rollout with its devices, or NotFoundError."""
        with self._read() as conn:
            row = conn.execute(select(rollouts).where(rollouts.c.rollout_id == rollout_id)).first()
            if row is None:
                raise NotFoundError(rollout_id)
            return self._public(conn, row, with_devices=True)

    @staticmethod
    def _public(conn: Connection, row: Any, *, with_devices: bool) -> RolloutPublic:
        members = conn.execute(
            select(rollout_devices)
            .where(rollout_devices.c.rollout_id == row.rollout_id)
            .order_by(rollout_devices.c.wave, rollout_devices.c.device_id)
        ).all()
        counts = Counter(m.state for m in members)
        return RolloutPublic(
            rollout_id=row.rollout_id,
            site_id=row.site_id,
            artifact_sha256=row.artifact_sha256,
            state=RolloutState(row.state),
            wave=row.wave,
            waves=row.waves,
            policy=RolloutPolicy.model_validate(row.policy),
            reason=row.reason,
            created_by=row.created_by,
            created_at=row.created_at,
            updated_at=row.updated_at,
            counts=dict(sorted(counts.items())),
            devices=[from_row(RolloutDevicePublic, m) for m in members] if with_devices else None,
        )

    def active_rollout_ids(self) -> list[str]:
        """Rollouts a planning step must look at: running or paused, or ended with a
        commanded device that has not answered finally yet (it must still time out) or
        whose last command the broker did not take (it is sent again)."""
        unsettled = select(rollout_devices.c.rollout_id).where(
            rollout_devices.c.commanded_at.is_not(None),
            rollout_devices.c.state.in_([s.value for s in WAITING]),
        )
        undelivered = select(rollout_devices.c.rollout_id).join(
            commands,
            (commands.c.command_id == rollout_devices.c.last_command_id)
            & (commands.c.state == UNAVAILABLE),
        )
        with self._read() as conn:
            return list(
                conn.scalars(
                    select(rollouts.c.rollout_id)
                    .where(
                        or_(
                            rollouts.c.state.in_(ACTIVE_STATES),
                            rollouts.c.rollout_id.in_(unsettled),
                            rollouts.c.rollout_id.in_(undelivered),
                        )
                    )
                    .order_by(rollouts.c.created_at)
                )
            )

    def rollout_facts(self, rollout_id: str) -> RolloutFacts:
        """The inputs of a planning step."""
        with self._read() as conn:
            row = conn.execute(select(rollouts).where(rollouts.c.rollout_id == rollout_id)).first()
            if row is None:
                raise NotFoundError(rollout_id)
            artifact = conn.execute(
                select(model_artifacts).where(model_artifacts.c.sha256 == row.artifact_sha256)
            ).one()
            members = conn.execute(
                select(rollout_devices, commands.c.state.label("last_state"), commands.c.args)
                .outerjoin(commands, commands.c.command_id == rollout_devices.c.last_command_id)
                .where(rollout_devices.c.rollout_id == rollout_id)
            ).all()
        return RolloutFacts(
            rollout_id=rollout_id,
            site_id=row.site_id,
            artifact=from_row(ArtifactPublic, artifact),
            state=RolloutState(row.state),
            wave=row.wave,
            version=row.version,
            policy=RolloutPolicy.model_validate(row.policy),
            devices=[
                DeviceView(
                    m.device_id,
                    m.wave,
                    DeviceState(m.state),
                    m.commanded_at,
                    _undelivered(m.last_state, m.args),
                )
                for m in members
            ],
        )

    def apply_step(
        self,
        facts: RolloutFacts,
        plan: Step,
        sent: Sequence[SentCommand],
        issued_by: str,
        now: float,
    ) -> bool:
        """Store a step over the version it was planned from; False when another replica
        (or a person's pause or cancel) got there first: nothing is written, nothing sent."""
        with self._tx() as conn:
            moved = conn.execute(
                update(rollouts)
                .where(
                    rollouts.c.rollout_id == facts.rollout_id,
                    rollouts.c.version == facts.version,
                )
                .values(
                    state=plan.state.value,
                    wave=plan.wave,
                    reason=plan.reason if plan.reason is not None else rollouts.c.reason,
                    updated_at=now,
                    version=facts.version + 1,
                )
            )
            if not moved.rowcount:
                return False
            for device_id, (state, reason) in plan.devices.items():
                conn.execute(
                    update(rollout_devices)
                    .where(
                        rollout_devices.c.rollout_id == facts.rollout_id,
                        rollout_devices.c.device_id == device_id,
                    )
                    .values(state=state.value, reason=reason, updated_at=now)
                )
            for command in sent:
                values: dict[str, Any] = {
                    "last_command_id": command.command_id,
                    "updated_at": now,
                }
                if command.action == "install":
                    values |= {"install_command_id": command.command_id, "commanded_at": now}
                conn.execute(
                    update(rollout_devices)
                    .where(
                        rollout_devices.c.rollout_id == facts.rollout_id,
                        rollout_devices.c.device_id == command.device_id,
                    )
                    .values(**values)
                )
            if sent:
                conn.execute(
                    insert(commands),
                    [
                        {
                            "command_id": c.command_id,
                            "site_id": facts.site_id,
                            "device_id": c.device_id,
                            "name": "model_update",
                            "args": c.args,
                            "issued_by": issued_by,
                            "issued_at": c.issued_at,
                            "expires_at": c.expires_at,
                            "state": "pending",
                        }
                        for c in sent
                    ],
                )
        return True

    def unsend(self, rollout_id: str, device_ids: Sequence[str]) -> None:
        """The broker was away: these installs were not sent; the next step sends them."""
        with self._tx() as conn:
            conn.execute(
                update(rollout_devices)
                .where(
                    rollout_devices.c.rollout_id == rollout_id,
                    rollout_devices.c.device_id.in_(list(device_ids)),
                    rollout_devices.c.state == DeviceState.PENDING.value,
                )
                .values(commanded_at=None, install_command_id=None, last_command_id=None)
            )

    def set_rollout_state(
        self, rollout_id: str, allowed_from: Sequence[RolloutState], to: RolloutState, now: float
    ) -> bool:
        """Pause or resume: a conditional move; False when the rollout is elsewhere."""
        with self._tx() as conn:
            moved = conn.execute(
                update(rollouts)
                .where(
                    rollouts.c.rollout_id == rollout_id,
                    rollouts.c.state.in_([s.value for s in allowed_from]),
                )
                .values(state=to.value, updated_at=now, version=rollouts.c.version + 1)
            )
            return bool(moved.rowcount)
