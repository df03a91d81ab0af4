"""Table definitions (SQLAlchemy Core). Alembic migrations must match these.

Uniqueness that the business rules rely on lives here, so the database arbitrates between
replicas:

- ``processed_messages (msg_id, site_id, device_id)``: a device's message id is processed once
  (redeliveries are dropped; ids are per device, so no device can claim another's);
- ``tickets.active_key``: at most one open ticket per (site, device, category, zone); the
  column is NULL once the ticket is resolved or closed (NULLs never collide);
- ``ticket_events (event_id, site_id, device_id)``: a device's edge event belongs to exactly
  one ticket;
- ``escalations (ticket_id, cycle, breach)``: each SLA breach escalates once per SLA cycle
  (``tickets.sla_cycle``, bumped when the ticket is reopened).

``changes`` is the ordered change feed every replica's console stream reads: one row per
ticket or device change, written in the transaction that made the change.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

grids = Table(
    "grids",
    metadata,
    Column("grid_id", String(64), primary_key=True),
    Column("site_id", String(64), nullable=False, index=True),
    Column("name", String(200), nullable=False),
    Column("supervisor", String(64), nullable=True),
)

zones = Table(
    "zones",
    metadata,
    Column("site_id", String(64), primary_key=True),
    Column("zone_id", String(64), primary_key=True),
    Column("grid_id", String(64), ForeignKey("grids.grid_id"), nullable=False),
)

devices = Table(
    "devices",
    metadata,
    Column("device_id", String(64), primary_key=True),
    Column("site_id", String(64), nullable=False, index=True),
    Column("kind", String(32), nullable=False),
    Column("location", String(200), nullable=True),
    Column("zone_id", String(64), nullable=True),
    Column("grid_id", String(64), ForeignKey("grids.grid_id"), nullable=True),
    Column("online", Boolean, nullable=False, default=False),
    Column("last_seen", Float, nullable=True),
    Column("last_status_ts", Float, nullable=True),
    Column("heartbeat_interval_s", Float, nullable=True),
    Column("health", JSON, nullable=True),
    Column("created_at", Float, nullable=False),
)

mqtt_credentials = Table(
    "mqtt_credentials",
    metadata,
    Column("username", String(64), primary_key=True),
    Column("password_hash", String(300), nullable=False),
    Column("role", String(16), nullable=False),  # device | gateway
    Column("site_id", String(64), nullable=True),
    Column("grants", JSON, nullable=True),  # extra topics a device may write (controllers)
)

users = Table(
    "users",
    metadata,
    Column("username", String(64), primary_key=True),
    Column("password_hash", String(300), nullable=False),
    Column("role", String(16), nullable=False),
    Column("sites", JSON, nullable=False),  # list of site ids; ["*"] = every site
    Column("display_name", String(200), nullable=True),
    Column("disabled", Boolean, nullable=False, default=False),
)

shifts = Table(
    "shifts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("grid_id", String(64), ForeignKey("grids.grid_id"), nullable=False, index=True),
    Column("username", String(64), nullable=False),
    Column("starts_at", Float, nullable=False),
    Column("ends_at", Float, nullable=False),
)

processed_messages = Table(
    "processed_messages",
    metadata,
    # Keyed by the sending device: a msg_id is the device's own choice, so one device must
    # not be able to claim (and so drop) another's future message ids. msg_id leads the key
    # so the batch lookup `msg_id IN (…)` uses it.
    Column("msg_id", String(128), primary_key=True),
    Column("site_id", String(64), primary_key=True),
    Column("device_id", String(64), primary_key=True),
    Column("received_at", Float, nullable=False, index=True),
)

dead_letters = Table(
    "dead_letters",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("received_at", Float, nullable=False, index=True),
    Column("topic", String(300), nullable=False),
    Column("payload_excerpt", Text, nullable=False),
    Column("payload_size", Integer, nullable=False),
    Column("error_kind", String(64), nullable=False),
    Column("reason", Text, nullable=False),
    # From the topic when it names a site and a device (guanjia/v1/{site}/{device}/…): who
    # may see the letter, and whose quota and cap it counts against. NULL: all-site users only.
    Column("site_id", String(64), nullable=True),
    Column("device_id", String(64), nullable=True),
)
Index(
    "ix_dead_letters_site_device",
    dead_letters.c.site_id,
    dead_letters.c.device_id,
    dead_letters.c.received_at,
)

tickets = Table(
    "tickets",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("site_id", String(64), nullable=False, index=True),
    Column("device_id", String(64), nullable=False),
    Column("category", String(32), nullable=False, index=True),
    Column("zone_id", String(64), nullable=True),
    Column("grid_id", String(64), nullable=True, index=True),
    Column("severity", String(16), nullable=False),
    Column("state", String(16), nullable=False, index=True),
    Column("tier", Integer, nullable=False),
    # The SLA cycle the deadlines below belong to: 0, +1 at each reopen.
    Column("sla_cycle", Integer, nullable=False, server_default="0"),
    Column("assignee", String(64), nullable=True),
    Column("escalated_to", String(200), nullable=True),
    Column("dedup_key", String(300), nullable=False, index=True),
    Column("active_key", String(300), nullable=True, unique=True),
    Column("event_count", Integer, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("acknowledged_at", Float, nullable=True),
    Column("resolved_at", Float, nullable=True),
    Column("resolved_by", String(64), nullable=True),
    Column("closed_at", Float, nullable=True),
    Column("condition_cleared_at", Float, nullable=True),
    Column("ack_due_at", Float, nullable=False),
    Column("resolve_due_at", Float, nullable=False),
    Column("resolution_note", Text, nullable=True),
)
Index("ix_tickets_open_due", tickets.c.state, tickets.c.ack_due_at, tickets.c.resolve_due_at)

ticket_events = Table(
    "ticket_events",
    metadata,
    # Keyed by the sending device, like processed_messages: an event id is the device's
    # choice and must not reach another device's ticket.
    Column("event_id", String(128), primary_key=True),
    Column("site_id", String(64), primary_key=True),
    Column("device_id", String(64), primary_key=True),
    Column("ticket_id", Integer, ForeignKey("tickets.id"), nullable=False, index=True),
    Column("ended", Boolean, nullable=False),
    Column("last_seq", Integer, nullable=False),
)
# The links of a ticket's events that have not ended, which ingest reads for every ticket a
# batch touches (`ingest_sql.UNENDED_IN`): with only the index on `ticket_id`, that read
# visits every event the ticket ever had, ended ones included, and grows with its history.
# The condition is spelled as the queries spell it, so both planners see that it applies.
Index(
    "ix_ticket_events_unended",
    ticket_events.c.ticket_id,
    sqlite_where=text("NOT ended"),
    postgresql_where=text("NOT ended"),
)

evidence = Table(
    "evidence",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ticket_id", Integer, ForeignKey("tickets.id"), nullable=False, index=True),
    Column("event_id", String(128), nullable=False),
    Column("msg_id", String(128), nullable=False),
    Column("phase", String(16), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("ts", Float, nullable=False),
    Column("snapshot_id", String(64), nullable=True),
    Column("detail", JSON, nullable=False),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ticket_id", Integer, ForeignKey("tickets.id"), nullable=False, index=True),
    Column("at", Float, nullable=False),
    Column("actor", String(64), nullable=False),
    Column("action", String(32), nullable=False),
    Column("from_state", String(16), nullable=True),
    Column("to_state", String(16), nullable=True),
    Column("detail", JSON, nullable=False),
)

escalations = Table(
    "escalations",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ticket_id", Integer, ForeignKey("tickets.id"), nullable=False),
    Column("cycle", Integer, nullable=False, server_default="0"),
    Column("breach", String(16), nullable=False),
    Column("due_at", Float, nullable=False),
    Column("at", Float, nullable=False),
    Column("from_tier", Integer, nullable=False),
    Column("to_tier", Integer, nullable=False),
    Column("handoff_to", String(200), nullable=True),
    UniqueConstraint("ticket_id", "cycle", "breach", name="uq_escalations_ticket_cycle_breach"),
)

snapshots = Table(
    "snapshots",
    metadata,
    Column("site_id", String(64), primary_key=True),
    Column("device_id", String(64), primary_key=True),
    Column("snapshot_id", String(64), primary_key=True),
    # Of `data` once it is here; before that (an event named the snapshot first) the
    # SnapshotRef's promise, which the JPEG must then match.
    Column("sha256", String(64), nullable=False),
    Column("size_bytes", Integer, nullable=False),
    Column("data", LargeBinary, nullable=True),  # NULL: announced by an event, not arrived
    Column("received_at", Float, nullable=True, index=True),  # when `data` arrived
    Column("linked_at", Float, nullable=True),  # when an event took it as evidence
)

attachments = Table(
    "attachments",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ticket_id", Integer, ForeignKey("tickets.id"), nullable=False, index=True),
    Column("content_type", String(64), nullable=False),
    Column("data", LargeBinary, nullable=False),
    Column("uploaded_by", String(64), nullable=False),
    Column("at", Float, nullable=False),
)

webhooks = Table(
    "webhooks",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("grid_id", String(64), nullable=True),  # NULL = every grid
    Column("category", String(32), nullable=True),  # NULL = every category
    Column("url", String(500), nullable=False),
    Column("flavour", String(16), nullable=False),  # wecom | dingtalk | feishu
)

notifications = Table(
    "notifications",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("webhook_id", Integer, ForeignKey("webhooks.id"), nullable=False),
    Column("ticket_id", Integer, ForeignKey("tickets.id"), nullable=False),
    Column("body", JSON, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", Float, nullable=False, index=True),
    Column("delivered_at", Float, nullable=True),
    Column("failed", Boolean, nullable=False),
    Column("last_error", Text, nullable=True),
)

changes = Table(
    "changes",
    metadata,
    # AUTOINCREMENT on SQLite: ids never go back, even after pruning empties the table, so
    # a console's Last-Event-ID stays meaningful.
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", Float, nullable=False, index=True),
    Column("kind", String(16), nullable=False),
    Column("site_id", String(64), nullable=False),
    Column("body", Text, nullable=False),  # the Change as JSON, served as the SSE data line
    sqlite_autoincrement=True,
)

commands = Table(
    "commands",
    metadata,
    # The audit of commands people sent through the API (`POST /api/devices/{id}/commands`):
    # written before the command is published, so nothing reaches a device unrecorded.
    Column("command_id", String(128), primary_key=True),
    Column("site_id", String(64), nullable=False),
    Column("device_id", String(64), nullable=False),
    Column("name", String(64), nullable=False),
    Column("args", JSON, nullable=False),
    Column("issued_by", String(64), nullable=False),
    Column("issued_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("state", String(16), nullable=False),  # pending | sent | unavailable
    # The device's CommandResult, once ingest records it (keyed by site, device, command id).
    Column("result_status", String(16), nullable=True),
    Column("result_reason", Text, nullable=True),
    Column("result_at", Float, nullable=True),
)
Index("ix_commands_device", commands.c.site_id, commands.c.device_id, commands.c.issued_at)
sensor_nodes = Table(
    "sensor_nodes",
    metadata,
    # A sensor device's profile (firmware_configs/profiles/<profile>.yaml) and how it talks:
    # the contract's TelemetryBatch, or ESPHome's own topics (esphome/{site}/{device}/…).
    Column("device_id", String(64), ForeignKey("devices.device_id"), primary_key=True),
    Column("profile", String(48), nullable=False),
    Column("esphome", Boolean, nullable=False),
)

# -- model artifacts and rollouts (docs/models.md) --------------------------------------------
model_artifacts = Table(
    "model_artifacts",
    metadata,
    # Content-addressed: the file is <models.store_dir>/<sha256>.gjm; one name+version each.
    Column("sha256", String(64), primary_key=True),
    Column("name", String(64), nullable=False),
    Column("version", String(32), nullable=False),
    Column("size", Integer, nullable=False),
    Column("model_sha256", String(64), nullable=False),
    Column("key_id", String(16), nullable=False),
    Column("min_edge_version", String(32), nullable=False),
    Column("created", Float, nullable=False),
    Column("uploaded_by", String(64), nullable=False),
    Column("uploaded_at", Float, nullable=False),
    UniqueConstraint("name", "version", name="uq_model_artifacts_name_version"),
)
rollouts = Table(
    "rollouts",
    metadata,
    Column("rollout_id", String(32), primary_key=True),
    Column("site_id", String(64), nullable=False, index=True),
    Column("artifact_sha256", String(64), ForeignKey("model_artifacts.sha256"), nullable=False),
    # running | paused | halted | completed | cancelled
    Column("state", String(16), nullable=False),
    Column("wave", Integer, nullable=False),
    Column("waves", Integer, nullable=False),
    Column("policy", JSON, nullable=False),
    Column("reason", Text, nullable=True),
    Column("created_by", String(64), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    # Bumped by every planning step: a step applies only over the version it read, so two
    # replicas never send the same wave twice.
    Column("version", Integer, nullable=False),
)
rollout_devices = Table(
    "rollout_devices",
    metadata,
    Column("rollout_id", String(32), ForeignKey("rollouts.rollout_id"), primary_key=True),
    Column("device_id", String(64), primary_key=True),
    Column("site_id", String(64), nullable=False),
    Column("wave", Integer, nullable=False),
    Column("state", String(16), nullable=False),
    Column("reason", Text, nullable=True),
    Column("install_command_id", String(128), nullable=True),
    Column("last_command_id", String(128), nullable=True),
    Column("commanded_at", Float, nullable=True),
    Column("report_ts", Float, nullable=True),  # the device's clock: later reports win
    Column("running", String(100), nullable=True),  # "name version" the device runs
    Column("updated_at", Float, nullable=False),
)
Index("ix_rollout_devices_command", rollout_devices.c.site_id, rollout_devices.c.device_id)
resident_reports = Table(
    "resident_reports",
    metadata,
    # A ticket a resident reported (QR page) or an operator entered for one (hotline, WeChat
    # group): what the resident said, how to reach them, and their rating of the work.
    Column("ticket_id", Integer, ForeignKey("tickets.id"), primary_key=True),
    Column("site_id", String(64), nullable=False),
    Column("place_id", String(64), nullable=False),
    Column("channel", String(16), nullable=False),  # qr | hotline | wechat
    Column("description", Text, nullable=False),
    Column("phone", String(32), nullable=True),  # never shown on the tracking page
    # SHA-256 of the tracking token: the token itself is only in the resident's link.
    Column("tracking_hash", String(64), nullable=False, unique=True),
    Column("entered_by", String(64), nullable=True),  # the operator, for hotline / wechat
    Column("created_at", Float, nullable=False),
    Column("rating", Integer, nullable=True),
    Column("rating_comment", Text, nullable=True),
    Column("rated_at", Float, nullable=True),
    Column("flagged_at", Float, nullable=True),  # a low rating the supervisor must look at
)
Index(
    "ix_resident_reports_place",
    resident_reports.c.site_id,
    resident_reports.c.place_id,
    resident_reports.c.created_at,
)

pow_spent = Table(
    "pow_spent",
    metadata,
    # A solved proof-of-work challenge is good for one report: its id is inserted with the
    # report, so a replay (on any replica) fails the primary key.
    Column("challenge_id", String(64), primary_key=True),
    Column("at", Float, nullable=False, index=True),
)

round_scans = Table(
    "round_scans",
    metadata,
    # A checkpoint scanned on a patrol round: the ticks of its checklist and its photo.
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("site_id", String(64), nullable=False),
    Column("route_id", String(64), nullable=False),
    Column("checkpoint_id", String(64), nullable=False),
    Column("at", Float, nullable=False),
    Column("username", String(64), nullable=False),
    Column("results", JSON, nullable=False),  # {item_id: true (passed) | false}
    Column("note", Text, nullable=True),
    Column("photo_type", String(32), nullable=True),
    Column("photo", LargeBinary, nullable=True),
)
Index("ix_round_scans_site_at", round_scans.c.site_id, round_scans.c.at)

round_tickets = Table(
    "round_tickets",
    metadata,
    # Tickets opened by rounds planning, under the decision's key: planning runs every tick
    # on every replica, and the key makes each missed round one ticket.
    Column("site_id", String(64), primary_key=True),
    Column("decision_key", String(200), primary_key=True),
    Column("ticket_id", Integer, ForeignKey("tickets.id"), nullable=False),
    Column("at", Float, nullable=False),
)

telemetry_leases = Table(
    "telemetry_leases",
    metadata,
    # Which replica runs the sensor rules for one telemetry subscription (its sites), until
    # when: renewed by its holder with a compare-and-set UPDATE (gateway.telemetry.lease).
    Column("name", String(200), primary_key=True),
    Column("holder", String(128), nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("taken_at", Float, nullable=False),
)
