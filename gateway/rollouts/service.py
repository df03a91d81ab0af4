"""Applying rollout plans: read facts, plan (pure), store the step, then send its commands.

Every planning step runs on the store's version of the rollout (`RolloutStore.apply_step`),
and the commands it sends are in the command audit before they are published, so a crash
between the two leaves a recorded command and a device row that the next step or the
device's timeout settles — never a device commanded without a trace.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from contract import Command, command_topic, encode
from gateway.mqtt import PublishUnavailableError
from gateway.rollouts import plan
from gateway.rollouts.links import signed_url, without_signature
from gateway.rollouts.settings import ModelRegistrySettings
from gateway.store import Store
from gateway.store.base import ConflictError
from gateway.store.rollouts import RolloutFacts, SentCommand

log = logging.getLogger(__name__)

ISSUER = "gateway"
"""`issued_by` of rollout commands (edge nodes accept it by default)."""
MODEL_UPDATE = "model_update"


@dataclass(frozen=True)
class Outgoing:
    """A stored command ready to publish."""

    rollout_id: str
    device_id: str
    command_id: str
    action: str
    topic: str
    payload: bytes


class RolloutService:
    """Planning steps, cancel, and building the commands they send."""

    def __init__(self, store: Store, settings: ModelRegistrySettings, key: str) -> None:
        self.store = store
        self.settings = settings
        self._key = key

    def _commands(
        self, facts: RolloutFacts, sends: list[plan.Send], now: float
    ) -> tuple[list[SentCommand], list[Outgoing]]:
        artifact = facts.artifact
        recorded: list[SentCommand] = []
        outgoing: list[Outgoing] = []
        # The device's command is valid for `device_timeout_s`; its link must be too, or a
        # device that starts late (offline when sent, a QoS 1 delivery on reconnect) or
        # resumes a cut download after `link_ttl_s` is refused (403) while the rollout still
        # waits for it. As in hawkBit, the download is authorised as long as the action is
        # open: never shorter than the command, and never longer than `link_ttl_s` needs.
        command_expires = now + facts.policy.device_timeout_s
        link_expires = math.ceil(max(now + self.settings.link_ttl_s, command_expires))
        for send in sends:
            args: dict[str, object] = {"action": send.action, "sha256": artifact.sha256}
            if send.action == "install":
                if self.settings.public_url is None:
                    raise ConflictError("models.public_url is not set: nodes cannot download")
                args |= {
                    "url": signed_url(
                        self.settings.public_url,
                        self._key,
                        artifact.sha256,
                        site_id=facts.site_id,
                        device_id=send.device_id,
                        expires=link_expires,
                    ),
                    "size": artifact.size,
                    "name": artifact.name,
                    "version": artifact.version,
                    "probation_s": facts.policy.probation_s,
                }
            command_id = uuid.uuid4().hex
            expires = command_expires
            command = Command(
                ts=now,
                site_id=facts.site_id,
                device_id=send.device_id,
                command_id=command_id,
                name=MODEL_UPDATE,
                args=args,
                issued_by=ISSUER,
                expires_at=expires,
            )
            audited = dict(args)
            if "url" in audited:  # the link is the device's credential: never in the audit
                audited["url"] = without_signature(str(audited["url"]))
            recorded.append(
                SentCommand(send.device_id, command_id, send.action, audited, now, expires)
            )
            outgoing.append(
                Outgoing(
                    facts.rollout_id,
                    send.device_id,
                    command_id,
                    send.action,
                    str(command_topic(facts.site_id, send.device_id, MODEL_UPDATE)),
                    encode(command),
                )
            )
        return recorded, outgoing

    def step(self, rollout_id: str, now: float) -> list[Outgoing]:
        """One planning pass over a rollout; the commands to publish (already recorded)."""
        facts = self.store.rollouts.rollout_facts(rollout_id)
        decided = plan.step(facts.state, facts.wave, facts.devices, facts.policy, now)
        if decided == plan.Step(facts.state, facts.wave):
            return []
        recorded, outgoing = self._commands(facts, decided.send, now)
        if not self.store.rollouts.apply_step(facts, decided, recorded, ISSUER, now):
            return []  # another replica (or a person) moved it first: plan again next tick
        if decided.state is not facts.state:
            log.info("rollout %s: %s (%s)", rollout_id, decided.state.value, decided.reason)
        return outgoing

    def cancel(self, rollout_id: str, now: float) -> list[Outgoing]:
        """End a rollout now, whatever its devices are doing; ConflictError when it has
        already ended."""
        for _ in range(5):
            facts = self.store.rollouts.rollout_facts(rollout_id)
            if facts.state in plan.FINAL:
                raise ConflictError(f"rollout {rollout_id} has already ended ({facts.state})")
            decided = plan.cancel(facts.devices)
            recorded, outgoing = self._commands(facts, decided.send, now)
            if self.store.rollouts.apply_step(facts, decided, recorded, ISSUER, now):
                return outgoing
        raise ConflictError(f"rollout {rollout_id} keeps changing; try again")


async def send_all(
    store: Store,
    outgoing: list[Outgoing],
    publish: Callable[[str, bytes], Awaitable[None]] | None,
) -> None:
    """Publish recorded commands; one the broker did not take is sent again by the next
    step (an install is un-sent; a revert or cancel is found by its ``unavailable`` audit
    row, `RolloutStore.rollout_facts`)."""
    for out in outgoing:
        try:
            if publish is None:
                raise PublishUnavailableError("MQTT is not enabled on this gateway")
            await publish(out.topic, out.payload)
        except PublishUnavailableError as exc:
            log.warning(
                "rollout %s: %s to %s not sent: %s", out.rollout_id, out.action, out.device_id, exc
            )
            await asyncio.to_thread(store.commands.finish_command, out.command_id, "unavailable")
            if out.action == "install":
                await asyncio.to_thread(store.rollouts.unsend, out.rollout_id, [out.device_id])
            continue
        await asyncio.to_thread(store.commands.finish_command, out.command_id, "sent")


async def rollout_step(
    service: RolloutService,
    publish: Callable[[str, bytes], Awaitable[None]] | None,
    now: float | None = None,
) -> None:
    """The periodic step (gateway/main.py): every running or paused rollout, once."""
    now = time.time() if now is None else now
    for rollout_id in await asyncio.to_thread(service.store.rollouts.active_rollout_ids):
        outgoing = await asyncio.to_thread(service.step, rollout_id, now)
        await send_all(service.store, outgoing, publish)
