"""Records the store returns and the API serves (pydantic, extra="forbid")."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, JsonValue, model_validator

from gateway.auth import ALL_SITES, Role
from gateway.lifecycle import TicketState
from gateway.sla import TicketCategory

_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
SiteId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
"""A site, device, grid or zone id: also a legal MQTT topic segment."""


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TicketPublic(_Record):
    """One ticket as listed."""

    id: int
    site_id: str
    device_id: str
    category: TicketCategory
    zone_id: str | None
    grid_id: str | None
    severity: str
    state: TicketState
    tier: int
    assignee: str | None
    escalated_to: str | None
    event_count: int
    created_at: float
    updated_at: float
    acknowledged_at: float | None
    resolved_at: float | None
    resolved_by: str | None
    closed_at: float | None
    condition_cleared_at: float | None
    sla_cycle: int = Field(
        description="SLA cycle of the deadlines: 0, then +1 each time the ticket is reopened."
    )
    ack_due_at: float
    resolve_due_at: float
    resolution_note: str | None


class EvidencePublic(_Record):
    """One message's evidence attached to a ticket."""

    event_id: str
    msg_id: str
    phase: str
    seq: int
    ts: float
    snapshot_id: str | None
    snapshot_url: str | None
    detail: dict[str, Any]


class AuditEntry(_Record):
    """One line of a ticket's audit log."""

    at: float
    actor: str
    action: str
    from_state: str | None
    to_state: str | None
    detail: dict[str, Any]


class EscalationPublic(_Record):
    """One recorded SLA breach."""

    cycle: int = Field(description="The ticket's SLA cycle the breach belongs to.")
    breach: str
    due_at: float
    at: float
    from_tier: int
    to_tier: int
    handoff_to: str | None


class AttachmentPublic(_Record):
    """A photo uploaded to a ticket."""

    id: int
    content_type: str
    uploaded_by: str
    at: float
    url: str


class TicketDetail(TicketPublic):
    """A ticket with its evidence, audit log, escalations and photos."""

    evidence: list[EvidencePublic]
    audit: list[AuditEntry]
    escalations: list[EscalationPublic]
    attachments: list[AttachmentPublic]


class TicketPage(_Record):
    """A page of tickets."""

    items: list[TicketPublic]
    total: int
    offset: int
    limit: int


class DevicePublic(_Record):
    """A registered device and what the gateway last heard from it."""

    device_id: str
    site_id: str
    kind: str
    location: str | None
    zone_id: str | None
    grid_id: str | None
    online: bool
    last_seen: float | None
    health: dict[str, Any] | None


class DeviceCreate(_Record):
    """Register a device (credentials are provisioned with `guanjia device add`)."""

    device_id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    site_id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    kind: str = Field(min_length=1, max_length=32)
    location: str | None = Field(default=None, max_length=200)
    zone_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]{1,64}$")
    grid_id: str | None = None


class DeviceMove(_Record):
    """Move a device to another site (admins only): its grid and zone there, if any."""

    site_id: SiteId
    grid_id: SiteId | None = None
    zone_id: SiteId | None = None


class GridPublic(_Record):
    """A micro-grid of a site."""

    grid_id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    site_id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    name: str = Field(min_length=1, max_length=200)
    supervisor: str | None = None
    zones: list[str] = Field(default_factory=list)


class ShiftPublic(_Record):
    """One roster entry."""

    id: int | None = None
    grid_id: str
    username: str
    starts_at: float
    ends_at: float


class UserPublic(_Record):
    """A console user (never the password hash)."""

    username: str
    role: Role
    sites: list[str]
    display_name: str | None
    disabled: bool


class UserCreate(_Record):
    """Create a console user."""

    username: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    password: str = Field(min_length=10, max_length=200)
    role: Role
    sites: list[str] = Field(
        min_length=1, description="Site ids; exactly ['*'] (every site) for admins, only them."
    )
    display_name: str | None = Field(default=None, max_length=200)

    @model_validator(mode="after")
    def _all_sites_only_for_admins(self) -> UserCreate:
        check_user_sites(self.role, self.sites)
        return self


def check_user_sites(role: Role, sites: list[str]) -> None:
    """ValueError unless admins have exactly ['*'] and everyone else named sites only."""
    if role is Role.ADMIN:
        if sites != [ALL_SITES]:
            raise ValueError("sites: admins have exactly ['*'] (every site)")
        return
    for site in sites:
        if site == ALL_SITES:
            raise ValueError(f"sites: only admins have '*'; name the {role.value}'s sites")
        if not _ID.fullmatch(site):
            raise ValueError(f"sites: {site!r} is not a site id (A-Z a-z 0-9 _ -, 1-64)")


class CommandCreate(_Record):
    """A command to send to one device. The issuer is the caller, never a field."""

    name: SiteId = Field(description="The command (ping, config, actuate, …): cmd/{name}.")
    args: dict[str, JsonValue] = Field(default_factory=dict)
    expires_in_s: float = Field(
        default=60.0, gt=0, le=3600, description="The device refuses it after this long."
    )


class CommandPublic(_Record):
    """A command sent through the API: the audit row, and the device's answer once known."""

    command_id: str
    site_id: str
    device_id: str
    name: str
    args: dict[str, Any]
    issued_by: str
    issued_at: float
    expires_at: float
    state: str = Field(description="pending, sent, or unavailable (the broker was away).")
    result_status: str | None = None
    result_reason: str | None = None
    result_at: float | None = None


class DeadLetterPublic(_Record):
    """A message the gateway refused, with why."""

    id: int
    received_at: float
    topic: str
    payload_excerpt: str
    payload_size: int
    error_kind: str
    reason: str
    site_id: str | None = Field(
        default=None, description="The site its topic names; None: no parsable site."
    )
    device_id: str | None = Field(default=None, description="The device its topic names.")


class Change(_Record):
    """Something the console should redraw: pushed on the stream after the commit."""

    kind: str  # ticket | device
    action: str
    site_id: str
    ticket_id: int | None = None
    device_id: str | None = None
    state: str | None = None
    category: str | None = None
    at: float


class FeedEntry(_Record):
    """One row of the change feed as the stream sends it: `id` is the SSE event id (ordered
    by commit), `data` the Change as JSON."""

    id: int
    kind: str
    site_id: str
    data: str


class SlaFact(_Record):
    """What SLA performance is computed from, for one ticket."""

    ticket_id: int
    site_id: str
    grid_id: str | None
    category: str
    severity: str
    created_at: float
    acknowledged_at: float | None
    resolved_at: float | None
    breaches: int = Field(description="SLA breaches recorded for the ticket (all cycles).")
