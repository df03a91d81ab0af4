"""Who may do what: every API route names one `Permission`; this table maps it to roles.

docs/gateway.md prints this table and tests/gateway/test_api_roles.py checks every route ×
every role against it. Site scope comes on top: every route that reads or writes an object
of a site also checks the caller's sites (see docs/security.md, "Sites and roles").
"""

from __future__ import annotations

from enum import StrEnum

from gateway.auth import Role


class Permission(StrEnum):
    """One capability a route requires."""

    READ_TICKETS = "read_tickets"
    ACKNOWLEDGE = "acknowledge"
    DISPATCH = "dispatch"
    WORK = "work"  # start / resolve / upload a photo (workers: only their own tickets)
    CLOSE = "close"  # close and reopen
    READ_DEVICES = "read_devices"
    WRITE_DEVICES = "write_devices"  # register and update devices in the caller's sites
    MOVE_DEVICES = "move_devices"  # move a device to another site
    COMMAND_DEVICES = "command_devices"  # send a command (actuate, config, ping) to a device
    READ_GRIDS = "read_grids"
    WRITE_GRIDS = "write_grids"  # grids, zones and the duty roster
    READ_USERS = "read_users"
    WRITE_USERS = "write_users"  # create users: no higher role, no more sites than one's own
    READ_DEAD_LETTERS = "read_dead_letters"
    WRITE_WEBHOOKS = "write_webhooks"
    STREAM = "stream"
    PUBLISH_MODELS = "publish_models"  # upload a signed model artifact to the registry
    ROLL_OUT_MODELS = "roll_out_models"  # start, pause, resume, cancel a rollout in one's sites
    ENTER_REPORTS = "enter_reports"  # enter hotline / WeChat-group reports for residents
    READ_ROUNDS = "read_rounds"  # today's patrol rounds, checkpoints by tag
    DO_ROUNDS = "do_rounds"  # record a checkpoint scan
    READ_FIGURES = "read_figures"  # response, resolution, SLA, satisfaction figures


_ALL = frozenset(Role)
_A = Role.ADMIN
_S = Role.SUPERVISOR
_O = Role.OPERATOR
_W = Role.WORKER

PERMISSIONS: dict[Permission, frozenset[Role]] = {
    Permission.READ_TICKETS: _ALL,
    Permission.ACKNOWLEDGE: frozenset({_A, _S, _O}),
    Permission.DISPATCH: frozenset({_A, _S, _O}),
    Permission.WORK: frozenset({_A, _S, _W}),
    Permission.CLOSE: frozenset({_A, _S, _O}),
    Permission.READ_DEVICES: frozenset({_A, _S, _O}),
    Permission.WRITE_DEVICES: frozenset({_A, _S}),
    Permission.MOVE_DEVICES: frozenset({_A}),
    Permission.COMMAND_DEVICES: frozenset({_A, _S}),
    Permission.READ_GRIDS: _ALL,
    Permission.WRITE_GRIDS: frozenset({_A, _S}),
    Permission.READ_USERS: frozenset({_A, _S}),
    Permission.WRITE_USERS: frozenset({_A, _S}),
    Permission.READ_DEAD_LETTERS: frozenset({_A, _S}),
    Permission.WRITE_WEBHOOKS: frozenset({_A}),
    Permission.STREAM: _ALL,
    Permission.PUBLISH_MODELS: frozenset({_A}),
    Permission.ROLL_OUT_MODELS: frozenset({_A, _S}),
    Permission.ENTER_REPORTS: frozenset({_A, _S, _O}),
    Permission.READ_ROUNDS: _ALL,
    Permission.DO_ROUNDS: frozenset({_A, _S, _W}),
    Permission.READ_FIGURES: frozenset({_A, _S, _O}),
}


def allowed(permission: Permission, role: Role) -> bool:
    """Whether `role` holds `permission`."""
    return role in PERMISSIONS[permission]


def may_grant(granter: Role, role: Role) -> bool:
    """Whether `granter` may create a user of `role`: only if every permission of `role` is
    one `granter` holds too (no one hands out more than they have)."""
    return all(granter in roles for roles in PERMISSIONS.values() if role in roles)
