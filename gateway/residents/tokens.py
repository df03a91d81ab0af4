"""The two tokens a resident holds: the place token in a posted QR code, and the tracking
token of their report. Pure and standard-library only.

- A **place token** is ``{site}.{place}.{mac}``: the ids in clear (so a code can be read and
  checked by eye) and 128 bits of HMAC-SHA256 over them under the gateway's key, so nobody
  can make a code for a place (or a site) that was not printed. Rotating the key voids every
  posted code (print them again with ``guanjia site qr``).
- A **tracking token** is 256 random bits (unguessable: the tracking link is the only
  credential of an anonymous resident); the database keeps only its SHA-256.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

_ID = r"[A-Za-z0-9_-]{1,64}"
_PLACE_TOKEN = re.compile(rf"^({_ID})\.({_ID})\.([A-Za-z0-9_-]{{22}})$")
_TRACKING = re.compile(r"^[A-Za-z0-9_-]{43}$")
_PLACE_LABEL = b"guanjia/place/v1|"


def b64url(raw: bytes) -> str:
    """URL-safe base64 without padding."""
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def derive_key(secret: str, purpose: str) -> bytes:
    """A key for one purpose from the gateway's signing secret (a place token can never be
    mistaken for an API token or a proof-of-work challenge)."""
    return hmac.new(secret.encode(), f"guanjia/{purpose}".encode(), hashlib.sha256).digest()


@dataclass(frozen=True)
class PlaceRef:
    """The site and place a valid place token names."""

    site_id: str
    place_id: str


def place_token(key: bytes, site_id: str, place_id: str) -> str:
    """The token printed in the QR code of `place_id` at `site_id`."""
    mac = hmac.new(key, _PLACE_LABEL + f"{site_id}|{place_id}".encode(), hashlib.sha256)
    return f"{site_id}.{place_id}.{b64url(mac.digest()[:16])}"


def read_place_token(key: bytes, token: str) -> PlaceRef | None:
    """The place a token names, or None when it is malformed or not ours."""
    found = _PLACE_TOKEN.fullmatch(token)
    if found is None:
        return None
    expected = place_token(key, found[1], found[2])
    if not hmac.compare_digest(expected.encode(), token.encode()):
        return None
    return PlaceRef(found[1], found[2])


def new_tracking_token() -> str:
    """A fresh tracking token (256 random bits, URL-safe)."""
    return b64url(secrets.token_bytes(32))


def tracking_hash(token: str) -> str | None:
    """What the database stores of a tracking token, or None for a malformed one (so a
    garbage URL costs no database read)."""
    if not _TRACKING.fullmatch(token):
        return None
    return hashlib.sha256(token.encode("ascii")).hexdigest()
