"""Which address is the client (`gateway.api.proxies`)."""

from __future__ import annotations

import pytest

from gateway.api.proxies import client_address, networks

TRUSTED = networks(("10.0.0.0/8", "::1"))


@pytest.mark.parametrize(
    ("peer", "forwarded", "trusted", "expected"),
    [
        ("127.0.0.1", ["203.0.113.9"], (), "127.0.0.1"),  # nothing configured: header ignored
        ("198.51.100.1", ["203.0.113.9"], TRUSTED, "198.51.100.1"),  # peer is no proxy
        ("10.0.0.2", ["203.0.113.9"], TRUSTED, "203.0.113.9"),
        ("10.0.0.2", ["6.6.6.6, 203.0.113.9"], TRUSTED, "203.0.113.9"),  # forged left part
        ("10.0.0.2", ["6.6.6.6", "203.0.113.9, 10.0.0.7"], TRUSTED, "203.0.113.9"),
        ("10.0.0.2", ["10.0.0.3, 10.0.0.4"], TRUSTED, "10.0.0.3"),  # only proxies
        ("10.0.0.2", [], TRUSTED, "10.0.0.2"),
        ("::1", ["2001:db8::5"], TRUSTED, "2001:db8::5"),
        (None, ["203.0.113.9"], TRUSTED, "unknown"),
    ],
)
def test_client_address(
    peer: str | None, forwarded: list[str], trusted: tuple[object, ...], expected: str
) -> None:
    assert client_address(peer, forwarded, trusted) == expected  # type: ignore[arg-type]
