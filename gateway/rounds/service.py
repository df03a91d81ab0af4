"""Patrol rounds as routes and console pages use them: today's plan, a checkpoint by its tag,
recording a scan, and the planning tick that opens tickets for missed rounds.

Planning itself is pure (`gateway.rounds.planning`); this reads the site file and the scans,
calls it with the clock's `now`, and hands its decisions to the store.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from gateway.models import Change
from gateway.residents.photos import CLEAN_TYPE, PhotoError, clean_photo
from gateway.rounds.models import (
    CheckpointProgress,
    CheckpointPublic,
    CompletionPublic,
    RoundPublic,
    RoundsToday,
    ScanResult,
)
from gateway.rounds.planning import (
    DecisionKind,
    Scan,
    TicketDecision,
    completion,
    failed_item_decisions,
    missed_decisions,
    plan,
)
from gateway.sites import SiteConfig
from gateway.sla import CategoryPolicy, TicketCategory
from gateway.store import Store
from gateway.store.place_tickets import PlaceTicket
from gateway.store.rounds import NewScan

LOOKBACK_S = 48 * 3600.0
"""How far back the tick looks for rounds that ended missed (a gateway down for a day still
opens their tickets when it comes back; older ones are left to the completion figure)."""
MAX_PHOTO_BYTES = 8 * 1024 * 1024
TICK_EVERY_S = 60.0
"""How often the tick plans (each plan reads the last three days of scans)."""


class RoundsError(ValueError):
    """A scan that cannot be taken (the message names the field)."""


class UnknownError(LookupError):
    """A site without rounds, or a tag no checkpoint has."""


def _ticket(site_id: str, decision: TicketDecision) -> PlaceTicket:
    failed = decision.kind is DecisionKind.ITEM_FAILED
    subject = (
        f"checkpoint:{decision.checkpoint_id}"
        if decision.checkpoint_id
        else f"round:{decision.route_id}"
    )
    return PlaceTicket(
        site_id=site_id,
        subject=subject,
        category=TicketCategory.INSPECTION_FAILED if failed else TicketCategory.ROUND_MISSED,
        zone_id=decision.zone_id,
        grid_id=decision.grid_id,
        dedup_key=f"{site_id}|rounds|{decision.key}",
        actor="system:rounds",
        text=decision.text,
        for_supervisor=decision.for_supervisor,
        detail={"decision": decision.key, "kind": decision.kind.value},
    )


class RoundsService:
    """Rounds of every site with a site file."""

    def __init__(
        self,
        store: Store,
        sites: Mapping[str, SiteConfig],
        policies: Mapping[TicketCategory, CategoryPolicy],
        *,
        tick_every_s: float = TICK_EVERY_S,
    ) -> None:
        self.store = store
        self.sites = sites
        self.policies = policies
        self.tick_every_s = tick_every_s
        self._last_tick: float | None = None

    def _site(self, site_id: str) -> SiteConfig:
        site = self.sites.get(site_id)
        if site is None:
            raise UnknownError(f"site {site_id!r} has no site file")
        return site

    def today(self, site_id: str, now: float) -> RoundsToday:
        """The site's rounds on the local day of `now`, each with its state and checkpoints."""
        site = self._site(site_id)
        day = dt.datetime.fromtimestamp(now, site.tz).date()
        start = dt.datetime.combine(day, dt.time(0), site.tz).timestamp()
        end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0), site.tz).timestamp()
        scans = self.store.rounds.scans_between(site_id, start - 86400.0, end)
        rounds: list[RoundPublic] = []
        for status in plan(site.rounds, site.tz, scans, start=start, end=end, now=now):
            slot = status.slot
            route = site.rounds.route(slot.route_id)
            schedule = next(s for s in site.rounds.schedules if s.schedule_id == slot.schedule_id)
            assert route is not None
            rounds.append(
                RoundPublic(
                    schedule_id=slot.schedule_id,
                    route_id=route.route_id,
                    route_name=route.name,
                    shift=slot.shift,
                    grid_id=schedule.grid_id,
                    assignee=schedule.assignee,
                    starts_at=slot.starts_at,
                    late_at=slot.late_at,
                    ends_at=slot.ends_at,
                    missed_at=slot.missed_at,
                    state=status.state.value,
                    checkpoints=[
                        CheckpointProgress(
                            checkpoint_id=c.checkpoint_id,
                            name=c.name,
                            kind=c.kind.value,
                            tag_id=c.tag_id,
                            scanned=c.checkpoint_id in status.scanned,
                        )
                        for c in route.checkpoints
                    ],
                )
            )
        return RoundsToday(site_id=site_id, date=day.isoformat(), now=now, rounds=rounds)

    def checkpoint(self, site_id: str, tag_id: str) -> CheckpointPublic:
        """The checkpoint a scanned tag belongs to, with its checklist."""
        found = self._site(site_id).rounds.by_tag(tag_id)
        if found is None:
            raise UnknownError(f"tag {tag_id!r} is not a checkpoint of {site_id}")
        return CheckpointPublic(route_id=found[0].route_id, checkpoint=found[1])

    def record_scan(
        self,
        site_id: str,
        tag_id: str,
        username: str,
        *,
        results: Mapping[str, bool],
        note: str | None,
        photo: bytes | None,
        now: float,
    ) -> tuple[ScanResult, list[Change]]:
        """A butler's scan: every checklist item ticked pass or fail, a photo where the
        checklist wants one (stored without EXIF). A failed item opens a ticket at the
        checkpoint's place."""
        found = self._site(site_id).rounds.by_tag(tag_id)
        if found is None:
            raise UnknownError(f"tag {tag_id!r} is not a checkpoint of {site_id}")
        route, checkpoint = found
        items = {i.item_id for i in checkpoint.checklist}
        if set(results) != items:
            missing = sorted(items - set(results))
            extra = sorted(set(results) - items)
            raise RoundsError(
                "results: tick every checklist item, no others"
                + (f" (missing {', '.join(missing)})" if missing else "")
                + (f" (unknown {', '.join(extra)})" if extra else "")
            )
        cleaned: tuple[str, bytes] | None = None
        if photo:
            if len(photo) > MAX_PHOTO_BYTES:
                raise RoundsError(f"photo: at most {MAX_PHOTO_BYTES} bytes")
            try:
                cleaned = (CLEAN_TYPE, clean_photo(photo))
            except PhotoError as exc:
                raise RoundsError(f"photo: {exc}") from None
        elif checkpoint.photo_required:
            raise RoundsError("photo: this checkpoint's checklist needs a photo")
        failed = frozenset(k for k, ok in results.items() if not ok)
        scan = Scan(0, route.route_id, checkpoint.checkpoint_id, now, username, failed)
        decisions = failed_item_decisions(route, checkpoint, scan)
        recorded = self.store.rounds.record_scan(
            NewScan(
                site_id=site_id,
                route_id=route.route_id,
                checkpoint_id=checkpoint.checkpoint_id,
                username=username,
                results=dict(results),
                note=note,
                photo=cleaned,
            ),
            [_ticket(site_id, d) for d in decisions],
            self.policies,
            now,
        )
        return ScanResult(
            scan_id=recorded.scan_id, failed=sorted(failed), ticket_ids=recorded.ticket_ids
        ), recorded.changes

    def tick(self, now: float) -> list[Change]:
        """Open the tickets of rounds missed in the last `LOOKBACK_S` at every site (each
        once: the store keys them by decision). Runs at most every `tick_every_s` (the SLA
        loop calls it every few seconds; a round is missed to the minute at best)."""
        if self._last_tick is not None and 0 <= now - self._last_tick < self.tick_every_s:
            return []
        self._last_tick = now
        changes: list[Change] = []
        for site in self.sites.values():
            if not site.rounds.schedules:
                continue
            start = now - LOOKBACK_S
            scans = self.store.rounds.scans_between(site.site_id, start - 86400.0, now + 1.0)
            statuses = plan(site.rounds, site.tz, scans, start=start, end=now, now=now)
            decisions = missed_decisions(site.rounds, statuses)
            changes += self.store.rounds.open_round_tickets(
                site.site_id,
                [(d.key, _ticket(site.site_id, d)) for d in decisions],
                self.policies,
                now,
            )
        return changes

    def completion(self, site_id: str, start: float, end: float, now: float) -> CompletionPublic:
        """Patrol completion of the rounds in [start, end) that are over at `now`."""
        site = self._site(site_id)
        scans = self.store.rounds.scans_between(site_id, start - 86400.0, end + 86400.0)
        statuses = [
            s
            for s in plan(site.rounds, site.tz, scans, start=start, end=end, now=now)
            if start <= s.slot.starts_at < end
        ]
        figure = completion(statuses, now)
        return CompletionPublic(
            checkpoints_done=figure.checkpoints_done,
            checkpoints_planned=figure.checkpoints_planned,
            rounds_done=figure.rounds_done,
            rounds_planned=figure.rounds_planned,
            rate=figure.rate,
        )
