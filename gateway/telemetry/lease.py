"""One owner of the sensor rules per telemetry subscription: a lease in the database.

The rules (`rules.py`), the relay cut-off tracker (`cutoff.py`) and the offline check keep
per-device state in memory. With several replicas, a shared subscription splits one
device's readings between them (each rule sees half), and plain subscriptions give every
replica every reading (a relay OFF per replica). So exactly one replica — the holder of the
lease named after its telemetry filters — subscribes to the telemetry topics (contract
TelemetryBatches and ESPHome) and runs the rules; the others have no telemetry session at
the broker at all. docs/sensors.md, "One rule owner", says why and what a takeover loses.

- `decide(row, me, now, ttl_s)` is the whole policy, pure: take a free or expired lease,
  renew one's own, refuse one another replica holds.
- `LeaseKeeper.claim(now)` applies it with the store's compare-and-set (two replicas that
  decide to take the same expired lease: one UPDATE matches).
- `own_telemetry` is the loop: every ttl/3, claim; start the telemetry session when the
  lease is ours, stop it (and end its broker session) when it is not, or when it could not
  be renewed for 2/3 of its time (a holder cut off from the database steps down before
  anyone may take over).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from gateway.store import Store, StoreUnavailableError
from gateway.store.leases import LeaseRow

log = logging.getLogger(__name__)


class Verdict(StrEnum):
    """What `decide` says about a lease."""

    TAKE = "take"  # free, or expired: ours now (a new term)
    RENEW = "renew"  # ours and not expired: extend it
    REFUSED = "refused"  # another replica holds it, not expired


@dataclass(frozen=True)
class Decision:
    """A verdict, the row to write (None when refused) and whether the previous holder was
    this replica (`resume`: its persistent telemetry session's backlog is its own)."""

    verdict: Verdict
    write: LeaseRow | None
    resume: bool


def decide(row: LeaseRow | None, me: str, now: float, ttl_s: float) -> Decision:
    """The lease policy. Pure; `now` is the caller's wall clock (replicas' clocks must agree
    within ttl/3, the holder's margin: NTP does far better)."""
    if row is not None and row.holder != me and row.expires_at > now:
        return Decision(Verdict.REFUSED, None, resume=False)
    if row is not None and row.holder == me and row.expires_at > now:
        return Decision(Verdict.RENEW, LeaseRow(me, now + ttl_s, row.taken_at), resume=True)
    # Never held (a first start, or an upgrade from before the lease): nobody else had our
    # session's backlog, so it is resumed like our own.
    resume = row is None or row.holder == me
    return Decision(Verdict.TAKE, LeaseRow(me, now + ttl_s, now), resume=resume)


@dataclass(frozen=True)
class Claim:
    """The outcome of one claim: held (until `expires_at`) or not, and by whom."""

    held: bool
    holder: str | None
    expires_at: float
    resume: bool = False


class LeaseKeeper:
    """Claims one lease for one replica (`me`: its telemetry session id, stable across
    restarts, so a holder restarted within its term resumes its own session)."""

    def __init__(self, store: Store, name: str, me: str, ttl_s: float) -> None:
        self.store = store
        self.name = name
        self.me = me
        self.ttl_s = ttl_s

    def claim(self, now: float) -> Claim:
        """Read, decide, compare-and-set (blocking: run it in a thread)."""
        row = self.store.leases.lease(self.name)
        decision = decide(row, self.me, now, self.ttl_s)
        if decision.write is None:
            assert row is not None
            return Claim(False, row.holder, row.expires_at)
        if not self.store.leases.swap_lease(self.name, row, decision.write):
            return Claim(False, None, 0.0)  # another replica was quicker: read again later
        return Claim(True, self.me, decision.write.expires_at, decision.resume)

    def release(self, now: float) -> bool:
        """End this replica's term at `now` (a clean stop), so another takes over at its next
        claim instead of after the expiry. False when the lease was not ours."""
        row = self.store.leases.lease(self.name)
        if row is None or row.holder != self.me or row.expires_at <= now:
            return False
        return self.store.leases.swap_lease(self.name, row, LeaseRow(self.me, now, row.taken_at))


def lease_name(sites: Sequence[str]) -> str:
    """One lease per telemetry subscription: replicas with the same sites compete for it;
    replicas given disjoint sites (`mqtt.sites`) each hold their own."""
    return "telemetry:" + (",".join(sorted(sites)) if sites else "*")


def unshared(filters: Sequence[str]) -> list[str]:
    """The telemetry filters without ``$share/<group>/``: one replica subscribes at a time,
    and a shared subscription would let a dead holder's persistent session keep its share
    of every device's readings (Mosquitto hands a share to an offline member) after another
    replica took over."""
    return [f.split("/", 2)[2] if f.startswith("$share/") else f for f in filters]


async def own_telemetry(
    keeper: LeaseKeeper,
    *,
    run_session: Callable[[], Coroutine[Any, Any, None]],
    end_session: Callable[[], Awaitable[bool]],
    reset: Callable[[], None],
    clock: Callable[[], float] = time.time,
) -> None:
    """Hold the lease and run the telemetry session while it is ours; until cancelled.

    `run_session` runs the telemetry MQTT session (until cancelled); `end_session` ends its
    persistent session at the broker (subscriptions and queue; False when it could not);
    `reset` forgets the rule state (a new term starts empty: another holder had the
    readings in between)."""
    period = keeper.ttl_s / 3
    session: asyncio.Task[None] | None = None
    held_until = 0.0
    ended = False  # our broker session is known to be gone

    async def stop(why: str) -> None:
        nonlocal session, ended
        if session is not None:
            log.warning("telemetry: %s; stopping the telemetry session", why)
            session.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await session
            session = None
            reset()
        # No subscription must outlive the term: a plain one would queue every reading for
        # nobody, a resumed one would replay them to a later term.
        ended = await end_session()  # False: the broker was away; tried again next round

    try:
        while True:
            now = clock()
            claim: Claim | None
            try:
                claim = await asyncio.to_thread(keeper.claim, now)
            except StoreUnavailableError as exc:
                log.warning("telemetry lease: database unavailable (%s)", exc)
                claim = None
            if claim is not None and claim.held:
                held_until = claim.expires_at
                if session is None:
                    log.info("telemetry lease %s: taken by %s", keeper.name, keeper.me)
                    reset()
                    if not claim.resume and not ended:
                        await end_session()  # a fresh subscription, not an old backlog
                    session = asyncio.create_task(run_session(), name="telemetry-session")
                    ended = False
            elif session is not None and (claim is not None or now >= held_until - period):
                held = "held by another replica" if claim is not None else "not renewed"
                await stop(f"lease {keeper.name} {held}")
            elif session is None and claim is not None and not ended:
                await stop("another replica holds the lease")  # a session from before a crash
            await asyncio.sleep(period)
    finally:
        if session is not None:
            session.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await session
            # Stopping (not killed): hand over now rather than after the expiry. The
            # persistent session stays: this replica resumes it if it is next to hold.
            with contextlib.suppress(StoreUnavailableError):
                await asyncio.to_thread(keeper.release, clock())
