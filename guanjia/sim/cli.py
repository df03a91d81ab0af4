"""`guanjia sim provision` and `guanjia sim run`."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

if TYPE_CHECKING:
    from guanjia.sim.credentials import Credentials
    from guanjia.sim.plan import SimSpec
    from guanjia.sim.runner import SimRun
    from guanjia.sim.stats import Report

sim_app = typer.Typer(
    help="Simulate a site: cameras, sensor nodes and ESPHome nodes under load.",
    no_args_is_help=True,
)

Cameras = Annotated[int, typer.Option(min=0, max=2000, help="Camera nodes.")]
Sensors = Annotated[int, typer.Option(min=0, max=2000, help="TelemetryBatch sensor nodes.")]
Esphome = Annotated[int, typer.Option(min=0, max=2000, help="Stock ESPHome nodes.")]
Site = Annotated[str, typer.Option(help="Site id.")]
Prefix = Annotated[str, typer.Option(help="Device id prefix.")]
Zones = Annotated[int, typer.Option(min=1, max=16, help="Zones (rules) per camera.")]


def _fail(where: str, message: str) -> NoReturn:
    typer.echo(f"error: {where}: {message}", err=True)
    raise typer.Exit(code=2)


def _spec(**fields: object) -> SimSpec:
    from pydantic import ValidationError

    from guanjia.sim.plan import SimSpec

    try:
        return SimSpec.model_validate(fields)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = "--" + "-".join(str(p) for p in first["loc"]).replace("_", "-")
        _fail(where if first["loc"] else "options", str(first["msg"]).removeprefix("Value error, "))


@sim_app.command("provision")
def provision_cmd(  # noqa: PLR0917 - typer maps each CLI option to a parameter
    credentials: Annotated[Path, typer.Option(help="Credentials file to write (mode 0600).")],
    passwd_file: Annotated[Path, typer.Option(help="Mosquitto password file to (re)write.")],
    acl_file: Annotated[Path, typer.Option(help="Mosquitto ACL file to (re)write.")],
    database_url: Annotated[
        str, typer.Option(envvar="GUANJIA_GATEWAY_DATABASE_URL", help="The gateway database.")
    ] = "sqlite:///guanjia-gateway.db",
    site: Site = "sim",
    prefix: Prefix = "sim-",
    cameras: Cameras = 10,
    sensors: Sensors = 4,
    esphome: Esphome = 2,
    zones: Zones = 3,
    gateway_account: Annotated[
        list[str] | None,
        typer.Option(help="Also create this gateway replica account (repeat: gateway-1, …)."),
    ] = None,
    api_user: Annotated[
        str | None, typer.Option(help="Also create this console operator for the summary.")
    ] = None,
) -> None:
    """Register the simulated devices, give each its own broker account, rewrite the
    broker's password file and ACL (send Mosquitto a SIGHUP after) and write the
    passwords into a credentials file for `guanjia sim run`."""
    from contract.topics import check_segment
    from guanjia.sim.credentials import provision

    spec = _spec(
        site_id=site,
        prefix=prefix,
        cameras=cameras,
        sensors=sensors,
        esphome=esphome,
        zones_per_camera=zones,
    )
    for name in gateway_account or []:
        try:
            check_segment(name, "gateway account")
        except ValueError as exc:
            _fail("--gateway-account", str(exc))
    for option, path in (
        ("--passwd-file", passwd_file),
        ("--acl-file", acl_file),
        ("--credentials", credentials),
    ):
        if not path.parent.is_dir():
            _fail(option, f"{path}: its folder {path.parent} does not exist")
    try:
        creds = provision(
            spec,
            database_url,
            passwd_file,
            acl_file,
            gateways=tuple(gateway_account or ()),
            api_user=api_user,
        )
    except ValueError as exc:
        _fail("provision", str(exc))
    creds.save(credentials)
    typer.echo(
        f"{len(creds.devices)} devices of site {site} provisioned; passwords in {credentials}"
    )


@sim_app.command("run")
def run_cmd(  # noqa: PLR0917 - typer maps each CLI option to a parameter
    credentials: Annotated[Path, typer.Option(help="File written by `guanjia sim provision`.")],
    host: Annotated[str, typer.Option(help="Broker host.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Broker port.")] = 1883,
    prefix: Prefix = "sim-",
    cameras: Cameras = 10,
    sensors: Sensors = 4,
    esphome: Esphome = 2,
    zones: Zones = 3,
    duration: Annotated[float, typer.Option(min=0.1, help="Seconds of planned sends.")] = 30.0,
    rate: Annotated[
        float, typer.Option(min=0, help="Event lifecycles started per second (site-wide).")
    ] = 2.0,
    update_every: Annotated[float, typer.Option(min=0.1, help="Seconds between updates.")] = 5.0,
    dwell_min: Annotated[float, typer.Option(min=0.1, help="Shortest lifecycle, s.")] = 2.0,
    dwell_max: Annotated[float, typer.Option(min=0.1, help="Longest lifecycle, s.")] = 20.0,
    snapshot_ratio: Annotated[float, typer.Option(min=0, max=1)] = 0.3,
    heartbeat_interval: Annotated[float, typer.Option(min=1)] = 10.0,
    telemetry_interval: Annotated[float, typer.Option(min=0.1)] = 10.0,
    alarm_ratio: Annotated[
        float, typer.Option(min=0, max=1, help="Share of readings that carry an alarm.")
    ] = 0.0,
    seed: int = 0,
    ack_timeout: Annotated[
        float, typer.Option(min=0.5, help="Re-send after this long without an Ack.")
    ] = 10.0,
    max_ack_timeout: Annotated[
        float, typer.Option(min=0.5, help="Longest wait between re-sends (the doubling's cap).")
    ] = 60.0,
    drain: Annotated[float, typer.Option(min=0, help="Wait this long for the last Acks.")] = 30.0,
    api: Annotated[
        str | None, typer.Option(help="Gateway URL: count the tickets and stored points.")
    ] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the summary here.")] = None,
    live: Annotated[bool, typer.Option(help="Live display (default: when on a terminal).")] = (
        sys.stdout.isatty()
    ),
) -> None:
    """Play the site: every device sends its events, snapshots, heartbeats and readings,
    keeps what the gateway has not acknowledged and re-sends it; a summary at the end."""
    from rich.console import Console

    from guanjia.sim.credentials import Credentials
    from guanjia.sim.devices import Endpoint
    from guanjia.sim.display import summary
    from guanjia.sim.plan import plan
    from guanjia.sim.runner import RunOptions, SimError, SimRun

    try:
        creds = Credentials.load(credentials)
    except ValueError as exc:
        _fail("--credentials", str(exc))
    spec = _spec(
        site_id=creds.site_id,
        prefix=prefix,
        cameras=cameras,
        sensors=sensors,
        esphome=esphome,
        zones_per_camera=zones,
        duration_s=duration,
        event_rate=rate,
        update_every_s=update_every,
        dwell_s=(dwell_min, dwell_max),
        snapshot_ratio=snapshot_ratio,
        heartbeat_interval_s=heartbeat_interval,
        telemetry_interval_s=telemetry_interval,
        alarm_ratio=alarm_ratio,
        seed=seed,
    )
    if api is not None and creds.api_user is None:
        _fail("--api", "the credentials file has no console user (provision with --api-user)")
    sends = plan(spec)
    options = RunOptions(
        Endpoint(host, port),
        ack_timeout_s=ack_timeout,
        max_ack_timeout_s=max(ack_timeout, max_ack_timeout),
        drain_s=drain,
    )
    try:
        run = SimRun(spec, sends, creds, options)
    except SimError as exc:
        _fail("--credentials", str(exc))
    report, stopped = _play(run, live=live, planned=len(sends))
    if api is not None:
        report = _reflect(report, api, creds, spec)
    Console().print(summary(report))
    if json_out is not None:
        json_out.write_text(json.dumps(report.model_dump(mode="json"), indent=1))
    raise typer.Exit(code=0 if report.complete and not stopped else 1)


def _play(run: SimRun, *, live: bool, planned: int) -> tuple[Report, bool]:
    """Connect, play (with the live view on a terminal), disconnect; (report, interrupted).
    Ctrl-C or SIGTERM ends the run early and still prints the summary."""
    from rich.console import Console
    from rich.live import Live

    from guanjia.sim.display import live as live_view
    from guanjia.sim.runner import SimError

    stopping = False

    def interrupted(_sig: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    previous = signal.signal(signal.SIGINT, interrupted)
    signal.signal(signal.SIGTERM, interrupted)
    try:
        try:
            run.connect()
        except SimError as exc:
            _fail("broker", str(exc).removeprefix("broker: "))
        if live:
            with Live(console=Console(), refresh_per_second=4, transient=True) as view:
                run.play(
                    tick=lambda: view.update(live_view(run.report(), run.done, planned)),
                    stop=lambda: stopping,
                )
        else:
            run.play(stop=lambda: stopping)
    finally:
        run.stop()
        signal.signal(signal.SIGINT, previous)
    return run.report(), stopping


def _reflect(report: Report, api: str, creds: Credentials, spec: SimSpec) -> Report:
    """The report with what the gateway's API shows for the site (unchanged on an error,
    which is printed)."""
    from rich.console import Console

    from guanjia.sim.gateway_view import GatewayView

    assert creds.api_user is not None
    assert creds.api_password is not None
    try:
        view = GatewayView(api, creds.api_user, creds.api_password.get_secret_value())
        try:
            return report.model_copy(update={"reflected": view.reflected(spec)})
        finally:
            view.close()
    except Exception as exc:  # the summary is printed either way
        Console(stderr=True).print(f"gateway API: {type(exc).__name__}: {exc}")
        return report
