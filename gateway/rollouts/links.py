"""Short-lived download links, one per device: HMAC-SHA256 over what the link grants.

The link names the artifact, the site and device it was made for, and when it expires;
its signature is keyed by the gateway's secret (its JWT key, never sent anywhere), so a
device can fetch only what a rollout sent it, and only until the link expires.
"""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import urlencode


def _mac(key: str, sha256: str, site_id: str, device_id: str, expires: int) -> str:
    message = f"model-download\n{sha256}\n{site_id}\n{device_id}\n{expires}".encode()
    return hmac.new(key.encode(), message, hashlib.sha256).hexdigest()


def signed_url(
    base_url: str, key: str, sha256: str, *, site_id: str, device_id: str, expires: int
) -> str:
    """The download URL for one device."""
    query = urlencode(
        {
            "site": site_id,
            "device": device_id,
            "exp": expires,
            "sig": _mac(key, sha256, site_id, device_id, expires),
        }
    )
    return f"{base_url.rstrip('/')}/api/models/{sha256}/download?{query}"


def check_link(
    key: str, sha256: str, *, site_id: str, device_id: str, expires: int, sig: str, now: float
) -> str | None:
    """None when the link is valid now; else why not (for the log, never the answer)."""
    if now > expires:
        return "expired"
    if not hmac.compare_digest(_mac(key, sha256, site_id, device_id, expires), sig):
        return "bad signature"
    return None
