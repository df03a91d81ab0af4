"""Ed25519 signing keys: the only module that imports `cryptography`.

A signing (private) key is a PKCS#8 PEM file, written mode 0600 and never logged. A public key
is one line, ``ed25519:<base64 of the 32 raw bytes>``, short enough to pin in a node's YAML
and a gateway setting. A key id is the first 16 hex digits of the public key's sha256: it
names the key in manifests and error messages without being a secret.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from guanjia.artifacts.errors import ArtifactSignatureError

PUBLIC_PREFIX = "ed25519:"
SIGNATURE_BYTES = 64


@dataclass(frozen=True)
class PublicKey:
    """A pinned Ed25519 public key."""

    raw: bytes

    @property
    def key_id(self) -> str:
        """First 16 hex digits of sha256(raw key): names the key, reveals nothing."""
        return hashlib.sha256(self.raw).hexdigest()[:16]

    def text(self) -> str:
        """The one-line form to pin: ``ed25519:<base64>``."""
        return PUBLIC_PREFIX + base64.b64encode(self.raw).decode("ascii")

    def verifies(self, signature: bytes, data: bytes) -> bool:
        """True when `signature` is this key's signature of `data`."""
        try:
            Ed25519PublicKey.from_public_bytes(self.raw).verify(signature, data)
        except InvalidSignature:
            return False
        return True


class SigningKey:
    """A private Ed25519 key that signs artifact manifests."""

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key

    def __repr__(self) -> str:
        return f"SigningKey(key_id={self.public.key_id})"

    @property
    def public(self) -> PublicKey:
        """The matching public key."""
        raw = self._key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return PublicKey(raw)

    def sign(self, data: bytes) -> bytes:
        """The 64-byte Ed25519 signature of `data`."""
        return self._key.sign(data)

    def save(self, path: Path) -> None:
        """Write the key as PKCS#8 PEM, mode 0600, refusing to overwrite an existing file."""
        pem = self._key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(pem)


def generate_key() -> SigningKey:
    """A fresh random signing key."""
    return SigningKey(Ed25519PrivateKey.generate())


def load_signing_key(path: Path) -> SigningKey:
    """Read a PKCS#8 PEM Ed25519 key; ValueError naming the file on any problem."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ValueError(f"{path}: cannot read the signing key: {exc.strerror or exc}") from exc
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{path}: not an unencrypted PEM private key") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path}: not an Ed25519 key")
    return SigningKey(key)


def parse_public_key(text: str) -> PublicKey:
    """``ed25519:<base64 of 32 bytes>`` → PublicKey; ValueError saying what is allowed."""
    value = text.strip()
    if not value.startswith(PUBLIC_PREFIX):
        raise ValueError(f"public key must look like {PUBLIC_PREFIX}<base64 of 32 bytes>")
    try:
        raw = base64.b64decode(value[len(PUBLIC_PREFIX) :], validate=True)
    except binascii.Error as exc:
        raise ValueError("public key is not valid base64") from exc
    if len(raw) != 32:
        raise ValueError(f"public key must be 32 bytes, got {len(raw)}")
    return PublicKey(raw)


def load_public_key(path: Path) -> PublicKey:
    """Read a public key file (one ``ed25519:...`` line)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"{path}: cannot read the public key: {exc.strerror or exc}") from exc
    try:
        return parse_public_key(text)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from exc


def encode_signature(signature: bytes) -> bytes:
    """The artifact.sig member: base64 and a newline."""
    return base64.b64encode(signature) + b"\n"


def check_signature(sig_member: bytes, data: bytes, trusted: list[PublicKey]) -> PublicKey:
    """The pinned key that signed `data`, or ArtifactSignatureError saying why none did."""
    if not trusted:
        raise ArtifactSignatureError("no public key is pinned: refusing every artifact")
    try:
        signature = base64.b64decode(sig_member.strip(), validate=True)
    except binascii.Error as exc:
        raise ArtifactSignatureError("artifact.sig is not base64") from exc
    if len(signature) != SIGNATURE_BYTES:
        raise ArtifactSignatureError(f"artifact.sig is {len(signature)} bytes, not 64")
    for key in trusted:
        if key.verifies(signature, data):
            return key
    ids = ", ".join(k.key_id for k in trusted)
    raise ArtifactSignatureError(
        f"signature does not verify with any pinned key ({ids}): wrong key or tampered manifest"
    )
