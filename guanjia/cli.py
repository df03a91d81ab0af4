"""The `guanjia` command: one typer app; each component adds its own sub-app here.

Sub-apps import their heavy libraries (cv2, onnxruntime, fastapi) inside the commands, so
`guanjia --help` stays fast and a Pi without the gateway extra can still run `guanjia edge`.
"""

from __future__ import annotations

import typer

from edge.cli import edge_app
from gateway.cli import device_app, gateway_app
from guanjia import __version__

app = typer.Typer(
    name="guanjia",
    help="Guanjia (管家): edge-AI and sensor gateway for residential communities.",
    no_args_is_help=True,
    add_completion=False,
)


@app.callback()
def _root() -> None:
    """Guanjia (管家): edge-AI and sensor gateway for residential communities."""
    # A callback keeps `guanjia` a command group even while it has a single subcommand.


@app.command()
def version() -> None:
    """Print the installed Guanjia version and the contract's topic prefix."""
    from contract import PREFIX

    typer.echo(f"guanjia {__version__} (contract {PREFIX})")


app.add_typer(edge_app, name="edge")
app.add_typer(gateway_app, name="gateway")
app.add_typer(device_app, name="device")


def main() -> None:
    """Console-script entry point."""
    app()
