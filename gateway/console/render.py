"""Rendering console pages: the Jinja2 environment, the context every page gets, and the
headers every page carries (a strict Content-Security-Policy: scripts, styles, images and
connections from this origin only, no inline script or style, no framing)."""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from gateway.api.permissions import Permission
from gateway.auth import Principal, issue_console_session, session_issued_at
from gateway.auth import TokenError as _TokenError
from gateway.console import views
from gateway.console.i18n import Translator, pick_language
from gateway.console.session import (
    CSRF_COOKIE,
    LANG_COOKIE,
    SESSION_COOKIE,
    csrf_token,
    new_csrf_cookie,
)
from gateway.console.settings import LANGUAGES
from gateway.runtime import Runtime

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; "
    "connect-src 'self'; media-src 'self'; font-src 'self'; form-action 'self'; "
    "base-uri 'none'; frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
}

NAV: tuple[tuple[str, str, Permission], ...] = (
    ("nav.wall", "/console/wall", Permission.ACKNOWLEDGE),
    ("nav.queue", "/console/queue", Permission.READ_TICKETS),
    ("nav.my", "/console/my", Permission.WORK),
    ("nav.enter_report", "/console/reports/new", Permission.ENTER_REPORTS),
    ("nav.rounds", "/console/rounds", Permission.READ_ROUNDS),
    ("nav.devices", "/console/devices", Permission.READ_DEVICES),
    ("nav.sla", "/console/sla", Permission.READ_FIGURES),
    ("nav.figures", "/console/figures", Permission.READ_FIGURES),
    ("nav.dead_letters", "/console/dead-letters", Permission.READ_DEAD_LETTERS),
)
"""Menu entries: each shown only to roles holding the permission its page checks."""


@cache
def environment() -> Environment:
    """The template environment (autoescaping on; built once)."""
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["duration"] = views.duration
    return env


def translator(request: Request) -> Translator:
    """The request's language: the switch's cookie, else zh-CN."""
    return Translator(
        pick_language(request.cookies.get(LANG_COOKIE), request.headers.get("accept-language"))
    )


def zone_of(runtime: Runtime) -> Callable[[str], ZoneInfo]:
    """Each site's time zone: its site file's `timezone` (`gateway.sites`), else the
    console's `time_zone`."""
    files = runtime.figures.sites if runtime.figures is not None else {}
    default = runtime.settings.console.zone()

    def zone(site_id: str) -> ZoneInfo:
        found = files.get(site_id)
        return found.tz if found is not None else default

    return zone


def base_context(request: Request, principal: Principal | None) -> dict[str, Any]:
    """What every template gets: the translator, the caller, the CSRF field, the menu and
    the time helpers (the SSE stream renders its cards with this too)."""
    runtime: Runtime = request.app.state.runtime
    settings = runtime.settings
    t = translator(request)
    csrf_cookie = request.cookies.get(CSRF_COOKIE) or new_csrf_cookie()
    request.state.csrf_cookie = csrf_cookie
    return {
        "t": t,
        "lang": t.lang,
        "languages": LANGUAGES,
        "principal": principal,
        "csrf": csrf_token(settings.signing_key(), csrf_cookie),
        "now": time.time(),
        "path": request.url.path,
        "here": request.url.path + (f"?{request.url.query}" if request.url.query else ""),
        "nav": [
            (label, href)
            for label, href, permission in NAV
            if principal is not None and views.may(principal, permission)
        ],
        "zone_of": zone_of(runtime),
        "local_time": views.local_time,
        "views": views,
    }


def render(
    request: Request,
    template: str,
    context: dict[str, Any],
    *,
    status_code: int = 200,
    principal: Principal | None = None,
) -> HTMLResponse:
    """A page (or a fragment) rendered with the shared context, its headers and cookies."""
    runtime: Runtime = request.app.state.runtime
    principal = principal or getattr(request.state, "console_principal", None)
    base = base_context(request, principal)
    base.update(context)
    html = environment().get_template(template).render(base)
    response = HTMLResponse(html, status_code=status_code, headers=PAGE_HEADERS)
    if CSRF_COOKIE not in request.cookies:
        response.set_cookie(
            CSRF_COOKIE,
            request.state.csrf_cookie,
            httponly=True,
            samesite="strict",
            secure=runtime.settings.console.cookie_secure,
            path="/",
        )
    if principal is not None:
        renew_session(request, response, principal.username, base["now"])
    return response


def set_session(response: HTMLResponse | Any, runtime: Runtime, username: str, now: float) -> None:
    """Put a fresh console session for `username` in the response's cookie."""
    console = runtime.settings.console
    token = issue_console_session(
        username, runtime.settings.signing_key(), now, console.session_ttl_s
    )
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=console.session_ttl_s,
        httponly=True,
        samesite="strict",
        secure=console.cookie_secure,
        path="/",
    )


def renew_session(request: Request, response: Any, username: str, now: float) -> None:
    """Sliding renewal: a session past half its lifetime gets a fresh one, so a wall screen
    that keeps loading pages never has to log in again, while an idle one expires."""
    runtime: Runtime = request.app.state.runtime
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return
    try:
        issued = session_issued_at(token, runtime.settings.signing_key())
    except _TokenError:
        return
    if now - issued > runtime.settings.console.session_ttl_s / 2:
        set_session(response, runtime, username, now)
