"""What abuse of the public report route costs each side: the proof of work, and a photo.

- Proof of work: a client's expected cost at the configured difficulty (2**bits SHA-256
  hashes, measured as solve time over many challenges) against the server's cost to verify
  one (HMAC + one hash), and raw hashlib SHA-256 throughput as the floor both are made of.
- Photos: CPU to clean a 12 MP phone JPEG (decode, upright, scale, re-encode without EXIF)
  against decode-only, the physical limit of any check that looks at the pixels.

Three interleaved rounds; process CPU time, one thread.

    python -m benchmarks.residents_abuse [--bits 18] [--rounds 3]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import statistics
import time

from PIL import Image

from gateway.residents import pow
from gateway.residents.photos import clean_photo
from gateway.residents.tokens import derive_key

KEY = derive_key("benchmark-" + "x" * 32, "pow")


def _hash_rate(n: int = 200_000) -> float:
    """Raw SHA-256 of challenge-sized inputs per CPU second."""
    data = b"18.site-1.1780000000." + b"0" * 32 + b".abcdefghijklmnopqrstuv:"
    started = time.process_time()
    for i in range(n):
        hashlib.sha256(data + str(i).encode()).digest()
    return n / (time.process_time() - started)


def _solve_s(bits: int, challenges: int) -> float:
    """Mean CPU seconds to solve one challenge."""
    now = time.time()
    issued = [pow.issue(KEY, "site-1", now, bits=bits, ttl_s=600) for _ in range(challenges)]
    started = time.process_time()
    for c in issued:
        pow.solve(c.challenge, bits)
    return (time.process_time() - started) / challenges


def _verify_us(bits: int, n: int = 2000) -> float:
    c = pow.issue(KEY, "site-1", time.time(), bits=bits, ttl_s=600)
    nonce = pow.solve(c.challenge, bits)
    started = time.process_time()
    for _ in range(n):
        pow.verify(KEY, c.challenge, nonce, "site-1", time.time(), min_bits=bits)
    return 1e6 * (time.process_time() - started) / n


def _phone_jpeg() -> bytes:
    image = Image.effect_noise((4000, 3000), 40).convert("RGB")
    exif = Image.Exif()
    exif[0x8825] = {1: "N", 2: (31.0, 14.0, 7.5)}
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=90, exif=exif)
    return out.getvalue()


def _photo_ms(data: bytes) -> tuple[float, float]:
    started = time.process_time()
    with Image.open(io.BytesIO(data)) as image:
        image.load()
    decode = time.process_time() - started
    started = time.process_time()
    clean_photo(data)
    return 1e3 * decode, 1e3 * (time.process_time() - started)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bits", type=int, default=pow.DEFAULT_BITS)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--challenges", type=int, default=8)
    args = parser.parse_args()
    photo = _phone_jpeg()
    rates, solves, verifies, decodes, cleans = [], [], [], [], []
    for _ in range(args.rounds):  # interleaved: each round measures every quantity
        rates.append(_hash_rate())
        solves.append(_solve_s(args.bits, args.challenges))
        verifies.append(_verify_us(args.bits))
        decode, clean = _photo_ms(photo)
        decodes.append(decode)
        cleans.append(clean)
    rate, solve = statistics.median(rates), statistics.median(solves)
    verify = statistics.median(verifies)
    decode, clean = statistics.median(decodes), statistics.median(cleans)
    expected = 2**args.bits
    print(f"sha256 (hashlib, this CPU): {rate / 1e6:.2f} M hashes/s (floor)")
    print(
        f"proof of work at {args.bits} bits: expected {expected:,} hashes = "
        f"{expected / rate:.2f} s at the floor; measured solve {solve:.2f} s "
        f"(ratio to floor {solve / (expected / rate):.2f})"
    )
    print(
        f"verify: {verify:.1f} us per report; client/server cost ratio {solve * 1e6 / verify:,.0f}"
    )
    print(
        f"photo 4000x3000 ({len(photo) / 1e6:.1f} MB): clean {clean:.0f} ms CPU vs decode-only "
        f"{decode:.0f} ms (ratio {clean / decode:.2f}); 2 cores clean "
        f"{2 * 1000 / clean:.1f} photos/s"
    )


if __name__ == "__main__":
    main()
