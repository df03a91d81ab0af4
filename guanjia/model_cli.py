"""`guanjia model …`: the model catalogue and first-run downloads.

`model_app` is the one `model` group; other model commands (signing, publishing) add
themselves to it from their own modules.
"""

from __future__ import annotations

from typing import Annotated

import typer

model_app = typer.Typer(help="Detector models: the catalogue and downloads.", no_args_is_help=True)


@model_app.command("list")
def list_models() -> None:
    """The catalogue: each model and photo, its licence, and whether it is here already."""
    from rich.console import Console
    from rich.table import Table

    from guanjia.assets import AssetError, load_catalog, locate, model_asset, photo_assets

    try:
        catalog = load_catalog()
    except AssetError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    table = Table("name", "file", "licence", "here")
    for name, entry in catalog.models.items():
        found = locate(model_asset(catalog, name)).path
        table.add_row(name, entry.file, entry.licence, str(found) if found else "no")
    for photo, asset in zip(catalog.photos, photo_assets(catalog), strict=True):
        found = locate(asset).path
        table.add_row("demo-photos", photo.file, photo.licence, str(found) if found else "no")
    Console().print(table)


@model_app.command("fetch")
def fetch(
    name: Annotated[str, typer.Argument(help="A model of the catalogue, or demo-photos.")],
    offline: Annotated[
        bool, typer.Option(help="Only look in the mirrors and the cache; never download.")
    ] = False,
) -> None:
    """Make NAME available: found in a mirror or the cache, else downloaded (resumed, sha256
    verified) into the cache. Prints where it is."""
    from rich.console import Console

    from guanjia.assets import (
        PHOTOS,
        AssetError,
        ensure,
        ensure_photos,
        load_catalog,
        model_asset,
        rich_progress,
    )

    console = Console(stderr=True)
    report, close = rich_progress(console)
    try:
        if name == PHOTOS:
            folder = ensure_photos(download=not offline, progress=report)
            close()
            typer.echo(f"demo photos: {folder}")
            return
        outcome = ensure(model_asset(load_catalog(), name), download=not offline, progress=report)
    except AssetError as exc:
        close()
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    close()
    said = {
        "mirror": "already present (local mirror)",
        "cache": "already present (cache)",
        "downloaded": "downloaded, sha256 verified",
    }[outcome.how]
    typer.echo(f"{name}: {outcome.path} — {said}")
