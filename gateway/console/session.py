"""The console's cookies: the session (a signed token naming the user) and CSRF protection.

- `guanjia_session`: an HS256 token with the console audience (`gateway.auth`), HttpOnly,
  SameSite=Strict, Secure when configured. It names the user only; role, sites and whether
  the account is enabled are read from the database on every request, like an API token.
  Any replica with the same signing key accepts it, so no session store is needed.
- `guanjia_csrf`: a random value, HttpOnly, SameSite=Strict, set on the first console page.
  Every form carries `csrf = HMAC(key, cookie value)`; a POST whose field does not match the
  cookie it came with is refused (403) before anything else runs. A page on another origin
  can neither read the cookie nor compute the field. SameSite=Strict is the second layer.
- `guanjia_lang`: the chosen language (not a credential).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping
from http.cookies import CookieError, SimpleCookie

from gateway.auth import CONSOLE_AUDIENCE, TokenError, read_token

SESSION_COOKIE = "guanjia_session"
CSRF_COOKIE = "guanjia_csrf"
LANG_COOKIE = "guanjia_lang"
CSRF_FIELD = "csrf"


def new_csrf_cookie() -> str:
    """A fresh random CSRF cookie value."""
    return secrets.token_urlsafe(24)


def csrf_token(key: str, cookie: str) -> str:
    """The form field that goes with CSRF cookie `cookie`."""
    return hmac.new(key.encode(), b"csrf:" + cookie.encode(), hashlib.sha256).hexdigest()


def csrf_ok(key: str, cookie: str | None, field: str | None) -> bool:
    """Whether a form's CSRF field matches the cookie it came with."""
    if not cookie or not field:
        return False
    return hmac.compare_digest(csrf_token(key, cookie), field)


def cookies_of(headers: Mapping[bytes, bytes]) -> dict[str, str]:
    """The cookies of raw ASGI headers (lower-case names), {} when unparseable."""
    raw = headers.get(b"cookie")
    if raw is None:
        return {}
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(raw.decode("latin-1"))
    except CookieError:
        return {}
    return {name: morsel.value for name, morsel in jar.items()}


def session_is_valid(headers: Mapping[bytes, bytes], key: str) -> bool:
    """Whether raw request headers carry a well-signed, unexpired console session (no
    database look-up: the body-limit middleware's check before reading an upload)."""
    token = cookies_of(headers).get(SESSION_COOKIE)
    if not token:
        return False
    try:
        read_token(token, key, CONSOLE_AUDIENCE)
    except TokenError:
        return False
    return True
