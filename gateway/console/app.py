"""Mounting the console on the gateway app: its static files, its answers to a missing
session (303 to the login page) and to refused requests (an HTML page instead of JSON on
console paths), and the upload body rule authenticated by the session cookie."""

from __future__ import annotations

import re
from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from gateway.api.errors import one_line
from gateway.api.limits import MULTIPART_OVERHEAD, BodyRule
from gateway.console import (
    admin_pages,
    auth_pages,
    butler,
    figures_pages,
    report_pages,
    resident_pages,
    rounds_pages,
    ticket_pages,
    wall,
)
from gateway.console.deps import LoginRequiredError
from gateway.console.render import STATIC, render
from gateway.console.session import session_is_valid

ROUTERS = (
    auth_pages,
    wall,
    ticket_pages,
    butler,
    admin_pages,
    resident_pages,
    rounds_pages,
    figures_pages,
    report_pages,
)
"""The console's route modules (in `gateway.main.ROUTE_MODULES`, so the role matrix checks
them like the API's)."""
PHOTO_UPLOAD_PATH = re.compile(r"/console/tickets/[^/]+/photos/?")
SCAN_PATH = re.compile(r"/console/rounds/[^/]+/scans/?")
STATIC_PATH = "/console/static"
ERROR_MESSAGES = {403: "error.forbidden", 404: "error.not_found", 429: "error.rate_limited"}
RESIDENT_PREFIX = "/r/"
"""The residents' public pages (`resident_pages`): refused requests get an HTML page too."""


def upload_rule(max_photo_bytes: int, key: str) -> BodyRule:
    """The console's photo upload: the photo limit, and a valid session cookie before the
    body is read (as the API's upload wants a valid token)."""
    return BodyRule(
        PHOTO_UPLOAD_PATH,
        max_photo_bytes + MULTIPART_OVERHEAD,
        authenticated=True,
        check=lambda headers: session_is_valid(headers, key),
        # Like every console page without a session: to the login page. The body is unread,
        # so the connection cannot carry another request.
        refusal=RedirectResponse(
            "/console/login", status_code=303, headers={"Connection": "close"}
        ),
    )


def scan_rule(max_photo_bytes: int, key: str) -> BodyRule:
    """The butler's checkpoint scan (a photo with the ticks): the rounds' photo limit, and a
    valid session cookie before the body is read, as the ticket photo upload."""
    return BodyRule(
        SCAN_PATH,
        max_photo_bytes + MULTIPART_OVERHEAD,
        authenticated=True,
        check=lambda headers: session_is_valid(headers, key),
        refusal=RedirectResponse(
            "/console/login", status_code=303, headers={"Connection": "close"}
        ),
    )


def _is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


async def _login_required(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, LoginRequiredError)
    query = urlencode({"next": exc.next_path}) if request.method == "GET" else ""
    target = f"/console/login?{query}" if query else "/console/login"
    if _is_htmx(request):
        # htmx follows redirects inside XHR; tell it to navigate instead.
        return Response(status_code=401, headers={"HX-Redirect": "/console/login"})
    return RedirectResponse(target, status_code=303)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    path = request.url.path
    if not path.startswith(("/console", RESIDENT_PREFIX)) or path.startswith(STATIC_PATH):
        return await http_exception_handler(request, exc)
    key = ERROR_MESSAGES.get(exc.status_code, "error.other")
    page = render(
        request,
        "error.html",
        {"message": key, "code": exc.status_code},
        status_code=exc.status_code,
    )
    for name, value in (exc.headers or {}).items():
        page.headers[name] = value
    return page


async def _invalid(request: Request, exc: Exception) -> Response:
    """Bad input, as one line without the input (`gateway.api.errors`): JSON on API paths,
    the error page on console paths, like any other refusal."""
    assert isinstance(exc, RequestValidationError)
    return await _http_error(request, StarletteHTTPException(422, one_line(exc.errors())))


def install(app: FastAPI) -> None:
    """Serve the console's static files and the app's answers to refused requests: the
    console's error pages, and one-line validation errors everywhere."""
    app.mount(STATIC_PATH, StaticFiles(directory=STATIC), name="console-static")
    app.add_exception_handler(LoginRequiredError, _login_required)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _invalid)
