"""Proof of work for anonymous reports (hashcash-style), checked without any outside service.

The server hands out a signed **challenge**; the resident's phone finds a **nonce** such that
``SHA-256(challenge + ":" + nonce)`` starts with `bits` zero bits, and sends both with the
report. Checking costs the server one HMAC and one hash; finding costs the client about
``2**bits`` hashes on average. A challenge is:

    {bits}.{site}.{expires}.{id}.{mac}

with `id` 128 random bits and `mac` an HMAC over the rest, so a client cannot lower the
difficulty, move a challenge to another site or keep it past `expires`. A challenge buys one
report: the store inserts its `id` with the report (``pow_spent``), so a replay fails on any
replica. Works offline in the sense that matters here: no captcha vendor, no third-party
call, nothing a phone in a basement with a weak signal has to fetch beyond the page itself.

Cost (see docs/residents.md): at the default 18 bits a client needs on average 262,144
SHA-256 hashes: well under a second in a compiled hash, a few seconds in plain JavaScript on a
mid-range phone; a flood of 1,000 reports costs the sender 1,000 times that.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from gateway.residents.tokens import b64url

DEFAULT_BITS = 18
_CHALLENGE = re.compile(
    r"^(\d{1,2})\.([A-Za-z0-9_-]{1,64})\.(\d{1,12})\.([0-9a-f]{32})\.([A-Za-z0-9_-]{22})$"
)
_NONCE = re.compile(r"^[0-9A-Za-z]{1,32}$")


class ProofError(ValueError):
    """A missing, forged, expired or unsolved challenge (the message says which)."""


@dataclass(frozen=True)
class Challenge:
    """A challenge as issued: the string the client works on, its difficulty and expiry."""

    challenge: str
    bits: int
    expires_at: int


def _mac(key: bytes, body: str) -> str:
    return b64url(hmac.new(key, b"guanjia/pow/v1|" + body.encode(), hashlib.sha256).digest()[:16])


def issue(key: bytes, site_id: str, now: float, *, bits: int, ttl_s: int) -> Challenge:
    """A fresh challenge for a report at `site_id`, valid `ttl_s` seconds from `now`."""
    expires = int(now) + ttl_s
    body = f"{bits}.{site_id}.{expires}.{secrets.token_hex(16)}"
    return Challenge(f"{body}.{_mac(key, body)}", bits, expires)


def leading_zero_bits(digest: bytes) -> int:
    """How many zero bits `digest` starts with."""
    value = int.from_bytes(digest, "big")
    return len(digest) * 8 - value.bit_length()


def solve(challenge: str, bits: int) -> str:
    """A nonce for `challenge` (what the resident's phone does; here for tests, the CLI and
    the benchmark)."""
    prefix = hashlib.sha256((challenge + ":").encode())
    n = 0
    while True:
        h = prefix.copy()
        nonce = format(n, "x")
        h.update(nonce.encode())
        if leading_zero_bits(h.digest()) >= bits:
            return nonce
        n += 1


def verify(
    key: bytes, challenge: str, nonce: str, site_id: str, now: float, *, min_bits: int
) -> str:
    """The challenge id of a valid, unexpired, solved challenge for `site_id` of at least
    `min_bits`; ProofError otherwise. The caller spends the id (one report per challenge)."""
    found = _CHALLENGE.fullmatch(challenge)
    if found is None:
        raise ProofError("challenge: malformed; fetch a new one")
    body = challenge.rsplit(".", 1)[0]
    if not hmac.compare_digest(_mac(key, body), found[5]):
        raise ProofError("challenge: not issued by this gateway")
    if found[2] != site_id:
        raise ProofError("challenge: issued for another site")
    if int(found[3]) <= now:
        raise ProofError("challenge: expired; fetch a new one")
    bits = int(found[1])
    if bits < min_bits:
        raise ProofError(f"challenge: needs at least {min_bits} bits")
    if not _NONCE.fullmatch(nonce):
        raise ProofError("nonce: 1 to 32 letters or digits")
    digest = hashlib.sha256(f"{challenge}:{nonce}".encode()).digest()
    if leading_zero_bits(digest) < bits:
        raise ProofError("nonce: does not solve the challenge")
    return found[4]
