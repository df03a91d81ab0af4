"""`guanjia gateway …` and `guanjia device …`: run the service, migrate, provision.

Heavy imports (uvicorn, SQLAlchemy via the store, FastAPI) happen inside the commands so
`guanjia --help` stays fast.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

if TYPE_CHECKING:
    from gateway.config import GatewaySettings
    from gateway.embedded_broker import EmbeddedBroker
    from gateway.store import Store

gateway_app = typer.Typer(help="Run and administer the gateway service.", no_args_is_help=True)
device_app = typer.Typer(
    help="Register devices and provision their broker credentials.", no_args_is_help=True
)

DEFAULT_DATABASE_URL = "sqlite:///guanjia-gateway.db"

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


def _fail(where: str, message: str) -> NoReturn:
    """Bad input: one line `error: <option>: <what is allowed>` on stderr, exit 2 (not
    typer's usage box, not a traceback)."""
    typer.echo(f"error: {where}: {message}", err=True)
    raise typer.Exit(code=2)


@contextmanager
def _open_store(database_url: str, *, migrate_first: bool = False) -> Iterator[Store]:
    """A Store for one command, closed afterwards; `migrate_first` for commands that write."""
    from gateway.store import Store, migrate

    if migrate_first:
        migrate(database_url)
    store = Store(database_url)
    try:
        yield store
    finally:
        store.close()


@gateway_app.command("run")
def run(  # noqa: PLR0917 - typer maps each CLI option to a parameter
    host: Annotated[str, typer.Option(help="HTTP bind address.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="HTTP port.")] = 8080,
    env_file: Annotated[
        Path | None, typer.Option(help="File of GUANJIA_GATEWAY_* settings.")
    ] = None,
    log_level: Annotated[str, typer.Option(help="Logging level.")] = "info",
    access_log: Annotated[
        bool, typer.Option(help="Log every HTTP request (uvicorn's access log).")
    ] = True,
    embedded_broker: Annotated[
        bool,
        typer.Option(
            help="Run an MQTT broker in this process (amqtt, MQTT 3.1.1, loopback only) on "
            "mqtt.host:mqtt.port, with the accounts of --passwd-file and --acl-file; for a "
            "machine without Mosquitto (docs/embedded-broker.md)."
        ),
    ] = False,
    passwd_file: Annotated[
        Path | None, typer.Option(help="With --embedded-broker: the provisioned password file.")
    ] = None,
    acl_file: Annotated[
        Path | None, typer.Option(help="With --embedded-broker: the provisioned ACL.")
    ] = None,
) -> None:
    """Start the gateway: REST API, MQTT ingest, SLA clock and webhooks."""
    import uvicorn

    from gateway.config import SettingsError, load_settings
    from gateway.main import create_app
    from gateway.sites import SiteConfigError
    from gateway.store import url_problem

    levels = logging.getLevelNamesMapping()
    if log_level.upper() not in levels:
        _fail("--log-level", f"{log_level!r}: use debug, info, warning or error")
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(name)s %(message)s")
    if levels[log_level.upper()] > logging.DEBUG:
        # Alembic announces its plugins and its context at INFO on every start.
        logging.getLogger("alembic").setLevel(logging.WARNING)
    try:
        settings = load_settings(env_file)
    except SettingsError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    problem = url_problem(settings.database_url)
    if problem is not None:
        _fail("GUANJIA_GATEWAY_DATABASE_URL", problem)
    broker = None
    if embedded_broker:
        settings, broker = _embedded_broker(settings, passwd_file, acl_file)
    try:
        try:
            app = create_app(settings)
        except SiteConfigError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
        # proxy_headers=False: uvicorn would otherwise believe X-Forwarded-For from loopback;
        # the app trusts it only from GUANJIA_GATEWAY_TRUSTED_PROXIES (gateway.api.proxies).
        uvicorn.run(
            app,
            host=host,
            port=port,
            log_level=log_level.lower(),
            proxy_headers=False,
            access_log=access_log,
        )
    finally:
        if broker is not None:
            broker.stop()


def _embedded_broker(
    settings: GatewaySettings, passwd_file: Path | None, acl_file: Path | None
) -> tuple[GatewaySettings, EmbeddedBroker]:
    """Start the embedded broker for `gateway run --embedded-broker`; the settings the
    gateway then connects with (MQTT 3.1.1)."""
    try:
        from gateway.embedded_broker import PROTOCOL, EmbeddedBroker, EmbeddedBrokerError
    except ImportError:
        _fail("--embedded-broker", "needs amqtt: pip install 'guanjia[gateway]'")
    for option, path in (("--passwd-file", passwd_file), ("--acl-file", acl_file)):
        if path is None:
            _fail(option, "required with --embedded-broker (the files `guanjia device add` writes)")
    assert passwd_file is not None
    assert acl_file is not None
    mqtt = settings.mqtt
    try:
        broker = EmbeddedBroker(mqtt.port, passwd_file, acl_file, host=mqtt.host)
        broker.start()
    except EmbeddedBrokerError as exc:
        _fail("--embedded-broker", str(exc))
    typer.echo(
        f"broker: embedded amqtt (MQTT {PROTOCOL}, loopback only) on {broker.url}, accounts "
        f"from {passwd_file} and {acl_file}"
    )
    updated = settings.model_copy(update={"mqtt": mqtt.model_copy(update={"protocol": PROTOCOL})})
    return updated, broker


@gateway_app.command("migrate")
def migrate_cmd(database_url: DbOption = DEFAULT_DATABASE_URL) -> None:
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
    database_url: DbOption = DEFAULT_DATABASE_URL,
) -> None:
    """Create a console user (there are no default users)."""
    from gateway.auth import Role, hash_password

    if len(password) < 10:
        _fail("--password", "use at least 10 characters")
    try:
        user_role = Role(role)
    except ValueError:
        _fail("--role", f"{role!r}: use one of {', '.join(r.value for r in Role)}")
    with _open_store(database_url, migrate_first=True) as store:
        try:
            store.users.create_user(username, hash_password(password), user_role, site)
        except ValueError as exc:  # '*' for a non-admin, or named sites for an admin
            _fail("--site", str(exc))
    typer.echo(f"user {username} ({role}) created")


def _provision(
    database_url: str,
    passwd_file: Path,
    acl_file: Path,
    password: str | None,
    register: Callable[[Store, str], None],
) -> tuple[int, str]:
    """Store one broker account with `register(store, password hash)`, then rewrite the
    password file and ACL from every account. Returns (accounts written, the password)."""
    from gateway.provisioning import mosquitto_hash, new_password, write_broker_files

    # Checked before the database is touched, so a typo in a path registers nothing.
    for option, path in (("--passwd-file", passwd_file), ("--acl-file", acl_file)):
        if not path.parent.is_dir():
            _fail(option, f"{path}: its folder {path.parent} does not exist")
    secret = password or new_password()
    with _open_store(database_url, migrate_first=True) as store:
        register(store, mosquitto_hash(secret))
        accounts = store.devices.mqtt_accounts()
    try:
        readable = write_broker_files(accounts, passwd_file, acl_file)
    except OSError as exc:
        _fail("--passwd-file/--acl-file", f"cannot write the broker files: {exc.strerror}")
    if not readable:
        typer.echo(
            f"note: {passwd_file} and {acl_file} are readable by their owner only (mode 0600): "
            "a Mosquitto that runs as user mosquitto (Debian's) cannot open them. Run this as "
            "root or a member of group mosquitto, or: chgrp mosquitto FILE && chmod 0640 FILE "
            "(docs/gateway.md, Files and hashes)",
            err=True,
        )
    return len(accounts), secret


def _gateway_accounts(store: Store, username: str, password_hash: str) -> None:
    from gateway.provisioning import gateway_accounts

    names = gateway_accounts(username)
    for name in names:  # all or none: a device already named <username>-wN refuses them all
        store.devices.check_mqtt_role(name, "gateway")
    for name in names:
        store.devices.set_mqtt_credential(name, password_hash, "gateway", None)


@gateway_app.command("mqtt-account")
def mqtt_account(
    username: str,
    passwd_file: PasswdOption,
    acl_file: AclOption,
    database_url: DbOption = DEFAULT_DATABASE_URL,
    password: Annotated[
        str | None, typer.Option(envvar="GUANJIA_MQTT_PASSWORD", help="Default: random.")
    ] = None,
) -> None:
    """Create or rotate one gateway replica's broker account (one per replica, e.g.
    gateway-1, gateway-2: the username is also its MQTT client id) and its ingest workers'
    (USERNAME-w1 … -w8, same password). They read every device channel and write commands
    and acks."""
    from contract.topics import check_segment

    try:
        check_segment(username, "username")
        check_segment(f"{username}-w8", "username")  # its workers' accounts too
    except ValueError as exc:
        _fail("USERNAME", str(exc))
    from gateway.store import ConflictError

    try:
        count, secret = _provision(
            database_url,
            passwd_file,
            acl_file,
            password,
            lambda store, hashed: _gateway_accounts(store, username, hashed),
        )
    except ConflictError as exc:  # a device's account: never turned into a gateway's
        _fail("USERNAME", str(exc))
    typer.echo(
        f"gateway account {username} and its ingest workers' {username}-w1…w8 written "
        f"({count} accounts in {passwd_file})"
    )
    if password is None:
        typer.echo(f"password (shown once): {secret}")


@device_app.command("add")
def device_add(
    device_id: str,
    *,
    site: Annotated[str, typer.Option(help="Site id the device belongs to.")],
    kind: Annotated[
        str, typer.Option(help="camera, smoke, charging, …; esphome for a stock ESPHome node")
    ],
    passwd_file: PasswdOption,
    acl_file: AclOption,
    database_url: DbOption = DEFAULT_DATABASE_URL,
    zone: Annotated[str | None, typer.Option(help="Zone id the device watches.")] = None,
    grid: Annotated[str | None, typer.Option(help="Grid id the device belongs to.")] = None,
    location: Annotated[str | None, typer.Option(help="Where it is mounted.")] = None,
    password: Annotated[
        str | None, typer.Option(envvar="GUANJIA_DEVICE_PASSWORD", help="Default: random.")
    ] = None,
    grant_write: Annotated[
        list[str] | None,
        typer.Option(
            "--grant-write",
            help="Extra topic the device may publish to, e.g. its lift controller's command "
            "topic (repeat). Not under guanjia/; a wildcard only as the whole last segment.",
        ),
    ] = None,
    profile: Annotated[
        str | None,
        typer.Option(
            help="Telemetry profile of a sensor node (firmware_configs/profiles/<name>.yaml); "
            "required with --kind esphome."
        ),
    ] = None,
) -> None:
    """Register a device and (re)write the broker's password file and ACL.

    The device's MQTT username (and client id) is its id; its password is printed once.
    Grants are replaced on every `device add`. Send Mosquitto a SIGHUP to load the new files.
    """
    from contract.topics import check_segment
    from gateway.provisioning import check_grant
    from gateway.store import ConflictError, NotFoundError

    for value, where, what in ((device_id, "DEVICE_ID", "device id"), (site, "--site", "site id")):
        try:
            check_segment(value, what)
        except ValueError as exc:
            _fail(where, str(exc))
    grants = []
    for topic in grant_write or []:
        try:
            grants.append(check_grant(topic))
        except ValueError as exc:
            _fail("--grant-write", str(exc))

    esphome = kind == "esphome"
    if profile is not None or esphome:
        from gateway.telemetry.profiles import ProfileError, load_profiles

        try:
            known = load_profiles()
        except ProfileError as exc:
            _fail("--profile", str(exc))
        if profile not in known:
            allowed = ", ".join(sorted(known))
            _fail("--profile", f"{profile!r} is not a profile; one of {allowed}")

    def register(store: Store, hashed: str) -> None:
        # Checked before anything is written: a refused account registers no device.
        # An ESPHome node speaks only ESPHome's topics: its ACL keeps it inside its prefix.
        role = "esphome" if esphome else "device"
        store.devices.check_mqtt_role(device_id, role)
        store.devices.upsert_device(
            device_id, site, kind, location=location, zone_id=zone, grid_id=grid
        )
        store.devices.set_mqtt_credential(device_id, hashed, role, site, grants)
        if profile is not None:
            store.sensors.set_sensor_node(device_id, profile, esphome=esphome)

    try:
        count, secret = _provision(database_url, passwd_file, acl_file, password, register)
    except ConflictError as exc:  # a gateway's account: never turned into a device's
        _fail("DEVICE_ID", str(exc))
    except NotFoundError as exc:  # the grid is missing or another site's
        _fail("--grid", str(exc))
    typer.echo(f"device {device_id} registered at {site} ({count} accounts in {passwd_file})")
    if password is None:
        typer.echo(f"password (shown once): {secret}")


def last_seen(ts: float | None, now: float) -> str:
    """ "never", "12 s ago", "3 min ago", "5 h ago", else the local date and time."""
    if not ts:
        return "never"
    age = max(0.0, now - ts)
    if age < 60:
        return f"{age:.0f} s ago"
    if age < 3600:
        return f"{age // 60:.0f} min ago"
    if age < 24 * 3600:
        return f"{age // 3600:.0f} h ago"
    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M")


@device_app.command("list")
def device_list(database_url: DbOption = DEFAULT_DATABASE_URL) -> None:
    """Registered devices and whether they are online."""
    from rich.console import Console
    from rich.table import Table

    with _open_store(database_url, migrate_first=True) as store:
        rows = store.devices.list_devices(limit=100_000)
    table = Table("device", "site", "kind", "grid", "online", "last seen")
    for d in rows:
        table.add_row(
            d.device_id,
            d.site_id,
            d.kind,
            d.grid_id or "-",
            "yes" if d.online else "no",
            last_seen(d.last_seen, time.time()),
        )
    Console().print(table)
