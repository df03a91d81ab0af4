"""What one ingest transaction has read and written, as the transaction sees it.

Message and event ids are the device's choice, so they are keyed by (site, device, id).
What the batch writes and later reads again (processed ids, event links, open tickets by
key, devices) is kept here, so message 7 of a batch sees what message 3 did exactly as if
each had committed; what a batch will need is read up front with one ``IN (…)`` query per
table (`preload`), anything else when first needed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import Connection

from gateway.lifecycle import TicketState
from gateway.store import ingest_sql as sql
from gateway.store.plain_sql import Driver

Key = tuple[str, str, str]
"""(site, device, id): a device-chosen id (msg_id, event_id) with its owner."""


@dataclass
class Link:
    """An event's ticket, as the transaction currently sees it."""

    ticket_id: int
    ended: bool
    last_seq: int
    new: bool
    dirty: bool = False


@dataclass
class DeviceSeen:
    """A device as the transaction currently sees it."""

    site_id: str
    online: bool
    last_status_ts: float | None


@dataclass(frozen=True)
class Resolved:
    """A ticket auto-resolved within the cool-down: what reopening it reads
    (`sla_clock.reopened_clock`), in `ingest_sql.RECENT_COLUMNS` order."""

    id: int
    dedup_key: str
    resolved_at: float
    state: str
    sla_cycle: int
    tier: int
    severity: str
    ack_due_at: float
    resolve_due_at: float


@dataclass
class TicketSeen:
    """The columns of a ticket that clearing (and reopening what it auto-resolved) reads,
    as the transaction currently sees them, in `ingest_sql.TICKET_SEEN` order."""

    site_id: str
    category: str
    state: str
    active_key: str | None
    sla_cycle: int
    tier: int
    severity: str
    ack_due_at: float
    resolve_due_at: float

    def resolved(self, ticket_id: int, key: str, at: float) -> Resolved:
        """This ticket as `RECENT_IN` would read it once auto-resolved at `at`."""
        return Resolved(
            ticket_id,
            key,
            at,
            "resolved",
            self.sla_cycle,
            self.tier,
            self.severity,
            self.ack_due_at,
            self.resolve_due_at,
        )


