"""`guanjia gateway …` and `guanjia device …`: run the service, migrate, provision.

Heavy imports (uvicorn, SQLAlchemy via the store, FastAPI) happen inside the commands so
`guanjia --help` stays fast.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

gateway_app = typer.Typer(help="Run and administer the gateway service.", no_args_is_help=True)
device_app = typer.Typer(
    help="Register devices and provision their broker credentials.", no_args_is_help=True
)

DbOption = Annotated[
    str,
    typer.Option(
        "--database-url",
        envvar="GUANJIA_GATEWAY_DATABASE_URL",
        help="SQLAlchemy URL (sqlite:///… or postgresql://…).",
    ),
]
PasswdOption = Annotated[
    Path, typer.Option("--passwd-file", help="Mosquitto password file to (re)write.")
]
AclOption = Annotated[Path, typer.Option("--acl-file", help="Mosquitto ACL file to (re)write.")]


@gateway_app.command("run")
def run(
    host: Annotated[str, typer.Option(help="HTTP bind address.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="HTTP port.")] = 8080,
    env_file: Annotated[
        Path | None, typer.Option(help="File of GUANJIA_GATEWAY_* settings.")
    ] = None,
    log_level: Annotated[str, typer.Option(help="Logging level.")] = "info",
) -> None:
    """Start the gateway: REST API, MQTT ingest, SLA clock and webhooks."""
    import uvicorn

    from gateway.config import load_settings
    from gateway.main import create_app

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(name)s %(message)s")
    settings = load_settings(env_file)
    uvicorn.run(create_app(settings), host=host, port=port, log_level=log_level)


@gateway_app.command("migrate")
def migrate_cmd(database_url: DbOption = "sqlite:///guanjia-gateway.db") -> None:
    """Create or upgrade the database schema."""
    from gateway.store import migrate

    migrate(database_url)
    typer.echo("database is at the newest schema")


@gateway_app.command("user-add")
def user_add(
    username: str,
    role: Annotated[str, typer.Option(help="admin, supervisor, operator or worker.")],
    site: Annotated[list[str], typer.Option(help="Site id in scope (repeat); admins get *.")],
    password: Annotated[
        str,
        typer.Option(
            prompt=True,
            hide_input=True,
            confirmation_prompt=True,
            envvar="GUANJIA_NEW_USER_PASSWORD",
            help="At least 10 characters.",
        ),
    ],
    database_url: DbOption = "sqlite:///guanjia-gateway.db",
) -> None:
    """Create a console user (there are no default users)."""
    from gateway.auth import Role, hash_password
    from gateway.store import Store, migrate

    if len(password) < 10:
        raise typer.BadParameter("use at least 10 characters", param_hint="--password")
    migrate(database_url)
    store = Store(database_url)
    try:
        store.create_user(username, hash_password(password), Role(role), site)
    finally:
        store.close()
    typer.echo(f"user {username} ({role}) created")


def _rewrite_broker_files(database_url: str, passwd_file: Path, acl_file: Path) -> int:
    from gateway.provisioning import BrokerAccount, write_broker_files
    from gateway.store import Store

    store = Store(database_url)
    try:
        accounts = [
            BrokerAccount(a.username, a.password_hash, a.role, a.site_id)
            for a in store.mqtt_accounts()
        ]
    finally:
        store.close()
    write_broker_files(accounts, passwd_file, acl_file)
    return len(accounts)


@gateway_app.command("mqtt-account")
def mqtt_account(
    username: str,
    passwd_file: PasswdOption,
    acl_file: AclOption,
    database_url: DbOption = "sqlite:///guanjia-gateway.db",
    password: Annotated[
        str | None, typer.Option(envvar="GUANJIA_MQTT_PASSWORD", help="Default: random.")
    ] = None,
) -> None:
    """Create or rotate the gateway's own broker account (reads and writes guanjia/#)."""
    from gateway.provisioning import mosquitto_hash, new_password
    from gateway.store import Store, migrate

    migrate(database_url)
    secret = password or new_password()
    store = Store(database_url)
    try:
        store.set_mqtt_credential(username, mosquitto_hash(secret), "gateway", None)
    finally:
        store.close()
    count = _rewrite_broker_files(database_url, passwd_file, acl_file)
    typer.echo(f"gateway account {username} written ({count} accounts in {passwd_file})")
    if password is None:
        typer.echo(f"password (shown once): {secret}")


@device_app.command("add")
def device_add(
    device_id: str,
    *,
    site: Annotated[str, typer.Option(help="Site id the device belongs to.")],
    kind: Annotated[str, typer.Option(help="camera, smoke, charging, …")],
    passwd_file: PasswdOption,
    acl_file: AclOption,
    database_url: DbOption = "sqlite:///guanjia-gateway.db",
    zone: Annotated[str | None, typer.Option(help="Zone id the device watches.")] = None,
    grid: Annotated[str | None, typer.Option(help="Grid id the device belongs to.")] = None,
    location: Annotated[str | None, typer.Option(help="Where it is mounted.")] = None,
    password: Annotated[
        str | None, typer.Option(envvar="GUANJIA_DEVICE_PASSWORD", help="Default: random.")
    ] = None,
) -> None:
    """Register a device and (re)write the broker's password file and ACL.

    The device's MQTT username is its id; its password is printed once. Send Mosquitto a
    SIGHUP to load the new files.
    """
    from contract.topics import check_segment
    from gateway.provisioning import mosquitto_hash, new_password
    from gateway.store import Store, migrate

    for value, what in ((device_id, "device id"), (site, "site id")):
        try:
            check_segment(value, what)
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from None
    migrate(database_url)
    secret = password or new_password()
    store = Store(database_url)
    try:
        store.upsert_device(device_id, site, kind, location=location, zone_id=zone, grid_id=grid)
        store.set_mqtt_credential(device_id, mosquitto_hash(secret), "device", site)
    finally:
        store.close()
    count = _rewrite_broker_files(database_url, passwd_file, acl_file)
    typer.echo(f"device {device_id} registered at {site} ({count} accounts in {passwd_file})")
    if password is None:
        typer.echo(f"password (shown once): {secret}")


@device_app.command("list")
def device_list(database_url: DbOption = "sqlite:///guanjia-gateway.db") -> None:
    """Registered devices and whether they are online."""
    from rich.console import Console
    from rich.table import Table

    from gateway.store import Store

    store = Store(database_url)
    try:
        rows = store.list_devices(limit=100_000)
    finally:
        store.close()
    table = Table("device", "site", "kind", "grid", "online", "last seen")
    for d in rows:
        table.add_row(
            d.device_id,
            d.site_id,
            d.kind,
            d.grid_id or "-",
            "yes" if d.online else "no",
            f"{d.last_seen or 0:.0f}",
        )
    Console().print(table)
