"""Settings of the public resident routes (``GUANJIA_GATEWAY_RESIDENTS__…``)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from gateway.residents.pow import DEFAULT_BITS


class ResidentSettings(BaseModel):
    """Limits and proof-of-work of the public report routes; per-place limits and the
    low-rating rule are per site, in the site file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    public_base_url: str = Field(
        default="http://127.0.0.1:8080",
        pattern=r"^https?://[^\s/]+(/[^\s]*)?$",
        description="What residents' phones reach the gateway at (printed in QR codes).",
    )
    pow_bits: int = Field(
        default=DEFAULT_BITS, ge=8, le=28, description="Proof-of-work difficulty (2**bits hashes)."
    )
    challenge_ttl_s: int = Field(default=900, ge=60, le=3600, description="Challenge lifetime.")
    reports_per_address_per_hour: int = Field(
        default=10, ge=1, description="Reports one client address may send per hour."
    )
    reads_per_address_per_minute: int = Field(
        default=60, ge=1, description="Page, challenge and tracking reads per address a minute."
    )
    addresses_tracked: int = Field(
        default=10_000, ge=100, description="Addresses the limiters remember (bounded memory)."
    )
    max_photos: int = Field(default=3, ge=0, le=3, description="Photos per report.")
    max_photo_bytes: int = Field(
        default=6 * 1024 * 1024, ge=1024, description="Largest photo a resident may upload."
    )
    max_description_chars: int = Field(default=1000, ge=10, le=4000)
