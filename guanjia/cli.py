"""The `guanjia` command: one typer app; each component adds its own sub-app here.

Sub-apps import their heavy libraries (cv2, onnxruntime, fastapi) inside the commands, so
`guanjia --help` stays fast and a Pi without the gateway extra can still run `guanjia edge`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from edge.cli import edge_app
from gateway.cli import device_app, gateway_app
from gateway.site_cli import site_app
from guanjia import __version__
from guanjia.model_cli import model_app
from guanjia.sim.cli import sim_app

app = typer.Typer(
    name="guanjia",
    help="Guanjia (管家): edge-AI and sensor gateway for residential communities.",
    no_args_is_help=True,
    add_completion=False,
)


@app.callback()
def _root() -> None:
    """Guanjia (管家): edge-AI and sensor gateway for residential communities."""


@app.command()
def version() -> None:
    """Print the installed Guanjia version and the contract's topic prefix."""
    from contract import PREFIX

    typer.echo(f"guanjia {__version__} (contract {PREFIX})")


@app.command()
def demo(  # noqa: PLR0917 - typer maps each CLI option to a parameter
    model_dir: Annotated[
        Path | None,
        typer.Option(help="Detector weights (default: found or fetched: guanjia model fetch)."),
    ] = None,
    workdir: Annotated[
        Path | None,
        typer.Option(help="Use this new or empty directory and keep it (default: a temp dir)."),
    ] = None,
    speed: Annotated[
        float, typer.Option(min=0.25, max=4.0, help="Play the clips this many times faster.")
    ] = 1.0,
    keep: Annotated[bool, typer.Option(help="Keep the temporary work dir at the end.")] = False,
    port: Annotated[
        int, typer.Option(min=0, max=65535, help="Gateway HTTP port (0: any free port).")
    ] = 8080,
    duration: Annotated[
        float | None,
        typer.Option(min=1, help="Stop this many seconds after the edge node starts."),
    ] = None,
    hold: Annotated[
        bool, typer.Option(help="Keep everything running after the clips end, until Ctrl-C.")
    ] = False,
    mosquitto: Annotated[
        Path | None, typer.Option(help="The mosquitto binary (default: found on PATH).")
    ] = None,
    broker: Annotated[
        str,
        typer.Option(
            help="auto: Mosquitto if its binary is found, else the embedded broker (amqtt, "
            "in this process); mosquitto; embedded."
        ),
    ] = "auto",
) -> None:
    """Run broker, gateway and an edge node on this machine and watch tickets open."""
    from guanjia.demo import DemoError, DemoOptions, run_demo

    if broker not in ("auto", "mosquitto", "embedded"):
        typer.echo(f"error: --broker: {broker!r}: use auto, mosquitto or embedded", err=True)
        raise typer.Exit(code=2)
    options = DemoOptions(
        model_dir=model_dir,
        workdir=workdir,
        speed=speed,
        keep=keep,
        port=port,
        duration_s=duration,
        hold=hold,
        mosquitto=mosquitto,
        broker=broker,  # type: ignore[arg-type]  # checked above
    )
    try:
        code = run_demo(options)
    except DemoError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=2) from exc
    raise typer.Exit(code=code)


app.add_typer(edge_app, name="edge")
app.add_typer(gateway_app, name="gateway")
app.add_typer(device_app, name="device")
app.add_typer(model_app, name="model")
app.add_typer(sim_app, name="sim")
app.add_typer(site_app, name="site")


def main() -> None:
    """Console-script entry point."""
    app()
