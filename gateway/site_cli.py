"""`guanjia site …`: what is printed and checked per site file (``GUANJIA_GATEWAY_SITES_DIR``).

- ``guanjia site qr SITE --out sheet.pdf`` prints the QR codes of the site's places (PDF or
  PNG). The codes are signed with the gateway's key (``GUANJIA_GATEWAY_JWT_SECRET``), so print
  them with the same settings the gateway runs with; rotating the key voids posted codes.
- ``guanjia site check`` validates every site file.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

if TYPE_CHECKING:
    from gateway.config import GatewaySettings
    from gateway.sites import SiteConfig

site_app = typer.Typer(help="Site files: places' QR codes, checking.", no_args_is_help=True)

EnvFile = Annotated[Path | None, typer.Option(help="File of GUANJIA_GATEWAY_* settings.")]
SitesDir = Annotated[Path | None, typer.Option(help="Default: $GUANJIA_GATEWAY_SITES_DIR.")]


def _fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code=2)


def _sites(
    env_file: Path | None, sites_dir: Path | None
) -> tuple[GatewaySettings, dict[str, SiteConfig]]:
    from gateway.config import SettingsError, load_settings
    from gateway.sites import SiteConfigError, load_sites

    overrides: dict[str, object] = {} if sites_dir is None else {"sites_dir": sites_dir}
    try:
        settings = load_settings(env_file, **overrides)
    except SettingsError as exc:
        _fail(str(exc))
    if settings.sites_dir is None:
        _fail("GUANJIA_GATEWAY_SITES_DIR: not set (or give --sites-dir)")
    try:
        return settings, load_sites(settings.sites_dir)
    except SiteConfigError as exc:
        _fail(str(exc))


@site_app.command("qr")
def qr(
    site_id: Annotated[str, typer.Argument(help="The site whose places to print.")],
    out: Annotated[Path, typer.Option(help="Sheet to write: a .pdf or .png file.")],
    env_file: EnvFile = None,
    sites_dir: SitesDir = None,
    font: Annotated[
        Path | None, typer.Option(help="TrueType/OpenType font with Chinese glyphs for names.")
    ] = None,
) -> None:
    """Print the QR codes of a site's places as a PDF or PNG sheet."""
    from gateway.residents.qrsheet import Code, write_sheet
    from gateway.residents.service import report_url
    from gateway.residents.tokens import derive_key, place_token

    if out.suffix.lower() not in (".pdf", ".png"):
        _fail(f"--out: {out}: must end in .pdf or .png")
    if font is not None and not font.is_file():
        _fail(f"--font: {font}: no such file")
    if not out.parent.is_dir():
        _fail(f"--out: {out.parent}: no such directory")
    settings, sites = _sites(env_file, sites_dir)
    site = sites.get(site_id)
    if site is None:
        _fail(f"SITE: {site_id!r} has no site file in {settings.sites_dir}")
    if not site.places:
        _fail(f"{settings.sites_dir}/{site_id}.yaml: places: none to print")
    key = derive_key(settings.signing_key(), "place")
    base = settings.residents.public_base_url
    codes = [
        Code(report_url(base, place_token(key, site.site_id, p.place_id)), p.place_id, p.name)
        for p in site.places
    ]
    pages = write_sheet(out, f"{site.name} ({site.site_id})", codes, font)
    typer.echo(f"{len(codes)} codes for {site_id} on {pages} page(s): {out}")
    if _is_local(base):
        typer.echo(
            f"warning: GUANJIA_GATEWAY_RESIDENTS__PUBLIC_BASE_URL: {base} is this machine "
            "only; phones cannot open these codes",
            err=True,
        )


def _is_local(url: str) -> bool:
    """Whether `url` names this machine (loopback), which no resident's phone can reach."""
    import ipaddress
    from urllib.parse import urlsplit

    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@site_app.command("check")
def check(env_file: EnvFile = None, sites_dir: SitesDir = None) -> None:
    """Validate every site file."""
    _, sites = _sites(env_file, sites_dir)
    for site in sites.values():
        routes = len(site.rounds.routes)
        typer.echo(f"{site.site_id}: {len(site.places)} places, {routes} routes")
