"""Who the client is: the peer address, or what a *configured* reverse proxy says it is.

`X-Forwarded-For` is a list anyone can write. It is read only when the peer is one of
`GatewaySettings.trusted_proxies`, and then from the right: each hop appends the address it
saw, so the first address from the right that is not itself a trusted proxy is the client.
With no proxies configured (the default) the header is ignored, whoever sends it — loopback
included (uvicorn's own proxy handling is switched off in `guanjia gateway run`).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from functools import cache

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@cache
def networks(entries: tuple[str, ...]) -> tuple[Network, ...]:
    """Parsed `trusted_proxies` (validated by the settings; parsed once per list)."""
    return tuple(ipaddress.ip_network(entry, strict=False) for entry in entries)


def _trusted(address: str, trusted: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return False
    return any(ip in net for net in trusted)


def client_address(
    peer: str | None, forwarded_for: Sequence[str], trusted: Sequence[Network]
) -> str:
    """The client's address. `forwarded_for` holds every X-Forwarded-For header value."""
    if peer is None:
        return "unknown"
    if not trusted or not _trusted(peer, trusted):
        return peer
    hops = [hop.strip() for value in forwarded_for for hop in value.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not _trusted(hop, trusted):
            return hop
    return hops[0] if hops else peer
