"""A device's liveness inside one ingest transaction: heartbeats, status, going offline.

`Liveness` marks devices online and offline on the transaction's overlay (`ingest_overlay`:
the devices a batch names are read once), opens the `device_offline` maintenance ticket of a
silent device and clears it when the device is heard again — both through the ticket rules
(`TicketRules`). Heartbeats are buffered (the last per device wins) and written at flush; a
status first writes its device's buffered heartbeat, so the two land in arrival order.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gateway.alerts import dedup_key, offline_alert, online_alert
from gateway.models import Change
from gateway.sla import CategoryPolicy, TicketCategory
from gateway.store import ingest_sql as sql

if TYPE_CHECKING:
    from gateway.store.ingest_tx import IngestTx
    from gateway.store.ticket_rules import TicketRules


class Liveness:
    """The device liveness of transaction `tx`, clearing tickets through `tickets`."""

    def __init__(self, tx: IngestTx, tickets: TicketRules) -> None:
        self.tx = tx
        self.tickets = tickets
        self.seen = tx.seen
        self.now = tx.now
        self.heartbeats: dict[str, dict[str, Any]] = {}

    def heartbeat(
        self,
        device_id: str,
        interval_s: float,
        health: dict[str, Any],
        offline_policy: CategoryPolicy,
    ) -> list[Change]:
        """A heartbeat: last seen, interval and health; marks the device online and clears
        its `device_offline` ticket under `offline_policy` (the configured one)."""
        device = self.seen.device(device_id)
        if device is None:
            return []
        self.heartbeats[device_id] = {
            "b_device_id": device_id,
            "b_now": self.now,
            "b_interval": interval_s,
            "b_health": health,
        }
        if device.online:
            return []
        device.online = True
        change = self._device_change(device.site_id, device_id, "online")
        self.tx.emit([change])
        return [change, *self._clear_offline(device.site_id, device_id, offline_policy)]

    def status(self, device_id: str, online: bool, offline_policy: CategoryPolicy) -> list[Change]:
        """A status message, ordered by when the gateway received it (this transaction's
        `now`), never by the device's own `ts`: a device clock in the year 3000 must not hide
        later statuses, and the last will is stamped at connect time, before the "online"
        it follows. A status received before the last one applied (another replica's, with
        a later clock) is ignored; within one batch the later message wins. Online clears
        the device's `device_offline` ticket under `offline_policy`."""
        device = self.seen.device(device_id)
        ts = self.now
        if device is None or (device.last_status_ts is not None and ts < device.last_status_ts):
            return []
        # A heartbeat buffered earlier in the batch must land before this status does.
        pending = self.heartbeats.pop(device_id, None)
        if pending is not None:
            self.tx.conn.execute(sql.HEARTBEAT, pending)
        params = {"b_device_id": device_id, "b_online": online, "b_ts": ts, "b_now": self.now}
        self.tx.conn.execute(sql.STATUS_ONLINE if online else sql.STATUS, params)
        was_online, device.online, device.last_status_ts = device.online, online, ts
        changes: list[Change] = []
        if was_online != online:
            action = "online" if online else "offline"
            changes.append(self._device_change(device.site_id, device_id, action))
            self.tx.emit(changes)
        if online:
            changes += self._clear_offline(device.site_id, device_id, offline_policy)
        return changes

    def go_offline(
        self, site_id: str, device_id: str, last_seen: float, policy: CategoryPolicy
    ) -> list[Change]:
        """A silent device goes offline and gets a maintenance ticket; conditional on it
        still being online and unheard since `last_seen`, so this happens once."""
        flipped = self.tx.conn.execute(
            sql.GO_OFFLINE, {"device": device_id, "b_last_seen": last_seen}
        ).rowcount
        if not flipped:
            return []
        self.seen.devices.pop(device_id, None)
        change = self._device_change(site_id, device_id, "offline")
        self.tx.emit([change])
        alert = offline_alert(site_id, device_id, last_seen, self.now)
        return [change, *self.tickets.apply_alert(alert, policy).changes]

    def _device_change(self, site_id: str, device_id: str, action: str) -> Change:
        return Change(
            kind="device", action=action, site_id=site_id, device_id=device_id, at=self.now
        )

    def _clear_offline(self, site_id: str, device_id: str, policy: CategoryPolicy) -> list[Change]:
        ticket = self.seen.open_ticket(dedup_key(site_id, device_id, TicketCategory.DEVICE_OFFLINE))
        if ticket is None:
            return []
        unended = self.seen.unended(ticket[0])
        if not unended:
            return []
        alert = online_alert(site_id, device_id, min(unended)[2], self.now)
        # `policy` is the configured device_offline policy: its `auto_resolve_on_end` decides
        # whether the device coming back resolves the ticket or leaves it for a person.
        return list(self.tickets.apply_alert(alert, policy).changes)

    def flush(self) -> None:
        """Write the buffered heartbeats (one executemany)."""
        if self.heartbeats:
            self.tx.conn.execute(sql.HEARTBEAT, list(self.heartbeats.values()))