class Overlay:
    """The transaction's view of processed ids, event links, open tickets and devices."""

    def __init__(self, conn: Connection, driver: Driver) -> None:
        self.conn = conn
        self.driver = driver
        self.processed: dict[Key, bool] = {}  # (site, device, msg id) → already processed?
        self.links: dict[Key, Link | None] = {}
        self.active: dict[str, tuple[int, str] | None] = {}  # active key → (id, state)
        self.devices: dict[str, DeviceSeen | None] = {}
        self.tickets: dict[int, TicketSeen] = {}
        self.recent: dict[str, Resolved | None] = {}  # key → its latest auto-resolved ticket
        self._by_ticket: dict[int, set[Key]] = {}  # this transaction's links, per ticket
        self._db_unended: dict[int, set[Key]] = {}  # the database's unended events, read once

    def preload(
        self,
        *,
        msg_keys: Iterable[Key] = (),
        event_keys: Iterable[Key] = (),
        active_keys: Iterable[str] = (),
        device_ids: Iterable[str] = (),
        reopen_since: float | None = None,
    ) -> None:
        """Read what a batch will need in one query per table (optional: anything not
        preloaded is read when first needed). Message and event ids are looked up by id
        alone (the index) and matched to their device here."""
        wanted_msgs = set(msg_keys) - self.processed.keys()
        if wanted_msgs:
            ids = sorted({key[2] for key in wanted_msgs})
            done = set(self.driver.rows_in(sql.PROCESSED_IN, ids))
            self.processed.update((key, key in done) for key in wanted_msgs)
        wanted_events = set(event_keys) - self.links.keys()
        if wanted_events:
            self.links.update(dict.fromkeys(wanted_events))
            ids = sorted({key[2] for key in wanted_events})
            for site_id, device_id, event_id, ticket_id, ended, last_seq in self.driver.rows_in(
                sql.LINKS_IN, ids
            ):
                key = (site_id, device_id, event_id)
                if key in wanted_events:
                    self.add_link(key, Link(int(ticket_id), bool(ended), int(last_seq), new=False))
        keys = sorted(set(active_keys) - self.active.keys())
        if keys:
            self.active.update(dict.fromkeys(keys))
            for tid, *columns in self.driver.rows_in(sql.ACTIVE_IN, keys):
                ticket = TicketSeen(*columns)
                assert ticket.active_key is not None
                self.active[ticket.active_key] = (int(tid), ticket.state)
                self.tickets[int(tid)] = ticket
        if reopen_since is not None:
            self._preload_recent(active_keys, reopen_since)
        self._preload_unended()
        wanted = sorted(set(device_ids) - self.devices.keys())
        if wanted:
            self.devices.update(dict.fromkeys(wanted))
            for device_id, site_id, online, last_status_ts in self.driver.rows_in(
                sql.DEVICES_IN, wanted
            ):
                self.devices[device_id] = DeviceSeen(site_id, bool(online), last_status_ts)

    def link(self, key: Key) -> Link | None:
        if key not in self.links:
            self.preload(event_keys=[key])
        return self.links[key]

    def open_ticket(self, key: str) -> tuple[int, str] | None:
        if key not in self.active:
            self.preload(active_keys=[key])
        return self.active[key]

    def device(self, device_id: str) -> DeviceSeen | None:
        if device_id not in self.devices:
            self.preload(device_ids=[device_id])
        return self.devices[device_id]

    def is_processed(self, key: Key) -> bool:
        """Whether the message id `key` is processed (in the database or by this batch)."""
        if key not in self.processed:
            self.preload(msg_keys=[key])
        return self.processed[key]

    def _preload_recent(self, keys: Iterable[str], since: float) -> None:
        # Keys with no open ticket may reopen the one auto-resolved latest since `since`.
        closed = sorted({k for k in keys if self.active.get(k) is None} - self.recent.keys())
        if not closed:
            return
        self.recent.update(dict.fromkeys(closed))
        self._read_recent(closed, since)

    def _read_recent(self, keys: list[str], since: float) -> None:
        for values in self.driver.rows_in(sql.RECENT_IN, keys, (since,)):
            row = Resolved(*values)
            if row.state != TicketState.RESOLVED.value:  # closed, or reopened since
                continue
            latest = self.recent[row.dedup_key]
            if latest is None or row.resolved_at > latest.resolved_at:
                self.recent[row.dedup_key] = row

    def _preload_unended(self) -> None:
        # The unended events of every ticket the batch's links and keys name, in one query.
        tids = {link.ticket_id for link in self.links.values() if link is not None}
        tids |= {t[0] for t in self.active.values() if t is not None}
        tids |= {r.id for r in self.recent.values() if r is not None}  # may be reopened
        tids -= self._db_unended.keys()
        if not tids:
            return
        unended: dict[int, set[Key]] = {tid: set() for tid in tids}
        for tid, site_id, device_id, event_id in self.driver.rows_in(sql.UNENDED_IN, sorted(tids)):
            unended[int(tid)].add((site_id, device_id, event_id))
        self._db_unended.update(unended)

    def add_link(self, key: Key, link: Link) -> None:
        """Record the event `key`'s link (read, or made by this transaction)."""
        self.links[key] = link
        self._by_ticket.setdefault(link.ticket_id, set()).add(key)

    def new_ticket(self, ticket_id: int, ticket: TicketSeen) -> None:
        """A ticket this transaction inserted: no event of it is in the database yet."""
        self.tickets[ticket_id] = ticket
        self._db_unended[ticket_id] = set()

    def ticket(self, ticket_id: int) -> TicketSeen:
        """The ticket's clearing columns (read once per transaction)."""
        seen = self.tickets.get(ticket_id)
        if seen is None:
            (row,) = self.driver.rows(sql.TICKET, (ticket_id,))
            seen = TicketSeen(*row)
            self.tickets[ticket_id] = seen
        return seen

    def unended(self, ticket_id: int) -> set[Key]:
        """Events of `ticket_id` not yet ended: the database's (read once per ticket),
        corrected by what this transaction did to them."""
        db = self._db_unended.get(ticket_id)
        if db is None:
            rows = self.driver.rows(sql.UNENDED, (ticket_id,))
            db = self._db_unended[ticket_id] = {(r[0], r[1], r[2]) for r in rows}
        links = self.links
        active: set[Key] = set()
        for key in db | self._by_ticket.get(ticket_id, set()):
            link = links.get(key)
            if link is None:
                if key in db:  # untouched by this transaction: as the database has it
                    active.add(key)
            elif link.ticket_id == ticket_id and not link.ended:
                active.add(key)
        return active

    def recent_resolved(self, key: str, since: float) -> Resolved | None:
        """The ticket of `key` auto-resolved most recently at or after `since` (its id,
        `resolved_at` and clock columns), or None; from `preload` when it read that key."""
        if key not in self.recent:
            self.recent[key] = None
            self._read_recent([key], since)
        return self.recent[key]
