"""Console sign-in and sign-out, the language switch, and the home redirect."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from gateway.api.deps import ClientAddressDep, RuntimeDep
from gateway.api.session import check_credentials
from gateway.auth import Role
from gateway.console.deps import ConsolePrincipalDep, check_csrf, safe_next
from gateway.console.render import PAGE_HEADERS, render, set_session
from gateway.console.session import LANG_COOKIE, SESSION_COOKIE
from gateway.console.settings import LANGUAGES

router = APIRouter(prefix="/console", tags=["console"])

HOME_OF = {
    Role.ADMIN: "/console/wall",
    Role.SUPERVISOR: "/console/wall",
    Role.OPERATOR: "/console/wall",
    Role.WORKER: "/console/my",
}
"""Where each role lands after signing in."""


@router.get("/login", response_class=HTMLResponse)
async def login_page(request: Request, next: str | None = None) -> HTMLResponse:
    """The sign-in form."""
    return render(request, "login.html", {"next": safe_next(next, "")})


@router.post("/login", response_class=HTMLResponse, status_code=303)
async def login_submit(
    request: Request,
    *,
    runtime: RuntimeDep,
    address: ClientAddressDep,
    username: Annotated[str, Form(max_length=64)],
    password: Annotated[str, Form(max_length=200)],
    next: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    """Check the form (CSRF, then the same rate-limited check as POST /api/login) and set
    the session cookie; the form again with a message when refused."""
    await check_csrf(request)
    now = time.time()
    try:
        user = await check_credentials(runtime, username, password, address, now)
    except HTTPException as exc:
        message = "login.too_many" if exc.status_code == 429 else "login.wrong"
        headers = {"Retry-After": exc.headers["Retry-After"]} if exc.headers else None
        page = render(
            request,
            "login.html",
            {"next": safe_next(next, ""), "error": message, "username": username},
            status_code=exc.status_code,
        )
        if headers:
            page.headers.update(headers)
        return page
    response = RedirectResponse(safe_next(next, HOME_OF[user.role]), status_code=303)
    response.headers.update(PAGE_HEADERS)
    set_session(response, runtime, user.username, now)
    return response


@router.post("/logout", status_code=303)
async def logout(request: Request) -> Response:
    """Forget the session cookie (CSRF-checked, so another site cannot sign you out)."""
    await check_csrf(request)
    response = RedirectResponse("/console/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/lang", status_code=303)
async def switch_language(
    lang: Annotated[str, Query(pattern="^(zh-CN|en)$")], next: str | None = None
) -> Response:
    """Switch the console's language (a cookie, kept a year) and go back."""
    assert lang in LANGUAGES
    response = RedirectResponse(safe_next(next, "/console/login"), status_code=303)
    response.set_cookie(LANG_COOKIE, lang, max_age=365 * 86400, samesite="strict", path="/")
    return response


@router.get("", status_code=303)
async def home(principal: ConsolePrincipalDep) -> Response:
    """The signed-in user's start page (workers: their tickets; others: the wall)."""
    return RedirectResponse(HOME_OF[principal.role], status_code=303)
