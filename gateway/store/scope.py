"""Writes refused because of site scope (the API answers both 409, with different texts).

`OutOfScopeError`: the id is taken by an object in a site outside the caller's scope; the
error says nothing else about it. `SiteChangeError`: the write would move a device or grid
to another site, which a create-or-update never does (devices move through an admin-only
route; grids never change site).
"""

from __future__ import annotations

from gateway.store.base import ConflictError


class OutOfScopeError(ConflictError):
    """The id belongs to an object outside the caller's sites."""

    def __init__(self, kind: str, object_id: str) -> None:
        super().__init__(f"{kind} id {object_id!r} is already taken outside your sites")


class SiteChangeError(ConflictError):
    """A create-or-update would move the object to another site."""

    def __init__(self, kind: str, object_id: str, site_id: str) -> None:
        super().__init__(f"{kind} {object_id!r} belongs to site {site_id!r}")
        self.kind = kind
        self.object_id = object_id
        self.site_id = site_id
