"""Broker credentials: Mosquitto password-file hashes and the ACL. Pure text, plus writing
the two files with the mode and group Mosquitto needs.

Every account's username is its MQTT client id too: every broker config we ship sets
``use_username_as_clientid true``, so no login can take over another's session (a device
reusing the gateway's client id would otherwise kick it off the broker). Hence one account
per gateway replica (``gateway-1``, ``gateway-2``, …) and one per device (its device id).

The ACL pins each device under ``guanjia/v1/{its site}/{its id}/``: it writes only the
device channels there (``snapshot/+`` included) and reads only its own ``cmd/+`` and
``ack``, plus the controller topics granted to it at provisioning (``--grant-write``, e.g. a
lift controller's command topic). Gateway accounts read the device channels of every site
and write ``…/cmd/+`` and ``…/ack``; nothing else. Mosquitto re-reads both files on SIGHUP.
"""

from __future__ import annotations

import base64
import grp
import hashlib
import os
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from contract import PREFIX
from contract.topics import DEVICE_CHANNELS, Channel, check_segment, subscription

PBKDF2_ITERATIONS = 20_000
"""Rounds of the ``$7$`` (PBKDF2-SHA512) hash. Mosquitto reads the count from each hash and
verifies on every CONNECT, on its one thread; mosquitto_passwd 2.0 writes 101, which a
stolen password file gives up fast. Measured on Mosquitto 2.0.11 (2-core test machine):
a login costs 0.4 ms at 101 rounds, 9 ms at 10,000, 19 ms at 20,000, 40 ms at 50,000. At
20,000 a reconnect storm of 1,000 devices is ~20 s of broker CPU, and each guess at a
password costs 200 times what it did."""

BROKER_GROUP = "mosquitto"
"""Debian's Mosquitto drops privileges to this user and group: it must read both files."""

ROLES = ("device", "gateway", "esphome")
"""`esphome`: a stock ESPHome node, kept inside its topic prefix ``esphome/{site}/{id}/``
(see `gateway.telemetry.esphome`): it writes there and reads only its switches' commands."""

ESPHOME_ROOT = "esphome"

INGEST_WORKER_ACCOUNTS = 8
"""Worker accounts provisioned with each gateway account: the most workers
`mqtt.ingest_processes` allows (`gateway.ingest_workers.MAX_WORKERS`)."""


def gateway_accounts(username: str) -> list[str]:
    """A gateway replica's broker accounts: its own and its ingest workers'
    (``<username>-w1`` … ``-w8``, as `MqttSettings.ingest_worker` names them), all with the
    replica's password and role. Provisioned together, so raising `mqtt.ingest_processes`
    needs no new account, and the gateway's start (which ends the sessions of workers no
    longer configured, logging in as each) meets no refused login."""
    return [username] + [f"{username}-w{i}" for i in range(1, INGEST_WORKER_ACCOUNTS + 1)]


@dataclass(frozen=True)
class BrokerAccount:
    """One line of the password file and its ACL block. `grants` are extra topics a device
    may write (controller topics); gateways have none."""

    username: str
    password_hash: str
    role: str  # "device", "gateway" or "esphome"
    site_id: str | None
    grants: tuple[str, ...] = field(default=())


def new_password() -> str:
    """A random password for a device (printed once, never stored in clear)."""
    return secrets.token_urlsafe(24)


