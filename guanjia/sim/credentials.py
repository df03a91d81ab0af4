"""The simulated site's accounts: provisioned like real devices, kept in a credentials file.

`provision` registers every simulated device in the gateway database and gives it a broker
account of its own with the code `guanjia device add` uses (cameras and TelemetryBatch
sensors the ``device`` role pinned under their own topics, ESPHome nodes the ``esphome``
role), optionally gateway replica accounts and a console user for the summary's API
queries, then rewrites Mosquitto's password file and ACL from every account. The clear
passwords go only into the credentials file (mode 0600), which `guanjia sim run` reads.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from guanjia.sim.plan import ESPHOME_PROFILE, SimSpec, zone_id

Role = Literal["camera", "sensor", "esphome"]


class DeviceCredential(BaseModel):
    """One simulated device's broker login (its username is its device id)."""

    model_config = ConfigDict(extra="forbid")

    role: Role
    password: SecretStr


class Credentials(BaseModel):
    """Everything `guanjia sim run` logs in with."""

    model_config = ConfigDict(extra="forbid")

    site_id: str
    devices: dict[str, DeviceCredential] = Field(default_factory=dict)
    gateways: dict[str, SecretStr] = Field(
        default_factory=dict, description="Gateway replica accounts (username → password)."
    )
    api_user: str | None = None
    api_password: SecretStr | None = None

    def save(self, path: Path) -> None:
        """Write as JSON, readable by the owner only."""
        data = self.model_dump(mode="json")
        for name, entry in data["devices"].items():
            entry["password"] = self.devices[name].password.get_secret_value()
        data["gateways"] = {k: v.get_secret_value() for k, v in self.gateways.items()}
        if self.api_password is not None:
            data["api_password"] = self.api_password.get_secret_value()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)  # the mode of open() applies only to a file it creates
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle, indent=1)

    @classmethod
    def load(cls, path: Path) -> Credentials:
        """Read a credentials file; ValueError as one line naming the file and field."""
        try:
            return cls.model_validate_json(path.read_bytes())
        except OSError as exc:
            raise ValueError(f"{path}: {exc.strerror}") from None
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            where = ".".join(str(p) for p in first["loc"]) or "(file)"
            raise ValueError(f"{path}: {where}: {first['msg']}") from None


def _password() -> str:
    return secrets.token_urlsafe(18)


def provision(
    spec: SimSpec,
    database_url: str,
    passwd_file: Path,
    acl_file: Path,
    *,
    gateways: tuple[str, ...] = (),
    api_user: str | None = None,
) -> Credentials:
    """Register the spec's devices (and `gateways` accounts, and a console operator
    `api_user`) and rewrite the broker's files. Idempotent: passwords are renewed."""
    from gateway.auth import Role as UserRole
    from gateway.auth import hash_password
    from gateway.models import GridPublic
    from gateway.provisioning import gateway_accounts, mosquitto_hash, write_broker_files
    from gateway.store import ConflictError, Store, migrate

    migrate(database_url)
    store = Store(database_url)
    grid = f"g-{spec.site_id}"
    creds = Credentials(site_id=spec.site_id)
    try:
        store.grids.upsert_grid(
            GridPublic(
                grid_id=grid,
                site_id=spec.site_id,
                name=f"{spec.site_id} (simulated)",
                supervisor=None,
                zones=[zone_id(z) for z in range(spec.zones_per_camera)],
            )
        )
        devices: list[tuple[str, Role, str, str | None]] = [
            (d, "camera", "camera", None) for d in spec.camera_ids()
        ]
        devices += [
            (d, "sensor", spec.sensor_profile(i), spec.sensor_profile(i))
            for i, d in enumerate(spec.sensor_ids())
        ]
        devices += [(d, "esphome", "esphome", ESPHOME_PROFILE) for d in spec.esphome_ids()]
        for device_id, role, kind, profile in devices:
            password = _password()
            mqtt_role = "esphome" if role == "esphome" else "device"
            store.devices.check_mqtt_role(device_id, mqtt_role)
            store.devices.upsert_device(device_id, spec.site_id, kind, grid_id=grid)
            store.devices.set_mqtt_credential(
                device_id, mosquitto_hash(password), mqtt_role, spec.site_id
            )
            if profile is not None:
                store.sensors.set_sensor_node(device_id, profile, esphome=role == "esphome")
            creds.devices[device_id] = DeviceCredential(role=role, password=SecretStr(password))
        for username in gateways:
            password = _password()
            hashed = mosquitto_hash(password)
            for name in gateway_accounts(username):  # its ingest workers' too
                store.devices.set_mqtt_credential(name, hashed, "gateway", None)
            creds.gateways[username] = SecretStr(password)
        if api_user is not None:
            password = _password()
            try:
                store.users.create_user(
                    api_user, hash_password(password), UserRole.OPERATOR, [spec.site_id]
                )
            except ConflictError:
                raise ValueError(f"--api-user: {api_user!r} exists; name a new user") from None
            creds.api_user, creds.api_password = api_user, SecretStr(password)
        accounts = store.devices.mqtt_accounts()
    finally:
        store.close()
    write_broker_files(accounts, passwd_file, acl_file)
    return creds
