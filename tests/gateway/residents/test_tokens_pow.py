"""Place tokens, tracking tokens and the proof of work: forged, moved, expired or unsolved
ones are refused."""

from __future__ import annotations

import hashlib

import pytest

from gateway.residents import pow
from gateway.residents.tokens import (
    derive_key,
    new_tracking_token,
    place_token,
    read_place_token,
    tracking_hash,
)

KEY = derive_key("s" * 40, "place")
POW_KEY = derive_key("s" * 40, "pow")
NOW = 1_780_000_000.0


def test_place_token_round_trip() -> None:
    token = place_token(KEY, "site-1", "b3-lobby")
    ref = read_place_token(KEY, token)
    assert ref is not None
    assert (ref.site_id, ref.place_id) == ("site-1", "b3-lobby")


@pytest.mark.parametrize(
    "forge",
    [
        lambda t: t.replace("b3-lobby", "b4-lobby"),  # another place, same mac
        lambda t: t.replace("site-1", "site-2"),  # another site
        lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),  # mac changed
        lambda t: t + "x",
        lambda t: "",
    ],
)
def test_forged_place_tokens_are_refused(forge) -> None:
    assert read_place_token(KEY, forge(place_token(KEY, "site-1", "b3-lobby"))) is None


def test_another_keys_place_token_is_refused() -> None:
    other = derive_key("t" * 40, "place")
    assert read_place_token(KEY, place_token(other, "site-1", "b3-lobby")) is None


def test_tracking_tokens_are_random_and_only_their_hash_is_kept() -> None:
    tokens = {new_tracking_token() for _ in range(100)}
    assert len(tokens) == 100
    token = tokens.pop()
    assert len(token) == 43  # 256 bits
    assert tracking_hash(token) == hashlib.sha256(token.encode()).hexdigest()
    assert tracking_hash("../etc/passwd") is None
    assert tracking_hash(token + "x") is None


def test_a_solved_challenge_verifies_once_per_id() -> None:
    issued = pow.issue(POW_KEY, "site-1", NOW, bits=12, ttl_s=600)
    nonce = pow.solve(issued.challenge, 12)
    challenge_id = pow.verify(POW_KEY, issued.challenge, nonce, "site-1", NOW, min_bits=12)
    assert challenge_id == issued.challenge.split(".")[3]
    digest = hashlib.sha256(f"{issued.challenge}:{nonce}".encode()).digest()
    assert pow.leading_zero_bits(digest) >= 12


def _refusal(challenge: str, nonce: str, *, site: str = "site-1", now: float = NOW) -> str:
    with pytest.raises(pow.ProofError) as err:
        pow.verify(POW_KEY, challenge, nonce, site, now, min_bits=12)
    return str(err.value)


def test_unsolved_expired_moved_or_weakened_challenges_are_refused() -> None:
    issued = pow.issue(POW_KEY, "site-1", NOW, bits=12, ttl_s=600)
    nonce = pow.solve(issued.challenge, 12)
    wrong = next(
        format(n, "x")
        for n in range(10_000)
        if pow.leading_zero_bits(hashlib.sha256(f"{issued.challenge}:{n:x}".encode()).digest()) < 12
    )
    assert "does not solve" in _refusal(issued.challenge, wrong)
    assert "expired" in _refusal(issued.challenge, nonce, now=NOW + 601)
    assert "another site" in _refusal(issued.challenge, nonce, site="site-2")
    weakened = "4" + issued.challenge[2:]  # 12 → 4 bits: the mac no longer matches
    assert "not issued" in _refusal(weakened, pow.solve(weakened, 4))
    cheap = pow.issue(POW_KEY, "site-1", NOW, bits=4, ttl_s=600)
    assert "at least 12" in _refusal(cheap.challenge, pow.solve(cheap.challenge, 4))
    assert "malformed" in _refusal("nonsense", nonce)
    assert "nonce" in _refusal(issued.challenge, "x" * 40)


@pytest.mark.parametrize(("digest", "bits"), [(b"\x00\x00\xff", 16), (b"\x0f", 4), (b"\x80", 0)])
def test_leading_zero_bits(digest: bytes, bits: int) -> None:
    assert pow.leading_zero_bits(digest) == bits