def mosquitto_hash(
    password: str, salt: bytes | None = None, iterations: int = PBKDF2_ITERATIONS
) -> str:
    """The ``$7$`` PBKDF2-SHA512 hash that Mosquitto >= 2.0 verifies (`mosquitto_passwd -I`)."""
    salt = salt if salt is not None else os.urandom(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def check_grant(topic: str) -> str:
    """A topic a device may be granted write access to, or ValueError saying why not.

    Allowed: 1-8 non-empty segments, the first a plain word, `+` or `#` only as the whole
    last segment. Refused: anything under ``guanjia/`` (the contract's topics are the ACL's
    to give: a grant there could forge another device's events or the gateway's commands and
    acks; the device's own are in its ACL already), and ``$`` topics.
    """
    parts = topic.split("/")
    if not topic or len(parts) > 8 or any(p == "" for p in parts):
        raise ValueError(f"{topic!r}: use 1-8 non-empty segments separated by '/'")
    for i, part in enumerate(parts):
        wild = "+" in part or "#" in part
        if wild and (i == 0 or i != len(parts) - 1 or part not in ("+", "#")):
            raise ValueError(
                f"{topic!r}: a wildcard is allowed only as the whole last segment, not the first"
            )
    if parts[0].startswith("$"):
        raise ValueError(f"{topic!r}: '$' topics belong to the broker")
    root = PREFIX.split("/")[0]
    if parts[0] == root:
        raise ValueError(f"{topic!r}: topics under {root}/ are granted by the ACL, not by hand")
    return topic


def _device_block(account: BrokerAccount) -> list[str]:
    assert account.site_id is not None
    base = f"{PREFIX}/{check_segment(account.site_id, 'site id')}/{account.username}"
    lines = []
    for channel in sorted(DEVICE_CHANNELS):
        suffix = "/+" if channel is Channel.SNAPSHOT else ""
        lines.append(f"topic write {base}/{channel.value}{suffix}")
    lines.append(f"topic read {base}/{Channel.CMD.value}/+")
    lines.append(f"topic read {base}/{Channel.ACK.value}")
    lines += [f"topic write {topic}" for topic in account.grants]
    return lines


def _esphome_block(account: BrokerAccount) -> list[str]:
    assert account.site_id is not None
    base = f"{ESPHOME_ROOT}/{check_segment(account.site_id, 'site id')}/{account.username}"
    # ESPHome publishes its states, availability and discovery under its prefix; commands
    # come back on `<component>/<object_id>/command`.
    return [f"topic write {base}/#", f"topic read {base}/+/+/command"]


def _gateway_block() -> list[str]:
    lines = [f"topic read {subscription(ch)}" for ch in sorted(DEVICE_CHANNELS)]
    lines.append(f"topic write {subscription(Channel.CMD)}")
    lines.append(f"topic write {subscription(Channel.ACK)}")
    lines.append(f"topic read {ESPHOME_ROOT}/+/+/#")
    lines.append(f"topic write {ESPHOME_ROOT}/+/+/switch/+/command")
    return lines


def password_file(accounts: Iterable[BrokerAccount]) -> str:
    """The Mosquitto password file for `accounts`."""
    return "".join(f"{a.username}:{a.password_hash}\n" for a in accounts)


def acl_file(accounts: Iterable[BrokerAccount]) -> str:
    """The Mosquitto ACL: each device under its own prefix, gateways on the device channels."""
    lines = ["# Generated by `guanjia device add`; edits are overwritten.", ""]
    for account in accounts:
        check_segment(account.username, "username")
        if account.role not in ROLES:
            raise ValueError(f"account {account.username!r}: role must be one of {ROLES}")
        lines.append(f"user {account.username}")
        if account.role == "gateway":
            lines += _gateway_block()
        elif account.role == "esphome":
            lines += _esphome_block(account)
        else:
            lines += _device_block(account)
        lines.append("")
    return "\n".join(lines)


def broker_gid() -> int | None:
    """The `mosquitto` group's id, when this machine has one."""
    try:
        return grp.getgrnam(BROKER_GROUP).gr_gid
    except KeyError:
        return None


def write_private(path: Path, text: str) -> bool:
    """Replace `path` atomically: mode 0640, group `mosquitto` when that group exists (so
    Debian's Mosquitto can read it after dropping privileges), else 0600 and the caller's.
    True if the broker's group can read it."""
    gid = broker_gid()
    shared = False
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
        if gid is not None:
            try:
                os.fchown(handle.fileno(), -1, gid)
                os.fchmod(handle.fileno(), 0o640)
                shared = True
            except PermissionError:
                # Only root or a member of the group may hand a file to it; the operator is
                # told in docs/gateway.md to run provisioning as one of those.
                pass
    tmp.replace(path)
    return shared


def write_broker_files(
    accounts: Iterable[BrokerAccount], passwd_path: Path, acl_path: Path
) -> bool:
    """Write the password file and ACL for `accounts`; True if group `mosquitto` can read
    both (False: only their owner can, which Debian's Mosquitto is not)."""
    ordered = sorted(accounts, key=lambda a: a.username)
    shared = write_private(passwd_path, password_file(ordered))
    return write_private(acl_path, acl_file(ordered)) and shared
