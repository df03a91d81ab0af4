"""The artifact errors (tree in the package docstring). Messages are one line: what and why."""

from __future__ import annotations


class ArtifactError(ValueError):
    """An artifact that must not be installed; the message says why in one line."""


class ArtifactFormatError(ArtifactError):
    """Not a well-formed artifact: not a tar, an unexpected member, too big, bad manifest."""


class ArtifactIntegrityError(ArtifactError):
    """A member's bytes are not the ones artifact.json names (sha256 or size)."""


class ArtifactSignatureError(ArtifactError):
    """Unsigned, a signature that does not verify, or one made by a key nobody pinned."""
